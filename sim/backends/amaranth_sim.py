"""The ``amaranth.sim`` backend: fast simulation in Python, no build step.

* :func:`run_phases` runs :mod:`spikemllm.sim.streams` drivers and monitors on a block;
* :class:`PysimBackend` lets the firmware driver reach a core inside a testbench;
* :func:`run_with_driver` builds a core and runs a driver coroutine on it.
"""

from __future__ import annotations

from amaranth.sim import Simulator
from spikemllm.firmware.driver import SpikeCoreDriver, TransferTimeout
from spikemllm.hw.core import SpikeCore
from spikemllm.sim.streams import DRAIN_CYCLES, BenchResult, StreamDriver, StreamMonitor, parties, stream_layouts

from spikemllm.config import AcceleratorConfig

__all__ = ["run_phase", "run_phases", "PysimBackend", "run_with_driver"]


def _idle(ctx, ports_in: dict, ports_out: dict) -> None:
    for port in ports_in.values():
        ctx.set(port.valid, 0)
    for port in ports_out.values():
        ctx.set(port.ready, 0)


async def run_phase(ctx, dut, drivers: list[StreamDriver], monitors: list[StreamMonitor], max_cycles: int) -> BenchResult:
    """Run one phase from the current cycle of an ``amaranth.sim`` testbench ``ctx``."""
    ports_in = {d.name: getattr(dut, d.name) for d in drivers}
    ports_out = {m.name: getattr(dut, m.name) for m in monitors}
    cycle, drain, last_out = 0, 0, -1
    while drain < DRAIN_CYCLES:
        finished = all(d.done for d in drivers) and all(m.done for m in monitors)
        if cycle >= max_cycles and not finished:  # the drain after the last beat is not timed
            state = {d.name: f"{d.sent}/{len(d._packed)} sent" for d in drivers}
            state.update({m.name: f"{len(m.beats)}/{m.expected_count} received" for m in monitors})
            _idle(ctx, ports_in, ports_out)
            raise TransferTimeout(f"transfer not complete after {max_cycles} cycles: {state}")
        for d in drivers:
            valid, payload = d.offer(cycle)
            ctx.set(ports_in[d.name].valid, valid)
            ctx.set(ports_in[d.name].payload.as_value(), payload)
        for m in monitors:
            ctx.set(ports_out[m.name].ready, 1 if finished else m.ready(cycle))
        signals = []
        for d in drivers:
            signals += [ports_in[d.name].valid, ports_in[d.name].ready]
        for m in monitors:
            p = ports_out[m.name]
            signals += [p.valid, p.ready, p.payload.as_value()]
        sampled = list((await ctx.tick().sample(*signals))[2:])  # after (clk, rst)
        for d in drivers:
            d.observe(cycle, sampled.pop(0), sampled.pop(0))
        for m in monitors:
            valid, ready, payload = sampled.pop(0), sampled.pop(0), sampled.pop(0)
            if finished and valid:
                raise AssertionError(f"{m.name}: unexpected extra beat in cycle {cycle}: {m.codec.unpack(payload)}")
            m.observe(cycle, valid, ready, payload)
            if valid and ready:
                last_out = cycle
        if finished:
            drain += 1
        cycle += 1
    _idle(ctx, ports_in, ports_out)
    return BenchResult(last_out + 1, {d.name: d for d in drivers}, {m.name: m for m in monitors})


def run_phases(dut, phases: list[tuple[list[StreamDriver], list[StreamMonitor]]], *, max_cycles: int = 100_000) -> list[BenchResult]:
    """Simulate ``dut`` through consecutive phases of drivers and monitors; one result each."""
    results: list[BenchResult] = []

    async def bench(ctx):
        for drivers, monitors in phases:
            results.append(await run_phase(ctx, dut, drivers, monitors, max_cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


class PysimBackend:
    """Drive a :class:`~spikemllm.hw.core.SpikeCore` from an ``amaranth.sim`` testbench."""

    def __init__(self, ctx, core):
        self.ctx = ctx
        self.core = core
        self.layouts = stream_layouts(core)

    async def write(self, word: int, value: int) -> None:
        bus = self.core.bus
        self.ctx.set(bus.addr, word)
        self.ctx.set(bus.w_data, value)
        self.ctx.set(bus.w_stb, 1)
        await self.ctx.tick()
        self.ctx.set(bus.w_stb, 0)

    async def read(self, word: int) -> int:
        bus = self.core.bus
        self.ctx.set(bus.addr, word)
        self.ctx.set(bus.r_stb, 1)
        await self.ctx.tick()
        self.ctx.set(bus.r_stb, 0)
        return self.ctx.get(bus.r_data)

    async def transfer(self, transfers, *, max_cycles: int = 1_000_000):
        drivers, monitors = parties(self.layouts, transfers)
        result = await run_phase(self.ctx, self.core, drivers, monitors, max_cycles)
        return {m.name: m.beats for m in monitors}, result.cycles


def run_with_driver(config: AcceleratorConfig, body, *, vcd: str | None = None, core_class=SpikeCore):
    """Build a core (``core_class``, default :class:`SpikeCore`) for ``config``, run
    ``await body(driver)`` in simulation, return its result."""
    core = core_class(config=config)
    result = {}

    async def bench(ctx):
        result["value"] = await body(SpikeCoreDriver(PysimBackend(ctx, core), config))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["value"]
