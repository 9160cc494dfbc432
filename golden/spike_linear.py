"""The spike-driven linear layer (SPEC section 4): sparse accumulate, step by step.

For TC-LIF spikes the accumulator is built most significant step first::

    acc <- 2 * acc + sum_i s[t, i] * W[o, i]        for t = 0 .. T-1

which equals ``sum_i q_i * W[o, i]`` exactly. Each non-zero spike is one add or subtract
of a weight per output channel; no multiplier is involved. For count-coded spikes every
step has the same weight, so the update is ``acc <- acc + sum_i s[t, i] * W[o, i]``.

The per-step sums over ternary spikes are evaluated here as one dense product of all steps
at once, and the recurrence runs in a dtype chosen so that every partial sum and every
accumulator value is an exactly representable integer: float32 while
``(2^T - 1) * max_o sum_i |W[o, i]| < 2^24``, float64 below ``2^53``, int64 beyond.
The result is therefore bit-identical to adding and subtracting the selected weights one
event at a time, which is what the hardware does; tests check that against an int64
reference.
"""

from __future__ import annotations

from typing import Literal

import torch

from spikemllm.config import CODINGS, Coding

from ._checks import check_bits, check_integer_tensor, check_range
from .quantize import qmax

__all__ = ["spike_linear", "integer_matmul", "exact_matmul", "check_weight"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def check_weight(weight: torch.Tensor, weight_bits: int | None = None) -> torch.Tensor:
    """Validate an integer ``(out, in)`` weight matrix (and its range, if bits are given)."""
    weight = check_integer_tensor(weight, name="weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D (out, in) matrix, not shape {tuple(weight.shape)}")
    if weight_bits is not None:
        check_bits(weight_bits, name="weight_bits", low=2, high=16)
        Q = qmax(weight_bits)
        check_range(weight, -Q, Q, name="weight", hint=f"{weight_bits}-bit symmetric weights")
    return weight


def _exact_dtype(bound: int) -> torch.dtype:
    """Fastest dtype in which every integer of magnitude up to ``bound`` is exact.

    float32 products are used only at torch's "highest" float32 matmul precision: the
    "high" and "medium" settings allow TF32 or bfloat16 internally, whose short mantissas
    would round the sums.
    """
    if bound < _F32_EXACT and torch.get_float32_matmul_precision() == "highest":
        return torch.float32
    if bound < _F64_EXACT:
        return torch.float64
    return torch.int64


def _row_bound(weight: torch.Tensor) -> int:
    """Upper bound on ``sum_i |W[o, i]|`` over rows; exact only when the cheap bound is large."""
    if weight.numel() == 0:
        return 0
    lo, hi = torch.aminmax(weight)
    cheap = max(-int(lo), int(hi)) * weight.shape[1]
    return cheap if cheap < _F32_EXACT else int(weight.abs().sum(dim=1).max())


def exact_matmul(a: torch.Tensor, weight: torch.Tensor, bound: int) -> torch.Tensor:
    """``a @ weight.T`` for integer operands, exact, returned as int64.

    ``bound`` must be an upper bound on every ``|partial sum|``; it selects the fastest
    dtype in which the product cannot round.
    """
    dtype = _exact_dtype(bound)
    return (a.to(dtype) @ weight.to(dtype).T).to(torch.int64)


def integer_matmul(q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Dense integer product ``q @ weight.T`` (int64, exact): what ``spike_linear`` must equal."""
    q = check_integer_tensor(q, name="q")
    weight = check_weight(weight)
    if q.shape[-1] != weight.shape[1]:
        raise ValueError(f"q has {q.shape[-1]} input features but weight expects {weight.shape[1]}")
    bound = _row_bound(weight) * (int(q.abs().max()) if q.numel() else 0)
    return exact_matmul(q, weight, bound)


def spike_linear(
    spikes: torch.Tensor,
    weight: torch.Tensor,
    *,
    coding: Literal["tc_lif", "count"] = "tc_lif",
    weight_bits: int | None = None,
    return_partials: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Accumulate a spike train through an integer weight matrix.

    Parameters
    ----------
    spikes:
        Ternary spikes of shape ``(T, *tokens, in)`` (int8 from the encoders).
    weight:
        Integer weights of shape ``(out, in)``.
    coding:
        ``"tc_lif"`` doubles the accumulator at every step boundary (most significant step
        first); ``"count"`` gives every step the same weight.
    weight_bits:
        If given, weights are checked to lie in the symmetric ``weight_bits`` range.
    return_partials:
        Also return every step's accumulator, shape ``(T, *tokens, out)``: ``partials[t]``
        is the value after step ``t`` (the hardware's per-step partial sums), and
        ``partials[-1]`` is the result.

    Returns
    -------
    int64 accumulators of shape ``(*tokens, out)`` (and the partial sums if asked).

    Raises ``ValueError`` for non-ternary spikes, mismatched feature counts, a weight that
    is not 2-D or does not fit ``weight_bits``, or an unknown ``coding``.
    """
    if coding not in CODINGS:
        raise ValueError(f"coding must be 'tc_lif' or 'count', not {coding!r}")
    coding = Coding(coding)
    spikes = check_integer_tensor(spikes, name="spikes", to_int64=False)
    if spikes.dim() < 2:
        raise ValueError(f"spikes must have shape (T, *tokens, in), not {tuple(spikes.shape)}")
    check_range(spikes, -1, 1, name="spikes", hint="spikes are ternary")
    weight = check_weight(weight, weight_bits)
    if spikes.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"spikes have {spikes.shape[-1]} input features but weight of shape "
            f"{tuple(weight.shape)} expects {weight.shape[1]}"
        )
    T = spikes.shape[0]
    scale = 2 if coding.doubles else 1
    # Largest |accumulator| at any step: every step's sum is bounded by the row bound and
    # the step weights add up to 2^T - 1 (TC-LIF) or T (count coding).
    step_weight_total = coding.max_value(T)
    dtype = _exact_dtype(_row_bound(weight) * step_weight_total)
    if dtype == torch.int64:
        step_sums = spikes.to(torch.int64) @ weight.T
    else:
        step_sums = spikes.to(dtype) @ weight.to(dtype).T  # (T, *tokens, out)

    acc = torch.zeros(step_sums.shape[1:], dtype=dtype, device=step_sums.device)
    partials = torch.empty(step_sums.shape, dtype=torch.int64, device=step_sums.device) if return_partials else None
    for t in range(T):
        acc = scale * acc + step_sums[t]
        if partials is not None:
            partials[t] = acc.to(torch.int64)
    acc = acc.to(torch.int64)
    return (acc, partials) if return_partials else acc
