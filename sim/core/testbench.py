"""cocotb testbench of a core top level -- the SpikeCore or a dense baseline (the block key
in ``SPIKEMLLM_BLOCK``: ``core``, ``int8_core``, ``fp16_core``) -- run by Verilator or Icarus Verilog.

Through the firmware driver (:class:`~spikemllm.firmware.driver.SpikeCoreDriver` over
:class:`~spikemllm.sim.backends.cocotb_sim.CocotbBackend`), it loads a real converted
transformer layer (a workload of :mod:`spikemllm.sim.core.cases`), programs the timestep
table from a schedule file through the layer compiler (vision and text tokens get
different ``T``), streams a token sequence mixing both modalities, and checks:

* every output bit-exactly against the golden model (the integer layer; for the FP16
  core its FP16/FP32 model, :func:`~.cases.core_expectation`);
* the ``CYCLES``, ``EVENTS``, ``ACTIVE_CYCLES`` and ``WEIGHT_READS`` counters exactly against the
  core's cycle model (ideal streams);
* ``CYCLES`` against the testbench's own count (:class:`RunCycleCounter`): clock edges
  from the one that commits the ``START`` write on the bus to the one that takes the
  run's last output beat, watched on the ports, in the ideal and the stalled run;
* the same outputs again with random stalls on the input (its first beat held back
  :data:`~spikemllm.sim.patterns.LATE_START` cycles) and back-pressure on the output, taking more cycles than
  the ideal run (unless the case says ``"stalled_run": false``: the gate-level power flow
  simulates a mapped netlist through the ideal run alone).

The configuration description comes from ``SPIKEMLLM_DESCRIPTION``; the case from
``SPIKEMLLM_CASE``, a JSON object whose ``workload`` (``"minilm"`` by default, or
``"qwen2vl"``, ``"qwen2vl_mlp"``) picks the workload and whose other entries are its options (e.g.
``{"workload": "qwen2vl", "tokens": 12}``). Measurements are written as JSON to
``SPIKEMLLM_RESULTS``, including the workload, the layer's module path and the
simulation-time window of the ideal run (``run_window_ps``), which the power flow uses to
count toggles of that run only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time
from spikemllm.firmware.compiler import load_timestep_table
from spikemllm.firmware.driver import SpikeCoreDriver
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.hw.blocks import block_component
from spikemllm.sim.backends.cocotb_sim import CocotbBackend, reset, start_clock
from spikemllm.sim.patterns import late_start, pattern
from spikemllm.sim.streams import stream_layouts

from spikemllm.config import AcceleratorConfig, describe_config
from spikemllm.modality import Modality, timestep_index

from .cases import core_expectation, spikes_by_modality, workload_case


DEFAULT_WORKLOAD = "minilm"


class RunCycleCounter:
    """The testbench's own count of a run's clock cycles, from the DUT's ports alone.

    :meth:`watch` samples the bus and the output stream every cycle (at ``ReadOnly``): a
    cycle whose bus write puts ``START`` into ``CTRL`` begins a run (the edge ending it
    commits the write, so the core is busy from the next cycle), and every cycle with
    ``o.valid & o.ready`` takes an output beat. :meth:`cycles` is the number of clock
    edges from the start to the edge that takes the run's last output beat, which is
    what ``CYCLES`` counts (cycles with ``busy`` set) if the counter is right.
    """

    def __init__(self, dut, driver: SpikeCoreDriver):
        self.dut = dut
        ctrl = driver.regs["CTRL"]
        self.ctrl_word = ctrl.word
        self.start_field = ctrl
        self.starts: list[int] = []
        self.outputs: list[int] = []

    def _is_start(self) -> bool:
        d = self.dut
        if not (int(d.bus__w_stb.value) and int(d.bus__addr.value) == self.ctrl_word):
            return False
        return bool(self.start_field.unpack(int(d.bus__w_data.value))["START"])

    async def watch(self) -> None:
        d, cycle = self.dut, 0
        while True:
            await ReadOnly()
            if self._is_start():
                self.starts.append(cycle)
            if int(d.o__valid.value) and int(d.o__ready.value):
                self.outputs.append(cycle)
            await RisingEdge(d.clk)
            cycle += 1

    def cycles(self, beats: int) -> int:
        """Cycles of the latest run, which must have delivered ``beats`` output beats."""
        assert self.starts, "no START write was seen on the bus"
        start = self.starts[-1]
        taken = [c for c in self.outputs if c > start]
        assert len(taken) == beats, f"the testbench saw {len(taken)} output beats after START, expected {beats}"
        return taken[-1] - start


async def start_core(dut, block: str, config: AcceleratorConfig) -> tuple[SpikeCoreDriver, RunCycleCounter]:
    """Start the clock, reset the core ``block`` built for ``config`` with its streams idle,
    and return a driver that has identified it and a running :class:`RunCycleCounter`."""
    start_clock(dut)
    dut.bus__w_stb.value = 0
    dut.bus__r_stb.value = 0
    await reset(dut, ["i", "weights", "bias", "params"], ["o"])
    driver = SpikeCoreDriver(CocotbBackend(dut, stream_layouts(block_component(block, config))), config)
    counter = RunCycleCounter(dut, driver)
    cocotb.start_soon(counter.watch())
    await driver.identify()
    return driver, counter


def _setup():
    """The configuration, the schedule file, the case and the block under test.

    The schedule comes from the file named by ``SPIKEMLLM_SCHEDULE``; without one, the
    case's default schedule is written to ``schedule.json`` in the test folder. Either way
    the timestep table is programmed from that file.
    """
    description = json.loads(Path(os.environ["SPIKEMLLM_DESCRIPTION"]).read_text())
    config = AcceleratorConfig.from_dict(description)
    options = json.loads(os.environ.get("SPIKEMLLM_CASE") or "{}")
    if not isinstance(options, dict):
        raise ValueError(f"SPIKEMLLM_CASE must be a JSON object, not {options!r}")
    workload = options.pop("workload", DEFAULT_WORKLOAD)
    options.pop("stalled_run", None)  # read by the test itself
    schedule_file = os.environ.get("SPIKEMLLM_SCHEDULE")
    if schedule_file:
        case = workload_case(config, workload, schedule=Schedule.load(schedule_file), **options)
    else:
        case = workload_case(config, workload, **options)
        schedule_file = Path("schedule.json").resolve()
        case.schedule.save(schedule_file)
    return config, Path(schedule_file), case, os.environ.get("SPIKEMLLM_BLOCK", "core")


@cocotb.test()
async def real_layer_end_to_end(dut):
    """A real converted layer over mixed vision/text tokens: bit-exact and cycle-exact."""
    config, schedule_file, case, block = _setup()
    expected, model = core_expectation(case, block)
    driver, counter = await start_core(dut, block, config)
    await driver.load_layer(case.program)
    await driver.set_timestep_table(load_timestep_table(config, schedule_file))

    window = [get_sim_time("ps")]
    ideal = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)
    window.append(get_sim_time("ps"))
    mismatches = [n for n, (g, e) in enumerate(zip(ideal.outputs, expected)) if g != e]
    assert not mismatches and len(ideal.outputs) == len(expected), (
        f"{len(mismatches)} output tiles differ, first at beat {mismatches[:1]}"
    )
    c = ideal.counters
    counted = counter.cycles(len(expected))
    assert c["CYCLES"] == counted, f"CYCLES reads {c['CYCLES']}, the testbench counted {counted} cycles"
    assert counted == ideal.transfer_cycles, f"the testbench counted {counted} cycles, its stream phase {ideal.transfer_cycles}"
    assert c["CYCLES"] == model.cycles, f"RTL took {c['CYCLES']} cycles, the model predicts {model.cycles}"
    assert c["EVENTS"] == model.events and c["ACTIVE_CYCLES"] == model.active_cycles
    assert c["WEIGHT_READS"] == model.weight_reads, (
        f"the RTL read {c['WEIGHT_READS']} weight rows, the model predicts {model.weight_reads}")

    stalled_run = None
    if json.loads(os.environ.get("SPIKEMLLM_CASE") or "{}").get("stalled_run", True):
        stalled = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles,
                                   in_pattern=late_start(pattern("random30", seed=5)), out_pattern=pattern("random70", seed=6))
        assert stalled.outputs == expected, "outputs differ under stalls"
        stalled_counted = counter.cycles(len(expected))
        assert stalled.counters["CYCLES"] == stalled_counted == stalled.transfer_cycles, (
            f"stalled run: CYCLES reads {stalled.counters['CYCLES']}, the testbench counted {stalled_counted} cycles")
        assert stalled_counted > counted, f"the stalled run took {stalled_counted} cycles, the ideal one {counted}"
        assert stalled.counters["EVENTS"] == model.events
        assert stalled.counters["WEIGHT_READS"] == model.weight_reads
        stalled_run = {"cycles": stalled.counters["CYCLES"], "testbench_cycles": stalled_counted,
                       "stall_cycles": stalled.counters["STALL_CYCLES"],
                       "idle_input_cycles": stalled.counters["IDLE_IN_CYCLES"], "bit_exact": stalled.outputs == expected}

    results = os.environ.get("SPIKEMLLM_RESULTS")
    if results:
        breakdown = model.breakdown()
        Path(results).write_text(json.dumps({
            "config": describe_config(config),
            "block": block,
            "schedule_file": str(schedule_file),
            "run_window_ps": window,
            "workload": case.workload,
            "layer": case.description,
            "layer_name": case.layer_name,
            "in_features": case.program.in_features,
            "out_features": case.program.out_features,
            "tokens": case.tokens,
            "tokens_by_modality": {m.label: int((case.modality == m).sum()) for m in Modality},
            "timesteps": {m.label: case.table[timestep_index(case.layer_index, m)] for m in Modality},
            "rtl_cycles": c["CYCLES"],
            "model_cycles": model.cycles,
            "testbench_cycles": counted,
            "bit_exact": not mismatches,
            "events": c["EVENTS"],
            "bundle": config.bundle,
            "weight_reads": c["WEIGHT_READS"],
            "weight_reads_per_token": c["WEIGHT_READS"] / case.tokens,
            "active_cycles": c["ACTIVE_CYCLES"],
            "pe_utilization": c["ACTIVE_CYCLES"] / c["CYCLES"],
            # filled event slots: one weight-row read each (the events themselves without bundles)
            "event_slot_utilization": c["WEIGHT_READS"] / (config.events_per_cycle * c["CYCLES"]),
            "cycle_breakdown": breakdown,
            "by_modality": spikes_by_modality(case),
            "stalled_run": stalled_run,
        }, indent=2) + "\n")
