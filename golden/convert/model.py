"""Convert a Hugging Face (multimodal) transformer to spike form with modality routing.

:func:`convert_model` replaces every linear layer of the vision encoder, the projector and
the language model (LM head included) with a :class:`SpikeLinear` (or its fake-quant twin,
or the count-coding baseline), and every non-overlapping patch convolution (kernel equal to
stride, as in Qwen2-VL's and InternVL's patch embeddings) with the same layer applied to
flattened patches. What stays in floating point, and why:

* token embeddings (a table lookup, no multiply);
* LayerNorm/RMSNorm, activation functions (SiLU, GELU), softmax: nonlinear, per-token
  operations outside the spike-driven linear core;
* the attention products ``Q K^T`` and ``A V``: both operands are activations, not weights,
  so they are not a weight matrix the sparse-accumulate array streams;
* rotary position embeddings (M-RoPE in Qwen2-VL), residual additions, patch merging and
  pixel shuffle: elementwise or data movement.

Routing. The model is split into *layer units* (:func:`discover_layers`): each transformer
block, the projector, each patch embedding, the LM head. A :class:`~.schedule.Schedule`
gives ``T`` per (unit, modality). Vision-encoder and projector units see only vision tokens
and run at the vision ``T``. In the language model each token is routed by its modality,
taken from the model's own token-type information at every call of the converted model:
``mm_token_type_ids`` when given (Qwen2-VL; nonzero = image or video), otherwise the image
and video placeholder ids of ``model.config`` (``image_token_id``, ``video_token_id``). A
text-only model (no vision tower) routes every token as text.

The discovery is structural (module paths such as ``model.visual``, ``model.vision_tower``,
``model.multi_modal_projector``, ``model.language_model``, the longest ``ModuleList`` as the
blocks), so the same code converts a full-size model loaded by the user.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import prod

import torch
from spikemllm.golden.count_linear import CountSpikeLinear
from spikemllm.golden.modules import FakeQuantLinear, SpikeLinear
from torch import nn

from spikemllm.modality import Modality

from .quantizers import check_quantizer, input_statistics, quantizer_options
from .schedule import LayerSpec, Schedule, uniform_schedule

__all__ = [
    "KINDS",
    "discover_layers",
    "token_modality",
    "ModalityRouter",
    "SpikePatchConv",
    "Conversion",
    "convert_model",
    "set_schedule",
    "conversion_of",
    "RoutedSpikeLinear",
    "RoutedFakeQuantLinear",
    "RoutedCountSpikeLinear",
]

_VISION_ROOTS = ("model.visual", "visual", "model.vision_tower", "vision_tower", "model.vision_model", "vision_model")
_PROJECTORS = (
    "model.visual.merger",
    "visual.merger",
    "model.multi_modal_projector",
    "multi_modal_projector",
    "model.mlp1",
    "mlp1",
)
_LM_ROOTS = ("model.language_model", "language_model")

VISION, TEXT = Modality.VISION, Modality.TEXT
"""Modality tags of tokens (the schedule's column order: text 0, vision 1)."""


# -- structure ----------------------------------------------------------------------------


def _is_patch_conv(module: nn.Module) -> bool:
    """A convolution that is a linear map of non-overlapping patches."""
    if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return False
    return (
        tuple(module.kernel_size) == tuple(module.stride)
        and all(p == 0 for p in module.padding)
        and all(d == 1 for d in module.dilation)
        and module.groups == 1
        and module.padding_mode == "zeros"
    )


def _convertible(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, SpikeLinear, FakeQuantLinear, SpikePatchConv)) or _is_patch_conv(module)


def _first_path(modules: dict[str, nn.Module], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in modules), None)


def _under(name: str, root: str | None) -> bool:
    if root is None:
        return False
    return root == "" or name == root or name.startswith(root + ".")


