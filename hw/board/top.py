"""Board top levels: the :class:`~.bridge.HostBridge` on the pins of an FPGA board, from
the ``amaranth-boards`` platform definitions.

The core runs on the board's oscillator (``sync`` comes from the platform, with its
power-on reset): the measured Fmax of each board's configuration is above it
(``make bitstream`` reports it), so no PLL is needed. The UART is the board's USB serial
adapter at :data:`BAUD`.

=============  =========================  =============  =========================================
board          platform                   configuration  LEDs (busy, done, error, link error)
=============  =========================  =============  =========================================
``icebreaker`` iCEBreaker (iCE40 UP5K)    ``small``      break-off PMOD LED2, green, red, PMOD LED1
``ulx3s``      ULX3S 85F (ECP5 LFE5U-85F) ``default``    LED 0, 1, 2, 3
=============  =========================  =============  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from spikemllm.config import PRESETS, AcceleratorConfig

from .bridge import HostBridge

__all__ = ["BAUD", "IDLE_TIMEOUT_S", "Board", "BOARDS", "check_board", "BoardTop"]

BAUD = 115_200
"""The link's baud rate on every board."""

IDLE_TIMEOUT_S = 0.005
"""Idle receive line that ends a refused frame: longer than the 1 ms gaps between a USB
serial adapter's packets."""


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    platform = ICEBreakerPlatform()
    platform.add_resources(platform.break_off_pmod)
    return platform


def _ulx3s():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()


@dataclass(frozen=True)
class Board:
    """A supported board: its platform, the configuration that fits it and its LEDs."""

    name: str
    description: str
    platform: object
    """a function returning a fresh ``amaranth-boards`` platform"""
    config: str
    """the preset built for the board"""
    leds: dict
    """bridge output (``busy``, ``done``, ``error``, ``link_error``) -> (resource, number)"""
    family: str
    programmer: str
    """how to load the bitstream (docs/board.md)"""

    @property
    def preset(self) -> AcceleratorConfig:
        return PRESETS[self.config]


BOARDS = {
    "icebreaker": Board("icebreaker", "iCEBreaker (iCE40 UP5K, sg48)", _icebreaker, "board_ice40",
                        {"busy": ("led_g", 2), "done": ("led_g", 0), "error": ("led_r", 0), "link_error": ("led_r", 1)},
                        "ice40", "iceprog build/board/icebreaker/top.bin"),
    "ulx3s": Board("ulx3s", "ULX3S 85F (ECP5 LFE5U-85F, CABGA381)", _ulx3s, "default",
                   {"busy": ("led", 0), "done": ("led", 1), "error": ("led", 2), "link_error": ("led", 3)},
                   "ecp5", "openFPGALoader -b ulx3s build/board/ulx3s/top.bit"),
}
"""Supported boards by name."""


def check_board(name: str) -> Board:
    """The board called ``name``; ``ValueError`` naming it if it is not in :data:`BOARDS`."""
    if name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {name!r}")
    return BOARDS[name]


class BoardTop(Elaboratable):
    """The bridge and its core on ``board``'s clock, UART and LEDs.

    ``config`` defaults to the board's preset. The UART divisor and the idle timeout
    follow from the platform's clock frequency.
    """

    def __init__(self, board: str, *, config: AcceleratorConfig | None = None):
        self.board = check_board(board)
        self.config = self.board.preset if config is None else config

    def bridge_for(self, clock_hz: float) -> HostBridge:
        """The bridge for a ``clock_hz`` system clock."""
        return HostBridge(config=self.config, divisor=round(clock_hz / BAUD),
                          idle_timeout=round(clock_hz * IDLE_TIMEOUT_S))

    def elaborate(self, platform):
        m = Module()
        bridge = m.submodules.bridge = self.bridge_for(platform.default_clk_frequency)
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [bridge.rx.eq(rx.i), tx.o.eq(bridge.tx)]
        for output, (resource, number) in self.board.leds.items():
            led = m.submodules[f"led_{output}"] = io.Buffer("o", platform.request(resource, number, dir="-"))
            m.d.comb += led.o.eq(getattr(bridge, output))
        return m
