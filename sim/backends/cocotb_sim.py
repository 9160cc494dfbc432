"""The cocotb backend (Verilator): run :mod:`spikemllm.sim.streams` drivers and monitors on
a DUT, and :class:`CocotbBackend`, through which the firmware driver reaches a core.

Per cycle: right after the rising edge the drivers and monitors drive ``valid``,
``payload`` and ``ready``; at ``ReadOnly`` (everything settled) the handshakes of the
cycle are sampled; the next rising edge commits them. A stream ``s`` of the block is the
Verilog ports ``s__valid``, ``s__ready`` and ``s__payload`` that Amaranth emits.
"""

from __future__ import annotations

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from spikemllm.firmware.driver import TransferTimeout
from spikemllm.sim.streams import DRAIN_CYCLES, BenchResult, StreamDriver, StreamMonitor, parties

__all__ = ["start_clock", "reset", "run_phase", "run_phases", "CocotbBackend"]

CLOCK_PERIOD_NS = 10


def start_clock(dut) -> None:
    """Drive ``dut.clk`` with a 100 MHz clock."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()


async def reset(dut, streams_in: list[str], streams_out: list[str], cycles: int = 2) -> None:
    """Hold the synchronous reset for ``cycles`` edges with every stream idle."""
    for name in streams_in:
        getattr(dut, f"{name}__valid").value = 0
        getattr(dut, f"{name}__payload").value = 0
    for name in streams_out:
        getattr(dut, f"{name}__ready").value = 0
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _idle(ins: list, outs: list) -> None:
    for _, valid, _, _ in ins:
        valid.value = 0
    for _, _, ready, _ in outs:
        ready.value = 0


async def run_phase(dut, drivers: list[StreamDriver], monitors: list[StreamMonitor], *, max_cycles: int = 200_000) -> BenchResult:
    """Run one phase from the current rising edge; return what it measured."""
    ins = [(d, getattr(dut, f"{d.name}__valid"), getattr(dut, f"{d.name}__ready"), getattr(dut, f"{d.name}__payload"))
           for d in drivers]
    outs = [(m, getattr(dut, f"{m.name}__valid"), getattr(dut, f"{m.name}__ready"), getattr(dut, f"{m.name}__payload"))
            for m in monitors]
    clk = dut.clk
    cycle, drain, last_out = 0, 0, -1
    while drain < DRAIN_CYCLES:
        finished = all(d.done for d in drivers) and all(m.done for m in monitors)
        if cycle >= max_cycles and not finished:  # the drain after the last beat is not timed
            state = {d.name: f"{d.sent} sent" for d in drivers}
            state.update({m.name: f"{len(m.beats)}/{m.expected_count} received" for m in monitors})
            _idle(ins, outs)
            raise TransferTimeout(f"transfer not complete after {max_cycles} cycles: {state}")
        for d, valid, _, payload in ins:
            v, p = d.offer(cycle)
            valid.value = v
            payload.value = p
        for m, _, ready, _ in outs:
            ready.value = 1 if finished else m.ready(cycle)
        await ReadOnly()
        for d, valid, ready, _ in ins:
            d.observe(cycle, int(valid.value), int(ready.value))
        for m, valid, ready, payload in outs:
            v, r = int(valid.value), int(ready.value)
            p = int(payload.value) if v else 0
            if finished and v:
                raise AssertionError(f"{m.name}: unexpected extra beat in cycle {cycle}: {m.codec.unpack(p)}")
            m.observe(cycle, v, r, p)
            if v and r:
                last_out = cycle
        if finished:
            drain += 1
        await RisingEdge(clk)
        cycle += 1
    _idle(ins, outs)
    return BenchResult(last_out + 1, {d.name: d for d in drivers}, {m.name: m for m in monitors})


async def run_phases(dut, phases, **kwargs) -> list[BenchResult]:
    """Run consecutive phases (each a ``(drivers, monitors)`` pair)."""
    return [await run_phase(dut, drivers, monitors, **kwargs) for drivers, monitors in phases]


class CocotbBackend:
    """Drive a SpikeCore DUT under cocotb; ``layouts`` are the streams' payload layouts."""

    def __init__(self, dut, layouts: dict):
        self.dut = dut
        self.layouts = layouts

    async def write(self, word: int, value: int) -> None:
        d = self.dut
        d.bus__addr.value = word
        d.bus__w_data.value = value
        d.bus__w_stb.value = 1
        await RisingEdge(d.clk)
        d.bus__w_stb.value = 0

    async def read(self, word: int) -> int:
        d = self.dut
        d.bus__addr.value = word
        d.bus__r_stb.value = 1
        await RisingEdge(d.clk)
        d.bus__r_stb.value = 0
        await ReadOnly()
        value = int(d.bus__r_data.value)
        await RisingEdge(d.clk)
        return value

    async def transfer(self, transfers, *, max_cycles: int = 1_000_000):
        drivers, monitors = parties(self.layouts, transfers)
        result = await run_phase(self.dut, drivers, monitors, max_cycles=max_cycles)
        return {m.name: m.beats for m in monitors}, result.cycles
