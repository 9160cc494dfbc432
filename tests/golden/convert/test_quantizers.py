"""SmoothQuant, Hadamard rotation and GPTQ through convert_model, checked against the
golden quantizers applied by hand and against nearest rounding."""

from __future__ import annotations

import pytest
import torch
from spikemllm.golden.convert.model import convert_model, discover_layers
from spikemllm.golden.convert.quantizers import input_statistics
from spikemllm.golden.quantize import (
    block_hadamard,
    gptq_weight_per_channel,
    quantize_per_token,
    quantize_weight_per_channel,
    smoothquant_factors,
)
from spikemllm.golden.spike_linear import integer_matmul
from torch import nn


def _output_error(weight, q, x):
    w_hat = q.q.double() * q.scale.double()[:, None]
    return float(((x @ weight.T - x @ w_hat.T) ** 2).sum())


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_gptq_reduces_the_layer_output_error_on_its_calibration_inputs(bits):
    g = torch.Generator().manual_seed(bits)
    mix = torch.randn(24, 24, generator=g, dtype=torch.float64)
    x = torch.randn(256, 24, generator=g, dtype=torch.float64) @ mix  # correlated inputs
    w = torch.randn(16, 24, generator=g, dtype=torch.float64)
    nearest = quantize_weight_per_channel(w, bits)
    gptq = gptq_weight_per_channel(w, x.T @ x, bits)
    assert torch.equal(gptq.scale, nearest.scale)  # same grid: the hardware format is unchanged
    assert int(gptq.q.abs().max()) <= (1 << (bits - 1)) - 1
    assert _output_error(w, gptq, x) < _output_error(w, nearest, x)


def test_gptq_without_correlations_is_nearest_rounding():
    """Uncorrelated inputs of equal power (X^T X = n I) leave nothing to compensate."""
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gram = 100.0 * torch.eye(16, dtype=torch.float64)
    gram[5, 5] = 0.0  # an input that never fired keeps nearest rounding too
    assert torch.equal(gptq_weight_per_channel(w, gram, 4).q, quantize_weight_per_channel(w, 4).q)


def test_gptq_refuses_bad_inputs():
    w = torch.randn(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="gram must have shape"):
        gptq_weight_per_channel(w, torch.eye(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="symmetric"):
        gptq_weight_per_channel(w, torch.triu(torch.ones(6, 6, dtype=torch.float64)))
    with pytest.raises(ValueError, match="damp"):
        gptq_weight_per_channel(w, torch.eye(6, dtype=torch.float64), damp=0.0)


class _Recorder:
    """Inputs of every linear layer of a model, recorded with plain forward hooks."""

    def __init__(self, model):
        self.inputs = {}
        self.handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in model.named_modules()
                        if isinstance(m, nn.Linear)]

    def _hook(self, name):
        def hook(_module, args):
            self.inputs.setdefault(name, []).append(args[0].detach().reshape(-1, args[0].shape[-1]).double())
        return hook

    def rows(self, name):
        for h in self.handles:
            h.remove()
        return torch.cat(self.inputs[name])


def test_input_statistics_match_the_layers_inputs(qwen2vl, qwen2vl_batch):
    recorder = _Recorder(qwen2vl)  # sees the calibration forward of input_statistics
    stats = input_statistics(qwen2vl, [qwen2vl_batch], gram=True)
    name = "model.language_model.layers.1.mlp.down_proj"
    x = recorder.rows(name)
    assert torch.equal(stats[name].absmax, x.abs().amax(dim=0))
    assert torch.allclose(stats[name].gram, x.T @ x, rtol=1e-12)
    assert stats[name].tokens == x.shape[0]
    assert set(stats) == {p for spec in discover_layers(qwen2vl) for p in spec.linears}


def _one_layer(model, name):
    return model.get_submodule(name)


@pytest.mark.parametrize("transform", ["smoothquant", "hadamard"])
def test_a_transformed_layer_computes_the_golden_quantizers_by_hand(qwen2vl, qwen2vl_batch, transform):
    name = "model.language_model.layers.0.self_attn.q_proj"
    float_layer = _one_layer(qwen2vl, name)
    w = float_layer.weight.detach().double()
    stats = input_statistics(qwen2vl, [qwen2vl_batch])
    converted = convert_model(qwen2vl, kind="fake_quant", transform=transform, calibration=[qwen2vl_batch])
    x = torch.randn(5, w.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if transform == "smoothquant":
        s = smoothquant_factors(stats[name].absmax, w, 0.5)
        x_in, w_in = x / s, w * s
    else:
        h = block_hadamard(w.shape[1])
        x_in, w_in = x @ h, w @ h
    T = 3
    qx, wq = quantize_per_token(x_in, T + 1), quantize_weight_per_channel(w_in, 8)
    expected = integer_matmul(qx.q, wq.q).double() * qx.scale.double() * wq.scale.double()
    if float_layer.bias is not None:
        expected = expected + float_layer.bias.double()
    got = _one_layer(converted, name)(x, timesteps=T).double()
    assert torch.equal(got, expected)


@pytest.mark.parametrize("options", [{"transform": "smoothquant"}, {"transform": "hadamard"}, {"gptq": True}])
def test_quantizers_keep_the_spike_path_exact(qwen2vl, qwen2vl_batch, options):
    spike = convert_model(qwen2vl, kind="spike", calibration=[qwen2vl_batch], **options)
    fake = convert_model(qwen2vl, kind="fake_quant", calibration=[qwen2vl_batch], **options)
    with torch.no_grad():
        assert torch.equal(spike(**qwen2vl_batch).logits, fake(**qwen2vl_batch).logits)


def test_gptq_conversion_lowers_each_layers_error_at_four_bit_weights(qwen2vl, qwen2vl_batch):
    name = "model.language_model.layers.0.mlp.down_proj"
    stats = input_statistics(qwen2vl, [qwen2vl_batch], gram=True)
    plain = convert_model(qwen2vl, kind="fake_quant", weight_bits=4)
    gptq = convert_model(qwen2vl, kind="fake_quant", weight_bits=4, gptq=True, calibration=[qwen2vl_batch])
    w = _one_layer(qwen2vl, name).weight.detach().double()

    def error(model):
        layer = _one_layer(model, name)
        w_hat = layer.weight_int.double() * layer.weight_scale[:, None]
        d = w - w_hat
        return float(torch.trace(d @ stats[name].gram @ d.T))  # ||X (W - W_hat)^T||^2

    assert error(gptq) < error(plain)
    assert not torch.equal(_one_layer(gptq, name).weight_int, _one_layer(plain, name).weight_int)


def test_quantizer_errors_name_the_problem(qwen2vl, qwen2vl_batch):
    with pytest.raises(ValueError, match="SmoothQuant needs calibration"):
        convert_model(qwen2vl, transform="smoothquant")
    with pytest.raises(ValueError, match="GPTQ needs calibration"):
        convert_model(qwen2vl, gptq=True)
    with pytest.raises(ValueError, match="transform must be one of"):
        convert_model(qwen2vl, transform="awq")
    with pytest.raises(ValueError, match="orthonormal"):
        from spikemllm.golden.modules import SpikeLinear

        SpikeLinear.from_linear(nn.Linear(4, 2), rotation=torch.ones(4, 4))
