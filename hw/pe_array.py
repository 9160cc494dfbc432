"""Sparse-accumulate PE array: spike events in, per-step accumulators of P output channels out."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import PE_ARRAY_LATENCY

from .block import Block
from .signatures import (
    AccumulatorStream,
    BundleAccumulatorStream,
    EventStream,
    WeightWriteStream,
    event_beat_layout,
    event_layout,
)

__all__ = ["SparseAccumulatePEArray", "SpikePE", "pe_token_layout"]


class SparseAccumulatePEArray(Block):
    """``P = pes`` processing elements that add or subtract weights for every spike event.

    The weight memory (``max_fan_in`` rows, one row per input index holding that input's
    ``P`` weights) has one synchronous read port per event slot. Each event beat reads
    the rows of its ``E`` events; in the next cycle every PE adds ``+w`` or ``-w`` for
    each valid event to its accumulator. Multiplication never happens: a spike is an add
    or a subtract.

    Timesteps arrive most significant first, and a beat may hold the end of one step and
    the start of the next (``step_end``, with ``split`` events before the boundary). The
    accumulators follow::

        P   = acc + sum(before)                         the partial sum of the step
        acc <- (step_end ? (last ? 0 : 2 * P) : P) + sum(after)

    (count coding never doubles), computed as ``acc <- base + sum_k c_k * (+/-w_k)`` with
    ``base`` = ``acc``, ``2 * acc`` or 0 and a coefficient ``c_k`` in {0, 1, 2} per event
    (2 for an event before a doubling boundary, 0 for one before a tile's end), both
    known from the beat's flags when it is taken. A weight read from memory goes through
    one stage of logic and one adder before its register: a negative event adds ``~w``
    (``-w - 1``), and the ones that makes up, ``sum_k c_k * negative_k``, is the same for
    every PE, counted from the flags and added in the next stage::

        stage 1:  term = sum_k c_k * (negative_k ? ~w_k : w_k),  before = the same over the events before the split
        stage 2:  acc <- base + (term + ones),  out = acc + (before + ones_before)

    So the doubling ``acc <- 2*acc + sum`` of SPEC section 4
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
    the beat's sums; the add into the accumulators). Throughput: one
    event beat (``E`` events) per cycle; a beat with a step end waits while ``o`` holds a
    vector that is not being taken (the next tile accumulates meanwhile, until its own
    first step ends). ``i.ready`` comes from a register: a beat taken while the stages
    wait is held in a skid register and enters first when they move, so the stall does
    not reach back into the compactor within the cycle. Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.pe_array_cycles`.

    **Bundles.** With ``B = bundle > 1`` every PE has ``B`` accumulators, one per token of
    the bundle. An event's weight row is read once; token ``b`` adds it with the coefficient
    ``c_k`` if it fires at the event's index (``fire[b]``, sign ``negative[b]``), else 0. The
    stages, flags and timing are those above, per token; ``o`` carries ``acc[B][P]``.

    **Lane slices.** With ``S = slices > 1`` (:mod:`.slices`) ``i`` is ``S`` streams of
    ``E / S`` events, one per slice's compactor, and the weight memory is ``S`` banks of
    ``max_fan_in / S`` rows (``weight_bank_s``, the rows of slice ``s``'s lanes, written at
    the slice's row), bank ``s`` read by slice ``s``'s slots only. In each cycle the array
    takes every slice's beat that it can, except that beats ending a step are taken only
    all together (``i[s].ready`` falls for a slice's step end until every slice offers
    one); the taken beats make one beat, each slice's events in its slots, those before its
    own ``split`` on the step's side. ``i[s].ready`` then also depends on the other slices'
    ``valid`` and ``step_end``, which are registers in the compactors.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = PE_ARRAY_LATENCY

    def __init__(self, *, config: AcceleratorConfig):
        S = config.slices
        super().__init__({
            "i": In(EventStream(config)) if S == 1 else In(EventStream(config.slice_config)).array(S),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config) if config.bundle == 1 else BundleAccumulatorStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        P, E, B = c.pes, c.events_per_cycle, c.bundle

        def per_slot(name):
            """A name per token of the bundle (the name alone without bundles)."""
            return [name] if B == 1 else [f"{name}_b{b}" for b in range(B)]

        S = c.slices
        row_layout = data.ArrayLayout(signed(c.weight_bits), P)
        if S == 1:
            m.submodules.weight_memory = memory = Memory(shape=row_layout, depth=c.max_fan_in, init=[])
            writes = [memory.write_port()]
            reads = [memory.read_port() for _ in range(E)]
        else:  # a bank per lane slice, read by the slice's E / S slots
            banks = [Memory(shape=row_layout, depth=c.max_fan_in // S, init=[]) for _ in range(S)]
            for n, bank in enumerate(banks):
                m.submodules[f"weight_bank_{n}"] = bank
            writes = [bank.write_port() for bank in banks]
            reads = [banks[k // (E // S)].read_port() for k in range(E)]

        tc_lif = c.coding.doubles
        ones_shape = range(2 * E + 1)
        # Stage 1: the beat whose weight rows are on the read ports' outputs; its sums.
        s1_valid = Signal()
        s1_event_valid = Signal(E)
        s1_before = Signal(E)  # slot k is before the beat's split
        # per token of the bundle: its events among the beat's
        s1_fires = [Signal(E, name=n) for n in per_slot("s1_fires")]  # a valid event at which the token fires
        s1_negative = [Signal(E, name=n) for n in per_slot("s1_negative")]  # ... and subtracts
        s1_single = [Signal(E, name=n) for n in per_slot("s1_single")]  # c_k = 1
        s1_double = [Signal(E, name=n) for n in per_slot("s1_double")]  # c_k = 2
        s1_ones = [Signal(ones_shape, name=n) for n in per_slot("s1_ones")]  # sum_k c_k * negative_k
        s1_ones_before = [Signal(ones_shape, name=n) for n in per_slot("s1_ones_before")]  # the same before the split
        s1_step_end = Signal()
        s1_last = Signal()
        s1_work = Signal()  # the beat moves the accumulators: an event or a step end
        # Stage 2: the beat's sums; the accumulators move.
        s2_valid = Signal()
        s2_step_end = Signal()
        s2_last = Signal()
        s2_work = Signal()
        s2_has_after = Signal()  # an event after the split: the next tile has begun
        s2_ones = [Signal(ones_shape, name=n) for n in per_slot("s2_ones")]
        s2_ones_before = [Signal(ones_shape, name=n) for n in per_slot("s2_ones_before")]

        step = Signal(c.step_width)
        busy = Signal()  # a token has started and its final step has not been accumulated

        out_valid = Signal()
        out_step = Signal(c.step_width)
        out_last = Signal()
        m.d.comb += [
            self.o.valid.eq(out_valid),
            self.o.p.step.eq(out_step),
            self.o.p.last.eq(out_last),
        ]
        out_free = ~out_valid | self.o.ready
        s2_go = Signal()
        s1_go = Signal()
        advance = Signal()
        m.d.comb += [
            s2_go.eq(s2_valid & (~s2_step_end | out_free)),
            s1_go.eq(s1_valid & (~s2_valid | s2_go)),
            advance.eq(~s1_valid | s1_go),
        ]

        # Skid register: ``i.ready`` is a register's output, not the end of the chain of
        # stage enables above. A beat taken while stage 1 cannot advance waits in the
        # skid, and enters before the next beat is taken.
        skid_valid = Signal()
        skid = Signal(event_beat_layout(c) if S == 1 else _merged_beat_layout(c))
        idle = Signal()
        loading = Signal()
        m.d.comb += [
            idle.eq(~busy & ~skid_valid & ~s1_valid & ~s2_valid),
            loading.eq(idle & self.weights.valid),
            self.weights.ready.eq(idle),
        ]
        if S == 1:
            m.d.comb += self.i.ready.eq(~skid_valid & ~loading)
            taken = self.i.valid & self.i.ready
            incoming = self.i.p
        else:
            taken, incoming = self._merge(m, ~skid_valid & ~loading, skid)
        beat = Signal(skid.shape())  # the beat entering stage 1 if it advances
        m.d.comb += beat.eq(Mux(skid_valid, skid, incoming))
        accept = Signal()
        m.d.comb += accept.eq(advance & (skid_valid | taken))
        with m.If(taken & ~advance):
            m.d.sync += [skid_valid.eq(1), skid.eq(incoming)]
        with m.If(skid_valid & advance):
            m.d.sync += skid_valid.eq(0)

        written = self.weights.valid & self.weights.ready
        if S == 1:
            m.d.comb += [writes[0].addr.eq(self.weights.p.addr), writes[0].en.eq(written)]
        else:  # the row goes to the bank of its input's lane slice, at the slice's row
            addr, lane_bits, sub_bits = self.weights.p.addr, c.lane_index_width, c.slice_config.lane_index_width
            for n, write in enumerate(writes):
                m.d.comb += [write.addr.eq(Cat(addr[:sub_bits], addr[lane_bits:])),
                             write.en.eq(written & (addr[sub_bits:lane_bits] == n))]
        m.d.comb += [write.data.eq(self.weights.p.row) for write in writes]

        events = beat.events
        for k, read in enumerate(reads):
            # A row is read only for a valid event of an accepted beat: one read per event.
            m.d.comb += [read.addr.eq(events[k].index), read.en.eq(accept & events[k].valid)]
        with m.If(advance):
            m.d.sync += s1_valid.eq(accept)
        # Each event's coefficient: 2 before a doubling step end, 0 before a tile's end, else 1.
        valid = _gather(events, "valid", E)
        before = Cat(beat.split > k for k in range(E)) if S == 1 else beat.before
        dropped = before & (beat.step_end & beat.last).replicate(E)
        with m.If(accept):  # the beat's flags load only with a beat (clock enable)
            m.d.sync += [
                s1_event_valid.eq(valid),
                s1_before.eq(before),
                s1_step_end.eq(beat.step_end),
                s1_last.eq(beat.last),
                s1_work.eq((events[0].valid if S == 1 else valid.any()) | beat.step_end),
            ]
        for b in range(B):
            if B == 1:
                fires = valid
                negative = valid & _gather(events, "negative", E)
            else:
                fires = valid & Cat(events[k].fire[b] for k in range(E))
                negative = fires & Cat(events[k].negative[b] for k in range(E))
            if tc_lif:
                double = fires & before & (beat.step_end & ~beat.last).replicate(E)
            else:
                double = Const(0, E)
            single = fires & ~double & ~dropped
            with m.If(accept):
                m.d.sync += [
                    s1_fires[b].eq(fires),
                    s1_negative[b].eq(negative),
                    s1_single[b].eq(single),
                    s1_double[b].eq(double),
                    s1_ones[b].eq(sum((single[k] & negative[k]) + ((double[k] & negative[k]) << 1) for k in range(E))),
                    s1_ones_before[b].eq(sum(before[k] & negative[k] for k in range(E))),
                ]
        with m.If(~s2_valid | s2_go):
            m.d.sync += s2_valid.eq(s1_go)
        with m.If(s1_go):
            m.d.sync += [s2_step_end.eq(s1_step_end), s2_last.eq(s1_last), s2_work.eq(s1_work),
                         s2_has_after.eq((s1_event_valid & ~s1_before).any())]
            m.d.sync += [s2_ones[b].eq(s1_ones[b]) for b in range(B)]
            m.d.sync += [s2_ones_before[b].eq(s1_ones_before[b]) for b in range(B)]

        # Stage 1 arithmetic and stage 2, per PE: one SpikePE each, fed the same flags.
        for p in range(P):
            pe = m.submodules[f"pe_{p}"] = SpikePE(config=c)
            m.d.comb += [
                pe.sums.eq(s1_go),
                pe.accumulate.eq(s2_go & s2_work),
                pe.emit.eq(s2_go & s2_step_end),
                pe.step_end.eq(s2_step_end),
                pe.last.eq(s2_last),
            ]
            m.d.comb += [pe.weights[k].eq(read.data[p]) for k, read in enumerate(reads)]
            for b in range(B):
                m.d.comb += [
                    pe.tokens[b].negative.eq(s1_negative[b]),
                    pe.tokens[b].single.eq(s1_single[b]),
                    pe.tokens[b].double.eq(s1_double[b]),
                    pe.tokens[b].before.eq(s1_before & s1_fires[b]),
                    pe.tokens[b].ones.eq(s2_ones[b]),
                    pe.tokens[b].ones_before.eq(s2_ones_before[b]),
                    (self.o.p.acc[p] if B == 1 else self.o.p.acc[b][p]).eq(pe.out[b]),
                ]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(s2_go & s2_step_end):
            m.d.sync += [out_valid.eq(1), out_step.eq(step), out_last.eq(s2_last)]
            with m.If(s2_last):
                m.d.sync += [step.eq(0), busy.eq(s2_has_after)]
            with m.Else():
                m.d.sync += step.eq(step + 1)
        with m.If(taken):
            m.d.sync += busy.eq(1)
        return m

    def _merge(self, m: Module, ready: Value, skid: Signal) -> tuple[Value, Signal]:
        """With lane slices: the beat taken from the slices' streams in this cycle, and
        whether any is taken. Each slice's beat is taken while the array is ``ready``,
        except one ending a step, which waits until every slice offers its step end: those
        are taken together, as one beat ending the step for all. Slot ``k`` holds event
        ``k mod E/S`` of slice ``k div E/S`` (invalid when that slice's beat is not taken)
        and is before the boundary if that slice's ``split`` says so."""
        c = self.config
        e = c.events_per_cycle // c.slices
        boundary = Signal()
        m.d.comb += boundary.eq(Cat(i.valid & i.p.step_end for i in self.i).all())
        takes = []
        merged = Signal(skid.shape())
        for n, i in enumerate(self.i):
            m.d.comb += i.ready.eq(ready & (~i.p.step_end | boundary))
            take = i.valid & i.ready
            takes.append(take)
            for j in range(e):
                event, slot = i.p.events[j], merged.events[n * e + j]
                m.d.comb += [slot.eq(Mux(take, event, 0)), merged.before[n * e + j].eq(i.p.split > j)]
        m.d.comb += [merged.step_end.eq(boundary), merged.last.eq(boundary & self.i[0].p.last)]
        return Cat(takes).any(), merged


def _merged_beat_layout(config: AcceleratorConfig) -> data.StructLayout:
    """A beat of the lane slices' events taken together: ``E`` events with indices into
    their slices' banks, which of them lie before the step boundary, and its flags."""
    sub = config.slice_config
    return data.StructLayout({
        "events": data.ArrayLayout(event_layout(sub), config.events_per_cycle),
        "before": config.events_per_cycle,
        "step_end": 1,
        "last": 1,
    })


def pe_token_layout(config: AcceleratorConfig) -> data.StructLayout:
    """What a :class:`SpikePE` needs of one token of the beat: per event slot, whether its
    weight is inverted (``negative``), taken once (``single``) or twice (``double``), and
    counts before the split (``before``); and the ones the inversions leave out
    (``ones``, ``ones_before``; registered with the beat's sums, a stage later)."""
    E = config.events_per_cycle
    ones = range(2 * E + 1)
    return data.StructLayout({"negative": E, "single": E, "double": E, "before": E, "ones": ones,
                              "ones_before": ones})


class SpikePE(Block):
    """One processing element of :class:`SparseAccumulatePEArray`: its output channel's
    accumulator (one per token of a bundle) and the two stages that update it.

    ``weights[E]`` are the channel's weights of the beat's events (read ports' outputs);
    ``tokens[B]`` the beat's coefficients per token (:func:`pe_token_layout`). With
    ``sums`` the stage-1 sums are registered::

        term   = sum_k c_k * (negative_k ? ~w_k : w_k)      before = the same over the slots in ``before``

    with ``accumulate`` the accumulator takes ``base + term + ones`` (``base``: 0 after a
    tile's last step, ``2 * acc`` after any other step end under TC-LIF, else ``acc``),
    and with ``emit`` ``out`` takes ``acc + before + ones_before``, the step's partial sum.
    Every PE of an array is the same module, its ports alone connecting it.
    """

    def __init__(self, *, config: AcceleratorConfig):
        B, E = config.bundle, config.events_per_cycle
        acc = signed(config.acc_width)
        super().__init__({
            "weights": In(data.ArrayLayout(signed(config.weight_bits), E)),
            "tokens": In(data.ArrayLayout(pe_token_layout(config), B)),
            "sums": In(1),
            "accumulate": In(1),
            "emit": In(1),
            "step_end": In(1),
            "last": In(1),
            "out": Out(data.ArrayLayout(acc, B)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        E = c.events_per_cycle
        sum_shape = signed(c.weight_bits + E.bit_length() + 2)
        for b, token in enumerate(self.tokens):
            terms, befores = [], []
            for k in range(E):
                w = self.weights[k]
                flipped = Signal(signed(c.weight_bits), name=f"flipped_{b}_{k}")
                m.d.comb += flipped.eq(Mux(token.negative[k], ~w, w))
                term = Signal(signed(c.weight_bits + 1), name=f"term_{b}_{k}")
                m.d.comb += term.eq(Mux(token.double[k], flipped << 1, Mux(token.single[k], flipped, 0)))
                terms.append(term)
                befores.append(Mux(token.before[k], flipped, 0))
            sum_term = _tree_sum(m, terms, sum_shape, name=f"sum_term_{b}")
            sum_before = _tree_sum(m, befores, sum_shape, name=f"sum_before_{b}")
            s2_term = Signal(sum_shape, name=f"s2_term_{b}")
            s2_before = Signal(sum_shape, name=f"s2_before_{b}")
            with m.If(self.sums):
                m.d.sync += [s2_term.eq(sum_term), s2_before.eq(sum_before)]
            term = Signal(sum_shape, name=f"term_{b}")
            m.d.comb += term.eq(s2_term + token.ones)
            acc = Signal(signed(c.acc_width), name=f"acc_{b}")
            if c.coding.doubles:
                base = Mux(self.step_end, Mux(self.last, 0, acc << 1), acc)
            else:
                base = Mux(self.step_end & self.last, 0, acc)
            acc_next = Signal(signed(c.acc_width), name=f"acc_next_{b}")
            m.d.comb += acc_next.eq(base + term)
            with m.If(self.accumulate):  # idle on a beat without work (clock enable)
                m.d.sync += acc.eq(acc_next)
            partial = Signal(sum_shape, name=f"partial_{b}")
            m.d.comb += partial.eq(s2_before + token.ones_before)
            out = Signal(signed(c.acc_width), name=f"out_{b}")
            with m.If(self.emit):
                m.d.sync += out.eq(acc + partial)
            m.d.comb += self.out[b].eq(out)
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
