"""Spike-event compactor: spike vectors in, beats of ``E`` events out, packed across vectors
and step boundaries; zeros and spike vectors without a spike cost nothing."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import COMPACTOR_DEPTH, COMPACTOR_LATENCY

from .block import Block
from .signatures import EventStream, SpikeVectorStream, event_beat_layout

__all__ = ["SpikeEventCompactor", "prefix_counts", "popcount"]


def popcount(m: Module, bits, *, name: str) -> Signal:
    """Number of set bits of ``bits``, summed in a balanced tree (depth ``log2(len)``)."""
    terms = [bits[n] for n in range(len(bits))]
    level = 0
    while len(terms) > 1:
        paired = []
        for n in range(0, len(terms) - 1, 2):
            s = Signal(range(len(bits) + 1), name=f"{name}_l{level}_{n // 2}")
            m.d.comb += s.eq(terms[n] + terms[n + 1])
            paired.append(s)
        if len(terms) % 2:
            paired.append(terms[-1])
        terms, level = paired, level + 1
    out = Signal(range(len(bits) + 1), name=name)
    m.d.comb += out.eq(terms[0])
    return out


def prefix_counts(m: Module, bits, *, name: str) -> list[Signal]:
    """``counts[i]`` = set bits of ``bits`` below position ``i`` (exclusive prefix count),
    computed by a parallel prefix (Kogge-Stone) network of ``log2(len)`` adder levels."""
    n = len(bits)
    current = [bits[i] for i in range(n)]
    distance, level = 1, 0
    while distance < n:
        nxt = []
        for i in range(n):
            if i < distance:
                nxt.append(current[i])
                continue
            s = Signal(range(min(2 * distance, n) + 1), name=f"{name}_l{level}_{i}")
            m.d.comb += s.eq(current[i] + current[i - distance])
            nxt.append(s)
        current, distance, level = nxt, 2 * distance, level + 1
    counts = []
    for i in range(n):
        s = Signal(range(n + 1), name=f"{name}_{i}")
        m.d.comb += s.eq(current[i - 1] if i else 0)
        counts.append(s)
    return counts


class SpikeEventCompactor(Block):
    """Turns ternary spike vectors into beats of up to ``E = events_per_cycle`` events.

    With a bundle of ``B > 1`` tokens (``bundle``) a spike vector holds every token's
    spikes; the compactor packs the lanes at which *any* token fires (the union), and each
    event carries which tokens fire there and their signs (``fire``, ``negative``): one
    weight-row read serves them all. The packing sees only the union's counts. Built with
    ``zero_skipping=False`` (a variant for the decomposition), every lane of every vector is
    an event, whether any token fires there or not.

    Three registered stages:

    1. **FIFO** of :data:`~spikemllm.latency.COMPACTOR_DEPTH` vectors. A vector is stored
       as its non-zero lanes (``mask``), their signs, its spike count (a popcount), ``base``
       and its ``step_end``/``last``/``more`` flags. A vector without a spike that ends no
       step is taken and dropped. ``i`` is ready while fewer than ``DEPTH`` are stored.
       The two oldest vectors are also held in registers of their own (``head``, ``nxt``,
       reloaded as the FIFO moves), as is the head's number of pending events (``p0``),
       so the plan starts from flip-flops and no read-pointer mux or subtraction lies on
       its loop.
    2. **Plan.** From the counts of the two oldest vectors and the number of the head's
       events already taken, the beat is planned by the rule of
       :func:`spikemllm.golden.timing.spike_datapath.plan_beat`: the head's lowest pending
       events, continued into the next vector when the head has fewer than ``E`` left;
       a step end inside the beat at ``split``, at most one per beat; past a tile's final
       step only with ``more``. When the rule would continue into a vector that is not
       yet stored, the compactor waits, so the beats never depend on timing. This loop
       works on counts only (``log2(lanes)``-bit additions and comparisons). Beside it,
       the exclusive prefix counts (:func:`prefix_counts`) of the two vectors' masks and
       each slot's rank (``offset + k`` in the head, ``k - take0`` in the next vector)
       are registered with the plan.
    3. **Select.** Slot ``k`` takes the lane whose prefix count equals its rank, a match
       of two registers. Events are packed from slot 0, ``index = base + lane`` (``base``
       is a multiple of ``lanes``, so the lane number fills its low bits); empty slots
       are all zero, as is ``split``'s meaning without a boundary (the number of events).

    Ports: ``i`` (in, spike vectors), ``o`` (out, event beats).

    Latency: 3 cycles from a vector's handshake to its first beat (when the beat does not
    wait for a second vector). Throughput: one beat per cycle; up to two vectors are
    retired per beat, and a vector without a spike is dropped on entry. Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.compactor_cycles`; beats:
    :func:`spikemllm.golden.timing.spike_datapath.pack`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = COMPACTOR_LATENCY
    DEPTH = COMPACTOR_DEPTH

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(SpikeVectorStream(config)),
            "o": Out(EventStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        L, E, F, B = c.lanes, c.events_per_cycle, self.DEPTH, c.bundle
        # with a bundle (B > 1) the mask is the union of the tokens' spikes, and every
        # token's own spikes and signs travel beside it
        signs = {"negative": L} if B == 1 else {"fire": data.ArrayLayout(L, B), "negative": data.ArrayLayout(L, B)}
        entry_layout = data.StructLayout({
            "mask": L,
            **signs,
            "base": c.index_width,
            "count": range(L + 1),
            "step_end": 1,
            "last": 1,
            "more": 1,
        })

        # -- stage 1: the FIFO -------------------------------------------------------------
        store = [Signal(entry_layout, name=f"entry_{n}") for n in range(F)]
        pointer_width = (F - 1).bit_length()
        write_ptr = Signal(pointer_width)
        read_ptr = Signal(pointer_width)
        fill = Signal(range(F + 1))

        spikes = self.i.p.spikes
        incoming = Signal(entry_layout)
        if B == 1:
            mask_in = Cat(spikes[n] != 0 for n in range(L))
            m.d.comb += incoming.negative.eq(Cat(spikes[n] < 0 for n in range(L)))
        elif c.zero_skipping:
            mask_in = Cat(Cat(spikes[b][n] != 0 for b in range(B)).any() for n in range(L))
        else:  # the variant without zero skipping: every lane is an event, fire bits or not
            mask_in = Const((1 << L) - 1, L)
        if B > 1:
            for b in range(B):
                m.d.comb += [incoming.fire[b].eq(Cat(spikes[b][n] != 0 for n in range(L))),
                             incoming.negative[b].eq(Cat(spikes[b][n] < 0 for n in range(L)))]
        m.d.comb += [
            incoming.mask.eq(mask_in),
            incoming.base.eq(self.i.p.base),
            incoming.count.eq(popcount(m, mask_in, name="count_in")),
            incoming.step_end.eq(self.i.p.step_end),
            incoming.last.eq(self.i.p.last),
            incoming.more.eq(self.i.p.more),
        ]
        m.d.comb += self.i.ready.eq(fill != F)
        write = Signal()
        m.d.comb += write.eq(self.i.valid & self.i.ready & (mask_in.any() | self.i.p.step_end))
        with m.If(write):
            m.d.sync += write_ptr.eq(write_ptr + 1)
            with m.Switch(write_ptr):
                for n in range(F):
                    with m.Case(n):
                        m.d.sync += store[n].eq(incoming)  # an entry loads only when written

        # The two oldest vectors (the head and the next) are also held in registers of their
        # own, so that the plan below starts from flip-flops rather than from a mux of the
        # FIFO addressed by read_ptr; the entries two and three past read_ptr are read
        # beside the plan, and after each beat the registers load the FIFO's new oldest two.
        head = Signal(entry_layout)
        nxt = Signal(entry_layout)
        ahead = [Signal(entry_layout, name=f"ahead_{r}") for r in (2, 3)]
        with m.Switch(read_ptr):
            for n in range(F):
                with m.Case(n):
                    m.d.comb += [ahead[0].eq(store[(n + 2) % F]), ahead[1].eq(store[(n + 3) % F])]
        # place r: the entry r places past read_ptr once this cycle's write is in (the vector
        # written now is at place fill; past it nothing is read)
        stored = [head, nxt, *ahead]
        place = [Signal(entry_layout, name=f"place_{r}") for r in range(4)]
        m.d.comb += [place[r].eq(Mux(fill > r, stored[r], incoming)) for r in range(4)]

        # -- stage 2: plan the beat from counts ----------------------------------------------
        offset = Signal(range(L + 1))  # events of the head already taken
        # events of the head not yet taken (head.count - offset), a register of its own: the
        # plan starts from it, and its next value is chosen among candidates computed
        # beside the plan (p0_next), so no subtraction sits on the plan's loop
        p0 = Signal(range(L + 1))
        p0_next = Signal(range(L + 1))
        big = Signal()
        extend = Signal()
        room = Signal(range(E + 1))
        exhausted = Signal()
        take1 = Signal(range(E + 1))
        m.d.comb += [
            big.eq(p0 >= E),
            extend.eq(~big & ~(head.last & ~head.more)),
            room.eq(E - p0),
            exhausted.eq(nxt.count <= room),
            take1.eq(Mux(extend, Mux(exhausted, nxt.count, room), 0)),
        ]
        plan_ok = Signal()
        m.d.comb += plan_ok.eq((fill != 0) & ~(extend & (fill < 2)))

        take0 = Signal(range(E + 1))
        boundary = Signal()
        split = Signal(range(E + 1))
        last = Signal()
        pops = Signal(2)
        next_offset = Signal(range(L + 1))
        m.d.comb += take0.eq(Mux(big, E, p0))
        # p0 after the beat: what is left of the head (p0 - E), a whole new head (the entry
        # at place pops), or what is left of the next vector once the beat took room = E - p0
        # of its events (nxt.count + p0 - E; 0 when it took all of them)
        head_rest = Signal(range(L + 1))
        nxt_rest = Signal(range(L + 1))
        m.d.comb += [head_rest.eq(p0 - E), nxt_rest.eq(Mux(exhausted, 0, nxt.count + p0 - E))]
        with m.If(big):
            done = p0 == E
            m.d.comb += [
                boundary.eq(done & head.step_end),
                split.eq(E),
                last.eq(done & head.last),
                pops.eq(done),
                next_offset.eq(Mux(done, 0, offset + E)),
                p0_next.eq(Mux(done, place[1].count, head_rest)),
            ]
        with m.Elif(~extend):  # the tile's final vector with no next tile following
            m.d.comb += [boundary.eq(head.step_end), split.eq(p0), last.eq(head.last), pops.eq(1), next_offset.eq(0),
                         p0_next.eq(place[1].count)]
        with m.Elif(head.step_end):  # the head's step end is the beat's boundary
            retire_both = exhausted & ~nxt.step_end
            m.d.comb += [
                boundary.eq(1), split.eq(p0), last.eq(head.last),
                pops.eq(Mux(retire_both, 2, 1)), next_offset.eq(Mux(retire_both, 0, take1)),
                p0_next.eq(Mux(retire_both, place[2].count, nxt_rest)),
            ]
        with m.Elif(exhausted & nxt.step_end):  # the next vector's step end ends the beat
            m.d.comb += [boundary.eq(1), split.eq(p0 + take1), last.eq(nxt.last), pops.eq(2), next_offset.eq(0),
                         p0_next.eq(place[2].count)]
        with m.Else():
            m.d.comb += [
                boundary.eq(0), split.eq(p0 + take1), last.eq(0),
                pops.eq(Mux(exhausted, 2, 1)), next_offset.eq(Mux(exhausted, 0, take1)),
                p0_next.eq(Mux(exhausted, place[2].count, nxt_rest)),
            ]

        # The select stage's ranks, from the masks and the plan: exclusive prefix counts of
        # both vectors, and per slot k the rank it takes (offset + k in the head, k - take0
        # in the next vector), registered with the plan.
        h_counts_next = prefix_counts(m, head.mask, name="h_count")
        w_counts_next = prefix_counts(m, nxt.mask, name="w_count")
        plan_valid = Signal()
        sign_shape = L if B == 1 else data.ArrayLayout(L, B)
        plan = {
            "h_mask": Signal(L), "h_negative": Signal(sign_shape), "h_base": Signal(c.index_width),
            "take0": Signal(range(E + 1)),
            "w_mask": Signal(L), "w_negative": Signal(sign_shape), "w_base": Signal(c.index_width),
            "take1": Signal(range(E + 1)), "step_end": Signal(), "split": Signal(range(E + 1)), "last": Signal(),
        }
        h_counts = [Signal(range(L + 1), name=f"plan_h_count_{i}") for i in range(L)]
        w_counts = [Signal(range(L + 1), name=f"plan_w_count_{i}") for i in range(L)]
        h_target = [Signal(range(L + E + 1), name=f"plan_h_target_{k}") for k in range(E)]
        w_target = [Signal(range(E + 1), name=f"plan_w_target_{k}") for k in range(E)]
        beat_valid = Signal()
        beat = Signal(event_beat_layout(c))
        m.d.comb += [self.o.valid.eq(beat_valid), self.o.p.eq(beat)]
        beat_advance = ~beat_valid | self.o.ready
        plan_advance = ~plan_valid | beat_advance
        go = Signal()
        m.d.comb += go.eq(plan_advance & plan_ok)
        with m.If(plan_advance):
            m.d.sync += plan_valid.eq(plan_ok)
        if B > 1:
            plan["h_fire"], plan["w_fire"] = Signal(sign_shape, name="plan_h_fire"), Signal(sign_shape, name="plan_w_fire")
            with m.If(go):
                m.d.sync += [plan["h_fire"].eq(head.fire), plan["w_fire"].eq(nxt.fire)]
        with m.If(go):  # the plan registers load only with a beat (clock enable)
            m.d.sync += [
                plan["h_mask"].eq(head.mask), plan["h_negative"].eq(head.negative), plan["h_base"].eq(head.base),
                plan["take0"].eq(take0),
                plan["w_mask"].eq(nxt.mask), plan["w_negative"].eq(nxt.negative), plan["w_base"].eq(nxt.base),
                plan["take1"].eq(take1), plan["step_end"].eq(boundary), plan["split"].eq(split), plan["last"].eq(last),
                offset.eq(next_offset),
                read_ptr.eq(read_ptr + pops),
            ]
            m.d.sync += [h.eq(n) for h, n in zip(h_counts, h_counts_next)]
            m.d.sync += [w.eq(n) for w, n in zip(w_counts, w_counts_next)]
            # slots before take0 come from the head, so their w_target is never used
            m.d.sync += [h_target[k].eq(offset + k) for k in range(E)]
            m.d.sync += [w_target[k].eq(Mux(k >= take0, k - take0, 0)) for k in range(E)]
        m.d.sync += fill.eq(fill + write - Mux(go, pops, 0))

        # head and nxt after this cycle: the entries at places pops and pops + 1. Which
        # entries those are is known from the registered fill before the plan settles, so
        # the plan only drives the final three-way choice.
        with m.If(go):
            m.d.sync += p0.eq(p0_next)
        with m.Elif(fill == 0):
            m.d.sync += p0.eq(incoming.count)  # the vector written now becomes the head
        with m.If(write | go):  # clock enable: the registers load only when the FIFO moves
            with m.Switch(Mux(go, pops, 0)):
                for popped in range(3):
                    with m.Case(popped):
                        m.d.sync += [head.eq(place[popped]), nxt.eq(place[popped + 1])]

        # -- stage 3: select the planned events ----------------------------------------------
        selected = Signal(event_beat_layout(c))
        total = plan["take0"] + plan["take1"]
        for k in range(E):
            from_head = k < plan["take0"]
            pick_h = Cat(plan["h_mask"][i] & (h_counts[i] == h_target[k]) for i in range(L))
            pick_w = Cat(plan["w_mask"][i] & (w_counts[i] == w_target[k]) for i in range(L))
            pick = Signal(L, name=f"pick_{k}")
            negative = Signal(sign_shape, name=f"pick_negative_{k}")
            m.d.comb += [
                pick.eq(Mux(from_head, pick_h, pick_w)),
                negative.eq(Mux(from_head, plan["h_negative"], plan["w_negative"])),
            ]
            if B > 1:
                fire = Signal(sign_shape, name=f"pick_fire_{k}")
                m.d.comb += fire.eq(Mux(from_head, plan["h_fire"], plan["w_fire"]))
            lane = Signal(c.lane_index_width, name=f"lane_{k}")
            # One-hot to binary: bit j of the lane number is set by every lane n with bit j.
            m.d.comb += lane.eq(Cat(
                Cat(pick[n] for n in range(L) if (n >> j) & 1).any() for j in range(c.lane_index_width)
            ))
            valid = k < total
            event = selected.events[k]
            base = Mux(from_head, plan["h_base"], plan["w_base"])
            if B == 1:
                m.d.comb += event.negative.eq(valid & (pick & negative).any())
            else:  # the tokens that fire at the picked lane, and their signs
                m.d.comb += [
                    event.fire.eq(Cat(valid & (pick & fire[b]).any() for b in range(B))),
                    event.negative.eq(Cat(valid & (pick & negative[b]).any() for b in range(B))),
                ]
            m.d.comb += [
                event.valid.eq(valid),
                # base is a multiple of lanes: the lane number fills its low bits
                event.index.eq(Mux(valid, Cat(lane, base[c.lane_index_width:]), 0)),
            ]
        m.d.comb += [selected.step_end.eq(plan["step_end"]), selected.split.eq(plan["split"]),
                     selected.last.eq(plan["last"])]
        with m.If(beat_advance):
            m.d.sync += beat_valid.eq(plan_valid)
        with m.If(beat_advance & plan_valid):  # the beat register loads only with a beat
            m.d.sync += beat.eq(selected)
        return m
