"""Multi-token bundles: a bundle changes the schedule, never a token's result; its weight-row
reads are the union of its tokens' spikes."""

import dataclasses

import pytest
import torch
from spikemllm.golden.bundle import bundle_accumulators, bundle_spikes, bundle_steps, bundles, output_order
from spikemllm.golden.encoding import encode_count_signed, encode_tc_lif
from spikemllm.golden.layer import IntegerLayer, run_integer_layer
from spikemllm.golden.requantize import requantize
from spikemllm.golden.spike_linear import integer_matmul, spike_linear
from spikemllm.golden.timing.core_model import core_cycles

from spikemllm.config import DEFAULT_CONFIG, Coding


def _tokens(seed, n, width, steps, coding):
    g = torch.Generator().manual_seed(seed)
    limits = [Coding(coding).max_value(T) for T in steps]
    q = torch.stack([torch.randint(-m, m + 1, (width,), generator=g) for m in limits])
    return q * (torch.rand(q.shape, generator=g) < 0.7)


@pytest.mark.parametrize("coding", ["tc_lif", "count"])
@pytest.mark.parametrize("steps", [(3, 4), (1, 7, 2, 7), (5, 5, 5), (2,)])
def test_bundle_accumulators_equal_each_token_alone(coding, steps):
    q = _tokens(len(steps), len(steps), 24, steps, coding)
    weight = torch.randint(-127, 128, (5, 24), generator=torch.Generator().manual_seed(9))
    got = bundle_accumulators(q, steps, weight, coding)
    encode = encode_tc_lif if coding == "tc_lif" else encode_count_signed
    for b, T in enumerate(steps):
        alone = spike_linear(encode(q[b:b + 1], T), weight, coding=coding)[0]
        assert torch.equal(got[b], alone)
        assert torch.equal(got[b], integer_matmul(q[b:b + 1], weight)[0])


def test_bundled_outputs_equal_the_golden_layer():
    # the requantized outputs of tokens computed in a bundle are the golden layer's, per token
    g = torch.Generator().manual_seed(4)
    layer = IntegerLayer(torch.randint(-7, 8, (6, 16), generator=g), torch.randint(-50, 51, (6,), generator=g),
                         torch.randint(1 << 11, 1 << 12, (6,), generator=g), torch.full((6,), 14), out_bits=5,
                         weight_bits=4)
    steps = [3, 4, 4, 2]
    q = _tokens(5, 4, 16, steps, "tc_lif")
    acc = bundle_accumulators(q, steps, layer.weight)
    out = requantize(acc, layer.bias, layer.multiplier, layer.shift, layer.out_bits)
    for b, T in enumerate(steps):
        assert torch.equal(out[b], run_integer_layer(layer, q[b:b + 1], T).out[0])


def test_tc_lif_steps_align_at_the_least_significant_end():
    # a token with fewer steps is silent first, then fires its own digits under the common thresholds
    q = torch.tensor([[5], [3]])
    trains = bundle_spikes(q, [3, 2])
    assert bundle_steps([3, 2]) == 3 and trains.shape == (3, 2, 1)
    assert trains[:, 0, 0].tolist() == [1, 0, 1]   # 5 = 101 under 4, 2, 1
    assert trains[:, 1, 0].tolist() == [0, 1, 1]   # 3 = 11 under 2, 1
    count = bundle_spikes(torch.tensor([[2], [-1]]), [3, 2], "count")
    assert count[:, 0, 0].tolist() == [1, 1, 0] and count[:, 1, 0].tolist() == [-1, 0, 0]


def test_bundles_and_output_order():
    assert [list(r) for r in bundles(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert output_order(3, 2, 2) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (2, 1)]
    assert output_order(3, 2, 1) == [(n, j) for n in range(3) for j in range(2)]
    with pytest.raises(ValueError, match="bundle size"):
        bundles(3, 0)


def _union_reads(q, steps, K, lanes, out_tiles, B):
    """Weight-row reads of a bundled run, counted from the neuron's closed form (bits of |q|),
    independently of the encoders and of the model: per bundle, step and input, one read if any
    token fires."""
    reads = 0
    for first in range(0, q.shape[0], B):
        group = range(first, min(first + B, q.shape[0]))
        T = max(steps[n] for n in group)
        for t in range(T):
            for i in range(K * lanes):
                fires = False
                for n in group:
                    own = t - (T - steps[n])  # the token's own step
                    fires |= own >= 0 and bool((abs(int(q[n, i])) >> (steps[n] - 1 - own)) & 1)
                reads += fires
    return reads * out_tiles


@pytest.mark.parametrize("B", [1, 2, 3, 4])
def test_model_reads_are_the_union_and_events_every_tokens_spikes(B):
    config = dataclasses.replace(DEFAULT_CONFIG, bundle=B)
    steps = [3, 4, 4, 3, 2, 4, 1]
    q = _tokens(B, len(steps), 32, steps, "tc_lif")
    r = core_cycles(config, q, steps, out_tiles=3)
    spikes = sum(int((encode_tc_lif(q[n], T) != 0).sum()) for n, T in enumerate(steps))
    assert r.events == 3 * spikes
    assert r.weight_reads == _union_reads(q, steps, 2, 16, 3, B)
    assert r.weight_reads == r.events if B == 1 else r.weight_reads < r.events
    assert sum(r.breakdown().values()) == r.cycles
    assert 0 < r.event_slot_utilization <= 1


def test_identical_tokens_share_every_read():
    q = _tokens(3, 1, 64, [4], "tc_lif").repeat(4, 1)
    one = core_cycles(DEFAULT_CONFIG, q, [4] * 4, out_tiles=2)
    four = core_cycles(dataclasses.replace(DEFAULT_CONFIG, bundle=4), q, [4] * 4, out_tiles=2)
    assert four.events == one.events == one.weight_reads
    assert four.weight_reads * 4 == one.weight_reads
    # the same beats once instead of four times: fewer cycles, bounded below by the
    # requantizer's one final vector per token and tile
    assert four.cycles < one.cycles


def test_dense_model_reads_each_row_once_per_bundle():
    from spikemllm.golden.timing.core_model import dense_core_cycles

    one = dense_core_cycles(DEFAULT_CONFIG, 5, 32, 2)
    three = dense_core_cycles(dataclasses.replace(DEFAULT_CONFIG, bundle=3), 5, 32, 2)
    assert one.events == three.events == one.weight_reads == 5 * 2 * 32
    assert three.weight_reads == 2 * 2 * 32  # two bundles: 3 tokens and 2
    assert three.cycles < one.cycles
