"""spike_linear: exact against an int64 reference, step by step, in every exactness regime."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemllm.golden import encode_count_signed, encode_tc_lif, exact_matmul, integer_matmul, spike_linear


def int64_reference(q, w):
    """Independent reference: exact integer dot products in Python ints."""
    return torch.tensor([[sum(int(a) * int(b) for a, b in zip(row, col)) for col in w.tolist()] for row in q.tolist()])


def event_by_event(spikes, w):
    """Independent reference of the hardware: per event add/subtract a weight row, double per step."""
    T, tokens, n_in = spikes.shape
    acc = [[0] * w.shape[0] for _ in range(tokens)]
    partials = []
    for t in range(T):
        for k in range(tokens):
            acc[k] = [2 * a for a in acc[k]]
            for i in range(n_in):
                s = int(spikes[t, k, i])
                if s:
                    acc[k] = [a + s * int(wi) for a, wi in zip(acc[k], w[:, i].tolist())]
        partials.append([row[:] for row in acc])
    return torch.tensor(acc), torch.tensor(partials)


@st.composite
def layer(draw, max_T=7, weight_bits=(4, 8)):
    T = draw(st.integers(1, max_T))
    bits = draw(st.sampled_from(weight_bits))
    tokens, n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    m, Q = (1 << T) - 1, (1 << (bits - 1)) - 1
    q = torch.randint(-m, m + 1, (tokens, n_in), generator=g)
    w = torch.randint(-Q, Q + 1, (n_out, n_in), generator=g)
    return q, w, T, bits


@given(layer())
def test_equals_integer_matmul(case):
    q, w, T, bits = case
    acc = spike_linear(encode_tc_lif(q, T), w, weight_bits=bits)
    assert acc.dtype == torch.int64
    assert torch.equal(acc, int64_reference(q, w))


@given(layer(max_T=5))
def test_partials_follow_the_event_by_event_recurrence(case):
    q, w, T, _ = case
    acc, partials = spike_linear(encode_tc_lif(q, T), w, return_partials=True)
    ref_acc, ref_partials = event_by_event(encode_tc_lif(q, T), w)
    assert torch.equal(partials, ref_partials)
    assert torch.equal(acc, ref_acc) and torch.equal(partials[-1], acc)


@given(layer(max_T=3))
def test_count_coding_accumulates_without_doubling(case):
    q, w, T, _ = case
    steps = (1 << T) - 1
    acc, partials = spike_linear(encode_count_signed(q, steps), w, coding="count", return_partials=True)
    assert torch.equal(acc, int64_reference(q, w))
    assert partials.shape[0] == steps


def test_seeded_large_layer_t7_8bit_weights():
    g = torch.Generator().manual_seed(7)
    q = torch.randint(-127, 128, (16, 512), generator=g)
    w = torch.randint(-127, 128, (64, 512), generator=g)
    assert torch.equal(spike_linear(encode_tc_lif(q, 7), w, weight_bits=8), q @ w.T)


def test_batch_dimensions_are_kept():
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-7, 8, (2, 3, 10), generator=g)
    w = torch.randint(-7, 8, (4, 10), generator=g)
    acc = spike_linear(encode_tc_lif(q, 3), w)
    assert acc.shape == (2, 3, 4)
    assert torch.equal(acc, q @ w.T)


def test_all_zero_spikes_give_zero():
    w = torch.randint(-127, 128, (3, 8))
    assert not spike_linear(torch.zeros(4, 2, 8, dtype=torch.int8), w).any()


@pytest.mark.parametrize("bound, n_in, wmax", [(1 << 24, 64, 32767), (1 << 53, 64, 32767)])
def test_wide_partial_sums_stay_exact(bound, n_in, wmax):
    # Row sums of |W| beyond 2^24 leave float32's exact range; the float64 and int64
    # paths must still give the exact integers.
    g = torch.Generator().manual_seed(3)
    w = torch.randint(-wmax, wmax + 1, (5, n_in), generator=g) * 1024 + 1
    q = torch.randint(-127, 128, (3, n_in), generator=g)
    assert torch.equal(exact_matmul(q, w, bound), int64_reference(q, w))
    assert torch.equal(spike_linear(encode_tc_lif(q, 7), w), int64_reference(q, w))


def test_integer_matmul_reference():
    q = torch.tensor([[3, -2]])
    w = torch.tensor([[1, 1], [-5, 4]])
    assert integer_matmul(q, w).tolist() == [[1, -23]]


def test_bad_input_is_named():
    w = torch.zeros(3, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match="4 input features but weight of shape \\(3, 5\\)"):
        spike_linear(torch.zeros(2, 1, 4, dtype=torch.int8), torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="ternary"):
        spike_linear(torch.full((2, 1, 4), 2), w)
    with pytest.raises(ValueError, match="2-D"):
        spike_linear(torch.zeros(2, 1, 4, dtype=torch.int8), torch.zeros(4))
    with pytest.raises(ValueError, match="shape \\(T, \\*tokens, in\\)"):
        spike_linear(torch.zeros(4, dtype=torch.int8), w)
    with pytest.raises(ValueError, match="coding"):
        spike_linear(torch.zeros(2, 1, 4, dtype=torch.int8), w, coding="rate")
    with pytest.raises(ValueError, match="8 at index"):
        spike_linear(torch.zeros(2, 1, 4, dtype=torch.int8), torch.tensor([[0, 8, 0, 0]]), weight_bits=4)


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_exact_under_reduced_float32_matmul_precision(precision):
    # TF32/bfloat16 matmuls would round; the golden model must not use them.
    g = torch.Generator().manual_seed(11)
    q = torch.randint(-127, 128, (8, 256), generator=g)
    w = torch.randint(-127, 128, (16, 256), generator=g)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        assert torch.equal(spike_linear(encode_tc_lif(q, 7), w), int64_reference(q, w))
        assert torch.equal(integer_matmul(q, w), int64_reference(q, w))
    finally:
        torch.set_float32_matmul_precision(previous)
