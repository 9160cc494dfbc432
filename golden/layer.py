"""End-to-end integer reference of one spike-driven linear layer, as the hardware runs it.

``q`` (integer activations) -> TC-LIF spikes -> sparse accumulate -> + bias -> requantize
to the next layer's integers. With static activation scales every factor is a per-channel
constant, so the layer is fully described by integers: weights, bias, multiplier, shift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._checks import check_integer_tensor, check_timesteps
from .encoding import encode_tc_lif
from .quantize import quantize_weight_per_channel
from .requantize import MAX_SHIFT, quantize_multiplier, requantize
from .rounding import round_half_away
from .spike_linear import check_weight, spike_linear

__all__ = ["IntegerLayer", "LayerTrace", "run_integer_layer", "LAYER_FILE_FORMAT"]

LAYER_FILE_FORMAT = "spikemllm-integer-layer/1"
"""The ``format`` entry of a layer file (:meth:`IntegerLayer.save`)."""

_VECTORS = ("bias", "multiplier", "shift")


def _integers(value, where: str, depth: int) -> list:
    """``value`` checked to be a list (``depth`` 1) or a list of equal-length lists (2) of integers."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list, not {value!r:.60}")
    if depth == 2:
        width = len(value[0]) if isinstance(value[0], list) else None
        for n, row in enumerate(value):
            if not isinstance(row, list) or len(row) != width or not width:
                raise ValueError(f"{where} row {n} must be a list of {width or 'one or more'} integers, not {row!r:.60}")
            _integers(row, f"{where} row {n}", 1)
        return value
    for n, v in enumerate(value):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{where} entry {n} is {v!r}; integers only")
    return value