def _blocks(modules: dict[str, nn.Module], root: str, exclude: str | None) -> list[str]:
    """Children of the longest ``ModuleList`` under ``root`` (outside ``exclude``)."""
    best: list[str] = []
    for name, module in modules.items():
        if isinstance(module, nn.ModuleList) and _under(name, root) and not _under(name, exclude):
            if len(module) > len(best):
                best = [f"{name}.{i}" if name else str(i) for i in range(len(module))]
    return best


def discover_layers(model: nn.Module) -> list[LayerSpec]:
    """Split ``model`` into layer units, in execution order.

    Returns one :class:`LayerSpec` per transformer block (vision encoder and language
    model), per projector, per patch embedding and per remaining linear layer (such as
    ``lm_head``), each with the module paths of its convertible layers. Raises
    ``ValueError`` if the model has no linear layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch nn.Module, not {type(model).__name__}")
    modules = dict(model.named_modules())
    vision_root = _first_path(modules, _VISION_ROOTS)
    projector = _first_path(modules, _PROJECTORS)
    lm_root = _first_path(modules, _LM_ROOTS)
    multimodal = vision_root is not None
    vision_blocks = _blocks(modules, vision_root, projector) if multimodal else []
    lm_blocks = _blocks(modules, lm_root if lm_root is not None else "", vision_root if multimodal else None)
    lm_blocks = [b for b in lm_blocks if not _under(b, projector)]

    units: dict[str, dict] = {}
    taken: list[str] = []
    for name, module in modules.items():
        # A converted patch convolution holds its linear layer; that is one layer, not two.
        if not _convertible(module) or any(_under(name, t) for t in taken):
            continue
        taken.append(name)
        if _under(name, projector):
            unit, stage, block = projector, "projector", False
        elif multimodal and _under(name, vision_root):
            unit = next((b for b in vision_blocks if _under(name, b)), name)
            stage, block = "vision_encoder", unit != name
        else:
            unit = next((b for b in lm_blocks if _under(name, b)), name)
            stage, block = "language_model", unit != name
        entry = units.setdefault(unit, {"stage": stage, "block": block, "linears": []})
        entry["linears"].append(name)
    if not units:
        raise ValueError(f"{type(model).__name__} has no linear layer to convert")
    layers = []
    for unit, entry in units.items():
        if entry["stage"] == "language_model":
            modalities = ("text", "vision") if multimodal else ("text",)
        else:
            modalities = ("vision",)
        layers.append(LayerSpec(unit, entry["stage"], modalities, tuple(entry["linears"]), entry["block"]))
    return layers


def token_modality(
    config, input_ids: torch.Tensor | None = None, mm_token_type_ids: torch.Tensor | None = None, *, shape=None
) -> torch.Tensor | None:
    """Modality tag per language-model token: 1 = vision, 0 = text (int64).

    Uses ``mm_token_type_ids`` when given (nonzero = image or video), otherwise
    ``input_ids`` compared with the placeholder ids of ``config`` (``image_token_id``,
    the older name ``image_token_index``, ``video_token_id``). A config without image
    tokens makes every token text; ``shape`` is then enough. Returns ``None`` when the
    modality cannot be known (a multimodal model called with embeddings only).
    """
    if mm_token_type_ids is not None:
        tags = (mm_token_type_ids != 0).to(torch.int64)
        if input_ids is not None and tags.shape[-1] != input_ids.shape[-1]:
            # During cached generation the type ids cover the whole sequence so far.
            tags = tags[..., -input_ids.shape[-1] :]
        return tags
    ids = [getattr(config, key, None) for key in ("image_token_id", "image_token_index", "video_token_id")]
    ids = [int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    if not ids:
        if input_ids is not None:
            return torch.zeros(input_ids.shape, dtype=torch.int64)
        return None if shape is None else torch.zeros(tuple(shape), dtype=torch.int64)
    if input_ids is None:
        return None
    return torch.isin(input_ids, torch.tensor(ids, dtype=input_ids.dtype)).to(torch.int64)


# -- routing ------------------------------------------------------------------------------


class ModalityRouter:
    """Gives every converted layer its timesteps for the tokens of the current call."""

    def __init__(self, layers: Sequence[LayerSpec], schedule: Schedule):
        self.layers = list(layers)
        self._stage = {spec.name: spec.stage for spec in self.layers}
        self.schedule = None
        self.modality: torch.Tensor | None = None
        self.set_schedule(schedule)

    def set_schedule(self, schedule: Schedule) -> None:
        if not isinstance(schedule, Schedule):
            raise TypeError(f"expected a Schedule, not {type(schedule).__name__}")
        schedule.check_layers(self.layers)
        self.schedule = schedule

    def timesteps(self, layer: str, tokens: torch.Size) -> int | torch.Tensor:
        """``T`` for the tokens (shape ``tokens``) entering a linear layer of ``layer``."""
        entry = self.schedule.timesteps[layer]
        if self._stage[layer] != "language_model":
            return entry["vision"]
        values = set(entry.values())
        if len(values) == 1:
            return values.pop()
        return torch.where(self.modality_of(layer, tokens) == VISION, entry["vision"], entry["text"])

    def modality_of(self, layer: str, tokens: torch.Size) -> torch.Tensor:
        """Modality tag (int64, shape ``tokens``) of each token entering a linear layer of ``layer``.

        Vision-encoder and projector tokens are all vision; language-model tokens carry the
        tags of the current call (``RuntimeError`` when the call gave none).
        """
        tokens = tuple(tokens)
        if self._stage[layer] != "language_model":
            return torch.full(tokens, int(VISION), dtype=torch.int64)
        if self.modality is None:
            raise RuntimeError(
                f"layer {layer!r} needs each token's modality, but none is known: call the converted "
                "top-level model with input_ids (and mm_token_type_ids where the model uses them)"
            )
        modality = self.modality
        if (
            len(tokens) == modality.dim()
            and tokens[:-1] == tuple(modality.shape[:-1])
            and 0 < tokens[-1] < modality.shape[-1]
        ):
            # The LM head may see only the last positions (transformers' logits_to_keep).
            modality = modality[..., -tokens[-1] :]
        if tuple(modality.shape) != tokens:
            raise RuntimeError(
                f"layer {layer!r} received tokens of shape {tokens}, but the modality map of this "
                f"call has shape {tuple(self.modality.shape)}"
            )
        return modality


class _Routed:
    """Mixin: take ``T`` from the router unless the caller passes ``timesteps``."""

    layer_name: str
    router: ModalityRouter

    def forward(self, x: torch.Tensor, timesteps=None) -> torch.Tensor:
        if timesteps is None:
            timesteps = self.router.timesteps(self.layer_name, x.shape[:-1])
        return super().forward(x, timesteps)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``W_int * s_w`` in the original dtype (read-only).

        Model code reads ``weight.dtype`` and ``weight.device`` of linear layers; this keeps
        that working. The forward pass never uses it.
        """
        w = self.weight_int.double() * self.weight_scale[:, None]
        if self.rotation is not None:
            w = w @ self.rotation.T
        if self.smooth is not None:
            w = w / self.smooth
        return w.to(self.float_dtype)

    def extra_repr(self) -> str:
        return f"layer={self.layer_name!r}, " + super().extra_repr()


