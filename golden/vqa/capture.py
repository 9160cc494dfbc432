"""Capture what enters one language-model linear layer of the shapes-VQA Qwen2-VL on real
samples, each token tagged with its modality by the model's own token ids.

``capture_layer_inputs(model, samples, layer)`` runs the samples (images and questions,
batched by :func:`~.data.collate`) through the float model with a forward hook on
``layer`` and returns, per real token (padding dropped), the activations entering the
layer, the token id, the sample it belongs to and its modality tag. The tag comes from
the input ids and the model configuration's image and video placeholder ids
(:func:`spikemllm.golden.convert.model.token_modality`): an image token is vision,
every other token (``<bos>``, ``<vision_start>``, ``<vision_end>``, question words) is
text. Nothing is tagged by position or by hand.

Only a language-model layer sees both modalities; a vision-encoder or projector layer is
refused with ``ValueError``, as is a name that is not an ``nn.Linear`` of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from spikemllm.golden.convert.model import discover_layers, token_modality
from spikemllm.golden.convert.schedule import LayerSpec
from torch import nn

from .data import Sample, collate

__all__ = ["LayerCapture", "language_model_unit", "capture_layer_inputs"]


@dataclass(frozen=True)
class LayerCapture:
    """The inputs of one linear layer over the real tokens of some samples."""

    layer: str
    """module path of the linear layer"""
    unit: str
    """the layer unit (schedule entry) that contains it"""
    x: torch.Tensor
    """float32 ``(tokens, in_features)``: the activations entering the layer"""
    modality: torch.Tensor
    """int64 ``(tokens,)``: 1 = vision (image token), 0 = text"""
    token_ids: torch.Tensor
    """int64 ``(tokens,)``: the input ids"""
    sample: torch.Tensor
    """int64 ``(tokens,)``: index of the token's sample in the list given"""
    linear: nn.Linear
    """the layer itself (float weights and bias)"""
    units: tuple[LayerSpec, ...]
    """the model's layer units in execution order (:func:`discover_layers`)"""


def language_model_unit(model: nn.Module, layer: str) -> tuple[LayerSpec, tuple[LayerSpec, ...]]:
    """The language-model layer unit containing ``layer`` and all the model's units.

    Raises ``ValueError`` naming the layer if it is not a linear layer of the model or not
    in a unit that carries both vision and text tokens.
    """
    modules = dict(model.named_modules())
    if not isinstance(modules.get(layer), nn.Linear):
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear) and ".language_model." in f".{n}"]
        raise ValueError(f"{layer!r} is not a linear layer of the model; language-model layers are e.g. {linears[:4]}")
    units = tuple(discover_layers(model))
    unit = next(u for u in units if layer in u.linears)
    if set(unit.modalities) != {"text", "vision"}:
        raise ValueError(
            f"{layer!r} is in {unit.name!r} ({unit.stage}), which only {' and '.join(unit.modalities)} tokens "
            "pass; choose a language-model layer"
        )
    return unit, units


def capture_layer_inputs(model: nn.Module, samples: list[Sample], layer: str) -> LayerCapture:
    """Run ``samples`` through ``model`` (float, eval mode) and capture ``layer``'s inputs.

    Tokens come in sample order, each sample's tokens in sequence order; padding is
    dropped. Raises ``ValueError`` for an empty sample list or a layer
    :func:`language_model_unit` refuses.
    """
    if not samples:
        raise ValueError("capture needs at least one sample")
    unit, units = language_model_unit(model, layer)
    linear = dict(model.named_modules())[layer]
    batch = collate(list(samples))["inputs"]
    captured = []
    handle = linear.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"{layer!r} was called {len(captured)} times in one forward pass; expected once")
    ids = batch["input_ids"]
    real = batch["attention_mask"].bool()
    tags = token_modality(model.config, input_ids=ids)
    sample = torch.arange(ids.shape[0]).unsqueeze(1).expand_as(ids)
    return LayerCapture(
        layer=layer,
        unit=unit.name,
        x=captured[0][real].float().contiguous(),
        modality=tags[real].to(torch.int64),
        token_ids=ids[real].to(torch.int64),
        sample=sample[real].to(torch.int64),
        linear=linear,
        units=units,
    )