@dataclass(frozen=True)
class IntegerLayer:
    """A linear layer in the hardware's integer form.

    ``out = requantize(sum_i q_i * weight[o, i] + bias[o], multiplier[o], shift[o])``.
    """

    weight: torch.Tensor
    """int64 ``(out, in)``"""
    bias: torch.Tensor
    """int64 ``(out,)``, in accumulator units (``s_in * s_w[o]``)"""
    multiplier: torch.Tensor
    """int64 ``(out,)``"""
    shift: torch.Tensor
    """int64 ``(out,)``"""
    out_bits: int
    weight_bits: int = 8

    def __post_init__(self):
        weight = check_weight(self.weight, self.weight_bits)
        out = weight.shape[0]
        for name in ("bias", "multiplier", "shift"):
            t = check_integer_tensor(getattr(self, name), name=name)
            if t.shape != (out,):
                raise ValueError(f"{name} must have shape ({out},), not {tuple(t.shape)}")

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def to_dict(self) -> dict:
        """The layer as plain JSON data (the layer file's content)."""
        return {"format": LAYER_FILE_FORMAT, "out_bits": self.out_bits, "weight_bits": self.weight_bits,
                "weight": self.weight.tolist(), **{name: getattr(self, name).tolist() for name in _VECTORS}}

    @classmethod
    def from_dict(cls, data, *, source: str = "layer") -> "IntegerLayer":
        """A layer from :meth:`to_dict`'s data; ``ValueError`` prefixed with ``source``
        names a missing or unknown entry, a value that is not an integer, a ragged or
        mis-shaped tensor and a weight beyond ``weight_bits``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a layer is a JSON object, not {type(data).__name__}")
        if data.get("format") != LAYER_FILE_FORMAT:
            raise ValueError(f"{source}: format is {data.get('format')!r}, expected {LAYER_FILE_FORMAT!r}")
        fields = {"format", "out_bits", "weight_bits", "weight", *_VECTORS}
        missing, unknown = sorted(fields - set(data)), sorted(set(data) - fields)
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown entries {unknown}"] if unknown else [])
        if problems:
            raise ValueError(f"{source}: " + "; ".join(problems))
        for name in ("out_bits", "weight_bits"):
            if not isinstance(data[name], int) or isinstance(data[name], bool):
                raise ValueError(f"{source}: {name} is {data[name]!r}; an integer is needed")
        try:
            tensors = {"weight": torch.tensor(_integers(data["weight"], "weight", 2), dtype=torch.int64)}
            tensors.update({n: torch.tensor(_integers(data[n], n, 1), dtype=torch.int64) for n in _VECTORS})
            return cls(**tensors, out_bits=data["out_bits"], weight_bits=data["weight_bits"])
        except (ValueError, TypeError, RuntimeError) as exc:  # torch: an integer beyond int64
            raise ValueError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the layer as a JSON layer file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "IntegerLayer":
        """Read a layer file (:meth:`save`); ``ValueError`` naming the file and what is wrong
        for a malformed or truncated one (:meth:`from_dict`)."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        in_scale: float,
        out_scale: float | torch.Tensor,
        out_bits: int,
        weight_bits: int = 8,
        multiplier_bits: int = 16,
        max_shift: int = MAX_SHIFT,
    ) -> "IntegerLayer":
        """Fold a float layer and static input/output scales into integers.

        The weight is quantized per channel; the bias becomes ``round(b / (s_in * s_w))``;
        the rescale ``s_in * s_w[o] / s_out`` becomes a multiplier and shift (at most
        ``max_shift``). ``out_scale`` is one number or one per output channel (the
        requantizer's multiplier is per channel, so per-channel output scales cost nothing).
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected an nn.Linear, not {type(linear).__name__}")
        out_scale = torch.as_tensor(out_scale, dtype=torch.float64)
        if out_scale.dim() not in (0, 1) or (out_scale.dim() == 1 and out_scale.shape != (linear.out_features,)):
            raise ValueError(f"out_scale must be one number or have shape ({linear.out_features},), "
                             f"not {tuple(out_scale.shape)}")
        for name, value in (("in_scale", torch.as_tensor(float(in_scale))), ("out_scale", out_scale)):
            if not bool((value > 0).all() and torch.isfinite(value).all()):
                raise ValueError(f"{name} must be positive and finite, not {value.tolist()!r}")
        wq = quantize_weight_per_channel(linear.weight.detach().double(), weight_bits)
        acc_scale = float(in_scale) * wq.scale.double()
        if linear.bias is None:
            bias = torch.zeros(linear.out_features, dtype=torch.int64)
        else:
            bias = round_half_away(linear.bias.detach().double() / acc_scale).to(torch.int64)
        mult, shift = quantize_multiplier(acc_scale / out_scale, multiplier_bits=multiplier_bits, max_shift=max_shift)
        return cls(wq.q, bias, mult, shift, out_bits=out_bits, weight_bits=weight_bits)


@dataclass(frozen=True)
class LayerTrace:
    """Everything the hardware produces for one layer call, for bit-exact comparison."""

    spikes: torch.Tensor
    """int8 ``(T, tokens, in)``"""
    partials: torch.Tensor
    """int64 ``(T, tokens, out)``: accumulator after each step (before bias)"""
    acc: torch.Tensor
    """int64 ``(tokens, out)``"""
    out: torch.Tensor
    """int64 ``(tokens, out)``: requantized outputs"""


def run_integer_layer(layer: IntegerLayer, q: torch.Tensor, T: int) -> LayerTrace:
    """Run integer activations ``q`` of shape ``(tokens, in)`` through ``layer`` with ``T`` steps.

    Raises ``ValueError`` for a feature-count mismatch or values that ``T`` steps cannot carry.
    """
    check_timesteps(T)
    q = check_integer_tensor(q, name="q")
    if q.dim() != 2 or q.shape[1] != layer.in_features:
        raise ValueError(f"q must have shape (tokens, {layer.in_features}), not {tuple(q.shape)}")
    spikes = encode_tc_lif(q, T)
    acc, partials = spike_linear(spikes, layer.weight, return_partials=True)
    out = requantize(acc, layer.bias, layer.multiplier, layer.shift, layer.out_bits)
    return LayerTrace(spikes, partials, acc, out)
