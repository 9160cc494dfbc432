"""Lane slices of the spike core: ``S`` compactors, each feeding its own weight bank.

With ``slices = S > 1`` (:attr:`~spikemllm.config.AcceleratorConfig.slices`) the lanes of
a spike vector split into ``S`` groups of ``lanes / S`` consecutive lanes. Slice ``s``
takes lanes ``s * lanes / S .. (s + 1) * lanes / S - 1`` of every vector and packs their
events in a :class:`~.compactor.SpikeEventCompactor` of its own, built for
:attr:`~spikemllm.config.AcceleratorConfig.slice_config` (``events_per_cycle / S`` events
per cycle). The PE array (:class:`~.pe_array.SparseAccumulatePEArray`) keeps one weight
bank per slice, holding the rows of that slice's lanes (``max_fan_in / S`` rows), and
slice ``s``'s events occupy slots ``s * E / S .. (s + 1) * E / S - 1`` of its beats and
read bank ``s`` only. So a bank serves ``E / S`` reads per cycle: with
``S = events_per_cycle`` every bank has one port, where one memory would need
``events_per_cycle`` read ports at arbitrary rows.

The slices move independently within a step, and meet at its end: the neuron stage issues
a spike vector when every compactor has room for it (each compactor's ``ready`` is a
register, so this adds no loop), and the PE array takes a slice's beat that ends a step
only together with every other slice's, as one beat ending the step for all (the
accumulators double once). A step therefore takes as long as its busiest slice.

The cycle model is :class:`spikemllm.golden.timing.spike_datapath.SpikeDatapathModel`
with ``slices = S``, fed each vector's spikes per slice.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig

from .block import Block
from .compactor import SpikeEventCompactor
from .signatures import EventStream, SpikeVectorStream

__all__ = ["SlicedCompactor"]


class SlicedCompactor(Block):
    """``S = slices`` compactors, one per lane slice (see the module text).

    Ports: ``i`` (in, spike vectors of all ``lanes``), ``o[S]`` (out, each slice's event
    beats, built for :attr:`~spikemllm.config.AcceleratorConfig.slice_config`: a slice's
    event index is its own weight bank's row, ``(index // lanes) * lanes / S + lane`` with
    ``lane`` the lane within the slice). ``i`` is taken when every compactor is ready.

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`, ``ValueError``
    if it has fewer than two slices.
    """

    @classmethod
    def check_config(cls, config, **params) -> None:
        super().check_config(config)
        if config.slices < 2:
            raise ValueError(f"a sliced compactor needs slices >= 2, not {config.slices!r}")

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(SpikeVectorStream(config)),
            "o": Out(EventStream(config.slice_config)).array(config.slices),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        S, sub = c.slices, c.slice_config
        width, shift = sub.lanes, (c.slices - 1).bit_length()
        comps = [SpikeEventCompactor(config=sub) for _ in range(S)]
        ready = Signal()
        m.d.comb += [ready.eq(Cat(comp.i.ready for comp in comps).all()), self.i.ready.eq(ready)]
        for s, comp in enumerate(comps):
            m.submodules[f"slice_{s}"] = comp
            first = s * width  # the slice's first lane
            p, q = comp.i.p, self.i.p
            if c.bundle == 1:
                m.d.comb += [p.spikes[n].eq(q.spikes[first + n]) for n in range(width)]
            else:
                m.d.comb += [p.spikes[b][n].eq(q.spikes[b][first + n]) for b in range(c.bundle)
                             for n in range(width)]
            m.d.comb += [
                comp.i.valid.eq(self.i.valid & ready),
                # base is a multiple of lanes: a slice's rows are that chunk's rows of its lanes
                p.base.eq(q.base >> shift),
                p.step.eq(q.step),
                p.step_end.eq(q.step_end),
                p.last.eq(q.last),
                p.more.eq(q.more),
                self.o[s].valid.eq(comp.o.valid),
                self.o[s].p.eq(comp.o.p),
                comp.o.ready.eq(self.o[s].ready),
            ]
        return m
