"""Requantization exactly as the hardware performs it: integer multiply, rounding shift,
saturation.

A float rescale factor ``scale`` (typically ``s_in * s_w[o] / s_out``) becomes an integer
``multiplier`` with ``multiplier_bits`` significant bits and a right ``shift``::

    scale ~= multiplier * 2^-shift,   2^(m-1) <= multiplier < 2^m,   0 <= shift <= max_shift

Rounding the multiplier to nearest gives a relative error of at most ``2^-m``. The
requantized value of an accumulator ``y = acc + bias`` is then

    r = clamp(round_half_away(y * multiplier / 2^shift), -Q, Q)

computed in int64 with a rounding right shift, and before saturation it obeys the bound
``|r - y * scale| <= 1/2 + |y * scale| * 2^-m`` (:func:`requantize_error_bound`).
"""

from __future__ import annotations

import math

import torch

from spikemllm.config import MAX_SHIFT_LIMIT

from ._checks import check_bits, check_integer_tensor, check_range
from .quantize import qmax
from .rounding import shift_round_half_away

__all__ = ["quantize_multiplier", "requantize", "requantize_error_bound", "MAX_SHIFT"]

MAX_SHIFT = MAX_SHIFT_LIMIT
"""Largest right shift the requantizer accepts (the product must stay inside int64)."""


def quantize_multiplier(
    scale: torch.Tensor | float, *, multiplier_bits: int = 16, max_shift: int = MAX_SHIFT
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn positive float scales into ``(multiplier, shift)`` int64 tensors of the same shape.

    Raises ``ValueError`` naming the scale if it is not positive and finite, or if it is too
    large (needs a negative shift) or too small (needs a shift above ``max_shift``).
    """
    check_bits(multiplier_bits, name="multiplier_bits", low=2, high=31)
    if not 0 <= max_shift <= MAX_SHIFT:
        raise ValueError(f"max_shift must be in [0, {MAX_SHIFT}], not {max_shift!r}")
    s = torch.as_tensor(scale, dtype=torch.float64)
    bad = ~torch.isfinite(s) | (s <= 0)
    if bool(bad.any()):
        raise ValueError(f"scale must be positive and finite; found {s[bad].flatten()[0].item()!r}")
    mantissa, exponent = torch.frexp(s)  # s = mantissa * 2^exponent, mantissa in [0.5, 1)
    mult = torch.floor(torch.ldexp(mantissa, torch.tensor(multiplier_bits)) + 0.5).to(torch.int64)
    shift = (multiplier_bits - exponent).to(torch.int64)
    carry = mult == (1 << multiplier_bits)  # rounding reached 2^m: renormalize
    mult = torch.where(carry, torch.full_like(mult, 1 << (multiplier_bits - 1)), mult)
    shift = torch.where(carry, shift - 1, shift)
    for name, mask in (("too large", shift < 0), ("too small", shift > max_shift)):
        if bool(mask.any()):
            raise ValueError(
                f"scale {s[mask].flatten()[0].item()!r} is {name} for a {multiplier_bits}-bit "
                f"multiplier with shifts in [0, {max_shift}]"
            )
    return mult, shift


def requantize(
    acc: torch.Tensor,
    bias: torch.Tensor | None,
    multiplier: torch.Tensor,
    shift: torch.Tensor,
    out_bits: int,
) -> torch.Tensor:
    """Requantize int64 accumulators ``(..., out)`` to ``out_bits``-bit integers.

    ``bias`` (integer, shape ``(out,)`` or ``None``) is added first; ``multiplier`` and
    ``shift`` are per output channel (shape ``(out,)``) or scalars. Rounding is half away
    from zero; the result saturates to ``[-Q, Q]``, ``Q = 2^(out_bits-1) - 1``.

    Raises ``ValueError`` for non-integer inputs, shape mismatches, multipliers or shifts
    out of range, and for inputs whose product could overflow int64.
    """
    check_bits(out_bits, name="out_bits", low=2, high=32)
    acc = check_integer_tensor(acc, name="acc")
    if acc.dim() < 1:
        raise ValueError("acc must have a trailing output-channel dimension")
    channels = acc.shape[-1]

    def per_channel(t, name):
        t = check_integer_tensor(torch.as_tensor(t, device=acc.device), name=name)
        if t.dim() not in (0, 1) or (t.dim() == 1 and t.shape[0] != channels):
            raise ValueError(f"{name} must be a scalar or have shape ({channels},), not {tuple(t.shape)}")
        return t

    multiplier = per_channel(multiplier, "multiplier")
    shift = per_channel(shift, "shift")
    check_range(multiplier, 0, (1 << 31) - 1, name="multiplier")
    check_range(shift, 0, MAX_SHIFT, name="shift")
    y = acc
    if bias is not None:
        y = y + per_channel(bias, "bias")
    peak = int(y.abs().max()) if y.numel() else 0
    if peak and peak * int(multiplier.max()) >= 1 << 63:
        raise ValueError(f"|acc + bias| up to {peak} times multiplier {int(multiplier.max())} overflows int64")
    r = shift_round_half_away(y * multiplier, shift)
    Q = qmax(out_bits)
    return r.clamp(-Q, Q)


def requantize_error_bound(value: torch.Tensor | float, multiplier_bits: int) -> torch.Tensor:
    """Largest ``|requantize - value|`` before saturation, for the exact value ``y * scale``.

    ``1/2`` from rounding to an integer plus ``|value| * 2^-multiplier_bits`` from rounding
    the multiplier.
    """
    v = torch.as_tensor(value, dtype=torch.float64)
    return 0.5 + v.abs() * math.ldexp(1.0, -multiplier_bits)
