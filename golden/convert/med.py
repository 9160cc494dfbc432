"""MED: modality evolution discrepancy, measured per layer and modality (SPEC section 5).

For a residual block ``l`` and modality ``m``::

    E_l(m) = mean over the tokens of m of (1 - cos(h_{l-1}, h_l))

where ``h_{l-1}`` is a token's hidden state entering the block and ``h_l`` leaving it.
``E`` is 0 for a block that leaves a token's direction unchanged and grows as the block
rewrites it. The discrepancy between modalities at a layer, ``E_l(text) - E_l(vision)``,
is what guides modality-specific timesteps.

Layer units that are not width-preserving blocks (patch embedding, projector, LM head)
have no ``cos(h_{l-1}, h_l)``; they take the MED of the nearest block (in execution order)
that carries the same modality, and the result records which one (``inherited_from``).

Vision-encoder tokens are all vision; language-model tokens are split by the model's own
token types (:func:`~.convert.token_modality`), and padding (``attention_mask == 0``) is
left out. Every unit's token counts per modality are recorded too: they weigh the average
number of steps in the allocators.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .model import VISION, discover_layers, token_modality
from .schedule import LayerSpec

__all__ = ["DEFINITION", "evolution", "MedResult", "measure_med", "plot_med"]

DEFINITION = "E_l(m) = mean over tokens of modality m of (1 - cos(h_{l-1}, h_l))"


def evolution(h_in: torch.Tensor, h_out: torch.Tensor) -> torch.Tensor:
    """Per-token ``1 - cos(h_in, h_out)`` over the last dimension, in float64.

    A zero vector has cosine 0 with anything (evolution 1). Raises ``ValueError`` for
    mismatched shapes.
    """
    if h_in.shape != h_out.shape:
        raise ValueError(f"hidden states must have the same shape, not {tuple(h_in.shape)} and {tuple(h_out.shape)}")
    a, b = h_in.double(), h_out.double()
    denom = a.norm(dim=-1) * b.norm(dim=-1)
    cos = torch.where(denom > 0, (a * b).sum(-1) / denom.clamp(min=1e-300), torch.zeros_like(denom))
    return 1.0 - cos


@dataclass
class MedResult:
    """MED per layer unit and modality, with token counts (per calibration sample)."""

    layers: list[LayerSpec]
    med: dict[str, dict[str, float]]
    tokens: dict[str, dict[str, float]]
    inherited_from: dict[str, str | None]
    samples: int

    def discrepancy(self) -> dict[str, float]:
        """``E_l(text) - E_l(vision)`` for every language-model block that carries both."""
        return {
            spec.name: self.med[spec.name]["text"] - self.med[spec.name]["vision"]
            for spec in self.layers
            if spec.block and {"text", "vision"} <= set(spec.modalities)
        }

    def to_dict(self) -> dict:
        return {
            "definition": DEFINITION,
            "samples": self.samples,
            "layers": [
                {
                    "name": spec.name,
                    "stage": spec.stage,
                    "block": spec.block,
                    "med": self.med[spec.name],
                    "inherited_from": self.inherited_from[spec.name],
                    "tokens_per_sample": self.tokens[spec.name],
                }
                for spec in self.layers
            ],
            "discrepancy_text_minus_vision": self.discrepancy(),
        }

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _hidden(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    raise TypeError(f"cannot find hidden states in a {type(value).__name__}")


def _tokens_of(module: nn.Module, x: torch.Tensor) -> int:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or hasattr(module, "kernel_size"):
        grid = [s // k for s, k in zip(x.shape[2:], module.kernel_size)]
        return x.shape[0] * int(torch.tensor(grid).prod())
    return x.numel() // x.shape[-1]


def measure_med(model: nn.Module, batches: Iterable[Mapping], *, layers: list[LayerSpec] | None = None) -> MedResult:
    """Run ``model(**batch)`` for every batch and measure MED and token counts.

    ``batches`` are keyword dicts for the model's forward (``input_ids``,
    ``attention_mask``, ``pixel_values``, ...). Works on the float model or a converted
    one. Returns a :class:`MedResult`; raises ``ValueError`` if no batch is given or a
    modality never reaches a block.
    """
    layers = discover_layers(model) if layers is None else layers
    config = getattr(model, "config", None)
    sums = {spec.name: {m: 0.0 for m in spec.modalities} for spec in layers}
    counts = {spec.name: {m: 0 for m in spec.modalities} for spec in layers}
    state: dict = {}

    def lm_tags(shape) -> tuple[torch.Tensor, torch.Tensor]:
        tags = state["tags"]
        if tags is None or tuple(tags.shape) != tuple(shape):
            raise ValueError(
                f"cannot tell the modality of language-model tokens of shape {tuple(shape)}; "
                "pass input_ids (and mm_token_type_ids where the model uses them)"
            )
        return tags, state["valid"]

    def split(spec: LayerSpec, shape) -> dict[str, torch.Tensor]:
        if spec.stage != "language_model":
            return {"vision": torch.ones(shape, dtype=torch.bool)}
        tags, valid = lm_tags(shape)
        masks = {"text": (tags != VISION) & valid}
        if "vision" in spec.modalities:
            masks["vision"] = (tags == VISION) & valid
        return masks

    handles = []
    for spec in layers:
        unit = model.get_submodule(spec.name)
        if spec.block:

            def block_hook(_m, args, kwargs, output, spec=spec):
                h_in = kwargs.get("hidden_states", args[0] if args else None)
                h_out = _hidden(output)
                e = evolution(_hidden(h_in), h_out)
                for m, mask in split(spec, e.shape).items():
                    sums[spec.name][m] += float(e[mask].sum())
                    counts[spec.name][m] += int(mask.sum())

            handles.append(unit.register_forward_hook(block_hook, with_kwargs=True))
        else:
            first = model.get_submodule(spec.linears[0])

            def count_hook(module, args, spec=spec):
                x = args[0]
                if spec.stage != "language_model":
                    counts[spec.name]["vision"] += _tokens_of(module, x)
                    return
                for m, mask in split(spec, x.shape[:-1]).items():
                    counts[spec.name][m] += int(mask.sum())

            handles.append(first.register_forward_pre_hook(count_hook))
    samples = 0
    try:
        with torch.no_grad():
            for batch in batches:
                input_ids = batch.get("input_ids")
                embeds = batch.get("inputs_embeds")
                state["tags"] = token_modality(
                    config, input_ids, batch.get("mm_token_type_ids"),
                    shape=None if embeds is None else embeds.shape[:-1],
                )
                mask = batch.get("attention_mask")
                ref = state["tags"]
                state["valid"] = (
                    mask.bool() if mask is not None else torch.ones(ref.shape if ref is not None else (), dtype=torch.bool)
                )
                model(**batch)
                samples += int(input_ids.shape[0]) if input_ids is not None else int(embeds.shape[0])
    finally:
        for h in handles:
            h.remove()
    if samples == 0:
        raise ValueError("measure_med needs at least one calibration batch")

    med: dict[str, dict[str, float]] = {}
    inherited: dict[str, str | None] = {}
    blocks = [i for i, spec in enumerate(layers) if spec.block]
    for spec in layers:
        if spec.block:
            for m in spec.modalities:
                if counts[spec.name][m] == 0:
                    raise ValueError(f"no {m} token reached block {spec.name!r}; calibration inputs need both modalities")
            med[spec.name] = {m: sums[spec.name][m] / counts[spec.name][m] for m in spec.modalities}
            inherited[spec.name] = None
    for i, spec in enumerate(layers):
        if spec.block:
            continue
        candidates = [j for j in blocks if set(spec.modalities) <= set(layers[j].modalities)]
        if not candidates:
            raise ValueError(f"layer {spec.name!r} has no block carrying {list(spec.modalities)} to take MED from")
        j = min(candidates, key=lambda j: (abs(j - i), j > i))
        med[spec.name] = {m: med[layers[j].name][m] for m in spec.modalities}
        inherited[spec.name] = layers[j].name
    tokens = {name: {m: c / samples for m, c in per.items()} for name, per in counts.items()}
    return MedResult(layers, med, tokens, inherited, samples)


def plot_med(result: MedResult, path: str | Path, *, title: str = "MED per layer and modality") -> None:
    """Line plot of MED over the blocks (vision encoder, then language model) -> ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = [spec for spec in result.layers if spec.block]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for m, style in (("vision", "o-"), ("text", "s-")):
        xs = [i for i, spec in enumerate(blocks) if m in spec.modalities]
        ax.plot(xs, [result.med[blocks[i].name][m] for i in xs], style, label=m)
    boundary = [i for i, spec in enumerate(blocks) if spec.stage == "language_model"]
    if boundary and boundary[0] > 0:
        ax.axvline(boundary[0] - 0.5, color="gray", ls="--", lw=1)
        ax.text(boundary[0] - 0.45, ax.get_ylim()[1] * 0.95, "language model ->", fontsize=8, va="top")
    ax.set_xticks(range(len(blocks)))
    ax.set_xticklabels([spec.name.split(".")[-2][:6] + "." + spec.name.split(".")[-1] for spec in blocks], rotation=45, fontsize=7)
    ax.set_ylabel("E = mean(1 - cos(h_in, h_out))")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
