"""The FP16 baseline's arithmetic (hw.fp) against torch's IEEE float16/float32 on random
values: exact FP16 x FP16 products, FP32 additions rounded to nearest even (alignment,
carries, cancellation, ties), conversions from and to integers."""

import struct

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikemllm.golden.dense import fp16_accumulators, fp16_products
from spikemllm.hw import fp


class FPUnit(wiring.Component):
    a: In(16)
    b: In(16)
    acc: In(32)
    i: In(signed(12))
    product: Out(32)
    total: Out(32)
    as_int: Out(signed(40))
    i16: Out(16)
    i32: Out(32)

    def elaborate(self, platform):
        m = Module()
        product = fp.fp16_mul_fp32(m, self.a, self.b)
        total = fp.fp32_add(m, self.acc, product)
        m.d.comb += [
            self.product.eq(product),
            self.total.eq(total),
            self.as_int.eq(fp.fp32_to_int(m, self.acc, 40)),
            self.i16.eq(fp.int_to_fp16(m, self.i)),
            self.i32.eq(fp.int_to_fp32(m, self.i)),
        ]
        return m


def bits32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits16(x: torch.Tensor) -> list[int]:
    return [int(v) & 0xFFFF for v in x.view(torch.int16).tolist()]


def run(vectors):
    dut = FPUnit()
    out = []

    async def bench(ctx):
        for a, b, acc, i in vectors:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.acc, acc)
            ctx.set(dut.i, i)
            out.append(tuple(ctx.get(s) for s in (dut.product, dut.total, dut.as_int, dut.i16, dut.i32)))
            await ctx.delay(1e-9)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return out


def random_fp16(g, n, emin=1, emax=30):
    sign = torch.randint(0, 2, (n,), generator=g)
    exp = torch.randint(emin, emax + 1, (n,), generator=g)
    man = torch.randint(0, 1024, (n,), generator=g)
    return ((sign << 15) | (exp << 10) | man).to(torch.int16).view(torch.float16)


@pytest.mark.parametrize("seed", [0, 1])
def test_mac_step_matches_ieee(seed):
    g = torch.Generator().manual_seed(seed)
    n = 400
    a, b = random_fp16(g, n), random_fp16(g, n, 8, 22)
    prod = fp16_products(a, b)
    # accumulators near and far from the product: alignment shifts of 0..40, exact
    # cancellation, carries, zero
    scale = torch.pow(2.0, torch.randint(-30, 31, (n,), generator=g).double())
    acc = (fp16_products(random_fp16(g, n), random_fp16(g, n, 8, 22)).double() * scale).float()
    acc[: n // 8] = -prod[: n // 8]
    acc[n // 8: n // 4] = 0.0
    acc[n // 4: n // 4 + 20] = prod[n // 4: n // 4 + 20] * 3  # same exponent region: carries
    ints = torch.randint(-2048, 2048, (n,), generator=g)
    vectors = list(zip(bits16(a), bits16(b), [bits32(float(x)) for x in acc], ints.tolist()))
    got = run(vectors)
    want_total = (acc + prod).tolist()  # float32 + float32: rounded to nearest even
    for k, (p, t, as_int, i16, i32) in enumerate(got):
        assert p == bits32(float(prod[k])), f"product {k}"
        expect = want_total[k]
        assert t == bits32(expect) or (expect == 0 and t & 0x7FFFFFFF == 0), f"sum {k}: {acc[k]} + {prod[k]}"
        if abs(float(acc[k])) < 2**39:
            assert as_int == int(acc[k].double().trunc()), f"to_int {k}: {acc[k]}"
        assert i16 == bits16(torch.tensor([float(ints[k])], dtype=torch.float16))[0]
        assert i32 == bits32(float(ints[k]))


def test_ties_round_to_even():
    # 2^24 + 1 is a tie between 2^24 and 2^24 + 2: even wins; 2^24 + 3 rounds up to + 4.
    one = bits16(torch.tensor([1.0], dtype=torch.float16))[0]
    big = bits32(float(2**24))
    three = bits32(float(2**24 + 2))
    (_, t1, *_), (_, t2, *_) = run([(one, one, big, 0), (one, one, three, 0)])
    assert t1 == bits32(float(2**24)) and t2 == bits32(float(2**24 + 4))


def test_accumulation_order_is_the_golden_order():
    # The golden model adds even inputs into one accumulator and odd ones into another, in
    # order from zero, then the two; other orders round differently.
    x = torch.tensor([[4096.0] + [1.0] * 5])
    products = [2.0**24] + [1.0] * 5  # x * x; exact sum 2^24 + 5
    acc = fp16_accumulators(x, x.clone())
    # independently, in numpy float32: acc0 = 2^24, + 1, + 1 (ties stay even); acc1 = 3;
    # 2^24 + 3 is a tie that rounds to the even 2^24 + 4. In order, 2^24 absorbs every + 1.
    even = odd = np.float32(0)
    for n, v in enumerate(products):
        if n % 2 == 0:
            even = np.float32(even + np.float32(v))
        else:
            odd = np.float32(odd + np.float32(v))
    sequential = np.float32(0)
    for v in products:
        sequential = np.float32(sequential + np.float32(v))
    assert float(acc[0, 0]) == float(even + odd) == 2.0**24 + 4
    assert float(sequential) == 2.0**24


def test_golden_rejects_bad_shapes():
    with pytest.raises(ValueError, match="must agree"):
        fp16_accumulators(torch.zeros(2, 3), torch.zeros(4, 5))
