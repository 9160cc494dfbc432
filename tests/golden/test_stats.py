"""Spike statistics against counts done by hand."""

import pytest
import torch

from spikemllm.golden import encode_count_signed, encode_tc_lif, spike_statistics


def test_counts():
    spikes = torch.tensor([[[1, 0, -1, 0]], [[0, 0, 1, 1]], [[0, 0, 0, 0]]], dtype=torch.int8)
    s = spike_statistics(spikes)
    assert (s.timesteps, s.values, s.events, s.positive, s.negative) == (3, 4, 4, 3, 1)
    assert s.events_per_step == (2, 2, 0)
    assert s.firing_rate == pytest.approx(4 / 12) and s.sparsity == pytest.approx(8 / 12)
    assert s.events_per_value == pytest.approx(1.0)
    assert s.firing_rate_per_step == pytest.approx((0.5, 0.5, 0.0))
    assert s.as_dict()["events"] == 4


def test_tc_lif_needs_fewer_events_than_count_coding():
    q = torch.arange(-7, 8)
    tc = spike_statistics(encode_tc_lif(q, 3))
    count = spike_statistics(encode_count_signed(q, 7))
    # events = popcount(|q|) for TC-LIF and |q| for count coding
    assert tc.events == sum(bin(abs(v)).count("1") for v in range(-7, 8))
    assert count.events == sum(abs(v) for v in range(-7, 8))


def test_rejects_non_ternary():
    with pytest.raises(ValueError, match="ternary"):
        spike_statistics(torch.tensor([[3]]))
