"""An 8N1 UART: a receiver and a transmitter of bytes on one pin each.

Both take ``divisor``, the clock cycles per bit (``clock / baud``, rounded): 104 for
115200 baud from the iCEBreaker's 12 MHz, 217 from the ULX3S's 25 MHz; a simulation uses
a few cycles per bit. Frames are one start bit (low), eight data bits least significant
first and one stop bit (high); the line idles high.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["check_divisor", "UARTReceiver", "UARTTransmitter"]

MIN_DIVISOR = 4
"""Fewest cycles per bit: the receiver samples a bit in its middle, ``divisor // 2`` cycles
after its edge, and needs two cycles on either side of the sample."""


def check_divisor(divisor) -> int:
    """``divisor`` if it is an integer of at least :data:`MIN_DIVISOR`; else ``ValueError`` naming it."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor (clock cycles per UART bit) must be an integer >= {MIN_DIVISOR}, not {divisor!r}")
    return divisor


class UARTReceiver(wiring.Component):
    """Receives bytes on ``rx``; each byte leaves on ``o`` for one cycle (no back-pressure:
    a UART cannot pause its sender).

    The line is synchronized through two flip-flops; a falling edge starts a frame, whose
    start bit is checked in its middle (a glitch shorter than half a bit is ignored) and
    whose data bits are sampled in theirs. A frame whose stop bit is low (a framing error)
    is dropped and counted on ``framing_error`` (high for one cycle).
    """

    def __init__(self, *, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8, always_ready=True)),
            "framing_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(10))
        shift = Signal(8)
        m.d.comb += self.o.payload.eq(shift)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.comb += [self.o.valid.eq(line), self.framing_error.eq(~line)]
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """Sends the bytes taken from ``i`` on ``tx``; ``i.ready`` is high while the line is idle."""

    def __init__(self, *, divisor: int):
        self.divisor = check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)  # stop bit, data, start bit; shifted out LSB first
        left = Signal(range(11))
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), left.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1), timer.eq(self.divisor - 1)]
        return m
