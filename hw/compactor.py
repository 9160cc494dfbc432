"""Spike-event compactor: a spike vector in, a stream of (index, sign) events out, zeros skipped."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import COMPACTOR_LATENCY

from .block import Block
from .signatures import EventStream, SpikeVectorStream

__all__ = ["SpikeEventCompactor"]


class SpikeEventCompactor(Block):
    """Turns ternary spike vectors into beats of up to ``E = events_per_cycle`` events.

    A spike vector is held in a pending mask of its non-zero lanes. Each cycle the ``E``
    lowest pending lanes are selected (``mask & -mask`` isolates the lowest, ``mask &
    (mask - 1)`` clears it, ``E`` times in a chain) and leave as events ``{valid, negative,
    index = base + lane}``, packed from slot 0; they are cleared from the mask when the
    beat is taken. The beat that empties the mask carries the vector's ``step_end`` and
    ``last`` flags; empty slots are all zero. An all-zero vector that ends a step produces one beat with no valid
    event (the end-of-step marker); an all-zero vector that does not end a step produces
    nothing.

    Ports: ``i`` (in, spike vectors), ``o`` (out, event beats).

    Latency: 1 cycle. Throughput: a vector with ``nnz`` non-zero spikes takes
    ``max(1, ceil(nnz / E))`` cycles, independent of ``lanes``; the next vector is taken
    in the cycle the current one's final beat leaves. Cycle model:
    :func:`spikemllm.golden.timing.cycle_model.compactor_cycles`.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`.
    """

    LATENCY = COMPACTOR_LATENCY

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(SpikeVectorStream(config)),
            "o": Out(EventStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        lanes = c.lanes

        full = Signal()
        pending = Signal(lanes)
        negative = Signal(lanes)
        base = Signal(c.index_width)
        step_end = Signal()
        last = Signal()

        mask = pending
        for k in range(c.events_per_cycle):
            lowest = Signal(lanes, name=f"lowest_{k}")
            lane = Signal(c.lane_index_width, name=f"lane_{k}")
            m.d.comb += lowest.eq(mask & (-mask)[:lanes])
            # One-hot to binary: bit j of the lane number is set by every lane n with bit j.
            m.d.comb += lane.eq(Cat(
                Cat(lowest[n] for n in range(lanes) if (n >> j) & 1).any()
                for j in range(c.lane_index_width)
            ))
            event = self.o.p.events[k]
            # An empty slot carries index 0, so a beat's payload is a function of its events.
            m.d.comb += [
                event.valid.eq(mask.any()),
                event.negative.eq((lowest & negative).any()),
                event.index.eq(Mux(mask.any(), base + lane, 0)),
            ]
            rest = Signal(lanes, name=f"pending_after_{k}")
            m.d.comb += rest.eq(mask & (mask - 1)[:lanes])
            mask = rest

        final = Signal()
        m.d.comb += final.eq(~mask.any())
        m.d.comb += [
            self.o.valid.eq(full & (pending.any() | step_end)),
            self.o.p.step_end.eq(step_end & final),
            self.o.p.last.eq(last & final),
        ]

        drain = Signal()
        m.d.comb += [
            drain.eq(full & final & (self.o.ready | ~self.o.valid)),
            self.i.ready.eq(~full | drain),
        ]

        with m.If(self.o.valid & self.o.ready & ~final):
            m.d.sync += pending.eq(mask)
        with m.If(drain):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            spikes = self.i.p.spikes
            m.d.sync += [
                full.eq(1),
                pending.eq(Cat(spikes[n] != 0 for n in range(lanes))),
                negative.eq(Cat(spikes[n] < 0 for n in range(lanes))),
                base.eq(self.i.p.base),
                step_end.eq(self.i.p.step_end),
                last.eq(self.i.p.last),
            ]
        return m
