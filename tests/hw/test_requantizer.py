"""Requantizer: outputs equal golden.requantize over the whole accumulator range."""

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG
from spikemllm.sim.blocks.benches import requantizer_bench, simulate
from spikemllm.sim.patterns import pattern

BLOCK = "requantizer"
VERILATOR_CONFIGS = ("small", "default")


def test_over_the_accumulator_range():
    for seed in (1, 2):
        simulate(requantizer_bench(SMALL_CONFIG, seed=seed))
    simulate(requantizer_bench(DEFAULT_CONFIG, seed=3, source=pattern("random30"), sink=pattern("bursts")))
