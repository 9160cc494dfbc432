"""ANN quantizers in spike space: SmoothQuant, Hadamard rotation and GPTQ for whole models.

:func:`~.model.convert_model` and :func:`~.integer_model.convert_integer` take the
quantizer as options. Each changes only *what* is quantized, never the integer format the
core runs, so a converted layer still feeds the same TC-LIF spikes and integer weights to
the accelerator:

* ``transform="smoothquant"`` divides each input channel by ``s_j`` and multiplies the
  weight column by it (:func:`~spikemllm.golden.quantize.smoothquant_factors`, migration
  strength ``alpha``, from the calibration inputs' per-channel maxima);
* ``transform="hadamard"`` rotates inputs and weights by a block Hadamard matrix
  (:func:`~spikemllm.golden.quantize.block_hadamard`), spreading outlier channels;
* ``gptq=True`` rounds the integer weights with GPTQ's error compensation on the
  calibration inputs (:func:`~spikemllm.golden.quantize.gptq_weight_per_channel`), on the
  same per-channel grid as nearest rounding.

In a deployed model the input-side factor (``1/s``, or the rotation) folds into the
preceding normalization or is one extra host operation; here the host applies it in
float64 before quantizing (:class:`~spikemllm.golden.modules.SpikeLinear` ``smooth`` and
``rotation``).

:func:`input_statistics` runs the float model on calibration inputs and records, for
every linear layer :func:`~.model.discover_layers` finds (patch convolutions as their
flattened patches), the per-channel input maxima and, when asked, ``X^T X``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..quantize import block_hadamard

__all__ = ["TRANSFORMS", "InputStatistics", "input_statistics", "check_quantizer", "quantizer_options"]

TRANSFORMS = ("none", "smoothquant", "hadamard")
"""Input transforms folded into the integer weights."""


@dataclass
class InputStatistics:
    """What calibration saw at one linear layer's input."""

    absmax: torch.Tensor
    """per input channel, float64 ``(in,)``"""
    gram: torch.Tensor | None
    """``X^T X`` over every calibration token, float64 ``(in, in)``, or ``None``"""
    tokens: int


def input_statistics(model: nn.Module, calibration: Iterable[Mapping], *, gram: bool = False) -> dict[str, InputStatistics]:
    """Run the float ``model`` on ``calibration`` (keyword-argument dicts of its forward)
    and return :class:`InputStatistics` per converted layer path (the paths of
    :func:`~.model.discover_layers`). ``gram=True`` also accumulates ``X^T X`` (memory
    ``in^2`` per layer). Raises ``ValueError`` when a layer sees no input."""
    from .model import _is_patch_conv, discover_layers, patches_of  # model.py imports this module

    paths = [path for spec in discover_layers(model) for path in spec.linears]
    stats: dict[str, InputStatistics] = {}
    handles = []

    def hook_for(path, module):
        def hook(_module, args):
            x = args[0]
            if _is_patch_conv(module):
                x = patches_of(x, module.kernel_size, module.in_channels)
            flat = x.detach().reshape(-1, x.shape[-1]).double()
            entry = stats.get(path)
            if entry is None:
                width = flat.shape[1]
                entry = stats[path] = InputStatistics(torch.zeros(width, dtype=torch.float64),
                                                      torch.zeros(width, width, dtype=torch.float64) if gram else None, 0)
            entry.absmax = torch.maximum(entry.absmax, flat.abs().amax(dim=0))
            if gram:
                entry.gram += flat.T @ flat
            entry.tokens += flat.shape[0]

        return hook

    for path in paths:
        module = model.get_submodule(path)
        handles.append(module.register_forward_pre_hook(hook_for(path, module)))
    try:
        with torch.no_grad():
            for inputs in calibration:
                model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = [p for p in paths if p not in stats]
    if missing:
        raise ValueError(f"calibration never reached layer {missing[0]!r} ({len(missing)} layers without input)")
    return stats


def check_quantizer(transform: str, gptq: bool, calibration) -> None:
    """``ValueError`` for an unknown transform, or a quantizer that needs calibration inputs without them."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, not {transform!r}")
    if not isinstance(gptq, bool):
        raise TypeError(f"gptq must be True or False, not {gptq!r}")
    if (transform == "smoothquant" or gptq) and calibration is None:
        needs = "SmoothQuant" if transform == "smoothquant" else "GPTQ"
        raise ValueError(f"{needs} needs calibration inputs: pass calibration=[forward kwargs, ...]")


def quantizer_options(linear: nn.Linear, stats: InputStatistics | None, *, transform: str, alpha: float,
                      gptq: bool) -> dict:
    """Keyword arguments of ``SpikeLinear.from_linear`` that apply the quantizer to ``linear``
    (``stats``: its :class:`InputStatistics`, needed for SmoothQuant and GPTQ)."""
    options: dict = {}
    if transform == "smoothquant":
        # one row holding the per-channel maxima gives from_linear the same factors
        options["calibration"] = stats.absmax[None, :]
        options["smooth_alpha"] = alpha
    elif transform == "hadamard":
        options["rotation"] = block_hadamard(linear.in_features)
    if gptq:
        options["gram"] = stats.gram
    return options
