"""What every pipeline block must pass, in amaranth.sim and under Verilator and Icarus Verilog.

A test module ``tests/hw/test_<block>.py`` sets ``BLOCK`` (the block key),
``VERILATOR_CONFIGS`` (the presets its cocotb testbench runs in under Verilator) and
optionally ``ICARUS_CONFIGS`` (those in which the default suite also runs it under Icarus
and compares the two simulators' runs cycle by cycle; in every other preset of
:data:`~spikemllm.flow.runner.SIM_CONFIGS` that comparison is behind the ``slow`` marker)
and imports this suite; the benches (driver, monitor, golden
expectation and cycle model of every stream) come from :mod:`spikemllm.sim.blocks`, so the
same checks run on every simulator.
"""

import json

import pytest
from simulators import cocotb_params
from spikemllm.flow.runner import SIM_CONFIGS, build_block, run_block
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
    "test_matches_golden_in_cocotb",
    "test_icarus_agrees_with_verilator",
    "test_random_sweep_in_cocotb",
]

PYSIM_CONFIGS = {"small": SMALL_CONFIG, "count": COUNT_CONFIG}
STALL_PAIRS = [(s, k) for s in PATTERNS for k in PATTERNS if s != k][::3]


@pytest.fixture
def block(request):
    return request.module.BLOCK


def pytest_generate_tests(metafunc):
    module = metafunc.module
    icarus = list(getattr(module, "ICARUS_CONFIGS", ()))
    if "sim_config" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("slow"):
            params = cocotb_params(verilator=dict.fromkeys([*module.VERILATOR_CONFIGS, "count"]), icarus=SIM_CONFIGS)
        else:
            params = cocotb_params(verilator=module.VERILATOR_CONFIGS)
        metafunc.parametrize("simulator, sim_config", params, indirect=["simulator"])
    if "agreement_config" in metafunc.fixturenames:
        metafunc.parametrize("agreement_config", [
            pytest.param(c, marks=() if c in icarus else pytest.mark.slow) for c in SIM_CONFIGS])


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


def test_matches_golden_in_cocotb(block, simulator, sim_config):
    """Edge cases, seeded random tiles, stall patterns, accumulator extremes and real
    MiniLM data in the cocotb testbench (:mod:`spikemllm.sim.blocks.testbench`)."""
    assert run_block(build_block(PRESETS[sim_config], block, simulator=simulator)).exists()


def test_icarus_agrees_with_verilator(block, agreement_config, every_simulator, tmp_path):
    """The cocotb testbench under every simulator, each run checked against the golden and
    cycle models, and the runs the same cycle by cycle: every handshake of every stream in
    every bench, stalled ones (whose cycles no model predicts) included."""
    runs = {}
    for simulator in every_simulator:
        results = tmp_path / f"{simulator}.json"
        run_block(build_block(PRESETS[agreement_config], block, simulator=simulator), results=results)
        runs[simulator] = json.loads(results.read_text())
    first, *others = every_simulator
    for other in others:
        assert [b["bench"] for b in runs[other]] == [b["bench"] for b in runs[first]]
        for a, b in zip(runs[first], runs[other]):
            assert a["phases"] == b["phases"], f"{b['bench']}: {other} differs from {first}"


@pytest.mark.slow
def test_random_sweep_in_cocotb(block, simulator, sim_config):
    """40 seeds, each with its own density, fan-in and stalls."""
    build = build_block(PRESETS[sim_config], block, simulator=simulator)
    assert run_block(build, testcase="random_sweep", sweep=True).exists()
