"""Spike encoders: round trips, the TC-LIF digit structure, edges and bad input."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemllm.golden import (
    count_timesteps,
    decode_count_signed,
    decode_count_unsigned,
    decode_tc_lif,
    encode_count_signed,
    encode_count_unsigned,
    encode_tc_lif,
    tc_lif_max,
    tc_lif_thresholds,
    tc_lif_timesteps,
)


@st.composite
def tc_lif_case(draw):
    T = draw(st.integers(1, 10))
    m = (1 << T) - 1
    values = draw(st.lists(st.integers(-m, m), min_size=1, max_size=40))
    return torch.tensor(values), T


def sign_magnitude_digits(q: torch.Tensor, T: int) -> torch.Tensor:
    """Independent reference: binary digits of |q| with the sign of q, MSB first."""
    mag, sign = q.abs(), torch.sign(q)
    return torch.stack([sign * ((mag >> (T - 1 - t)) & 1) for t in range(T)]).to(torch.int8)


@given(tc_lif_case())
def test_tc_lif_round_trip(case):
    q, T = case
    spikes = encode_tc_lif(q, T)
    assert spikes.dtype == torch.int8 and spikes.shape == (T, *q.shape)
    assert torch.equal(decode_tc_lif(spikes), q)


@given(tc_lif_case())
def test_tc_lif_spikes_are_sign_magnitude_digits(case):
    q, T = case
    assert torch.equal(encode_tc_lif(q, T), sign_magnitude_digits(q, T))


@given(st.integers(1, 8), st.data())
def test_count_signed_round_trip(T, data):
    q = torch.tensor(data.draw(st.lists(st.integers(-T, T), min_size=1, max_size=30)))
    spikes = encode_count_signed(q, T)
    assert torch.equal(decode_count_signed(spikes), q)
    # one spike per unit, in the first |q| steps, of the value's sign
    for t in range(T):
        assert torch.equal(spikes[t].long(), torch.sign(q) * (q.abs() > t))


@given(st.integers(1, 20), st.data())
def test_count_unsigned_round_trip(T, data):
    u = torch.tensor(data.draw(st.lists(st.integers(0, T), min_size=1, max_size=30)))
    spikes = encode_count_unsigned(u, T)
    assert spikes.min() >= 0
    assert torch.equal(decode_count_unsigned(spikes), u)


def test_step_counts_follow_the_method():
    # 4-bit activations: L - 1 = 15 unsigned, Q = 7 signed, log2(L) - 1 = 3 for TC-LIF
    assert count_timesteps(4, signed=False) == 15
    assert count_timesteps(4) == 7
    assert tc_lif_timesteps(4) == 3
    assert tc_lif_timesteps(8) == 7 and tc_lif_max(7) == 127
    assert tc_lif_thresholds(4).tolist() == [8, 4, 2, 1]


@pytest.mark.parametrize("T", [1, 2, 3, 4, 7])
def test_every_representable_value(T):
    m = (1 << T) - 1
    q = torch.arange(-m, m + 1)
    spikes = encode_tc_lif(q, T)
    assert torch.equal(decode_tc_lif(spikes), q)
    assert torch.equal(spikes, sign_magnitude_digits(q, T))


@pytest.mark.parametrize("T", [1, 3, 7])
def test_extremes_fire_at_every_step(T):
    m = (1 << T) - 1
    spikes = encode_tc_lif(torch.tensor([m, -m]), T)
    assert torch.equal(spikes[:, 0], torch.ones(T, dtype=torch.int8))
    assert torch.equal(spikes[:, 1], -torch.ones(T, dtype=torch.int8))


def test_all_zeros_never_fire():
    spikes = encode_tc_lif(torch.zeros(3, 5, dtype=torch.int64), 4)
    assert spikes.shape == (4, 3, 5) and not spikes.any()


def test_t1_is_a_ternary_sign():
    assert encode_tc_lif(torch.tensor([-1, 0, 1]), 1).tolist() == [[-1, 0, 1]]


def test_whole_floats_are_accepted():
    assert torch.equal(encode_tc_lif(torch.tensor([3.0, -2.0]), 2), encode_tc_lif(torch.tensor([3, -2]), 2))


@pytest.mark.parametrize(
    "encode, bad, T, message",
    [
        (encode_tc_lif, [1, 8], 3, "8 at index (1,)"),
        (encode_tc_lif, [-8], 3, "-8"),
        (encode_count_signed, [5], 4, "5 at index"),
        (encode_count_unsigned, [-1], 4, "-1 at index"),
    ],
)
def test_out_of_range_values_are_named(encode, bad, T, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        encode(torch.tensor(bad), T)


def test_saturation_only_when_asked():
    spikes = encode_tc_lif(torch.tensor([100, -100]), 3, saturate=True)
    assert decode_tc_lif(spikes).tolist() == [7, -7]


def test_non_integers_are_named():
    with pytest.raises(ValueError, match="2.5"):
        encode_tc_lif(torch.tensor([1.0, 2.5]), 3)
    with pytest.raises(ValueError, match="nan"):
        encode_tc_lif(torch.tensor([float("nan")]), 3)


@pytest.mark.parametrize("T, error", [(0, ValueError), (-1, ValueError), (16, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_timesteps(T, error):
    with pytest.raises(error, match="T must"):
        encode_tc_lif(torch.tensor([0]), T)


def test_bad_types():
    with pytest.raises(TypeError, match="torch.Tensor"):
        encode_tc_lif([1, 2], 3)
    with pytest.raises(TypeError, match="bool"):
        encode_tc_lif(torch.tensor([True]), 3)


def test_decoders_reject_non_ternary_spikes():
    with pytest.raises(ValueError, match="ternary"):
        decode_tc_lif(torch.tensor([[2]]))
    with pytest.raises(ValueError, match="negative"):
        decode_count_unsigned(torch.tensor([[-1]]))
