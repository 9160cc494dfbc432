"""What every pipeline block must pass, in amaranth.sim and under Verilator.

A test module ``tests/hw/test_<block>.py`` sets ``BLOCK`` (the block key) and
``VERILATOR_CONFIGS`` (the presets its cocotb testbench runs in) and imports this suite;
the benches (driver, monitor, golden expectation and cycle model of every stream) come
from :mod:`spikemllm.sim.blocks`, so the same checks run on both simulators.
"""

import pytest
from spikemllm.flow.runner import build_block, run_block
from spikemllm.hw.blocks import BLOCKS
from spikemllm.sim.blocks import cases
from spikemllm.sim.blocks.benches import bench, simulate
from spikemllm.sim.patterns import PATTERNS, pattern

from spikemllm.config import COUNT_CONFIG, PRESETS, SMALL_CONFIG

__all__ = [
    "block",
    "pytest_generate_tests",
    "test_edge_cases_and_exact_cycles",
    "test_random_tiles",
    "test_every_stream_under_stalls",
    "test_real_minilm_data",
    "test_rejects_a_non_config",
    "test_matches_golden_under_verilator",
    "test_random_sweep_under_verilator",
]

PYSIM_CONFIGS = {"small": SMALL_CONFIG, "count": COUNT_CONFIG}
STALL_PAIRS = [(s, k) for s in PATTERNS for k in PATTERNS if s != k][::3]


@pytest.fixture
def block(request):
    return request.module.BLOCK


def pytest_generate_tests(metafunc):
    if "verilator_config" in metafunc.fixturenames:
        configs = list(metafunc.module.VERILATOR_CONFIGS)
        if metafunc.definition.get_closest_marker("slow"):
            configs = list(dict.fromkeys(configs + ["count"]))
        metafunc.parametrize("verilator_config", configs)


@pytest.mark.parametrize("config", PYSIM_CONFIGS.values(), ids=PYSIM_CONFIGS.keys())
def test_edge_cases_and_exact_cycles(block, config):
    for case in cases.edge_cases(config) + [cases.extreme_accumulator_case(config)]:
        assert simulate(bench(block, case)).cycles > 0


@pytest.mark.parametrize("config", PYSIM_CONFIGS.values(), ids=PYSIM_CONFIGS.keys())
@pytest.mark.parametrize("seed", [1, 2])
def test_random_tiles(block, config, seed):
    simulate(bench(block, cases.random_case(config, seed=seed, tokens=3, chunks=seed, density=0.3 * seed)))


@pytest.mark.parametrize("source, sink", STALL_PAIRS)
def test_every_stream_under_stalls(block, source, sink):
    case = cases.random_case(SMALL_CONFIG, seed=5, tokens=2, chunks=2)
    simulate(bench(block, case, source=pattern(source, seed=1), sink=pattern(sink, seed=2)))


def test_real_minilm_data(block):
    simulate(bench(block, cases.real_data_case(SMALL_CONFIG)))


def test_rejects_a_non_config(block):
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        BLOCKS[block].component(config={"lanes": 8})


def test_matches_golden_under_verilator(block, verilator_config):
    """Edge cases, seeded random tiles, stall patterns, accumulator extremes and real
    MiniLM data in the cocotb testbench (:mod:`spikemllm.sim.blocks.testbench`)."""
    assert run_block(build_block(PRESETS[verilator_config], block)).exists()


@pytest.mark.slow
def test_random_sweep_under_verilator(block, verilator_config):
    """40 seeds, each with its own density, fan-in and stalls."""
    assert run_block(build_block(PRESETS[verilator_config], block), testcase="random_sweep", sweep=True).exists()
