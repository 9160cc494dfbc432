"""Requantizer: per-channel bias, fixed-point multiply, rounding right shift, saturation; ``R``
multipliers shared over the channels."""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import requantizer_latency

from .block import Block
from .signatures import AccumulatorStream, OutputStream, RequantParamsStream, requant_params_layout

__all__ = ["Requantizer"]


class Requantizer(Block):
    """Adds the biases to final accumulators and maps them to ``out_bits``-bit integers,
    with ``R = requantizers`` multipliers shared over the ``P = pes`` channels.

    Per output channel ``p`` with bias ``b_p``, multiplier ``M_p`` and shift ``S_p``,
    ``y_p = acc_p + b_p`` and::

        r_p = clamp(sign(y_p * M_p) * ((|y_p * M_p| + 2^(S_p-1)) >> S_p), -Q, Q)

    i.e. the product rounded half away from zero and saturated to ``Q = 2^(out_bits-1)-1``,
    exactly ``golden.requantize(acc, bias, M, S, out_bits)``. Accumulator vectors that are
    not final (``last = 0``, the PE array's per-step partial sums) are taken and dropped in
    the cycle they arrive, so the PE array's output connects here directly.

    A final vector is captured into an accumulator buffer together with its parameters:
    with ``pending_params`` (the default) the set loaded last (``params`` may be written at
    any time; the set loaded when a final vector is taken applies to it); without, the set
    on ``params`` in the cycle the vector is taken (the core's shell holds the next tile's
    parameters there, read from its tile memories, and no pending set is kept). The ``G = pes / R`` groups of ``R`` channels then go through
    two stages, one group per cycle: add the bias and multiply (the group's shifts travel
    with its products), then round, shift and saturate into the output register. When the
    last group is written the output vector is valid. The next final vector is taken in
    the cycle the current one's last group is multiplied, so the requantizer takes a
    final vector every ``G`` cycles while the previous one's output drains. Every register
    updates only when its stage advances (clock enables).

    Ports: ``i`` (in, accumulator vectors), ``params`` (in, biases, multipliers and
    shifts), ``o`` (out, output vectors).

    Latency: ``G + 2`` cycles from a final vector's handshake to its output vector.
    Throughput: one final vector per ``G`` cycles. Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.requantizer_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    def __init__(self, *, config: AcceleratorConfig, pending_params: bool = True):
        self._pending_params = bool(pending_params)
        super().__init__({
            "i": In(AccumulatorStream(config)),
            "params": In(RequantParamsStream(config)),
            "o": Out(OutputStream(config)),
        }, config=config)

    @property
    def latency(self) -> int:
        return requantizer_latency(self.config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P, R, G = c.pes, c.requantizers, c.requant_cycles
        width = c.product_width

        # Parameters: the set being loaded (pending) and the set of the captured vector.
        active = Signal(requant_params_layout(c))
        if self._pending_params:
            pending = Signal(requant_params_layout(c))
            with m.If(self.params.valid):
                m.d.sync += pending.eq(self.params.p)
        else:
            pending = self.params.p
        m.d.comb += self.params.ready.eq(1)

        # Capture: a final vector and the pending parameters.
        buffer = Signal(data.ArrayLayout(signed(c.acc_width), P))
        busy = Signal()
        group = Signal(range(max(2, G)))
        a_ok = Signal()
        finishing = Signal()
        m.d.comb += finishing.eq(busy & (group == G - 1) & a_ok)
        m.d.comb += self.i.ready.eq(~self.i.p.last | ~busy | finishing)
        capture = self.i.valid & self.i.ready & self.i.p.last
        with m.If(capture):
            m.d.sync += [buffer.eq(self.i.p.acc), active.eq(pending)]

        # Stage A: one group's bias add and multiply; its shifts travel with the products.
        a_valid = Signal()
        a_final = Signal()  # the group is the vector's last
        a_group = Signal(range(max(2, G)))
        product = [Signal(signed(width), name=f"product_{r}") for r in range(R)]
        a_shift = [Signal(c.shift_bits, name=f"a_shift_{r}") for r in range(R)]

        # Stage B: round, shift and saturate into the output register.
        out_valid = Signal()
        result = [Signal(signed(c.out_bits), name=f"result_{p}") for p in range(P)]
        b_ok = Signal()
        m.d.comb += [
            b_ok.eq(~out_valid | self.o.ready),
            a_ok.eq(~a_valid | b_ok),
            self.o.valid.eq(out_valid),
        ]
        for p in range(P):
            m.d.comb += self.o.p.values[p].eq(result[p])

        with m.If(a_ok):
            m.d.sync += a_valid.eq(busy)
            with m.If(busy):
                m.d.sync += [a_group.eq(group), a_final.eq(group == G - 1)]
                for r in range(R):
                    channels = [g * R + r for g in range(G)]
                    pick = lambda field: Array(field[ch] for ch in channels)[group]  # noqa: E731
                    # acc_width holds every accumulator plus its bias (AcceleratorConfig.acc_bound).
                    y = Signal(signed(c.acc_width), name=f"y_{r}")
                    m.d.comb += y.eq(pick(buffer) + pick(active.bias))
                    m.d.sync += [product[r].eq(y * pick(active.multiplier)), a_shift[r].eq(pick(active.shift))]
                m.d.sync += group.eq(Mux(group == G - 1, 0, group + 1))
                with m.If(group == G - 1):
                    m.d.sync += busy.eq(0)
        with m.If(capture):
            m.d.sync += busy.eq(1)

        Q = c.out_max
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(b_ok & a_valid):
            with m.If(a_final):
                m.d.sync += out_valid.eq(1)
            for r in range(R):
                magnitude = Signal(unsigned(width), name=f"magnitude_{r}")
                half = Signal(unsigned(width + 1), name=f"half_{r}")
                rounded = Signal(unsigned(width + 1), name=f"rounded_{r}")
                saturated = Signal(unsigned(c.out_bits - 1), name=f"saturated_{r}")
                value = Signal(signed(c.out_bits), name=f"value_{r}")
                m.d.comb += [
                    magnitude.eq(abs(product[r])),
                    # 2^(S-1) for S > 0 and 0 for S = 0: the rounding bias of a right shift by S.
                    half.eq((Const(1, width + 1) << a_shift[r]) >> 1),
                    rounded.eq((magnitude + half) >> a_shift[r]),
                    saturated.eq(Mux(rounded > Q, Q, rounded)),
                    value.eq(Mux(product[r] < 0, -saturated, saturated)),
                ]
                with m.Switch(a_group):
                    for g in range(G):
                        with m.Case(g):
                            m.d.sync += result[g * R + r].eq(value)
        return m
