"""Capture of a language-model layer's inputs on real samples, tagged by the model's own token ids."""

import pytest
import torch
from spikemllm.golden.vqa.capture import capture_layer_inputs, language_model_unit
from spikemllm.golden.vqa.data import VOCAB, collate, generate
from spikemllm.golden.vqa.model import build_model

LAYER = "model.language_model.layers.0.mlp.up_proj"


@pytest.fixture(scope="module")
def model():
    return build_model("tiny", seed=1, init_std=0.1).eval()


def test_captures_every_real_token_with_its_modality(model):
    samples = generate(3, 5)  # questions of different lengths: the batch is padded
    capture = capture_layer_inputs(model, samples, LAYER)
    inputs = collate(samples)["inputs"]
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) > 1
    assert capture.x.shape == (sum(lengths), model.config.text_config.hidden_size)
    assert capture.sample.tolist() == [n for n, length in enumerate(lengths) for _ in range(length)]
    words = VOCAB.decode(capture.token_ids)
    assert capture.modality.tolist() == [int(w == "<image>") for w in words]
    assert words[:2] == ["<bos>", "<vision_start>"] and "<pad>" not in words
    assert capture.unit == "model.language_model.layers.0" and capture.layer == LAYER
    assert [u.name for u in capture.units][-1] == "lm_head"


def test_captured_inputs_give_the_layers_outputs(model):
    """The captured rows are what the layer computed on: its outputs, hooked separately."""
    samples = generate(2, 6)
    outputs = []
    linear = dict(model.named_modules())[LAYER]
    handle = linear.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    try:
        capture = capture_layer_inputs(model, samples, LAYER)
    finally:
        handle.remove()
    real = collate(samples)["inputs"]["attention_mask"].bool()
    assert torch.allclose(capture.linear(capture.x), outputs[0][real], atol=1e-6)


def test_refuses_layers_without_both_modalities(model):
    with pytest.raises(ValueError, match="only vision tokens pass"):
        language_model_unit(model, "model.visual.blocks.0.mlp.fc1")
    with pytest.raises(ValueError, match="not a linear layer"):
        capture_layer_inputs(model, generate(1, 1), "model.language_model.layers.0")
    with pytest.raises(ValueError, match="at least one sample"):
        capture_layer_inputs(model, [], LAYER)
