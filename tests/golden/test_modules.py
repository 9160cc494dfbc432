"""SpikeLinear: identical to its fake-quant twin, close to the float layer, per-token T."""

import pytest
import torch
from torch import nn

from spikemllm.golden import FakeQuantLinear, SpikeLinear
from spikemllm.golden.real_data import capture_linear_inputs


def make_linear(n_in=48, n_out=20, seed=0, bias=True):
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out, bias=bias)


@pytest.mark.parametrize("timesteps, weight_bits", [(1, 8), (3, 8), (4, 4), (7, 8)])
def test_spike_path_equals_fake_quant_twin(timesteps, weight_bits):
    lin = make_linear()
    x = torch.randn(5, 7, 48, generator=torch.Generator().manual_seed(1))
    spike = SpikeLinear.from_linear(lin, timesteps=timesteps, weight_bits=weight_bits)
    fake = FakeQuantLinear.from_linear(lin, timesteps=timesteps, weight_bits=weight_bits)
    y = spike(x)
    assert y.shape == (5, 7, 20) and y.dtype == x.dtype
    assert torch.equal(y, fake(x))


def test_close_to_float_and_improves_with_timesteps():
    lin = make_linear()
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(2))
    ref = lin(x).detach()
    errors = [float((SpikeLinear.from_linear(lin, timesteps=T)(x) - ref).pow(2).mean()) for T in (2, 3, 5, 7)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-3 * float(ref.pow(2).mean())


def test_fake_quant_matches_dequantized_float_product():
    lin = make_linear(bias=False)
    x = torch.randn(8, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer = FakeQuantLinear.from_linear(lin, timesteps=4)
    q, s = layer.quantize_input(x, 4)
    expected = (q.double() * s) @ (layer.weight_int.double() * layer.weight_scale.unsqueeze(1)).T
    torch.testing.assert_close(layer(x), expected)


def test_per_token_timesteps_route_each_token():
    lin = make_linear()
    x = torch.randn(2, 6, 48, generator=torch.Generator().manual_seed(4))
    steps = torch.tensor([[3, 3, 4, 4, 3, 4], [4, 4, 4, 3, 3, 3]])
    spike = SpikeLinear.from_linear(lin)
    y = spike(x, steps)
    for T in (3, 4):
        mask = steps == T
        assert torch.equal(y[mask], spike(x, T)[mask])
    assert torch.equal(y, FakeQuantLinear.from_linear(lin)(x, steps))


def test_static_scale_and_smoothquant():
    lin = make_linear()
    g = torch.Generator().manual_seed(5)
    calib = torch.randn(128, 48, generator=g)
    calib[:, 5] *= 30
    x = torch.randn(16, 48, generator=g)
    x[:, 5] *= 30
    for kwargs in ({"static": True}, {"smooth_alpha": 0.5}, {"static": True, "smooth_alpha": 0.8}):
        spike = SpikeLinear.from_linear(lin, timesteps=4, calibration=calib, **kwargs)
        fake = FakeQuantLinear.from_linear(lin, timesteps=4, calibration=calib, **kwargs)
        assert torch.equal(spike(x), fake(x))
    ref = lin(x).detach()
    plain = SpikeLinear.from_linear(lin, timesteps=3)(x)
    smooth = SpikeLinear.from_linear(lin, timesteps=3, calibration=calib, smooth_alpha=0.5)(x)
    assert (smooth - ref).pow(2).mean() < (plain - ref).pow(2).mean()


def test_real_pretrained_layer():
    x, lin = capture_linear_inputs()
    spike = SpikeLinear.from_linear(lin, timesteps=4)
    y = spike(x)
    assert torch.equal(y, FakeQuantLinear.from_linear(lin, timesteps=4)(x))
    ref = lin(x).detach()
    cos = torch.nn.functional.cosine_similarity(y, ref, dim=-1)
    assert cos.min() > 0.95


def test_bad_input_is_named():
    lin = make_linear()
    spike = SpikeLinear.from_linear(lin)
    with pytest.raises(ValueError, match="input has 47 features, layer expects 48"):
        spike(torch.zeros(2, 47))
    with pytest.raises(ValueError, match="tokens' shape \\(2,\\)"):
        spike(torch.zeros(2, 48), torch.tensor([3, 3, 3]))
    with pytest.raises(ValueError, match="timesteps must be in \\[1, 15\\], not 0"):
        spike(torch.zeros(2, 48), torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="calibration"):
        SpikeLinear.from_linear(lin, static=True)
    with pytest.raises(TypeError, match="nn.Linear"):
        SpikeLinear.from_linear(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="does not fit 4 bits"):
        SpikeLinear(torch.full((2, 3), 9), torch.ones(2), weight_bits=4)
