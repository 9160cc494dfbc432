"""Quantizers: ranges, rounding, reconstruction, SmoothQuant and rotation invariance."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from spikemllm.golden import (
    calibrate_static_scale,
    hadamard_matrix,
    qmax,
    quantize_per_token,
    quantize_static,
    quantize_weight_per_channel,
    round_half_away,
    shift_round_half_away,
    smoothquant_factors,
)


def test_round_half_away_from_zero():
    x = torch.tensor([2.5, -2.5, 0.5, -0.5, 1.49, -1.51, 3.0])
    assert round_half_away(x).tolist() == [3.0, -3.0, 1.0, -1.0, 1.0, -2.0, 3.0]


@given(st.integers(-(2**40), 2**40), st.integers(0, 20))
def test_rounding_shift_matches_python_integers(x, shift):
    from fractions import Fraction

    exact = Fraction(x, 2**shift)
    expected = int(abs(exact) + Fraction(1, 2)) * (1 if x >= 0 else -1)
    assert int(shift_round_half_away(torch.tensor([x]), shift)) == expected


@pytest.mark.parametrize("bits", [2, 4, 5, 8])
def test_per_token_range_and_error(bits):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(6, 32, generator=g) * torch.tensor([0.01, 1, 5, 100, 0.3, 2]).unsqueeze(1)
    q, scale = quantize_per_token(x, bits)
    Q = qmax(bits)
    assert q.dtype == torch.int64 and scale.shape == (6, 1)
    assert q.abs().max() == Q  # the largest magnitude of each token maps to +/-Q
    assert torch.equal(q.abs().amax(dim=1), torch.full((6,), Q))
    assert ((q * scale - x).abs() <= scale / 2 + 1e-6).all()


def test_zero_token_gets_unit_scale():
    q, scale = quantize_per_token(torch.zeros(2, 4), 4)
    assert not q.any() and torch.equal(scale, torch.ones(2, 1))


def test_static_scale_saturates_by_definition():
    calib = torch.tensor([[-2.0, 1.0, 0.5]])
    s = calibrate_static_scale(calib, 4)
    assert float(s) == pytest.approx(2.0 / 7)
    q, _ = quantize_static(torch.tensor([10.0, -10.0, 2.0 / 7 * 2.5]), s, 4)
    assert q.tolist() == [7, -7, 3]  # 2.5 rounds away from zero


def test_mse_calibration_clips_outliers_and_minimizes_the_error():
    from spikemllm.golden.quantize import calibrate_mse_scale

    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(4000, generator=g, dtype=torch.float64), torch.tensor([40.0])])
    bits = 4
    chosen = float(calibrate_mse_scale(x, bits, candidates=50))

    def error(scale):  # quantize-dequantize by hand: round half away from zero, clamp to +-7
        q = torch.clamp(torch.sign(x) * torch.floor(x.abs() / scale + 0.5), -7, 7)
        return float(((q * scale - x) ** 2).mean())

    grid = [40.0 * k / (50 * 7) for k in range(1, 51)]
    assert chosen == pytest.approx(min(grid, key=error), rel=1e-12)
    assert chosen < 40.0 / 7 / 4  # an outlier 10 sigma out is clipped, not covered
    with pytest.raises(ValueError, match="all zero"):
        calibrate_mse_scale(torch.zeros(5), 4)
    with pytest.raises(ValueError, match="candidates"):
        calibrate_mse_scale(x, 4, candidates=0)


def test_percentile_calibration():
    calib = torch.arange(1, 101, dtype=torch.float32)
    assert float(calibrate_static_scale(calib, 8, percentile=50.0)) == pytest.approx(50.5 / 127)


@pytest.mark.parametrize("bits", [4, 8])
def test_weight_per_channel(bits):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 24, generator=g) * torch.linspace(0.01, 3, 16).unsqueeze(1)
    q, scale = quantize_weight_per_channel(w, bits)
    Q = qmax(bits)
    assert q.shape == w.shape and scale.shape == (16,)
    assert torch.equal(q.abs().amax(dim=1), torch.full((16,), Q))
    assert ((q * scale.unsqueeze(1) - w).abs() <= scale.unsqueeze(1) / 2 + 1e-6).all()


def test_smoothquant_preserves_the_product_and_tames_outliers():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 16, generator=g, dtype=torch.float64)
    x[:, 3] *= 50  # an outlier channel
    w = torch.randn(8, 16, generator=g, dtype=torch.float64)
    s = smoothquant_factors(x.abs().amax(dim=0), w, alpha=0.5)
    torch.testing.assert_close((x / s) @ (w * s).T, x @ w.T)
    spread = lambda t: float(t.abs().amax(dim=0).max() / t.abs().amax(dim=0).min())
    assert spread(x / s) < spread(x)


def test_hadamard_rotation_is_orthonormal_and_preserves_the_product():
    H = hadamard_matrix(16, dtype=torch.float64)
    torch.testing.assert_close(H @ H.T, torch.eye(16, dtype=torch.float64))
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(4, 16, generator=g, dtype=torch.float64), torch.randn(3, 16, generator=g, dtype=torch.float64)
    torch.testing.assert_close((x @ H) @ (w @ H).T, x @ w.T)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="bits must be in \\[2, 16\\], not 1"):
        quantize_per_token(torch.ones(2, 2), 1)
    with pytest.raises(ValueError, match="weight bits must be in \\[2, 8\\], not 9"):
        quantize_weight_per_channel(torch.ones(2, 2), 9)
    with pytest.raises(TypeError, match="floating"):
        quantize_per_token(torch.ones(2, 2, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="non-finite"):
        quantize_per_token(torch.tensor([[1.0, float("inf")]]), 4)
    with pytest.raises(ValueError, match="2-D"):
        quantize_weight_per_channel(torch.ones(2, 2, 2), 8)
    with pytest.raises(ValueError, match="alpha"):
        smoothquant_factors(torch.ones(2), torch.ones(3, 2), alpha=1.5)
    with pytest.raises(ValueError, match="shape \\(in,\\) = \\(2,\\)"):
        smoothquant_factors(torch.ones(3), torch.ones(3, 2))
    with pytest.raises(ValueError, match="power of two, not 12"):
        hadamard_matrix(12)
    with pytest.raises(ValueError, match="static scale"):
        quantize_static(torch.ones(2), -1.0, 4)
    with pytest.raises(ValueError, match="all zero"):
        calibrate_static_scale(torch.zeros(4), 4)
