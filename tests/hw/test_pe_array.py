"""Sparse-accumulate PE array: per-step partial sums equal the golden spike_linear's."""

import pytest

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import SMALL_CONFIG
from spikemllm.golden.timing import cycle_model
from spikemllm.sim.blocks import cases
from spikemllm.sim.blocks.benches import bench, simulate

BLOCK = "pe_array"
VERILATOR_CONFIGS = ("small", "default", "count")
ICARUS_CONFIGS = ("small",)


def test_cycle_model_of_a_whole_token():
    case = cases.random_case(SMALL_CONFIG, seed=4, tokens=1, chunks=1, timesteps=[4])
    nnz = [int((case.spikes(0)[t] != 0).sum()) for t in range(4)]
    vectors = [cycle_model.SpikeVectorCount(n, step_end=True, last=t == 3) for t, n in enumerate(nnz)]
    beats = cycle_model.compactor_beats(vectors, SMALL_CONFIG)
    assert simulate(bench("pe_array", case)).cycles == cycle_model.pe_array_cycles(beats, SMALL_CONFIG)


def test_checker_catches_a_wrong_partial_sum():
    b = bench("pe_array", cases.random_case(SMALL_CONFIG, seed=3, tokens=2))
    b.expected["o"][1]["acc"][0] += 1
    with pytest.raises(AssertionError, match="beat 1"):
        simulate(b)
