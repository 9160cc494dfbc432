"""TC-LIF neuron array: spikes equal the golden encoder's, one vector per cycle."""

import torch

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import SMALL_CONFIG
from spikemllm.sim.blocks import expect
from spikemllm.sim.blocks.benches import bench, simulate

BLOCK = "neuron_array"
VERILATOR_CONFIGS = ("small", "default", "count")


def test_out_of_range_timesteps_are_clamped():
    # The T field holds 0..7 but t_max is 4: 0 runs one step, 5..7 run t_max steps.
    c = SMALL_CONFIG
    q = torch.tensor([[3, -3, 15, -15, 0, 1, -1, 7]] * 4)
    case = expect.LinearCase(c, q, [0, 5, 7, 4], torch.ones(c.pes, c.lanes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64))
    result = simulate(bench("neuron_array", case))
    assert [b["step"] for b in result.beats("o")] == [0] + [0, 1, 2, 3] * 3
