"""Formal harnesses of the four pipeline blocks.

Each harness wraps the unmodified block, drives its inputs from free values that obey
the stream protocol and the block's documented input contract, leaves every ``ready`` of
its outputs free, and asserts properties of what comes out:

* ``*_stream``: every output stream keeps ``valid`` and its payload until ``ready``.
* ``*_conservation``: nothing is lost or duplicated across the block, phrased with
  counters and small queues of what went in (see each function).
* :func:`pe_array_overflow`: under the PE array's contract the accumulators equal a
  shadow sum computed at twice the width, so they never wrap.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.hw.compactor import SpikeEventCompactor
from spikemllm.hw.neuron_array import TCLIFNeuronArray
from spikemllm.hw.pe_array import SparseAccumulatePEArray
from spikemllm.hw.requantizer import Requantizer

from .properties import StreamIn, StreamOut, count_ones, elaborate_into, free, internal, past

__all__ = [
    "neuron_array_stream", "neuron_array_conservation",
    "compactor_stream", "compactor_conservation",
    "pe_array_stream", "pe_array_conservation", "pe_array_overflow",
    "requantizer_stream", "requantizer_conservation",
    "spike_vector_contract", "event_beat_contract",
]


class _Queue:
    """A harness FIFO of ``depth`` entries of ``layout`` (registers; no hardware meaning).
    ``push``/``pop`` are conditions; asserts it never overflows."""

    def __init__(self, m: Module, layout, *, depth: int, name: str):
        self.entries = [Signal(layout, name=f"{name}_{n}") for n in range(depth)]
        self.write = Signal(range(depth), name=f"{name}_write")
        self.read = Signal(range(depth), name=f"{name}_read")
        self.count = Signal(range(depth + 1), name=f"{name}_count")
        self.head = Signal(layout, name=f"{name}_head")
        self._m, self._depth = m, depth
        with m.Switch(self.read):
            for n in range(depth):
                with m.Case(n):
                    m.d.comb += self.head.eq(self.entries[n])

    def connect(self, push, value, pop):
        m, depth = self._m, self._depth
        with m.If(push):
            m.d.sync += self.write.eq(Mux(self.write == depth - 1, 0, self.write + 1))
            with m.Switch(self.write):
                for n in range(depth):
                    with m.Case(n):
                        m.d.sync += self.entries[n].eq(value)
        with m.If(pop):
            m.d.sync += self.read.eq(Mux(self.read == depth - 1, 0, self.read + 1))
        m.d.sync += self.count.eq(self.count + push - pop)
        m.d.comb += Assert(~(push & ~pop) | (self.count < depth), "harness queue overflow")


# -- neuron array ---------------------------------------------------------------------------

def _steps(c: AcceleratorConfig, requested):
    """T as the neuron array runs it: 0 runs one step, above t_max runs t_max."""
    return Mux(requested == 0, 1, Mux(requested > c.t_max, c.t_max, requested))


def neuron_array_stream(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False) -> None:
    """The spike-vector output ``o`` obeys the stream protocol."""
    m.submodules.dut = dut = TCLIFNeuronArray(config=c)
    StreamIn(m, dut.i, name="i")
    StreamOut(m, dut.o, name="o", drop_valid=drop_valid)


def neuron_array_conservation(m: Module, c: AcceleratorConfig, *, invariants: bool = False) -> None:
    """Every activation vector taken gives exactly ``T`` spike vectors (steps ``0..T-1``,
    its ``base``, ``last`` on the final one) and no spike vector comes without one; each
    lane's spike is the encoding of its value (TC-LIF digits with saturation, or count).
    The next vector is taken only in the cycle the current one's final step leaves.

    ``invariants`` adds white-box invariants tying the bookkeeping to the array's
    registers (for k-induction)."""
    dut = TCLIFNeuronArray(config=c)
    fragment = elaborate_into(m, "dut", dut)
    i = StreamIn(m, dut.i, name="i")
    o = StreamOut(m, dut.o, name="o")

    active = Signal()
    step = Signal(c.step_width + 1)
    steps = Signal(c.timesteps_width)
    base = Signal(c.index_width)
    values = Signal(data.ArrayLayout(signed(c.act_bits), c.lanes))

    m.d.comb += Assert(~dut.o.valid | active, "a spike vector without an activation vector")
    final = step == steps - 1
    with m.If(o.fire):
        m.d.comb += [
            Assert(o.p.step == step, "spike vector out of step order"),
            Assert(o.p.base == base, "spike vector of another base"),
            Assert(o.p.step_end, "every spike vector ends its step"),
            Assert(o.p.last == final, "last on a step that is not the token's final one"),
        ]
        for n in range(c.lanes):
            q = values[n]
            magnitude = abs(q)
            if c.coding is Coding.TC_LIF:
                saturated = (magnitude >> steps) != 0
                position = Signal(c.timesteps_width, name=f"digit_{n}")
                m.d.comb += position.eq(steps - 1 - step)
                digit = (magnitude >> position)[0]
                fire = saturated | digit
            else:
                fire = magnitude > step
            expected = Mux(fire, Mux(q < 0, -1, 1), 0)
            m.d.comb += Assert(o.p.spikes[n] == expected, f"lane {n} spike differs from the encoding")
        m.d.sync += step.eq(step + 1)
        with m.If(o.p.last):
            m.d.sync += active.eq(0)
    with m.If(i.fire):
        m.d.comb += Assert(~active | (o.fire & o.p.last), "activation vector taken while a token is unfinished")
        m.d.sync += [active.eq(1), step.eq(0), steps.eq(_steps(c, i.p.timesteps)), base.eq(i.p.base),
                     values.eq(i.p.values)]

    if invariants:
        m.d.comb += [
            Assert(internal(fragment, "busy") == active),
            Assert(~active | (internal(fragment, "step") == step[:c.step_width])),
            Assert(~active | (internal(fragment, "final_step") == (steps - 1)[:c.step_width])),
            Assert(~active | (internal(fragment, "base") == base)),
            Assert(~active | (step < steps)),
            Assert(~active | ((steps >= 1) & (steps <= c.t_max))),
        ]
        for n in range(c.lanes):
            q = values[n]
            magnitude = abs(q)
            if c.coding is Coding.TC_LIF:
                saturated = (magnitude >> steps) != 0
                aligned = ((magnitude << c.t_max) >> steps)[:c.t_max] | saturated.replicate(c.t_max)
                digits = (aligned << step)[:c.t_max]
                m.d.comb += [
                    Assert(~active | (internal(fragment, f"digits_{n}") == digits)),
                    Assert(~active | (internal(fragment, f"signs_{n}") == Mux(q < 0, digits, 0))),
                ]
            else:
                fire = magnitude > step
                m.d.comb += [
                    Assert(~active | (internal(fragment, f"remaining_{n}") == Mux(fire, magnitude - step, 0))),
                    Assert(~active | (internal(fragment, f"fire_{n}") == fire)),
                    Assert(~active | (internal(fragment, f"negative_{n}") == (fire & (q < 0)))),
                ]


# -- compactor ----------------------------------------------------------------------------

def spike_vector_contract(c: AcceleratorConfig):
    """What the compactor's producer promises: ternary spikes, ``last`` only on a step end,
    ``more`` only with ``last``, ``base`` a multiple of ``lanes``."""
    def contract(p):
        ternary = Cat(p.spikes[n] != -2 for n in range(c.lanes)).all()
        aligned = p.base[:c.lane_index_width] == 0
        return ternary & aligned & (~p.last | p.step_end) & (~p.more | p.last)
    return contract


def compactor_stream(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False) -> None:
    """The event-beat output ``o`` obeys the stream protocol."""
    m.submodules.dut = dut = SpikeEventCompactor(config=c)
    StreamIn(m, dut.i, name="i", contract=spike_vector_contract(c))
    StreamOut(m, dut.o, name="o", drop_valid=drop_valid)


def compactor_conservation(m: Module, c: AcceleratorConfig, *, indices: bool = False) -> None:
    """Events out == spikes in, at every step boundary: when a beat ends a step, the
    events out so far plus those before its ``split`` equal, in number, in the sum of
    their indices and in the number of negative ones, the spikes of every vector up to
    the one that ended that step; its ``last`` is that vector's. A beat never carries
    events that have not come in, its valid events are packed from slot 0, empty slots
    are zero, and ``split`` is the number of events when no step ends.

    ``indices`` also compares the sums of the indices and the numbers of negative events
    (the solver's hard part: it relates the select stage's lane matching to the masks)."""
    check_indices = Const(int(indices))
    m.submodules.dut = dut = SpikeEventCompactor(config=c)
    i = StreamIn(m, dut.i, name="i", contract=spike_vector_contract(c))
    o = StreamOut(m, dut.o, name="o")
    E, L = c.events_per_cycle, c.lanes

    count_w, sum_w = 12, 16
    tally = data.StructLayout({"count": count_w, "index_sum": sum_w, "negatives": count_w, "last": 1})
    spikes_in = Signal(tally)
    events_out = Signal(tally)

    # What an accepted spike vector carries.
    nonzero = Cat(i.p.spikes[n] != 0 for n in range(L))
    negative = Cat(i.p.spikes[n] == -1 for n in range(L))
    vector = Signal(tally)
    m.d.comb += [
        vector.count.eq(count_ones(nonzero)),
        vector.negatives.eq(count_ones(negative)),
        vector.index_sum.eq(sum(Mux(nonzero[n], i.p.base + n, 0) for n in range(L))),
    ]
    after_vector = Signal(tally)
    m.d.comb += [
        after_vector.count.eq(spikes_in.count + vector.count),
        after_vector.negatives.eq(spikes_in.negatives + vector.negatives),
        after_vector.index_sum.eq(spikes_in.index_sum + vector.index_sum),
        after_vector.last.eq(i.p.last),
    ]
    with m.If(i.fire):
        m.d.sync += spikes_in.eq(after_vector)

    # What a beat carries, in all and before its split.
    events = o.p.events
    valid = Cat(events[k].valid for k in range(E))
    before = Cat(Mux(o.p.step_end, o.p.split > k, 1) for k in range(E))
    def sums(select):
        return (count_ones(select),
                sum(Mux(select[k], events[k].index, 0) for k in range(E)),
                count_ones(select & Cat(events[k].negative for k in range(E))))
    total, prefix = Signal(tally), Signal(tally)
    for t, sel in ((total, valid), (prefix, valid & before)):
        n, s, neg = sums(sel)
        m.d.comb += [t.count.eq(events_out.count + n), t.index_sum.eq(events_out.index_sum + s),
                     t.negatives.eq(events_out.negatives + neg)]

    boundaries = _Queue(m, tally, depth=16, name="boundaries")
    boundaries.connect(i.fire & i.p.step_end, after_vector, o.fire & o.p.step_end)

    with m.If(dut.o.valid):
        for k in range(1, E):
            m.d.comb += Assert(~valid[k] | valid[k - 1], f"event slot {k} valid after an empty slot")
        for k in range(E):
            m.d.comb += Assert(valid[k] | ((events[k].index == 0) & ~events[k].negative), f"empty slot {k} not zero")
        m.d.comb += [
            Assert(~o.p.last | o.p.step_end, "last without a step end"),
            Assert(o.p.step_end | (o.p.split == count_ones(valid)), "split is not the event count without a step end"),
            Assert(o.p.split <= count_ones(valid), "split beyond the events"),
            Assert(total.count <= spikes_in.count, "more events out than spikes in"),
        ]
        with m.If(o.p.step_end):
            head = boundaries.head
            m.d.comb += [
                Assert(boundaries.count != 0, "a step end out that no spike vector ended"),
                Assert(prefix.count == head.count, "events of the step lost or duplicated"),
                Assert(~check_indices | (prefix.index_sum == head.index_sum),
                       "event indices of the step differ from the spikes"),
                Assert(~check_indices | (prefix.negatives == head.negatives),
                       "event signs of the step differ from the spikes"),
                Assert(o.p.last == head.last, "last differs from the vector that ended the step"),
            ]
    with m.If(o.fire):
        m.d.sync += [events_out.count.eq(total.count), events_out.index_sum.eq(total.index_sum),
                     events_out.negatives.eq(total.negatives)]


# -- PE array -------------------------------------------------------------------------------

def event_beat_contract(c: AcceleratorConfig):
    """What the PE array's producer (the compactor) promises: valid events packed from
    slot 0, empty slots zero, ``last`` only with ``step_end``, ``split`` within the events."""
    E = c.events_per_cycle

    def contract(p):
        valid = Cat(p.events[k].valid for k in range(E))
        packed = Cat(~valid[k] | valid[k - 1] for k in range(1, E)).all() if E > 1 else Const(1)
        zero = Cat(valid[k] | ((p.events[k].index == 0) & ~p.events[k].negative) for k in range(E)).all()
        return packed & zero & (~p.last | p.step_end) & (p.split <= count_ones(valid))
    return contract


def _weights_contract(c: AcceleratorConfig):
    """Weights within the contract: ``|w| <= weight_max`` (the quantizer's symmetric range)."""
    def contract(p):
        return Cat((p.row[n] >= -c.weight_max) & (p.row[n] <= c.weight_max) for n in range(c.pes)).all()
    return contract


def pe_array_stream(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False) -> None:
    """The accumulator output ``o`` obeys the stream protocol."""
    m.submodules.dut = dut = SparseAccumulatePEArray(config=c)
    StreamIn(m, dut.i, name="i", contract=event_beat_contract(c))
    StreamIn(m, dut.weights, name="weights")
    StreamOut(m, dut.o, name="o", drop_valid=drop_valid)


def pe_array_conservation(m: Module, c: AcceleratorConfig) -> None:
    """One accumulator vector per step-ending beat taken, in order: its ``last`` is the
    beat's, its ``step`` counts the tile's steps from 0, and no vector comes without a
    step end (a queue of the step ends taken)."""
    m.submodules.dut = dut = SparseAccumulatePEArray(config=c)
    i = StreamIn(m, dut.i, name="i", contract=event_beat_contract(c))
    StreamIn(m, dut.weights, name="weights")
    o = StreamOut(m, dut.o, name="o")

    ends = _Queue(m, 1, depth=8, name="step_ends")
    ends.connect(i.fire & i.p.step_end, i.p.last, o.fire)
    step = Signal(c.step_width)
    with m.If(dut.o.valid):
        m.d.comb += [
            Assert(ends.count != 0, "an accumulator vector without a step end"),
            Assert(o.p.last == ends.head, "last differs from the step end's"),
            Assert(o.p.step == step, "accumulator vectors out of step order"),
        ]
    with m.If(o.fire):
        m.d.sync += step.eq(Mux(o.p.last, 0, step + 1))


def pe_array_overflow(m: Module, c: AcceleratorConfig) -> None:
    """Under the contract (weights within ``+/- weight_max``, each of the ``max_fan_in``
    inputs firing at most once per step, at most ``t_max`` steps per tile) every
    accumulator vector equals a shadow sum kept ``acc_width + 8`` bits wide, per the
    recurrence ``P = acc + before``, ``acc <- (end ? (last ? 0 : 2P) : P) + after``,
    and stays within ``+/- act_max * max_fan_in * weight_max``: the accumulators never
    overflow."""
    m.submodules.dut = dut = SparseAccumulatePEArray(config=c)
    E, P, F = c.events_per_cycle, c.pes, c.max_fan_in
    beat_ok = event_beat_contract(c)

    # Each input fires at most once per step: the inputs fired in the current step.
    fired = Signal(F)
    steps_done = Signal(range(c.t_max + 1))

    def contract(p):
        ok = beat_ok(p)
        valid = [p.events[k].valid for k in range(E)]
        before = [Mux(p.step_end, p.split > k, 1) for k in range(E)]
        index = [p.events[k].index for k in range(E)]
        for k in range(E):
            ok &= ~(valid[k] & before[k]) | ~fired.bit_select(index[k], 1)
            for j in range(k):
                ok &= ~(valid[k] & valid[j] & (before[k] == before[j])) | (index[k] != index[j])
        # at most t_max steps per tile: a step end before the tile's last is not the t_max-th
        ok &= ~(p.step_end & ~p.last) | (steps_done < c.t_max - 1)
        return ok

    i = StreamIn(m, dut.i, name="i", contract=contract)
    w = StreamIn(m, dut.weights, name="weights", contract=_weights_contract(c))
    o = StreamOut(m, dut.o, name="o")

    wide = signed(c.acc_width + 8)
    shadow_w = [[Signal(signed(c.weight_bits), name=f"shadow_w_{r}_{p}") for p in range(P)] for r in range(F)]
    with m.If(w.fire):
        with m.Switch(w.p.addr):
            for r in range(F):
                with m.Case(r):
                    m.d.sync += [shadow_w[r][p].eq(w.p.row[p]) for p in range(P)]
    acc = [Signal(wide, name=f"shadow_acc_{p}") for p in range(P)]
    partial_layout = data.ArrayLayout(wide, P)
    partial = Signal(partial_layout)
    next_acc = [Signal(wide, name=f"shadow_next_{p}") for p in range(P)]
    p_ = i.p
    before = [Mux(p_.step_end, p_.split > k, 1) for k in range(E)]
    for p in range(P):
        terms = []
        for k in range(E):
            weight = Array(shadow_w[r][p] for r in range(F))[p_.events[k].index]
            value = Mux(p_.events[k].valid, Mux(p_.events[k].negative, -weight, weight), 0)
            terms.append(value)
        before_sum = sum(Mux(before[k], terms[k], 0) for k in range(E))
        after_sum = sum(Mux(before[k], 0, terms[k]) for k in range(E))
        m.d.comb += partial[p].eq(acc[p] + before_sum)
        restart = Mux(p_.last, 0, (partial[p] << 1) if c.coding.doubles else partial[p])
        m.d.comb += next_acc[p].eq(Mux(p_.step_end, restart + after_sum, partial[p]))
    def hit(r, select):
        return Cat(p_.events[k].valid & select[k] & (p_.events[k].index == r) for k in range(E)).any()
    after_mask = Cat(hit(r, [~b for b in before]) for r in range(F))
    all_mask = Cat(hit(r, [Const(1)] * E) for r in range(F))
    with m.If(i.fire):
        m.d.sync += [a.eq(n) for a, n in zip(acc, next_acc)]
        m.d.sync += fired.eq(Mux(p_.step_end, after_mask, fired | all_mask))
        with m.If(p_.step_end):
            m.d.sync += steps_done.eq(Mux(p_.last, 0, steps_done + 1))

    partials = _Queue(m, partial_layout, depth=4, name="partials")
    partials.connect(i.fire & p_.step_end, partial, o.fire)
    bound = c.act_max * F * c.weight_max
    with m.If(dut.o.valid):
        m.d.comb += Assert(partials.count != 0, "an accumulator vector without a step end")
        for p in range(P):
            expected = partials.head[p]
            m.d.comb += [
                Assert(o.p.acc[p] == expected, f"PE {p}: accumulator differs from the wide shadow sum"),
                Assert((expected >= -bound) & (expected <= bound), f"PE {p}: partial sum beyond the contract's bound"),
            ]


# -- requantizer ----------------------------------------------------------------------------

def requantizer_stream(m: Module, c: AcceleratorConfig, *, drop_valid: bool = False) -> None:
    """The output ``o`` obeys the stream protocol."""
    m.submodules.dut = dut = Requantizer(config=c)
    StreamIn(m, dut.i, name="i")
    StreamIn(m, dut.params, name="params")
    StreamOut(m, dut.o, name="o", drop_valid=drop_valid)


def requantizer_conservation(m: Module, c: AcceleratorConfig) -> None:
    """One output vector per final accumulator vector, in order, none for the others: with
    the identity parameters (bias 0, multiplier 1, shift 0) offered on ``params`` and final
    accumulators within ``+/- out_max``, each output equals the final vector it came from
    (a queue of the finals taken); non-final vectors add nothing."""
    m.submodules.dut = dut = Requantizer(config=c)
    Q = c.out_max

    def in_range(p):
        return ~p.last | Cat((p.acc[n] >= -Q) & (p.acc[n] <= Q) for n in range(c.pes)).all()

    started = Signal()
    m.d.sync += started.eq(1)
    i = StreamIn(m, dut.i, name="i", contract=in_range)
    m.d.comb += Assume(started | ~dut.i.valid)  # the identity parameters are loaded first
    params = StreamIn(m, dut.params, name="params")
    m.d.comb += Assume(dut.params.valid)
    for n in range(c.pes):
        m.d.comb += Assume((params.p.bias[n] == 0) & (params.p.multiplier[n] == 1) & (params.p.shift[n] == 0))
    o = StreamOut(m, dut.o, name="o")

    layout = data.ArrayLayout(signed(c.out_bits), c.pes)
    finals = _Queue(m, layout, depth=4, name="finals")
    value = Signal(layout)
    m.d.comb += [value[n].eq(i.p.acc[n]) for n in range(c.pes)]
    finals.connect(i.fire & i.p.last, value, o.fire)
    with m.If(dut.o.valid):
        m.d.comb += Assert(finals.count != 0, "an output vector without a final accumulator vector")
        for n in range(c.pes):
            m.d.comb += Assert(o.p.values[n] == finals.head[n], f"channel {n}: output of another vector")
