"""A simulated board behind a pseudo-terminal: the :class:`~spikemllm.hw.board.bridge.HostBridge`
(UART, link protocol, buffers and the SpikeCore) runs in ``amaranth.sim`` on a thread of
its own, and a UART model moves bytes between its ``rx``/``tx`` pins and the master side
of a pseudo-terminal (``os.openpty``). The host opens the terminal's device with pyserial
like a USB serial adapter, so the same :class:`~spikemllm.firmware.serial_backend.SerialBackend`
that talks to a board talks to the simulation.

Typical use::

    with SimulatedBoard(config, divisor=4) as board:
        backend = SerialBackend(open_port(board.port, baud=BAUD), config)
        ...

The UART model sends each byte bit by bit at ``divisor`` cycles per bit and samples the
bridge's ``tx`` in the middle of each bit, so the bridge's own receiver and transmitter
are what is exercised. The simulated clock runs freely while the host thinks, as a board's
would.

The simulation holds Python's global interpreter lock while it runs, and a host thread
woken by the terminal waits for it: at the interpreter's default switch interval (5 ms) a
request of a few hundred simulated cycles waits seconds. While the board runs, the
process's switch interval is lowered to :data:`SWITCH_INTERVAL_S` (and restored on exit).
"""

from __future__ import annotations

import os
import sys
import threading

from amaranth.sim import Simulator
from spikemllm.hw.board.bridge import HostBridge

from spikemllm.config import AcceleratorConfig

__all__ = ["SimulatedBoard", "SWITCH_INTERVAL_S"]

SWITCH_INTERVAL_S = 1e-4
"""The interpreter's thread switch interval while a board is simulated."""


class SimulatedBoard:
    """A context manager running a bridge for ``config`` behind a pseudo-terminal at :attr:`port`.

    ``bridge_params`` go to :class:`HostBridge` (``divisor``, buffer depths, ...). Leaving
    the context stops the simulation and raises what the simulation raised, if anything.
    """

    def __init__(self, config: AcceleratorConfig, **bridge_params):
        self.bridge = HostBridge(config=config, **bridge_params)
        self.divisor = self.bridge.divisor
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self.cycles = 0
        """clock cycles simulated so far (counted by the UART model)"""

    def __enter__(self) -> "SimulatedBoard":
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        self._master, self._slave = os.openpty()
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._simulate, name="simulated-board", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._master)
        os.close(self._slave)
        sys.setswitchinterval(self._switch_interval)
        if self._failure is not None and exc[0] is None:
            raise self._failure

    def _simulate(self) -> None:
        bridge, divisor, master = self.bridge, self.divisor, self._master

        async def host_to_rx(ctx):
            ctx.set(bridge.rx, 1)
            while not self._stop.is_set():
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                if not data:
                    await ctx.tick().repeat(10 * divisor)
                    self.cycles += 10 * divisor
                    continue
                for byte in data:
                    for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:  # start, data LSB first, stop
                        ctx.set(bridge.rx, bit)
                        await ctx.tick().repeat(divisor)
                        self.cycles += divisor

        async def tx_to_host(ctx):
            while True:
                await ctx.negedge(bridge.tx)
                await ctx.tick().repeat(divisor // 2)  # the middle of the start bit
                value = 0
                for k in range(8):
                    await ctx.tick().repeat(divisor)
                    value |= ctx.get(bridge.tx) << k
                await ctx.tick().repeat(divisor)  # the middle of the stop bit
                os.write(master, bytes([value]))

        try:
            sim = Simulator(bridge)
            sim.add_clock(1e-8)
            sim.add_testbench(host_to_rx)
            sim.add_testbench(tx_to_host, background=True)
            sim.run()
        except BaseException as exc:  # reported when the context exits
            self._failure = exc
