"""Rounding used everywhere integers are formed: round half away from zero.

Torch's ``torch.round`` rounds half to even; the hardware rounds half away from zero
(``2.5 -> 3``, ``-2.5 -> -3``), which is also what a sign-magnitude adder with a
half-LSB bias does. The golden model uses these functions and never ``torch.round``.
"""

from __future__ import annotations

import torch

__all__ = ["round_half_away", "shift_round_half_away"]


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round a floating tensor to the nearest integer, ties away from zero.

    Returns a tensor of the same floating dtype holding whole numbers.
    """
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def shift_round_half_away(x: torch.Tensor, shift: torch.Tensor | int) -> torch.Tensor:
    """Integer ``x / 2^shift`` rounded half away from zero, exactly, in int64.

    ``shift`` may be an int or an integer tensor broadcastable against ``x``; a shift of
    zero returns ``x`` unchanged. This is the arithmetic of a rounding right shift on a
    sign-magnitude value: ``sign(x) * ((|x| + 2^(shift-1)) >> shift)``.
    """
    x = x.to(torch.int64)
    shift = torch.as_tensor(shift, dtype=torch.int64, device=x.device)
    half = torch.where(shift > 0, torch.ones_like(shift) << (shift - 1).clamp(min=0), torch.zeros_like(shift))
    magnitude = (torch.abs(x) + half) >> shift
    return torch.sign(x) * magnitude
