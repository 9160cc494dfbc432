"""cocotb testbench of the SpikeCore top level, run by Verilator (see :mod:`.core_runner`).

Through the firmware driver (:class:`~spikemllm.firmware.driver.SpikeCoreDriver` over
:class:`~.core_backends.CocotbBackend`), it loads a real converted transformer layer,
programs a timestep table that gives vision and text tokens different ``T``, streams a
token sequence mixing both modalities, and checks:

* every output bit-exactly against the golden integer layer;
* the ``CYCLES``, ``EVENTS`` and ``ACTIVE_CYCLES`` counters exactly against the
  performance model (ideal streams);
* the same outputs again with random stalls on the input and back-pressure on the output.

The configuration description and the case come from the environment
(``SPIKEMLLM_DESCRIPTION``, ``SPIKEMLLM_CASE``); measurements are written as JSON to
``SPIKEMLLM_RESULTS``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from ..config import AcceleratorConfig
from ..firmware.driver import SpikeCoreDriver
from ..hw.core import SpikeCore
from .cocotb_bench import reset, start_clock
from .core_backends import CocotbBackend, stream_layouts
from .core_cases import minilm_case
from .patterns import pattern


def _setup():
    description = json.loads(Path(os.environ["SPIKEMLLM_DESCRIPTION"]).read_text())
    config = AcceleratorConfig.from_dict(description)
    case = minilm_case(config, **json.loads(os.environ.get("SPIKEMLLM_CASE", "{}")))
    return config, case


@cocotb.test()
async def real_layer_end_to_end(dut):
    """A real converted layer over mixed vision/text tokens: bit-exact and cycle-exact."""
    config, case = _setup()
    start_clock(dut)
    dut.bus__w_stb.value = 0
    dut.bus__r_stb.value = 0
    await reset(dut, ["i", "weights", "bias", "params"], ["o"])
    driver = SpikeCoreDriver(CocotbBackend(dut, stream_layouts(SpikeCore(config=config))), config)
    await driver.identify()
    await driver.load_layer(case.program)
    await driver.set_timestep_table(case.table)

    ideal = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)
    mismatches = [n for n, (g, e) in enumerate(zip(ideal.outputs, case.expected)) if g != e]
    assert not mismatches and len(ideal.outputs) == len(case.expected), (
        f"{len(mismatches)} output tiles differ, first at beat {mismatches[:1]}"
    )
    c = ideal.counters
    assert c["CYCLES"] == case.model.cycles, f"RTL took {c['CYCLES']} cycles, the model predicts {case.model.cycles}"
    assert c["EVENTS"] == case.model.events and c["ACTIVE_CYCLES"] == case.model.active_cycles

    stalled = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles,
                               in_pattern=pattern("random30", seed=5), out_pattern=pattern("random70", seed=6))
    assert stalled.outputs == case.expected, "outputs differ under stalls"
    assert stalled.counters["EVENTS"] == case.model.events

    results = os.environ.get("SPIKEMLLM_RESULTS")
    if results:
        breakdown = case.model.breakdown()
        Path(results).write_text(json.dumps({
            "config": config.name,
            "layer": "all-MiniLM-L6-v2 encoder.layer.0.intermediate.dense (pretrained), sliced",
            "in_features": case.program.in_features,
            "out_features": case.program.out_features,
            "tokens": case.tokens,
            "tokens_by_modality": {"text": int((case.modality == 0).sum()), "vision": int((case.modality == 1).sum())},
            "timesteps": {"text": case.table[2 * case.layer_index], "vision": case.table[2 * case.layer_index + 1]},
            "rtl_cycles": c["CYCLES"],
            "model_cycles": case.model.cycles,
            "bit_exact": not mismatches,
            "events": c["EVENTS"],
            "active_cycles": c["ACTIVE_CYCLES"],
            "pe_utilization": c["ACTIVE_CYCLES"] / c["CYCLES"],
            "event_slot_utilization": c["EVENTS"] / (config.events_per_cycle * c["CYCLES"]),
            "cycle_breakdown": breakdown,
            "stalled_run": {"cycles": stalled.counters["CYCLES"], "stall_cycles": stalled.counters["STALL_CYCLES"],
                            "idle_input_cycles": stalled.counters["IDLE_IN_CYCLES"], "bit_exact": stalled.outputs == case.expected},
        }, indent=2) + "\n")
