"""The SpikeCore top level and the dense INT8 and FP16 baselines under Verilator, driven by
the firmware driver through cocotb.

A real converted layer (MiniLM's pretrained FFN layer 0, sliced to fit the configuration,
real captured activations) over 12 tokens that mix vision (T = 3) and text (T = 4):
every output bit-exact against the golden integer layer, CYCLES/EVENTS/ACTIVE_CYCLES
exactly as the performance model predicts, and the same outputs again under random input
stalls and output back-pressure (spikemllm.sim.tb_core).
"""

import json

import pytest

from spikemllm.config import PRESETS
from spikemllm.sim.runner import build_block, run_block


@pytest.mark.parametrize("config, block", [
    # the baselines in the small configuration here; `make synth` runs them on the default one
    ("default", "core"), ("count", "core"), ("small", "int8_core"), ("small", "fp16_core"),
])
def test_core_runs_a_real_layer_bit_and_cycle_exact(config, block, tmp_path):
    build = build_block(PRESETS[config], block)
    results = tmp_path / "core.json"
    run_block(build, results=results)
    r = json.loads(results.read_text())
    assert r["bit_exact"] and r["stalled_run"]["bit_exact"]
    assert r["rtl_cycles"] == r["model_cycles"]
    assert r["tokens_by_modality"]["text"] and r["tokens_by_modality"]["vision"]
    assert r["timesteps"]["text"] != r["timesteps"]["vision"]
    assert r["block"] == block and r["run_window_ps"][1] > r["run_window_ps"][0]
