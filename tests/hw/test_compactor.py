"""Spike-event compactor: events decode back to the golden spikes; cycles grow with the
spikes, not with the lanes."""

import dataclasses

import pytest
import torch

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import SMALL_CONFIG
from spikemllm.sim.blocks import cases, expect
from spikemllm.sim.blocks.benches import bench, simulate

BLOCK = "compactor"
VERILATOR_CONFIGS = ("small", "default")


def test_cycles_do_not_grow_with_lanes():
    cycles = {}
    for lanes in (8, 64):
        c = dataclasses.replace(SMALL_CONFIG, name=f"lanes{lanes}", lanes=lanes, max_fan_in=lanes)
        q = torch.zeros(1, lanes, dtype=torch.int64)
        q[0, [1, 5]] = torch.tensor([15, -9])
        case = expect.LinearCase(c, q, [c.t_max], torch.zeros(c.pes, lanes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64))
        cycles[lanes] = simulate(bench("compactor", case)).cycles
    assert cycles[8] == cycles[64]


def test_checker_catches_a_wrong_cycle_count():
    b = bench("compactor", cases.random_case(SMALL_CONFIG, seed=3, tokens=2))
    b.model_cycles += 1
    with pytest.raises(AssertionError, match="cycle model predicts"):
        simulate(b)
