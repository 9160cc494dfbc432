"""Configurations and runs shared by the core tests (``test_spike_core.py``,
``test_dense_cores.py``): small cores that simulate fast in amaranth.sim, a run of a case
through the firmware driver, and the real-layer run in the cocotb testbench (Verilator or
Icarus Verilog)."""

import dataclasses
import json
import tempfile
from pathlib import Path

from spikemllm.firmware.compiler import load_timestep_table
from spikemllm.flow.runner import build_block, run_block
from spikemllm.hw.core import SpikeCore
from spikemllm.sim.backends.amaranth_sim import run_with_driver

from spikemllm.config import PRESETS, AcceleratorConfig

CORE_SMALL = AcceleratorConfig(
    name="core_small", lanes=8, pes=4, act_bits=5, weight_bits=4, t_max=4, events_per_cycle=2, max_fan_in=64,
    bias_bits=12, out_bits=5, multiplier_bits=12, shift_bits=5, layers=4, max_out_tiles=4,
)
CORE_COUNT = dataclasses.replace(CORE_SMALL, name="core_count", coding="count", act_bits=4, t_max=7, out_bits=4)
CORE_E1 = dataclasses.replace(CORE_SMALL, name="core_e1", events_per_cycle=1, lanes=4, max_fan_in=32)


def run_case(config, case, *, in_pattern=None, out_pattern=None, core_class=SpikeCore):
    """Load ``case``'s layer through the driver, program the timestep table from its schedule
    written to a file (through the compiler), run its tokens, return the result."""
    with tempfile.TemporaryDirectory() as folder:
        schedule_file = Path(folder) / "schedule.json"
        case.schedule.save(schedule_file)
        table = load_timestep_table(config, schedule_file)

    async def body(driver):
        await driver.identify()
        await driver.load_layer(case.program)
        await driver.set_timestep_table(table)
        return await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles,
                                in_pattern=in_pattern, out_pattern=out_pattern)

    result = run_with_driver(config, body, core_class=core_class)
    # The core's CYCLES counter against the testbench's own count of the run's clock cycles
    # (from the cycle after START to the last output beat), ideal or stalled.
    assert result.counters["CYCLES"] == result.transfer_cycles, (
        f"CYCLES reads {result.counters['CYCLES']}, the testbench counted {result.transfer_cycles} cycles")
    return result


def run_real_layer_in_cocotb(config, block, tmp_path, workload=None, *, simulator="verilator"):
    """The cocotb core testbench on a real converted layer (:mod:`spikemllm.sim.core.testbench`)
    under ``simulator``; ``config`` is a preset name or a configuration, ``workload`` one of
    :data:`~spikemllm.sim.core.cases.WORKLOADS` (default: the testbench's)."""
    build = build_block(PRESETS[config] if isinstance(config, str) else config, block, simulator=simulator)
    results = tmp_path / f"core_{simulator}.json"
    run_block(build, results=results, case={"workload": workload} if workload else None)
    r = json.loads(results.read_text())
    if workload:
        assert r["workload"] == workload
    assert r["bit_exact"] and r["stalled_run"]["bit_exact"]
    assert r["rtl_cycles"] == r["model_cycles"]
    assert r["tokens_by_modality"]["text"] and r["tokens_by_modality"]["vision"]
    assert r["timesteps"]["text"] != r["timesteps"]["vision"]
    assert r["block"] == block and r["run_window_ps"][1] > r["run_window_ps"][0]
    assert Path(r["schedule_file"]).is_file()
    return r
