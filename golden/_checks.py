"""Input validation shared by the golden functions.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the offending
value, so that a bad tensor or parameter is reported where it enters, never clipped.
"""

from __future__ import annotations

import torch

__all__ = [
    "check_bits",
    "check_timesteps",
    "check_integer_tensor",
    "check_range",
    "first_offender",
]


def check_bits(bits: int, *, name: str = "bits", low: int = 2, high: int = 16) -> int:
    """Return ``bits`` if it is an ``int`` in ``[low, high]``; raise otherwise."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name} must be an int, not {bits!r}")
    if not low <= bits <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {bits!r}")
    return bits


def check_timesteps(T: int, *, name: str = "T", high: int = 15) -> int:
    """Return ``T`` if it is an ``int`` in ``[1, high]``; raise otherwise.

    The upper limit keeps every threshold ``2^(T-1)`` and every encodable value
    ``2^T - 1`` well inside int64 arithmetic and the hardware's realistic range.
    """
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"{name} must be an int, not {T!r}")
    if not 1 <= T <= high:
        raise ValueError(f"{name} must be in [1, {high}], not {T!r}")
    return T


def first_offender(t: torch.Tensor, bad: torch.Tensor) -> str:
    """Describe the first element of ``t`` where the boolean mask ``bad`` is set."""
    idx = tuple(int(i) for i in torch.nonzero(bad)[0])
    value = t[idx].item()
    count = int(bad.sum())
    return f"{value!r} at index {idx} ({count} offending element{'s' if count != 1 else ''})"


def check_integer_tensor(t: torch.Tensor, *, name: str, to_int64: bool = True) -> torch.Tensor:
    """Return ``t`` as int64 (or unchanged, with ``to_int64=False``) if it holds integers.

    Integer dtypes are accepted as they are. A floating tensor is accepted only if every
    element is a finite whole number; the first non-integer element is named in the error.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold integers, not dtype {t.dtype}")
    if t.is_floating_point():
        bad = ~torch.isfinite(t) | (t != torch.round(t))
        if bool(bad.any()):
            raise ValueError(f"{name} must hold integers; found {first_offender(t, bad)}")
    return t.to(torch.int64) if to_int64 else t


def check_range(t: torch.Tensor, low: int, high: int, *, name: str, hint: str = "") -> None:
    """Raise ``ValueError`` naming the first element of ``t`` outside ``[low, high]``."""
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t)
    if lo >= low and hi <= high:
        return
    bad = (t < low) | (t > high)
    if bool(bad.any()):
        extra = f"; {hint}" if hint else ""
        raise ValueError(f"{name} must lie in [{low}, {high}]; found {first_offender(t, bad)}{extra}")
