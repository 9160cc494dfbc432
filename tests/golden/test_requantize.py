"""Requantizer: multiplier precision, bound against a float reference, exact integer reference."""

from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemllm.golden import quantize_multiplier, requantize, requantize_error_bound


def python_requantize(y: int, mult: int, shift: int, out_bits: int) -> int:
    """Independent reference with exact rationals."""
    exact = Fraction(y * mult, 2**shift)
    r = int(abs(exact) + Fraction(1, 2)) * (1 if exact >= 0 else -1)
    Q = 2 ** (out_bits - 1) - 1
    return max(-Q, min(Q, r))


scales = st.floats(min_value=1e-9, max_value=100.0, allow_nan=False, allow_infinity=False)


@given(scales, st.sampled_from([8, 12, 16, 24, 31]))
def test_multiplier_precision(scale, m):
    mult, shift = quantize_multiplier(scale, multiplier_bits=m)
    assert 2 ** (m - 1) <= int(mult) < 2**m and 0 <= int(shift) <= 62
    approx = Fraction(int(mult), 2 ** int(shift))
    assert abs(approx - Fraction(scale)) <= Fraction(scale) * Fraction(1, 2**m)


@given(st.lists(st.integers(-(2**28), 2**28), min_size=1, max_size=8), st.integers(-1000, 1000), scales, st.sampled_from([4, 8, 16]))
def test_requantize_matches_exact_integer_reference(acc, bias, scale, out_bits):
    mult, shift = quantize_multiplier(scale, multiplier_bits=16)
    acc_t = torch.tensor(acc).unsqueeze(1)
    got = requantize(acc_t, torch.tensor([bias]), mult.view(1), shift.view(1), out_bits)
    expected = [python_requantize(a + bias, int(mult), int(shift), out_bits) for a in acc]
    assert got.squeeze(1).tolist() == expected
    # exactly reproducible
    assert torch.equal(got, requantize(acc_t, torch.tensor([bias]), mult.view(1), shift.view(1), out_bits))


@given(st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=16), scales, st.sampled_from([8, 16]))
def test_requantize_within_stated_bound_of_float(acc, scale, m):
    mult, shift = quantize_multiplier(scale, multiplier_bits=m)
    acc_t = torch.tensor(acc)
    exact = acc_t.double() * scale
    out_bits = 32
    got = requantize(acc_t.unsqueeze(1), None, mult, shift, out_bits).squeeze(1)
    unsaturated = exact.abs() < 2 ** (out_bits - 1) - 2
    err = (got.double() - exact).abs()
    assert bool((err <= requantize_error_bound(exact, m) + 1e-9)[unsaturated].all())


def test_per_channel_parameters_and_saturation():
    acc = torch.tensor([[100, 100, -100], [3, 5, -7]])
    scale = torch.tensor([0.5, 0.25, 0.03125])
    mult, shift = quantize_multiplier(scale, multiplier_bits=8)
    out = requantize(acc, torch.tensor([0, 2, -4]), mult, shift, out_bits=4)
    # 100*0.5 and 102*0.25 saturate to 7; -104/32 -> -3; 3*0.5 -> 2; 7/4 -> 2; -11/32 -> 0
    assert out.tolist() == [[7, 7, -3], [2, 2, 0]]


def test_half_rounds_away_from_zero():
    mult, shift = quantize_multiplier(0.5, multiplier_bits=8)
    assert requantize(torch.tensor([[5], [-5], [3], [-3]]), None, mult, shift, 8).flatten().tolist() == [3, -3, 2, -2]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="positive and finite; found -1.0"):
        quantize_multiplier(torch.tensor([0.5, -1.0]))
    with pytest.raises(ValueError, match="too small"):
        quantize_multiplier(1e-30)
    with pytest.raises(ValueError, match="too large"):
        quantize_multiplier(1e9, multiplier_bits=16)
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        requantize(torch.zeros(1, 2, dtype=torch.int64), None, torch.tensor([1, 2, 3]), torch.tensor(0), 8)
    with pytest.raises(ValueError, match="acc must hold integers"):
        requantize(torch.tensor([[0.5]]), None, torch.tensor(1), torch.tensor(0), 8)
    with pytest.raises(ValueError, match="overflows int64"):
        requantize(torch.tensor([[2**50]]), None, torch.tensor(2**20), torch.tensor(0), 8)
    with pytest.raises(ValueError, match="shift must lie in \\[0, 62\\]"):
        requantize(torch.tensor([[1]]), None, torch.tensor(1), torch.tensor(63), 8)
