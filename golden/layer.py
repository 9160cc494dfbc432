"""End-to-end integer reference of one spike-driven linear layer, as the hardware runs it.

``q`` (integer activations) -> TC-LIF spikes -> sparse accumulate -> + bias -> requantize
to the next layer's integers. With static activation scales every factor is a per-channel
constant, so the layer is fully described by integers: weights, bias, multiplier, shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_integer_tensor, check_timesteps
from .encoding import encode_tc_lif
from .quantize import quantize_weight_per_channel
from .requantize import quantize_multiplier, requantize
from .rounding import round_half_away
from .spike_linear import check_weight, spike_linear

__all__ = ["IntegerLayer", "LayerTrace", "run_integer_layer"]


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

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        in_scale: float,
        out_scale: float,
        out_bits: int,
        weight_bits: int = 8,
        multiplier_bits: int = 16,
    ) -> "IntegerLayer":
        """Fold a float layer and static input/output scales into integers.

        The weight is quantized per channel; the bias becomes ``round(b / (s_in * s_w))``;
        the rescale ``s_in * s_w[o] / s_out`` becomes a multiplier and shift.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected an nn.Linear, not {type(linear).__name__}")
        for name, value in (("in_scale", in_scale), ("out_scale", out_scale)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        wq = quantize_weight_per_channel(linear.weight.detach().double(), weight_bits)
        acc_scale = float(in_scale) * wq.scale.double()
        if linear.bias is None:
            bias = torch.zeros(linear.out_features, dtype=torch.int64)
        else:
            bias = round_half_away(linear.bias.detach().double() / acc_scale).to(torch.int64)
        mult, shift = quantize_multiplier(acc_scale / float(out_scale), multiplier_bits=multiplier_bits)
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
