"""Conversion of Qwen2-VL and InternVL: coverage, exactness, routing, errors."""

from __future__ import annotations

import pytest
import torch
from spikemllm.golden import FakeQuantLinear, SpikeLinear
from spikemllm.golden.convert.model import (
    SpikePatchConv,
    conversion_of,
    convert_model,
    discover_layers,
    set_schedule,
    token_modality,
)
from spikemllm.golden.convert.schedule import Schedule, uniform_schedule
from torch import nn

IMAGE = 5  # the image placeholder id of the conftest configs

MODELS = [("qwen2vl", "qwen2vl_batch"), ("internvl", "internvl_batch")]


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def _float_weight_layers(model):
    return [
        n for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)) and not isinstance(m, SpikeLinear)
    ]


@pytest.mark.parametrize("model_name,batch_name", MODELS)
def test_every_linear_layer_is_converted(request, model_name, batch_name):
    model = request.getfixturevalue(model_name)
    originals = _float_weight_layers(model)
    converted = convert_model(model)
    assert _float_weight_layers(converted) == []
    assert sorted(conversion_of(converted).converted) == sorted(originals)
    for name in originals:
        module = converted.get_submodule(name)
        inner = module.linear if isinstance(module, SpikePatchConv) else module
        assert isinstance(inner, SpikeLinear)
    stages = {spec.stage for spec in discover_layers(model)}
    assert stages == {"vision_encoder", "projector", "language_model"}
    # the float model is left untouched
    assert _float_weight_layers(model) == originals


@pytest.mark.parametrize("model_name,batch_name", MODELS)
def test_spike_path_equals_fake_quant_logits(request, model_name, batch_name):
    model = request.getfixturevalue(model_name)
    batch = request.getfixturevalue(batch_name)
    layers = discover_layers(model)
    schedule = uniform_schedule(layers, vision=3, text=4)
    spike = _logits(convert_model(model, schedule, kind="spike"), batch)
    fake = _logits(convert_model(model, schedule, kind="fake_quant"), batch)
    assert torch.equal(spike, fake)
    # and the quantization is not a no-op at 3/4
    assert not torch.allclose(spike, _logits(model, batch), atol=1e-6)


