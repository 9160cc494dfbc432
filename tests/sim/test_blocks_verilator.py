"""Every block under Verilator: cocotb testbenches against the golden model and cycle model.

Each (block, configuration) is generated and compiled once into build/sim/<config>/<block>/
(reused while its Verilog is unchanged); the cocotb module spikemllm.sim.tb_blocks then
runs edge cases, seeded random tiles, stall patterns, accumulator extremes and real MiniLM
data on it. Waveforms only with WAVES=1.

The coding-independent blocks (compactor, requantizer) run in the small and default
configurations; the neuron array and PE array also in the count-coding baseline.
"""

import pytest

from spikemllm.config import PRESETS
from spikemllm.sim.runner import build_block, run_block

MATRIX = [
    ("neuron_array", "small"),
    ("neuron_array", "default"),
    ("neuron_array", "count"),
    ("compactor", "small"),
    ("compactor", "default"),
    ("pe_array", "small"),
    ("pe_array", "default"),
    ("pe_array", "count"),
    ("requantizer", "small"),
    ("requantizer", "default"),
]


@pytest.mark.parametrize("block, config", MATRIX, ids=[f"{b}-{c}" for b, c in MATRIX])
def test_block_matches_golden_under_verilator(block, config):
    build = build_block(PRESETS[config], block)
    results = run_block(build)
    assert results.exists()


@pytest.mark.slow
@pytest.mark.parametrize("block, config", MATRIX + [("compactor", "count"), ("requantizer", "count")])
def test_random_sweep_under_verilator(block, config):
    """40 seeds per (block, configuration), each with its own density, fan-in and stalls."""
    build = build_block(PRESETS[config], block)
    assert run_block(build, testcase="random_sweep", sweep=True).exists()
