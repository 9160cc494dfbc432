"""End-to-end integer layer and the demo on the real pretrained layer."""

import pytest
import torch
from spikemllm.golden import encode_tc_lif, integer_matmul, requantize
from spikemllm.golden.layer import IntegerLayer, run_integer_layer
from spikemllm.golden.reports.demo import main, run
from torch import nn


def test_integer_layer_trace_matches_its_pieces_and_the_float_layer():
    torch.manual_seed(0)
    lin = nn.Linear(32, 12)
    x = torch.randn(20, 32)
    with torch.no_grad():
        y = lin(x)
    in_scale, out_scale = float(x.abs().max()) / 15, float(y.abs().max()) / 15
    layer = IntegerLayer.from_linear(lin, in_scale=in_scale, out_scale=out_scale, out_bits=5)
    q = torch.round(x / in_scale).long()
    trace = run_integer_layer(layer, q, 4)
    assert torch.equal(trace.spikes, encode_tc_lif(q, 4))
    assert torch.equal(trace.acc, integer_matmul(q, layer.weight)) and torch.equal(trace.partials[-1], trace.acc)
    assert torch.equal(trace.out, requantize(trace.acc, layer.bias, layer.multiplier, layer.shift, 5))
    direct = torch.round(y / out_scale)
    assert (trace.out - direct).abs().max() <= 2


def test_per_channel_output_scales_set_each_channels_multiplier():
    torch.manual_seed(1)
    lin = nn.Linear(16, 6)
    out_scale = torch.tensor([0.01, 0.02, 0.05, 0.1, 0.2, 0.4], dtype=torch.float64)
    layer = IntegerLayer.from_linear(lin, in_scale=0.03, out_scale=out_scale, out_bits=8, max_shift=40)
    w_scale = lin.weight.detach().double().abs().amax(dim=1) / 127
    rescale = layer.multiplier.double() / 2.0 ** layer.shift.double()
    assert torch.allclose(rescale, 0.03 * w_scale / out_scale, rtol=2 ** -15)
    with pytest.raises(ValueError, match="out_scale must be one number or have shape \\(6,\\)"):
        IntegerLayer.from_linear(lin, in_scale=0.03, out_scale=torch.ones(5), out_bits=8)
    with pytest.raises(ValueError, match="out_scale must be positive"):
        IntegerLayer.from_linear(lin, in_scale=0.03, out_scale=torch.zeros(6), out_bits=8)


def test_integer_layer_validates():
    with pytest.raises(ValueError, match="bias must have shape \\(2,\\)"):
        IntegerLayer(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3), torch.ones(2), torch.zeros(2), out_bits=4)
    layer = IntegerLayer(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2), torch.ones(2), torch.zeros(2), out_bits=4)
    with pytest.raises(ValueError, match="shape \\(tokens, 3\\)"):
        run_integer_layer(layer, torch.zeros(4, 2, dtype=torch.int64), 3)


def test_demo_on_real_layer(tmp_path, capsys):
    report = tmp_path / "demo.json"
    assert main(["--report", str(report)]) == 0
    assert "spike_linear == dense integer matmul: yes" in capsys.readouterr().out
    result = run()
    assert result["spike_linear_equals_integer_matmul"] and result["static"]["requantizer_within_stated_bound"]
    tc, count = result["spikes"]["tc_lif"], result["spikes"]["count_signed"]
    assert tc["timesteps"] == 3 and count["timesteps"] == 7
    assert tc["events_per_value"] <= count["events_per_value"]
    assert report.exists()
