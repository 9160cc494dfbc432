"""cocotb testbench of one accelerator block, run by :mod:`spikemllm.flow.runner` under Verilator or Icarus.

The block and the generated description (``config.json`` next to the Verilog) come from
the environment (``SPIKEMLLM_BLOCK``, ``SPIKEMLLM_DESCRIPTION``); every size is read from
that description, not retyped. Each test builds :class:`~.benches.Bench` es (driver,
monitor, golden model and checker for every stream) and runs them on the DUT:

* ``ports_match_description`` -- the DUT's port widths equal the description's and the
  payload layouts';
* ``edge_cases`` -- all-zero spikes, every lane firing, T=1, T=T_max, saturation,
  max-magnitude weights; cycle counts equal the cycle model;
* ``random_cases`` -- seeded random tiles of several densities and fan-ins;
* ``stall_patterns`` -- one tile crossed with idle producers and back-pressure;
* ``accumulator_extremes`` -- ``max_fan_in`` inputs at full scale: ``+/-acc_bound``;
* ``real_data`` -- MiniLM layer-0 FFN activations and weights (checked-in fixture);
* ``requantizer_range`` (requantizer only) -- the whole accumulator range, rounding ties;
* ``random_sweep`` (only with ``SPIKEMLLM_SWEEP=1``, the slow tests) -- many seeds, each with
  its own density, fan-in and stall patterns.

With ``SPIKEMLLM_RESULTS`` naming a file, every bench's measurements are written there as
JSON (a list of ``{"bench", "phases"}`` in the order they ran, each phase its cycle count and the cycle of
every handshake on every stream), so runs on different simulators can be compared
cycle by cycle, stalled ones included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from spikemllm.sim.backends.cocotb_sim import reset, run_phases, start_clock
from spikemllm.sim.patterns import pattern

from spikemllm.config import AcceleratorConfig

from . import cases
from .benches import Bench, bench, codecs, requantizer_bench

BLOCK = os.environ.get("SPIKEMLLM_BLOCK", "")
DESCRIPTION = json.loads(Path(os.environ["SPIKEMLLM_DESCRIPTION"]).read_text()) if BLOCK else {}
CONFIG = AcceleratorConfig.from_dict(DESCRIPTION) if BLOCK else None

STREAMS = {
    "neuron_array": (["i"], ["o"]),
    "compactor": (["i"], ["o"]),
    "pe_array": (["i", "weights"], ["o"]),
    "requantizer": (["i", "params"], ["o"]),
}
PAYLOADS = {
    "neuron_array": {"i": "activation", "o": "spike_vector"},
    "compactor": {"i": "spike_vector", "o": "event_beat"},
    "pe_array": {"i": "event_beat", "weights": "weight_write", "o": "accumulator"},
    "requantizer": {"i": "accumulator", "params": "requant_params", "o": "output"},
}
STALLS = [("alternate", "always"), ("always", "alternate"), ("random30", "random70"),
          ("bursts", "random30"), ("random70", "bursts")]
"""(producer, consumer) pattern pairs every block is crossed with."""

RESULTS = os.environ.get("SPIKEMLLM_RESULTS")
_measured: list[dict] = []


def _record(b: Bench, results) -> None:
    """Add a bench's phases to the results file (rewritten whole: a failing test leaves what
    ran before it)."""
    phases = [{"cycles": r.cycles,
               "handshakes": {party.name: party.handshake_cycles
                              for party in [*r.drivers.values(), *r.monitors.values()]}}
              for r in results]
    _measured.append({"bench": b.label, "phases": phases})
    Path(RESULTS).write_text(json.dumps(_measured) + "\n")


async def _run(dut, b: Bench) -> None:
    await reset(dut, *STREAMS[BLOCK])
    results = await run_phases(dut, b.phases)
    if RESULTS:
        _record(b, results)
    b.check(results)
    measured = results[-1]
    beats = {name: len(m.beats) for name, m in measured.monitors.items()}
    dut._log.info(
        f"{b.label}: {measured.cycles} cycles, model {b.model_cycles} "
        f"({'exact match' if b.ideal else 'stalled, >= model'}), beats out {beats}"
    )


def _stalled(case, source: str, sink: str, seed: int = 0) -> Bench:
    return bench(BLOCK, case, source=pattern(source, seed=seed), sink=pattern(sink, seed=seed + 1),
                 label=f"{case.name}/{source}/{sink}")


@cocotb.test()
async def ports_match_description(dut):
    ports = DESCRIPTION["blocks"][BLOCK]["ports"]
    k = codecs(CONFIG)
    for name, entry in ports.items():
        handle = getattr(dut, name)
        assert len(handle) == entry["width"], f"{name}: DUT has {len(handle)} bits, description {entry['width']}"
        stream, field = name.split("__")
        if field == "payload":
            assert k[PAYLOADS[BLOCK][stream]].width == entry["width"], f"{name}: layout width differs"


@cocotb.test()
async def edge_cases(dut):
    start_clock(dut)
    for case in cases.edge_cases(CONFIG):
        await _run(dut, bench(BLOCK, case))


@cocotb.test()
async def random_cases(dut):
    start_clock(dut)
    max_chunks = CONFIG.max_fan_in // CONFIG.lanes
    for seed, density, chunks in ((1, 0.6, 1), (2, 0.15, min(3, max_chunks)), (3, 1.0, min(2, max_chunks))):
        case = cases.random_case(CONFIG, seed=seed, tokens=4, chunks=chunks, density=density)
        await _run(dut, bench(BLOCK, case))


@cocotb.test()
async def stall_patterns(dut):
    start_clock(dut)
    case = cases.random_case(CONFIG, seed=11, tokens=3, chunks=min(2, CONFIG.max_fan_in // CONFIG.lanes))
    for n, (source, sink) in enumerate(STALLS):
        await _run(dut, _stalled(case, source, sink, seed=n))


@cocotb.test()
async def accumulator_extremes(dut):
    start_clock(dut)
    case = cases.extreme_accumulator_case(CONFIG)
    await _run(dut, bench(BLOCK, case))
    await _run(dut, _stalled(case, "random30", "random30", seed=5))


@cocotb.test()
async def real_data(dut):
    start_clock(dut)
    case = cases.real_data_case(CONFIG)
    await _run(dut, bench(BLOCK, case))
    await _run(dut, _stalled(cases.real_data_case(CONFIG, tokens=2), "random30", "random70", seed=7))


if BLOCK == "requantizer":

    @cocotb.test()
    async def requantizer_range(dut):
        start_clock(dut)
        for seed in (1, 2, 3):
            await _run(dut, requantizer_bench(CONFIG, seed=seed))
        await _run(dut, requantizer_bench(CONFIG, seed=4, source=pattern("random70", seed=4),
                                          sink=pattern("random30", seed=5), label="range4/stalled"))




if os.environ.get("SPIKEMLLM_SWEEP", "0") not in ("", "0"):

    @cocotb.test()
    async def random_sweep(dut):
        start_clock(dut)
        names = ["always", "alternate", "bursts", "random30", "random70"]
        max_chunks = CONFIG.max_fan_in // CONFIG.lanes
        for seed in range(100, 140):
            chunks = 1 + seed % min(4, max_chunks)
            density = (seed % 5 + 1) / 5
            case = cases.random_case(CONFIG, seed=seed, tokens=3, chunks=chunks, density=density)
            source, sink = names[seed % 5], names[(seed // 5) % 5]
            await _run(dut, _stalled(case, source, sink, seed=seed) if (source, sink) != ("always", "always")
                       else bench(BLOCK, case))
            if BLOCK == "requantizer":
                await _run(dut, requantizer_bench(CONFIG, seed=seed))
