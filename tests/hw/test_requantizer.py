"""Requantizer: outputs equal golden.requantize over the whole accumulator range, with
``R`` multipliers shared over the channels."""

import dataclasses

import pytest
from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG
from spikemllm.latency import requantizer_latency
from spikemllm.sim.blocks.benches import requantizer_bench, simulate
from spikemllm.sim.patterns import pattern

BLOCK = "requantizer"
VERILATOR_CONFIGS = ("small", "default")
ICARUS_CONFIGS = ()  # the requantizer's comparison with Verilator runs behind slow; the PE array's in the default suite


def test_over_the_accumulator_range():
    for seed in (1, 2):
        simulate(requantizer_bench(SMALL_CONFIG, seed=seed))
    simulate(requantizer_bench(DEFAULT_CONFIG, seed=3, source=pattern("random30"), sink=pattern("bursts")))


@pytest.mark.parametrize("requantizers", [1, 2, 4, 8])
def test_shared_multipliers(requantizers):
    """``pes / R`` cycles per final vector, the same outputs for every ``R``: exact cycles
    with ideal streams, and under stalls."""
    config = dataclasses.replace(DEFAULT_CONFIG, requantizers=requantizers)
    assert requantizer_latency(config) == 8 // requantizers + 5
    simulate(requantizer_bench(config, seed=requantizers))
    simulate(requantizer_bench(config, seed=5, source=pattern("random30"), sink=pattern("random70")))