class RoutedSpikeLinear(_Routed, SpikeLinear):
    """:class:`SpikeLinear` whose per-token ``T`` comes from the model's schedule."""


class RoutedFakeQuantLinear(_Routed, FakeQuantLinear):
    """:class:`FakeQuantLinear` whose per-token ``T`` comes from the model's schedule."""


class RoutedCountSpikeLinear(_Routed, CountSpikeLinear):
    """:class:`CountSpikeLinear` whose per-token ``T`` (count steps) comes from the schedule."""


KINDS = {"spike": RoutedSpikeLinear, "fake_quant": RoutedFakeQuantLinear, "count": RoutedCountSpikeLinear}
"""Conversion kinds: TC-LIF spikes, the fake-quant twin, signed count coding."""


class SpikePatchConv(nn.Module):
    """A non-overlapping convolution computed as a converted linear layer on patches.

    ``kernel_size == stride``, no padding, one group: the convolution is the linear map
    ``W.reshape(out, C * prod(kernel))`` applied to every flattened patch, so each patch is
    one token of the converted linear layer. Input ``(N, C, *spatial)``, output
    ``(N, out, *spatial // kernel)``, as the convolution; trailing pixels that do not fill a
    patch are dropped, as the convolution drops them.
    """

    def __init__(self, kernel_size: Sequence[int], in_channels: int, linear: nn.Module):
        super().__init__()
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.in_channels = in_channels
        self.linear = linear

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized convolution weight ``(out, C, *kernel)`` (read-only)."""
        return self.linear.weight.reshape(-1, self.in_channels, *self.kernel_size)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened patches of ``x``: ``(N, *grid, C * prod(kernel))``, one token each."""
        return patches_of(x, self.kernel_size, self.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(self.patches(x))
        d = len(self.kernel_size)
        return y.permute(0, d + 1, *range(1, d + 1))


def patches_of(x: torch.Tensor, kernel_size: Sequence[int], in_channels: int) -> torch.Tensor:
    """Non-overlapping patches of ``x`` ``(N, C, *spatial)``, flattened in the order of the
    convolution weight's ``(C, *kernel)``: ``(N, *spatial // kernel, C * prod(kernel))``;
    trailing pixels that do not fill a patch are dropped, as the convolution drops them."""
    kernel_size = tuple(int(k) for k in kernel_size)
    d = len(kernel_size)
    if x.dim() != d + 2 or x.shape[1] != in_channels:
        raise ValueError(f"expected input (N, {in_channels}, {d} spatial dims), not shape {tuple(x.shape)}")
    grid = [s // k for s, k in zip(x.shape[2:], kernel_size)]
    x = x[(slice(None), slice(None), *(slice(0, g * k) for g, k in zip(grid, kernel_size)))]
    split = [n for g, k in zip(grid, kernel_size) for n in (g, k)]
    x = x.reshape(x.shape[0], in_channels, *split)
    order = (0, *range(2, 2 + 2 * d, 2), 1, *range(3, 3 + 2 * d, 2))
    return x.permute(order).reshape(x.shape[0], *grid, in_channels * prod(kernel_size))


def _as_linear(conv: nn.Module) -> nn.Linear:
    weight = conv.weight.detach().reshape(conv.out_channels, -1)
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if conv.bias is not None:
            linear.bias.copy_(conv.bias.detach())
    return linear


# -- conversion ---------------------------------------------------------------------------


@dataclass
class Conversion:
    """What :func:`convert_model` did: the units, the router, the kind and weight bits."""

    layers: list[LayerSpec]
    router: ModalityRouter
    kind: str
    weight_bits: int
    converted: list[str] = field(default_factory=list)

    @property
    def schedule(self) -> Schedule:
        return self.router.schedule


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, child, module)


def convert_model(
    model: nn.Module,
    schedule: Schedule | None = None,
    *,
    kind: str = "spike",
    weight_bits: int = 8,
    transform: str = "none",
    alpha: float = 0.5,
    gptq: bool = False,
    calibration: Iterable[Mapping] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Convert every linear layer of ``model`` and install modality routing.

    Parameters
    ----------
    model:
        A ``transformers`` model (Qwen2-VL, InternVL, LLaVA, or a text-only transformer).
    schedule:
        Timesteps per (layer unit, modality); checked against the model's units. Default:
        :func:`uniform_schedule` at ``Tv/Tt = 3/4``.
    kind:
        ``"spike"`` (TC-LIF spikes through :func:`spike_linear`), ``"fake_quant"`` (same
        integers, dense product) or ``"count"`` (signed count coding; ``T`` are count steps).
    weight_bits:
        Per-output-channel weight bits (8 default, 4 supported).
    transform, alpha, gptq, calibration:
        The ANN quantizer unified in spike space (:mod:`.quantizers`): ``transform``
        ``"none"`` (default), ``"smoothquant"`` (migration strength ``alpha``) or
        ``"hadamard"``; ``gptq=True`` rounds the weights by GPTQ. SmoothQuant and GPTQ
        need ``calibration``: keyword-argument dicts for the float model's forward (e.g.
        ``collate(...)["inputs"]``).
    inplace:
        Convert ``model`` itself instead of a deep copy (for full-size models).

    Returns the converted model; :func:`conversion_of` gives its :class:`Conversion`, and
    :func:`set_schedule` changes its timesteps without converting again. Raises
    ``ValueError`` for an unknown ``kind`` or a schedule that does not fit the model, and
    ``TypeError`` for a model that is not an ``nn.Module``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    check_quantizer(transform, gptq, calibration)
    cls = KINDS[kind]
    stats = {}
    if transform == "smoothquant" or gptq:
        stats = input_statistics(model, calibration, gram=gptq)

    def make(linear, T, path):
        options = quantizer_options(linear, stats.get(path), transform=transform, alpha=alpha, gptq=gptq)
        return cls.from_linear(linear, timesteps=T, weight_bits=weight_bits, **options)

    return convert_layers(model, schedule, make, kind=kind, weight_bits=weight_bits, inplace=inplace)


def convert_layers(model: nn.Module, schedule: Schedule | None, make, *, kind: str, weight_bits: int,
                   inplace: bool = False) -> nn.Module:
    """:func:`convert_model` with the replacement of each linear layer given:
    ``make(linear, T, path)`` returns the module for ``linear`` at module path ``path``
    (``T``: the unit's first scheduled timesteps); the result gets ``layer_name``,
    ``router`` and ``float_dtype`` set and is routed like the built-in kinds."""
    layers = discover_layers(model)
    if schedule is None:
        schedule = uniform_schedule(layers)
    router = ModalityRouter(layers, schedule)
    if getattr(model, "spike_conversion", None) is not None:
        raise ValueError("model is already converted; convert the float model")
    if not inplace:
        model = copy.deepcopy(model)
    conversion = Conversion(layers, router, kind, weight_bits)
    for spec in layers:
        for path in spec.linears:
            module = model.get_submodule(path)
            linear = module if isinstance(module, nn.Linear) else _as_linear(module)
            first_T = next(iter(schedule.timesteps[spec.name].values()))
            new = make(linear, first_T, path)
            new.layer_name = spec.name
            new.router = router
            new.float_dtype = linear.weight.dtype
            if not isinstance(module, nn.Linear):
                new = SpikePatchConv(module.kernel_size, module.in_channels, new)
            _set_module(model, path, new)
            conversion.converted.append(path)
    model.spike_conversion = conversion
    config = getattr(model, "config", None)

    def set_tokens(_module, args, kwargs):
        input_ids = kwargs.get("input_ids")
        if input_ids is None and args and isinstance(args[0], torch.Tensor) and not args[0].is_floating_point():
            input_ids = args[0]
        embeds = kwargs.get("inputs_embeds")
        router.modality = token_modality(
            config,
            input_ids,
            kwargs.get("mm_token_type_ids"),
            shape=None if embeds is None else embeds.shape[:-1],
        )

    def clear_tokens(_module, _args, _kwargs, _output):
        router.modality = None

    model.register_forward_pre_hook(set_tokens, with_kwargs=True)
    model.register_forward_hook(clear_tokens, with_kwargs=True)
    return model


def conversion_of(model: nn.Module) -> Conversion:
    """The :class:`Conversion` of a converted model; ``ValueError`` if it is not converted."""
    conversion = getattr(model, "spike_conversion", None)
    if not isinstance(conversion, Conversion):
        raise ValueError(f"{type(model).__name__} has not been converted with convert_model")
    return conversion


def set_schedule(model: nn.Module, schedule: Schedule) -> None:
    """Change the timesteps of a converted model (validated against its layer units)."""
    conversion_of(model).router.set_schedule(schedule)
