"""Sparse-accumulate PE array: spike events in, per-step accumulators of P output channels out."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import PE_ARRAY_LATENCY

from .block import Block
from .signatures import AccumulatorStream, EventStream, WeightWriteStream

__all__ = ["SparseAccumulatePEArray"]


class SparseAccumulatePEArray(Block):
    """``P = pes`` processing elements that add or subtract weights for every spike event.

    The weight memory (``max_fan_in`` rows, one row per input index holding that input's
    ``P`` weights) has one synchronous read port per event slot. Each event beat reads
    the rows of its ``E`` events; in the next cycle every PE adds ``+w`` or ``-w`` for
    each valid event to its accumulator. Multiplication never happens: a spike is an add
    or a subtract.

    Timesteps arrive most significant first, and a beat may hold the end of one step and
    the start of the next (``step_end``, with ``split`` events before the boundary). Each
    PE sums its terms before and after the split separately (one stage), then updates its
    accumulator with one adder (the next stage)::

        P   = acc + sum(before)                         the partial sum of the step
        acc <- (step_end ? (last ? 0 : 2 * P) : P) + sum(after)

    (count coding never doubles). So the doubling ``acc <- 2*acc + sum`` of SPEC section 4
    happens at the boundary itself, and a beat that ends a step emits ``P`` as one
    vector on ``o``: after step ``t`` it equals ``golden.spike_linear(...)``'s partial sum
    ``t`` (without bias: the requantizer adds it). After a tile's final step (``last``)
    the accumulators restart from the events after the split, the next tile's first ones.
    A beat with neither an event nor a step end leaves the accumulators alone (clock
    enable).

    Contract: a token has at most ``t_max`` steps and each input index fires at most once
    per step, so by the width chosen in :attr:`AcceleratorConfig.acc_width` nothing can
    overflow.

    Ports: ``i`` (in, event beats), ``o`` (out, accumulator vectors), ``weights`` (in,
    weight-memory row writes). Writes to ``weights`` are taken only between tokens (no
    event of an unfinished token taken) and then take priority over new events, so a
    token always sees one set of weights.

    Latency: 3 cycles from a step-ending beat to its accumulator vector (weight read;
    the beat's sums before and after the split; one add into the accumulators). Throughput: one
    event beat (``E`` events) per cycle; a beat with a step end waits while ``o`` holds a
    vector that is not being taken (the next tile accumulates meanwhile, until its own
    first step ends). Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.pe_array_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = PE_ARRAY_LATENCY

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(EventStream(config)),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P, E = c.pes, c.events_per_cycle

        row_layout = data.ArrayLayout(signed(c.weight_bits), P)
        m.submodules.weight_memory = memory = Memory(shape=row_layout, depth=c.max_fan_in, init=[])
        write = memory.write_port()
        reads = [memory.read_port() for _ in range(E)]

        # Stage 1: the beat whose weight rows are on the read ports' outputs; its sums.
        s1_valid = Signal()
        s1_event_valid = Signal(E)
        s1_negative = Signal(E)
        s1_before = Signal(E)  # slot k is before the beat's split
        s1_step_end = Signal()
        s1_last = Signal()
        s1_work = Signal()  # the beat moves the accumulators: an event or a step end
        # Stage 2: the beat's sums; the accumulators move.
        s2_valid = Signal()
        s2_step_end = Signal()
        s2_last = Signal()
        s2_work = Signal()
        s2_has_after = Signal()  # an event after the split: the next tile has begun

        acc = [Signal(signed(c.acc_width), name=f"acc_{p}") for p in range(P)]
        step = Signal(c.step_width)
        busy = Signal()  # a token has started and its final step has not been accumulated

        out_valid = Signal()
        out_acc = [Signal(signed(c.acc_width), name=f"out_acc_{p}") for p in range(P)]
        out_step = Signal(c.step_width)
        out_last = Signal()
        m.d.comb += [
            self.o.valid.eq(out_valid),
            self.o.p.step.eq(out_step),
            self.o.p.last.eq(out_last),
        ]
        for p in range(P):
            m.d.comb += self.o.p.acc[p].eq(out_acc[p])

        out_free = ~out_valid | self.o.ready
        s2_go = Signal()
        s1_go = Signal()
        advance = Signal()
        m.d.comb += [
            s2_go.eq(s2_valid & (~s2_step_end | out_free)),
            s1_go.eq(s1_valid & (~s2_valid | s2_go)),
            advance.eq(~s1_valid | s1_go),
        ]

        idle = Signal()
        loading = Signal()
        m.d.comb += [
            idle.eq(~busy & ~s1_valid & ~s2_valid),
            loading.eq(idle & self.weights.valid),
            self.weights.ready.eq(idle),
            self.i.ready.eq(advance & ~loading),
        ]
        accept = self.i.valid & self.i.ready

        m.d.comb += [
            write.addr.eq(self.weights.p.addr),
            write.data.eq(self.weights.p.row),
            write.en.eq(self.weights.valid & self.weights.ready),
        ]

        events = self.i.p.events
        for k, read in enumerate(reads):
            # A row is read only for a valid event of an accepted beat: one read per event.
            m.d.comb += [read.addr.eq(events[k].index), read.en.eq(accept & events[k].valid)]
        with m.If(advance):
            m.d.sync += s1_valid.eq(accept)
        with m.If(accept):  # the beat's flags load only with a beat (clock enable)
            m.d.sync += [
                s1_event_valid.eq(_gather(events, "valid", E)),
                s1_negative.eq(_gather(events, "negative", E)),
                s1_before.eq(Cat(self.i.p.split > k for k in range(E))),
                s1_step_end.eq(self.i.p.step_end),
                s1_last.eq(self.i.p.last),
                s1_work.eq(events[0].valid | self.i.p.step_end),
            ]
        with m.If(~s2_valid | s2_go):
            m.d.sync += s2_valid.eq(s1_go)
        with m.If(s1_go):
            m.d.sync += [s2_step_end.eq(s1_step_end), s2_last.eq(s1_last), s2_work.eq(s1_work),
                         s2_has_after.eq((s1_event_valid & ~s1_before).any())]

        # Stage 1 arithmetic: one add/subtract per valid event per PE, summed separately
        # before and after the step boundary, and the two combinations stage 2 adds:
        #   plain = before + after,  doubled = 2 * before + after.
        # Stage 2, with P = acc + before the step's partial sum:
        #   acc <- step end ? (last ? after : 2 * acc + doubled) : acc + plain
        # (count coding: acc + plain at a step end too), one adder after a multiplexer.
        tc_lif = c.coding.doubles
        sum_shape = signed(c.weight_bits + E.bit_length() + 2)
        for p in range(P):
            before, after = [], []
            for k, read in enumerate(reads):
                w = read.data[p]
                term = Signal(signed(c.weight_bits + 1), name=f"term_{p}_{k}")
                m.d.comb += term.eq(Mux(s1_event_valid[k], Mux(s1_negative[k], -w, w), 0))
                before.append(Mux(s1_before[k], term, 0))
                after.append(Mux(s1_before[k], 0, term))
            sum_before = _tree_sum(m, before, sum_shape, name=f"sum_before_{p}")
            sum_after = _tree_sum(m, after, sum_shape, name=f"sum_after_{p}")
            s2_before = Signal(sum_shape, name=f"s2_before_{p}")
            s2_after = Signal(sum_shape, name=f"s2_after_{p}")
            s2_plain = Signal(sum_shape, name=f"s2_plain_{p}")
            s2_doubled = Signal(sum_shape, name=f"s2_doubled_{p}")
            with m.If(s1_go):
                m.d.sync += [s2_before.eq(sum_before), s2_after.eq(sum_after), s2_plain.eq(sum_before + sum_after)]
                if tc_lif:
                    m.d.sync += s2_doubled.eq((sum_before << 1) + sum_after)
            if tc_lif:
                base = Mux(s2_step_end, Mux(s2_last, 0, acc[p] << 1), acc[p])
                term = Mux(s2_step_end, Mux(s2_last, s2_after, s2_doubled), s2_plain)
            else:
                base = Mux(s2_step_end & s2_last, 0, acc[p])
                term = Mux(s2_step_end & s2_last, s2_after, s2_plain)
            acc_next = Signal(signed(c.acc_width), name=f"acc_next_{p}")
            m.d.comb += acc_next.eq(base + term)
            with m.If(s2_go & s2_work):  # accumulators idle on a beat without work (clock enable)
                m.d.sync += acc[p].eq(acc_next)
            with m.If(s2_go & s2_step_end):
                m.d.sync += out_acc[p].eq(acc[p] + s2_before)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(s2_go & s2_step_end):
            m.d.sync += [out_valid.eq(1), out_step.eq(step), out_last.eq(s2_last)]
            with m.If(s2_last):
                m.d.sync += [step.eq(0), busy.eq(s2_has_after)]
            with m.Else():
                m.d.sync += step.eq(step + 1)
        with m.If(accept):
            m.d.sync += busy.eq(1)
        return m


def _tree_sum(m: Module, terms: list, shape, *, name: str) -> Signal:
    """Sum of ``terms`` in a balanced adder tree (depth ``log2(len)``)."""
    level = 0
    while len(terms) > 1:
        paired = []
        for n in range(0, len(terms) - 1, 2):
            s = Signal(shape, name=f"{name}_l{level}_{n // 2}")
            m.d.comb += s.eq(terms[n] + terms[n + 1])
            paired.append(s)
        if len(terms) % 2:
            paired.append(terms[-1])
        terms, level = paired, level + 1
    out = Signal(shape, name=name)
    m.d.comb += out.eq(terms[0])
    return out


def _gather(events, field: str, count: int):
    """Concatenate one single-bit field of every event slot, slot 0 first."""
    return Cat(getattr(events[k], field) for k in range(count))
