"""TC-LIF neuron array: spikes equal the golden encoder's, one vector per cycle."""

import pytest
import torch

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import PRESETS, SMALL_CONFIG
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


# the block encodes one token at a time (the core's neuron stage computes bundles), so the
# presets with bundles are left out: their neuron arrays are those of the same shapes
UNBUNDLED = {name: c for name, c in PRESETS.items() if c.bundle == 1}


@pytest.mark.parametrize("config", UNBUNDLED.values(), ids=UNBUNDLED.keys())
def test_every_activation_at_every_step_count(config):
    # Every act_bits value (saturating ones and -2^(act_bits-1) included) at every T: the
    # neurons' shifted digits or down-counters fire like encode_tc_lif / encode_count_signed.
    c = config
    values = torch.arange(-(1 << (c.act_bits - 1)), 1 << (c.act_bits - 1))
    rows = values.reshape(-1, c.lanes)  # one token of `lanes` values each
    steps = [T for T in range(1, c.t_max + 1) for _ in rows]
    q = rows.repeat(c.t_max, 1)
    case = expect.LinearCase(c, q, steps, torch.ones(c.pes, c.lanes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64))
    result = simulate(bench("neuron_array", case))
    assert len(result.beats("o")) == sum(steps)
