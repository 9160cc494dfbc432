"""Requantizer: per-channel fixed-point multiply, rounding right shift, saturation."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import REQUANTIZER_LATENCY

from .block import Block
from .signatures import AccumulatorStream, OutputStream, RequantParamsStream

__all__ = ["Requantizer"]


class Requantizer(Block):
    """Adds the biases to final accumulators and maps them to ``out_bits``-bit integers.

    Per output channel ``p`` with bias ``b_p``, multiplier ``M_p`` and shift ``S_p``,
    ``y_p = acc_p + b_p`` and::

        r_p = clamp(sign(y_p * M_p) * ((|y_p * M_p| + 2^(S_p-1)) >> S_p), -Q, Q)

    i.e. the product rounded half away from zero and saturated to ``Q = 2^(out_bits-1)-1``,
    exactly ``golden.requantize(acc, bias, M, S, out_bits)`` with ``y = acc + bias``.
    Accumulator vectors that are not final (``last = 0``, the PE array's per-step partial
    sums) are taken and dropped, so the PE array's output connects here directly.

    Ports: ``i`` (in, accumulator vectors), ``params`` (in, biases, multipliers and shifts),
    ``o`` (out, output vectors). ``params`` is taken only while no vector is in flight and
    then takes priority over ``i``.

    Latency: 2 cycles (add the bias and multiply; round, shift and saturate). Throughput: one accumulator
    vector per cycle. Cycle model: :func:`spikemllm.golden.timing.cycle_model.requantizer_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = REQUANTIZER_LATENCY

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(AccumulatorStream(config)),
            "params": In(RequantParamsStream(config)),
            "o": Out(OutputStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P = c.pes
        width = c.product_width

        multiplier = [Signal(c.multiplier_bits, name=f"multiplier_{p}") for p in range(P)]
        shift = [Signal(c.shift_bits, name=f"shift_{p}") for p in range(P)]
        bias = [Signal(signed(c.bias_bits), name=f"bias_{p}") for p in range(P)]

        a_valid = Signal()
        product = [Signal(signed(width), name=f"product_{p}") for p in range(P)]
        b_valid = Signal()
        result = [Signal(signed(c.out_bits), name=f"result_{p}") for p in range(P)]

        b_free = ~b_valid | self.o.ready
        a_free = Signal()
        idle = Signal()
        loading = Signal()
        m.d.comb += [
            a_free.eq(~a_valid | b_free),
            idle.eq(~a_valid & ~b_valid),
            loading.eq(idle & self.params.valid),
            self.params.ready.eq(idle),
            self.i.ready.eq(a_free & ~loading),
            self.o.valid.eq(b_valid),
        ]
        for p in range(P):
            m.d.comb += self.o.p.values[p].eq(result[p])

        with m.If(self.params.valid & self.params.ready):
            for p in range(P):
                m.d.sync += [
                    bias[p].eq(self.params.p.bias[p]),
                    multiplier[p].eq(self.params.p.multiplier[p]),
                    shift[p].eq(self.params.p.shift[p]),
                ]

        accept = self.i.valid & self.i.ready
        with m.If(a_free):
            m.d.sync += a_valid.eq(accept & self.i.p.last)
            for p in range(P):
                # acc_width holds every accumulator plus its bias (AcceleratorConfig.acc_bound).
                y = Signal(signed(c.acc_width), name=f"y_{p}")
                m.d.comb += y.eq(self.i.p.acc[p] + bias[p])
                m.d.sync += product[p].eq(y * multiplier[p])

        Q = c.out_max
        with m.If(b_free):
            m.d.sync += b_valid.eq(a_valid)
            for p in range(P):
                magnitude = Signal(unsigned(width), name=f"magnitude_{p}")
                half = Signal(unsigned(width + 1), name=f"half_{p}")
                rounded = Signal(unsigned(width + 1), name=f"rounded_{p}")
                saturated = Signal(unsigned(c.out_bits - 1), name=f"saturated_{p}")
                m.d.comb += [
                    magnitude.eq(abs(product[p])),
                    # 2^(S-1) for S > 0 and 0 for S = 0: the rounding bias of a right shift by S.
                    half.eq((Const(1, width + 1) << shift[p]) >> 1),
                    rounded.eq((magnitude + half) >> shift[p]),
                    saturated.eq(Mux(rounded > Q, Q, rounded)),
                ]
                m.d.sync += result[p].eq(Mux(product[p] < 0, -saturated, saturated))
        return m
