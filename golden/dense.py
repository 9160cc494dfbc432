"""Golden model of the dense baselines' arithmetic (``hw.dense_core``, ``hw.fp``).

The INT8 baseline forms the same integer product as the spike core, so its golden model
is the integer layer itself (:func:`spikemllm.golden.layer.run_integer_layer`). The FP16
baseline is defined here, in the order the hardware adds:

* activations and weights are converted to FP16 (exact for the integer ranges the core
  accepts); subnormal FP16 inputs read as zero;
* each FP16 x FP16 product is computed exactly in FP32 (11-bit significands: at most 22
  product bits);
* the core takes ``D = dense_inputs`` inputs per cycle: the products of inputs
  ``bD .. bD+D-1`` (beat ``b``) are summed by a pairwise tree -- level ``l`` adds
  elements ``2k`` and ``2k+1`` of level ``l-1``; each output channel has two FP32
  accumulators (the hardware's addition takes two pipeline stages): accumulator 0 adds
  the sums of beats ``0, 2, 4, ...`` and accumulator 1 those of beats ``1, 3, 5, ...``,
  in order, each from zero; the result is ``acc0 + acc1``. Every addition is rounded to
  nearest, ties to even (IEEE 754 binary32, which torch's float32 addition on the CPU
  is);
* the final FP32 sum is truncated toward zero to an integer; the shared integer
  requantizer adds the bias and requantizes it like the integer cores' accumulators.

Vectorized over tokens and channels; the loop runs over beats because the order of FP
additions is part of the definition.
"""

from __future__ import annotations

import torch

from ._checks import check_integer_tensor
from .requantize import requantize

__all__ = ["fp16_flush", "fp16_products", "fp16_accumulators", "fp16_layer_outputs"]


def fp16_flush(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float16 with subnormals read as zero (what the hardware's FP16 inputs see)."""
    h = x.to(torch.float16)
    tiny = torch.finfo(torch.float16).tiny
    return torch.where(h.abs() < tiny, torch.zeros_like(h), h)


def fp16_products(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Exact FP32 products of FP16 values ``a`` and ``w`` (broadcast), subnormals as zero."""
    return fp16_flush(a).to(torch.float32) * fp16_flush(w).to(torch.float32)


def fp16_accumulators(x: torch.Tensor, weight: torch.Tensor, inputs: int = 1) -> torch.Tensor:
    """FP32 accumulators ``(tokens, out)`` of the FP16 core taking ``inputs`` inputs per
    cycle: ``sum_i x_i * W[:, i]``, each beat of ``inputs`` products summed by a pairwise
    tree, the even beats' sums added in order into one accumulator and the odd beats' into
    another, both from zero, then the two added; every addition rounded to nearest even.

    ``x``: ``(tokens, in)`` values (any dtype; converted to FP16), ``weight``: ``(out, in)``.
    Raises ``ValueError`` on shape mismatches or if ``inputs`` is not a power of two that
    divides ``in``.
    """
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x (tokens, in) and weight (out, in) must agree, not {tuple(x.shape)} and {tuple(weight.shape)}")
    if not isinstance(inputs, int) or inputs < 1 or inputs & (inputs - 1) or x.shape[1] % inputs:
        raise ValueError(f"inputs must be a power of two dividing in={x.shape[1]}, not {inputs!r}")
    acc = [torch.zeros(x.shape[0], weight.shape[0], dtype=torch.float32) for _ in range(2)]
    a = fp16_flush(x).to(torch.float32)
    w = fp16_flush(weight).to(torch.float32)
    for beat, b in enumerate(range(0, x.shape[1], inputs)):
        level = [a[:, i : i + 1] * w[:, i] for i in range(b, b + inputs)]  # exact FP32 products
        while len(level) > 1:
            level = [level[2 * k] + level[2 * k + 1] for k in range(len(level) // 2)]
        acc[beat % 2] = acc[beat % 2] + level[0]
    return acc[0] + acc[1]


def fp16_layer_outputs(q: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, multiplier: torch.Tensor,
                       shift: torch.Tensor, out_bits: int, inputs: int = 1) -> torch.Tensor:
    """Requantized outputs of the FP16 core taking ``inputs`` inputs per cycle for integer
    activations ``q`` ``(tokens, in)`` and an integer layer (``weight``, ``bias``,
    ``multiplier``, ``shift``)."""
    q = check_integer_tensor(q, name="q")
    acc = fp16_accumulators(q, check_integer_tensor(weight, name="weight"), inputs)
    return requantize(acc.to(torch.int64), check_integer_tensor(bias, name="bias"), multiplier, shift, out_bits)
