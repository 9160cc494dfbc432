"""Symmetric integer quantizers that feed the spike encoders (SPEC section 2).

Activations are quantized to ``b`` bits as ``q = clamp(round(x / s), -Q, Q)`` with
``Q = 2^(b-1) - 1``; the integer ``q`` is what the spike encoder turns into a spike train.
Weights are quantized per output channel. Every function returns the integers *and* the
scales, so that the integer path can be checked bit for bit and the float path recovered.

Any quantizer that produces these integers can feed the encoders. Besides round-to-nearest
this module provides SmoothQuant (per-input-channel smoothing folded into the weights) and
a Hadamard rotation; both only change what is quantized, never the integer format.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._checks import check_bits
from .rounding import round_half_away

__all__ = [
    "Quantized",
    "qmax",
    "quantize_per_token",
    "calibrate_static_scale",
    "calibrate_mse_scale",
    "quantize_static",
    "quantize_weight_per_channel",
    "smoothquant_factors",
    "hadamard_matrix",
    "block_hadamard",
    "gptq_weight_per_channel",
]

ACT_BITS_RANGE = (2, 16)
WEIGHT_BITS_RANGE = (2, 8)


class Quantized(NamedTuple):
    """Integers and the scale that maps them back to floats: ``x ~= q * scale``."""

    q: torch.Tensor
    """int64 tensor of quantized values in ``[-Q, Q]``."""
    scale: torch.Tensor
    """float tensor broadcastable against ``q``."""


def qmax(bits: int) -> int:
    """Largest magnitude of a symmetric ``bits``-bit integer: ``Q = 2^(bits-1) - 1``."""
    check_bits(bits, low=1, high=32)
    return (1 << (bits - 1)) - 1


def _check_float(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, not dtype {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension, not shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains a non-finite value")


def _quantize(x: torch.Tensor, scale: torch.Tensor, Q: int) -> torch.Tensor:
    # Division in float64 so that the integer chosen does not depend on the input dtype's
    # rounding of x / s; the result is exact for every float32 input.
    q = round_half_away(x.double() / scale.double())
    return q.clamp(-Q, Q).to(torch.int64)


def quantize_per_token(x: torch.Tensor, bits: int) -> Quantized:
    """Dynamic symmetric quantization with one scale per token (last dimension = features).

    ``scale = max|x_token| / Q``; a token that is all zeros gets scale 1 (its integers are
    zero either way). Returns ``q`` of ``x``'s shape and ``scale`` of shape ``(..., 1)``.

    Raises ``ValueError`` for ``bits`` outside [2, 16] or non-finite input, ``TypeError``
    for a non-floating tensor.
    """
    check_bits(bits, low=ACT_BITS_RANGE[0], high=ACT_BITS_RANGE[1])
    _check_float(x, "x")
    Q = qmax(bits)
    absmax = x.detach().abs().amax(dim=-1, keepdim=True).double()
    scale = torch.where(absmax > 0, absmax / Q, torch.ones_like(absmax))
    return Quantized(_quantize(x, scale, Q), scale.to(x.dtype))


def calibrate_static_scale(samples: torch.Tensor, bits: int, *, percentile: float = 100.0) -> torch.Tensor:
    """Per-tensor static scale from calibration activations.

    ``scale = P(|samples|) / Q`` where ``P`` is the given percentile (100 = absolute max).
    Returns a 0-dimensional float64 tensor. Raises ``ValueError`` for a percentile outside
    (0, 100], an all-zero calibration set, or bad ``bits``.
    """
    check_bits(bits, low=ACT_BITS_RANGE[0], high=ACT_BITS_RANGE[1])
    _check_float(samples, "samples")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], not {percentile!r}")
    mags = samples.detach().abs().flatten().double()
    level = mags.max() if percentile == 100.0 else torch.quantile(mags, percentile / 100.0)
    if not level > 0:
        raise ValueError("calibration samples are all zero at the requested percentile; no scale can be formed")
    return level / qmax(bits)


def calibrate_mse_scale(samples: torch.Tensor, bits: int, *, candidates: int = 64) -> torch.Tensor:
    """Per-tensor static scale whose clipping minimizes the quantization error on calibration data.

    Tries clipping levels ``absmax * k / candidates`` for ``k = 1 .. candidates`` and keeps
    the one with the smallest mean squared error of :func:`quantize_static` (clipping
    included) over ``samples``; at few bits a clipped range beats the absolute maximum,
    which spends the levels on rare outliers. Returns a 0-dimensional float64 tensor.
    Raises ``ValueError`` for an all-zero calibration set, bad ``bits`` or ``candidates``.
    """
    check_bits(bits, low=ACT_BITS_RANGE[0], high=ACT_BITS_RANGE[1])
    _check_float(samples, "samples")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be a positive int, not {candidates!r}")
    mags = samples.detach().abs().flatten().double()
    top = mags.max()
    if not top > 0:
        raise ValueError("calibration samples are all zero; no scale can be formed")
    Q = qmax(bits)
    scales = top * torch.arange(1, candidates + 1, dtype=torch.float64) / (candidates * Q)
    errors = []
    for chunk in scales.split(max(1, (1 << 20) // mags.numel())):  # about 1M values at a time
        s = chunk[:, None]
        # round_half_away of a non-negative value is floor(x + 0.5); in place to save memory traffic
        err = (mags[None, :] / s).add_(0.5).floor_().clamp_(max=Q).mul_(s).sub_(mags[None, :])
        errors.append(err.pow_(2).mean(dim=1))
    return scales[int(torch.cat(errors).argmin())]


def quantize_static(x: torch.Tensor, scale: torch.Tensor | float, bits: int) -> Quantized:
    """Quantize with a fixed per-tensor scale from calibration.

    Values beyond ``Q * scale`` saturate to ``+/-Q``: with a static scale that clamp is part
    of the quantizer's definition (SPEC section 2), not a silent repair.
    """
    check_bits(bits, low=ACT_BITS_RANGE[0], high=ACT_BITS_RANGE[1])
    _check_float(x, "x")
    scale = torch.as_tensor(scale, dtype=torch.float64)
    if scale.dim() != 0 or not bool(scale > 0) or not math.isfinite(float(scale)):
        raise ValueError(f"a static scale must be one positive finite number, not {scale!r}")
    return Quantized(_quantize(x, scale, qmax(bits)), scale.to(x.dtype))


def quantize_weight_per_channel(weight: torch.Tensor, bits: int = 8) -> Quantized:
    """Symmetric per-output-channel weight quantization of an ``(out, in)`` matrix.

    ``scale[o] = max|W[o, :]| / Q``; an all-zero row gets scale 1. Returns ``q`` of shape
    ``(out, in)`` in ``[-Q, Q]`` and ``scale`` of shape ``(out,)``. Weight bits must be in
    [2, 8] (8 is the default, 4 the common low-precision choice).
    """
    check_bits(bits, name="weight bits", low=WEIGHT_BITS_RANGE[0], high=WEIGHT_BITS_RANGE[1])
    _check_float(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D (out, in) matrix, not shape {tuple(weight.shape)}")
    Q = qmax(bits)
    absmax = weight.detach().abs().amax(dim=1, keepdim=True).double()
    scale = torch.where(absmax > 0, absmax / Q, torch.ones_like(absmax))
    return Quantized(_quantize(weight, scale, Q), scale.squeeze(1).to(weight.dtype))


def smoothquant_factors(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant per-input-channel factors ``s_j = max|X_j|^alpha / max|W_:,j|^(1-alpha)``.

    The layer then computes ``(X / s) @ (W * s)^T``, mathematically the same product with
    activation outliers moved into the weights; ``X / s`` is what gets quantized and
    ``W * s`` is what gets quantized per channel. In a transformer the ``1/s`` folds into
    the preceding normalization's gain. Channels where either maximum is zero get ``s = 1``.

    Raises ``ValueError`` for ``alpha`` outside [0, 1] or a shape mismatch.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha!r}")
    _check_float(act_absmax, "act_absmax")
    _check_float(weight, "weight")
    if weight.dim() != 2 or act_absmax.shape != (weight.shape[1],):
        raise ValueError(
            f"act_absmax must have shape (in,) = ({weight.shape[-1]},) for weight of shape "
            f"{tuple(weight.shape)}, not {tuple(act_absmax.shape)}"
        )
    a = act_absmax.double().abs()
    w = weight.detach().double().abs().amax(dim=0)
    ok = (a > 0) & (w > 0)
    s = torch.where(ok, a.clamp(min=1e-30) ** alpha / w.clamp(min=1e-30) ** (1.0 - alpha), torch.ones_like(a))
    return s.to(weight.dtype)


def hadamard_matrix(n: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal Hadamard matrix ``H`` of size ``n`` (a power of two), ``H @ H.T = I``.

    Rotating both operands, ``(X H)(W H)^T = X W^T``, spreads outliers over all channels
    before quantization (the rotation-based family of quantizers).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n & (n - 1):
        raise ValueError(f"Hadamard size must be a positive power of two, not {n!r}")
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return (h / math.sqrt(n)).to(dtype)


def gptq_weight_per_channel(weight: torch.Tensor, gram: torch.Tensor, bits: int = 8, *, damp: float = 0.01) -> Quantized:
    """Per-output-channel weight quantization with GPTQ's error compensation.

    The grid is that of :func:`quantize_weight_per_channel` (``scale[o] = max|W[o, :]| / Q``),
    so the integers fit the same hardware; only the rounding differs. Input columns are
    quantized one after another, and each column's rounding error is spread over the columns
    not yet quantized so as to minimize the layer's output error ``||X W^T - X Wq^T||^2`` on
    calibration inputs, using the inverse of ``H = X^T X`` (method of Frantar et al., "GPTQ:
    Accurate Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023:
    Cholesky factor of ``H^-1``, damping ``damp * mean(diag H)``). Inputs that were always
    zero in calibration (``H[j, j] = 0``) keep nearest rounding: no output depends on them.

    ``gram``: ``X^T X`` of shape ``(in, in)`` (any positive multiple of it). Cost
    ``O(in^2 * out)``. Raises ``ValueError`` for shapes that do not match or a gram matrix
    that is not symmetric.
    """
    check_bits(bits, name="weight bits", low=WEIGHT_BITS_RANGE[0], high=WEIGHT_BITS_RANGE[1])
    _check_float(weight, "weight")
    _check_float(gram, "gram")
    if weight.dim() != 2 or gram.shape != (weight.shape[1], weight.shape[1]):
        raise ValueError(f"gram must have shape (in, in) = ({weight.shape[-1]}, {weight.shape[-1]}) for weight "
                         f"of shape {tuple(weight.shape)}, not {tuple(gram.shape)}")
    if not 0 < damp < 1:
        raise ValueError(f"damp must be in (0, 1), not {damp!r}")
    H = gram.detach().double().clone()
    if not torch.allclose(H, H.T, rtol=1e-9, atol=1e-12 * float(H.abs().max().clamp(min=1e-300))):
        raise ValueError("gram must be symmetric (X^T X)")
    nearest = quantize_weight_per_channel(weight, bits)
    Q, scale = qmax(bits), nearest.scale.double()
    live = torch.diagonal(H) > 0
    if not bool(live.any()):
        return nearest
    H = H[live][:, live]
    H += damp * float(torch.diagonal(H).mean()) * torch.eye(H.shape[0], dtype=torch.float64)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    W = weight.detach().double()[:, live].clone()
    q = torch.empty(W.shape, dtype=torch.int64)
    for j in range(W.shape[1]):
        q[:, j] = round_half_away(W[:, j] / scale).clamp(-Q, Q).to(torch.int64)
        error = (W[:, j] - q[:, j].double() * scale) / U[j, j]
        W[:, j + 1 :] -= error[:, None] * U[j, j + 1 :][None, :]
    out = nearest.q.clone()
    out[:, live] = q
    return Quantized(out, nearest.scale)


def block_hadamard(n: int) -> torch.Tensor:
    """Orthonormal block-diagonal Hadamard matrix of size ``n`` (float64): blocks of the
    largest power of two dividing ``n`` (96 = 3 blocks of 32), so widths that are not powers
    of two rotate too."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"block Hadamard size must be a positive integer, not {n!r}")
    block = n & -n
    return torch.block_diag(*[hadamard_matrix(block, dtype=torch.float64)] * (n // block))
