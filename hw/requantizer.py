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

    A final vector is captured into an accumulator buffer. Its parameters: by default the
    set loaded last on ``params`` (which may be written at any time; the set loaded when a
    final vector is taken applies to it), kept in a register; with ``held_params``, the
    set on ``params`` while the vector's groups enter the first stage, which the source
    holds from the capture until the next final vector is taken (the core's shell reads
    it from its tile memories at the captured tile's address), so the requantizer keeps
    no parameter registers at all. The ``G = pes / R`` groups of ``R`` channels then go through five stages, one group per
    cycle: add the bias (the group's multipliers and shifts travel with the sums);
    multiply; add the rounding bias; shift; saturate into the output register. The
    rounding works on the signed product ``z``, so no stage negates: with ``S > 0``,
    ``sign(z) * ((|z| + 2^(S-1)) >> S)`` is ``(z + 2^(S-1)) >> S`` for ``z >= 0`` and
    ``(z + 2^(S-1) - 1) >> S`` for ``z < 0`` (arithmetic shifts: the ceiling of
    ``(z - 2^(S-1)) / 2^S``); with ``S = 0`` it is ``z``. The saturation then reads the
    bits above the output's: all copies of the sign for a value in range, and a negative
    one must also be above ``-2^(out_bits-1)``. When the last group is written the output vector is valid. The next
    final vector is taken in the cycle the current one's last group enters the first
    stage, so the requantizer takes a final vector every ``G`` cycles while the previous
    one's groups drain. All stages move together while the output register is free or
    being taken, and every register loads only with a valid group (clock enables).

    Ports: ``i`` (in, accumulator vectors), ``params`` (in, biases, multipliers and
    shifts), ``o`` (out, output vectors).

    Latency: ``G + 5`` cycles from a final vector's handshake to its output vector.
    Throughput: one final vector per ``G`` cycles. Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.requantizer_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    def __init__(self, *, config: AcceleratorConfig, held_params: bool = False):
        self._held_params = bool(held_params)
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

        # Parameters of the captured vector: held by the source, or the set loaded last
        # (pending) copied at the capture.
        if self._held_params:
            active = self.params.p
        else:
            active = Signal(requant_params_layout(c))
            pending = Signal(requant_params_layout(c))
            with m.If(self.params.valid):
                m.d.sync += pending.eq(self.params.p)
        m.d.comb += self.params.ready.eq(1)

        # Capture: a final vector and its parameters.
        buffer = Signal(data.ArrayLayout(signed(c.acc_width), P))
        busy = Signal()
        group = Signal(range(max(2, G)))
        go = Signal()  # every stage moves: the output register is free or being taken
        finishing = Signal()
        m.d.comb += [
            go.eq(~self.o.valid | self.o.ready),
            finishing.eq(busy & (group == G - 1) & go),
            self.i.ready.eq(~self.i.p.last | ~busy | finishing),
        ]
        capture = self.i.valid & self.i.ready & self.i.p.last
        with m.If(capture):
            m.d.sync += buffer.eq(self.i.p.acc)
            if not self._held_params:
                m.d.sync += active.eq(pending)

        def stage(name, width_of):
            """Per-multiplier registers of one stage, with the group number, the final-group
            flag and the shifts travelling along."""
            return ([Signal(width_of, name=f"{name}_{r}") for r in range(R)],
                    [Signal(c.shift_bits, name=f"{name}_shift_{r}") for r in range(R)],
                    Signal(name=f"{name}_valid"), Signal(name=f"{name}_final"),
                    Signal(range(max(2, G)), name=f"{name}_group"))

        # Stage Y: one group's bias add; its multipliers and shifts travel with the sums.
        y, y_shift, y_valid, y_final, y_group = stage("y", signed(c.acc_width))
        y_mult = [Signal(c.multiplier_bits, name=f"y_mult_{r}") for r in range(R)]
        with m.If(go):
            m.d.sync += y_valid.eq(busy)
            with m.If(busy):
                m.d.sync += [y_group.eq(group), y_final.eq(group == G - 1)]
                for r in range(R):
                    channels = [g * R + r for g in range(G)]
                    pick = lambda field: Array(field[ch] for ch in channels)[group]  # noqa: E731
                    # acc_width holds every accumulator plus its bias (AcceleratorConfig.acc_bound).
                    m.d.sync += [y[r].eq(pick(buffer) + pick(active.bias)), y_mult[r].eq(pick(active.multiplier)),
                                 y_shift[r].eq(pick(active.shift))]
                m.d.sync += group.eq(Mux(group == G - 1, 0, group + 1))
                with m.If(group == G - 1):
                    m.d.sync += busy.eq(0)
        with m.If(capture):
            m.d.sync += busy.eq(1)

        # Stage P: the multiply.
        product, p_shift, p_valid, p_final, p_group = stage("product", signed(width))
        # Stage H: the product plus its rounding bias.
        rounding, h_shift, h_valid, h_final, h_group = stage("rounding", signed(width + 1))
        # The output register.
        out_valid = Signal()
        result = [Signal(signed(c.out_bits), name=f"result_{p}") for p in range(P)]
        m.d.comb += self.o.valid.eq(out_valid)
        for p in range(P):
            m.d.comb += self.o.p.values[p].eq(result[p])

        Q = c.out_max
        with m.If(go):
            m.d.sync += [p_valid.eq(y_valid), h_valid.eq(p_valid)]
        with m.If(go & y_valid):
            m.d.sync += [p_group.eq(y_group), p_final.eq(y_final)]
            for r in range(R):
                m.d.sync += [product[r].eq(y[r] * y_mult[r]), p_shift[r].eq(y_shift[r])]
        with m.If(go & p_valid):
            m.d.sync += [h_group.eq(p_group), h_final.eq(p_final)]
            for r in range(R):
                # 2^(S-1), less one for a negative product; 0 for S = 0 (decoded from S, no adder).
                below = ~(Const(-1, signed(width + 1)) << p_shift[r])[:width + 1]  # 2^S - 1
                half = (Const(1, width + 1) << p_shift[r]) >> 1
                bias = Signal(unsigned(width), name=f"rounding_bias_{r}")
                m.d.comb += bias.eq(Mux(product[r] < 0, below >> 1, half))
                m.d.sync += [rounding[r].eq(product[r] + bias), h_shift[r].eq(p_shift[r])]
        # Stage S: the shift. At least one bit above the output's, so that a product
        # narrower than the output is sign-extended before the saturation reads those bits.
        shifted, _s_shift, s_valid, s_final, s_group = stage("shifted", signed(max(width, c.out_bits) + 1))
        with m.If(go):
            m.d.sync += s_valid.eq(h_valid)
        with m.If(go & h_valid):
            m.d.sync += [s_group.eq(h_group), s_final.eq(h_final)]
            for r in range(R):
                m.d.sync += shifted[r].eq(rounding[r] >> h_shift[r])
        # Output: saturate into the output register.
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(go & s_valid):
            with m.If(s_final):
                m.d.sync += out_valid.eq(1)
            for r in range(R):
                value = Signal(signed(c.out_bits), name=f"value_{r}")
                sign = shifted[r][-1]
                high = shifted[r][c.out_bits - 1:]  # the output's sign bit and the bits above it
                low = shifted[r][:c.out_bits - 1]
                fits = Mux(sign, high.all() & low.any(), ~high.any())  # -Q <= shifted <= Q
                m.d.comb += value.eq(Mux(fits, shifted[r][:c.out_bits], Mux(sign, -Q, Q)))
                with m.Switch(s_group):
                    for g in range(G):
                        with m.Case(g):
                            m.d.sync += result[g * R + r].eq(value)
        return m
