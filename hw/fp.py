"""Floating-point arithmetic of the dense FP16 baseline, as combinational Amaranth logic.

Formats are IEEE 754 binary16 (``s | e5 | m10``, bias 15) and binary32 (``s | e8 | m23``,
bias 127), carried as raw bit patterns. The operations and their exact rounding, which
:mod:`spikemllm.golden.dense` reproduces in torch:

* :func:`int_to_fp16` / :func:`int_to_fp32`: a signed integer to the nearest format value;
  exact for ``|x| <= 2048`` (FP16) and ``|x| < 2^24`` (FP32), the only ranges the cores use
  (the constructors check the widths).
* :func:`fp16_mul_fp32`: FP16 x FP16 -> FP32. The 11 x 11-bit significand product has at
  most 22 bits, so the product is exact in FP32: no rounding.
* :func:`fp32_add`: FP32 + FP32 -> FP32, round to nearest, ties to even, with guard,
  round and sticky bits; ``x + (-x) = +0``. It is :func:`fp32_add_align` (order the
  operands, align the smaller one) followed by :func:`fp32_add_finish` (add, normalize,
  round), so a pipeline can register :data:`FP32_ALIGNED` between the two.
* :func:`fp32_to_int`: FP32 -> integer, truncating toward zero (the accumulators of
  integer-valued inputs are integers, so nothing is truncated there).

Subnormal inputs are read as zero and a result below the smallest normal is flushed to
zero (neither occurs for products of normal FP16 values, whose sums are multiples of
``2^-48``, far above ``2^-126``). Infinities and NaN are not produced or handled: the
largest magnitude the cores can form (``65504^2 * max_fan_in``) is far below FP32's range.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data

__all__ = ["FP16_BIAS", "FP32_BIAS", "FP32_ALIGNED", "fp16_zero_low_bits", "int_to_fp16", "int_to_fp32", "fp16_mul_fp32", "fp32_add",
           "fp32_add_align", "fp32_add_finish", "fp32_to_int", "leading_zeros"]

FP32_ALIGNED = data.StructLayout({
    "sign": 1,        # sign of the larger operand
    "exponent": 8,    # exponent of the larger operand
    "big": 27,        # larger significand with three extra low bits
    "aligned": 27,    # smaller significand shifted to the larger's exponent, sticky bit at 0
    "subtract": 1,    # the signs differ
})
"""The state between the two halves of an FP32 addition."""

FP16_BIAS = 15
FP32_BIAS = 127


def leading_zeros(m: Module, value, name: str):
    """Number of leading zero bits of ``value`` (its width when zero), as a priority encoder."""
    width = len(value)
    count = Signal(range(width + 1), name=name)
    chain = Const(width, range(width + 1))
    for bit in range(width):  # lowest first, so the highest set bit wins
        chain = Mux(value[bit], width - 1 - bit, chain)
    m.d.comb += count.eq(chain)
    return count


def _int_to_float(m: Module, value, *, exp_bits: int, man_bits: int, bias: int, name: str):
    width = len(value)
    sign = Signal(name=f"{name}_sign")
    magnitude = Signal(width, name=f"{name}_mag")
    m.d.comb += [sign.eq(value[-1]), magnitude.eq(Mux(value[-1], -value, value))]
    lz = leading_zeros(m, magnitude, f"{name}_lz")
    top = width - 1  # bit position of the leading one when lz == 0
    normalized = Signal(width, name=f"{name}_norm")
    m.d.comb += normalized.eq(magnitude << lz)
    # Significand bits below the leading one; the constructors keep widths where this is exact.
    if width - 1 >= man_bits:
        fraction = normalized[width - 1 - man_bits: width - 1]
    else:
        fraction = Cat(Const(0, man_bits - (width - 1)), normalized[: width - 1])
    exponent = Signal(exp_bits, name=f"{name}_exp")
    m.d.comb += exponent.eq(bias + top - lz)
    result = Signal(1 + exp_bits + man_bits, name=name)
    m.d.comb += result.eq(Mux(magnitude == 0, 0, Cat(fraction, exponent, sign)))
    return result


def fp16_zero_low_bits(width: int) -> int:
    """Low bits that are 0 in the FP16 pattern of every signed ``width``-bit integer
    (:func:`int_to_fp16`): its significand has at most ``width - 1`` bits, so the last
    ``11 - width`` of the 10 fraction bits are 0."""
    return max(0, 11 - width)


def int_to_fp16(m: Module, value, name: str = "to_fp16"):
    """FP16 pattern of the signed integer ``value`` (exact while ``|value| <= 2048``)."""
    return _int_to_float(m, value, exp_bits=5, man_bits=10, bias=FP16_BIAS, name=name)


def int_to_fp32(m: Module, value, name: str = "to_fp32"):
    """FP32 pattern of the signed integer ``value`` (exact while ``|value| < 2^24``)."""
    return _int_to_float(m, value, exp_bits=8, man_bits=23, bias=FP32_BIAS, name=name)


def fp16_mul_fp32(m: Module, a, b, name: str = "mul"):
    """Exact FP32 pattern of the product of FP16 patterns ``a`` and ``b`` (subnormals read as 0)."""
    ea, eb = a[10:15], b[10:15]
    zero = (ea == 0) | (eb == 0)
    product = Signal(22, name=f"{name}_sig")
    m.d.comb += product.eq(Cat(a[:10], 1) * Cat(b[:10], 1))
    high = product[21]
    # value = product * 2^(ea + eb - 50); the leading one is bit 21 or bit 20.
    exponent = Signal(8, name=f"{name}_exp")
    m.d.comb += exponent.eq(ea + eb + Mux(high, 98, 97))
    fraction = Signal(23, name=f"{name}_frac")
    m.d.comb += fraction.eq(Mux(high, product[:21] << 2, product[:20] << 3))
    result = Signal(32, name=name)
    m.d.comb += result.eq(Mux(zero, 0, Cat(fraction, exponent, a[15] ^ b[15])))
    return result


def fp32_add_align(m: Module, a, b, name: str = "add"):
    """First half of :func:`fp32_add`: the operands ordered by magnitude and the smaller one
    aligned to the larger's exponent (an :data:`FP32_ALIGNED` value)."""
    def unpack(x, tag):
        e = x[23:31]
        sig = Signal(24, name=f"{name}_{tag}_sig")
        m.d.comb += sig.eq(Mux(e == 0, 0, Cat(x[:23], 1)))
        return x[31], e, sig

    sa, ea, ma = unpack(a, "a")
    sb, eb, mb = unpack(b, "b")
    # Order the operands by magnitude: big >= small.
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(Cat(mb, eb) > Cat(ma, ea))
    s_big, e_big, m_big = Mux(swap, sb, sa), Mux(swap, eb, ea), Mux(swap, mb, ma)
    s_small, e_small, m_small = Mux(swap, sa, sb), Mux(swap, ea, eb), Mux(swap, ma, mb)
    diff = Signal(8, name=f"{name}_d")
    m.d.comb += diff.eq(e_big - e_small)

    # Three extra bits below the significand: guard, round and a sticky bit that ORs in
    # everything shifted further out.
    small_ext = Signal(27, name=f"{name}_small_ext")
    m.d.comb += small_ext.eq(m_small << 3)
    lost = Signal(name=f"{name}_lost")
    shifted = Signal(27, name=f"{name}_shifted")
    m.d.comb += shifted.eq(Mux(diff >= 27, 0, small_ext >> diff[:5]))
    m.d.comb += lost.eq(Mux(diff >= 27, small_ext != 0, (shifted << diff[:5])[:27] != small_ext))
    parts = Signal(FP32_ALIGNED, name=f"{name}_aligned")
    m.d.comb += [
        parts.sign.eq(s_big),
        parts.exponent.eq(e_big),
        parts.big.eq(m_big << 3),
        parts.aligned.eq(shifted | lost),
        parts.subtract.eq(s_big ^ s_small),
    ]
    return parts


