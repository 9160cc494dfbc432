"""Run :mod:`.streams` drivers and monitors under ``amaranth.sim`` (fast unit tests)."""

from __future__ import annotations

from amaranth.sim import Simulator

from .streams import BenchResult, StreamDriver, StreamMonitor

__all__ = ["run_phase", "run_phases"]

DRAIN_CYCLES = 8
"""Cycles every phase keeps running after its last expected beat, to catch extra beats."""


async def run_phase(ctx, dut, drivers: list[StreamDriver], monitors: list[StreamMonitor], max_cycles: int) -> BenchResult:
    """Run one phase from the current cycle of an ``amaranth.sim`` testbench ``ctx``."""
    ports_in = {d.name: getattr(dut, d.name) for d in drivers}
    ports_out = {m.name: getattr(dut, m.name) for m in monitors}
    cycle, drain, last_out = 0, 0, -1
    while drain < DRAIN_CYCLES:
        if cycle >= max_cycles:
            state = {d.name: f"{d.sent}/{len(d._packed)} sent" for d in drivers}
            state.update({m.name: f"{len(m.beats)}/{m.expected_count} received" for m in monitors})
            raise AssertionError(f"no progress after {max_cycles} cycles: {state}")
        finished = all(d.done for d in drivers) and all(m.done for m in monitors)
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
    for d in drivers:
        ctx.set(ports_in[d.name].valid, 0)
    for m in monitors:
        ctx.set(ports_out[m.name].ready, 0)
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