@pytest.mark.parametrize("model_name,batch_name", MODELS)
def test_many_steps_approach_the_float_model(request, model_name, batch_name):
    model = request.getfixturevalue(model_name)
    batch = request.getfixturevalue(batch_name)
    ref = _logits(model, batch)
    errors = []
    for T in (3, 6, 12):
        out = _logits(convert_model(model, uniform_schedule(discover_layers(model), vision=T, text=T)), batch)
        errors.append(float((out - ref).abs().max() / ref.abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 2e-2


@pytest.mark.parametrize("dims", [2, 3])
def test_patch_convolution_equals_unfolded_linear(dims):
    torch.manual_seed(3)
    conv = (nn.Conv2d(3, 8, 4, stride=4) if dims == 2 else nn.Conv3d(3, 8, (2, 4, 4), stride=(2, 4, 4), bias=False))
    x = torch.randn(2, 3, 8, 12) if dims == 2 else torch.randn(5, 3, 2, 4, 4)
    linear = nn.Linear(conv.weight[0].numel(), 8, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(8, -1))
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    fq = FakeQuantLinear.from_linear(linear, timesteps=3)
    out = SpikePatchConv(conv.kernel_size, 3, fq)(x)
    assert out.shape == conv(x).shape
    # independent patch extraction: torch's unfold (2-D) or one patch per sample (3-D)
    if dims == 2:
        patches = nn.functional.unfold(x, 4, stride=4).transpose(1, 2)  # (N, L, C*k*k)
        ref = fq(patches).transpose(1, 2).reshape(out.shape)
    else:
        ref = fq(x.reshape(5, -1)).reshape(out.shape)
    assert torch.equal(out, ref)
    assert torch.allclose(SpikePatchConv(conv.kernel_size, 3, FakeQuantLinear.from_linear(linear, timesteps=14))(x),
                          conv(x), atol=1e-2)


def _record_timesteps(model, name):
    """Record (tokens shape, T) that a converted linear layer used on each call."""
    module = model.get_submodule(name)
    seen = []
    original = module.quantize_input

    def spy(x, T):
        seen.append((x.shape[0], T))
        return original(x, T)

    module.quantize_input = spy
    return seen


@pytest.mark.parametrize("model_name,batch_name", MODELS)
def test_language_model_tokens_are_routed_by_modality(request, model_name, batch_name):
    model = request.getfixturevalue(model_name)
    batch = request.getfixturevalue(batch_name)
    layers = discover_layers(model)
    converted = convert_model(model, uniform_schedule(layers, vision=2, text=5), kind="fake_quant")
    lm = next(s for s in layers if s.stage == "language_model" and s.block)
    vis = next(s for s in layers if s.stage == "vision_encoder" and s.block)
    lm_seen = _record_timesteps(converted, lm.linears[0])
    vis_seen = _record_timesteps(converted, vis.linears[-1])
    _logits(converted, batch)
    n_image = int((batch["input_ids"] == IMAGE).sum())
    n_tokens = batch["input_ids"].numel()
    assert sorted(lm_seen) == sorted([(n_image, 2), (n_tokens - n_image, 5)])
    assert vis_seen and all(T == 2 for _, T in vis_seen)


def test_routed_output_matches_explicit_per_token_timesteps(qwen2vl, qwen2vl_batch):
    """A language-model layer's output equals the same layer called with T built from input_ids."""
    layers = discover_layers(qwen2vl)
    converted = convert_model(qwen2vl, uniform_schedule(layers, vision=3, text=4))
    name = "model.language_model.layers.1.mlp.down_proj"
    captured = {}
    handle = converted.get_submodule(name).register_forward_hook(
        lambda m, args, out: captured.update(x=args[0].detach(), y=out.detach())
    )
    _logits(converted, qwen2vl_batch)
    handle.remove()
    T = torch.where(qwen2vl_batch["input_ids"] == IMAGE, 3, 4)
    plain = SpikeLinear.from_linear(qwen2vl.get_submodule(name), timesteps=4)
    assert torch.equal(plain(captured["x"], T), captured["y"])
    assert not torch.equal(plain(captured["x"], 4), captured["y"])


def test_modality_from_type_ids_or_placeholder_ids(qwen2vl, qwen2vl_batch):
    ids = qwen2vl_batch["input_ids"]
    by_type = token_modality(qwen2vl.config, ids, qwen2vl_batch["mm_token_type_ids"])
    by_ids = token_modality(qwen2vl.config, ids)
    assert torch.equal(by_type, by_ids)
    assert int(by_ids.sum()) == 8
    video = ids.clone()
    video[0, 2] = qwen2vl.config.video_token_id
    assert int(token_modality(qwen2vl.config, video).sum()) == 8


def test_generation_with_cache_routes_new_tokens(qwen2vl, qwen2vl_batch):
    batch = {k: v[:1] if k != "pixel_values" else v[:16] for k, v in qwen2vl_batch.items()}
    schedule = uniform_schedule(discover_layers(qwen2vl), vision=3, text=4)
    outs = []
    for kind in ("spike", "fake_quant"):
        model = convert_model(qwen2vl, schedule, kind=kind)
        with torch.no_grad():
            outs.append(model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=0))
    assert torch.equal(outs[0], outs[1])
    assert outs[0].shape[1] == batch["input_ids"].shape[1] + 3


def test_count_coding_at_equal_levels_equals_tc_lif(qwen2vl, qwen2vl_batch):
    layers = discover_layers(qwen2vl)
    tc = _logits(convert_model(qwen2vl, uniform_schedule(layers, vision=2, text=3)), qwen2vl_batch)
    count = convert_model(qwen2vl, uniform_schedule(layers, vision=3, text=7), kind="count")
    assert torch.equal(_logits(count, qwen2vl_batch), tc)
    set_schedule(count, uniform_schedule(layers, vision=2, text=3))  # equal steps: fewer levels
    assert not torch.equal(_logits(count, qwen2vl_batch), tc)


def test_set_schedule_changes_timesteps_without_reconverting(qwen2vl, qwen2vl_batch):
    layers = discover_layers(qwen2vl)
    a = convert_model(qwen2vl, uniform_schedule(layers, vision=3, text=4), kind="fake_quant")
    b = convert_model(qwen2vl, uniform_schedule(layers, vision=5, text=5), kind="fake_quant")
    set_schedule(a, uniform_schedule(layers, vision=5, text=5))
    assert torch.equal(_logits(a, qwen2vl_batch), _logits(b, qwen2vl_batch))


def test_text_only_model_routes_everything_as_text():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=32)).eval()
    layers = discover_layers(bert)
    assert all(spec.stage == "language_model" and spec.modalities == ("text",) for spec in layers)
    assert [s.name for s in layers if s.block] == ["encoder.layer.0", "encoder.layer.1"]
    converted = convert_model(bert, uniform_schedule(layers, text=12))
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = bert(input_ids=ids).last_hidden_state
        out = converted(input_ids=ids).last_hidden_state
    assert torch.allclose(out, ref, atol=2e-2)


def test_errors_name_the_problem(qwen2vl, qwen2vl_batch):
    layers = discover_layers(qwen2vl)
    with pytest.raises(ValueError, match="kind"):
        convert_model(qwen2vl, kind="analog")
    bad = uniform_schedule(layers).to_dict()
    bad["layers"][0]["name"] = "model.visual.nonexistent"
    with pytest.raises(ValueError, match="nonexistent"):
        convert_model(qwen2vl, Schedule.from_dict(bad))
    converted = convert_model(qwen2vl)
    with pytest.raises(ValueError, match="already converted"):
        convert_model(converted)
    # calling the language model alone gives no token types to route by
    with pytest.raises(RuntimeError, match="modality"), torch.no_grad():
        converted.model.language_model(inputs_embeds=torch.randn(1, 3, 32))
    with pytest.raises(TypeError):
        discover_layers("not a model")
    with pytest.raises(ValueError, match="not been converted"):
        set_schedule(qwen2vl, uniform_schedule(layers))