def fp32_add_finish(m: Module, parts, name: str = "add"):
    """Second half of :func:`fp32_add`: add or subtract the aligned significands of an
    :data:`FP32_ALIGNED` value, normalize and round to nearest even."""
    total = Signal(28, name=f"{name}_sum")
    m.d.comb += total.eq(Mux(parts.subtract, parts.big - parts.aligned, parts.big + parts.aligned))
    e_big = parts.exponent

    # Normalize so the leading one sits at bit 26.
    carry = total[27]
    lz = leading_zeros(m, total[:27], f"{name}_lz")
    norm = Signal(27, name=f"{name}_norm")
    exp_norm = Signal(signed(10), name=f"{name}_exp_norm")
    m.d.comb += [
        norm.eq(Mux(carry, total[1:28] | total[0], (total[:27] << lz)[:27])),
        exp_norm.eq(Mux(carry, e_big + 1, e_big - lz)),
    ]
    # Round to nearest, ties to even, on guard (bit 2) and round|sticky (bits 1, 0).
    keep = norm[3:27]
    round_up = norm[2] & (norm[1] | norm[0] | keep[0])
    rounded = Signal(25, name=f"{name}_rounded")
    m.d.comb += rounded.eq(keep + round_up)
    exp_final = Signal(signed(10), name=f"{name}_exp_final")
    fraction = Signal(23, name=f"{name}_frac")
    m.d.comb += [
        exp_final.eq(exp_norm + rounded[24]),
        fraction.eq(Mux(rounded[24], rounded[1:24], rounded[:23])),
    ]
    result = Signal(32, name=name)
    underflow = (total == 0) | (exp_final <= 0)
    m.d.comb += result.eq(Mux(underflow, 0, Cat(fraction, exp_final[:8], parts.sign)))
    return result


def fp32_add(m: Module, a, b, name: str = "add"):
    """FP32 pattern of ``a + b``, rounded to nearest even (subnormals read and flushed as 0)."""
    return fp32_add_finish(m, fp32_add_align(m, a, b, name), name)


def fp32_to_int(m: Module, a, width: int, name: str = "to_int"):
    """Signed ``width``-bit integer of the FP32 pattern ``a``, truncated toward zero.

    Values at or beyond ``2^(width-1)`` in magnitude are outside the cores' range (their
    accumulators are sized for the largest fan-in) and wrap.
    """
    e = a[23:31]
    sig = Cat(a[:23], 1)
    # value = sig * 2^(e - 150)
    magnitude = Signal(width, name=f"{name}_mag")
    left = Signal(signed(10), name=f"{name}_left")
    m.d.comb += left.eq(e - 150)
    up = Signal(unsigned(6), name=f"{name}_up")
    down = Signal(unsigned(6), name=f"{name}_down")
    m.d.comb += [
        up.eq(Mux(left > width, width, Mux(left > 0, left, 0))),
        down.eq(Mux(-left > 24, 24, Mux(left < 0, -left, 0))),
    ]
    m.d.comb += magnitude.eq(Mux(e < FP32_BIAS, 0, Mux(left >= 0, sig << up, sig >> down)))
    result = Signal(signed(width), name=name)
    m.d.comb += result.eq(Mux(a[31], -magnitude, magnitude))
    return result
