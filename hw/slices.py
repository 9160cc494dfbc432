"""Lane slices of the spike core: ``S`` compactors and PE arrays, each with its own weight bank.

With ``slices = S > 1`` (:attr:`~spikemllm.config.AcceleratorConfig.slices`) the lanes of
a spike vector split into ``S`` groups of ``lanes / S`` consecutive lanes. Slice ``s``
takes lanes ``s * lanes / S .. (s + 1) * lanes / S - 1`` of every vector and runs them
through a :class:`~.compactor.SpikeEventCompactor` and a
:class:`~.pe_array.SparseAccumulatePEArray` of its own, both built for
:attr:`~spikemllm.config.AcceleratorConfig.slice_config` (``events_per_cycle / S`` events
per cycle). Each slice's PE array holds the weight rows of its lanes only, so it reads
``events_per_cycle / S`` rows per cycle from a memory of ``max_fan_in / S`` rows: with
``S = events_per_cycle`` every bank has one read port, where one memory would need
``events_per_cycle`` ports at arbitrary addresses.

Every slice accumulates the partial sums of its lanes (the same doubling at every step
end), so the sum of the slices' accumulator vectors of a step is the step's partial sum of
the whole layer, bit for bit: integer addition does not care how the inputs were split.
The slices move independently (a slice with fewer events in a step is ahead of the
others), joined at two points:

* **In.** A spike vector is taken when every slice's compactor has room for it (each
  compactor's ``ready`` is a register, so the join adds no loop).
* **Out.** The slices' accumulator vectors of a step leave together, when every slice
  holds one; :class:`SlicedPEArray` sums them on the way out (combinational, ``S - 1``
  adders per accumulator).

The cycle model is :class:`spikemllm.golden.timing.spike_datapath.SpikeDatapathModel`
with ``slices = S``, fed each vector's spikes per slice.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig

from .block import Block
from .compactor import SpikeEventCompactor
from .pe_array import SparseAccumulatePEArray, _tree_sum
from .signatures import AccumulatorStream, BundleAccumulatorStream, EventStream, SpikeVectorStream, WeightWriteStream

__all__ = ["SlicedCompactor", "SlicedPEArray"]


def _check_sliced(config) -> None:
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    if config.slices < 2:
        raise ValueError(f"a sliced block needs slices >= 2, not {config.slices!r}")


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
        _check_sliced(config)

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
            lanes = slice(s * width, (s + 1) * width)
            p, q = comp.i.p, self.i.p
            if c.bundle == 1:
                m.d.comb += [p.spikes[n].eq(q.spikes[lanes.start + n]) for n in range(width)]
            else:
                m.d.comb += [p.spikes[b][n].eq(q.spikes[b][lanes.start + n]) for b in range(c.bundle)
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


class SlicedPEArray(Block):
    """``S = slices`` PE arrays, one per lane slice, each with its weight bank; their
    accumulator vectors summed as they leave (see the module text).

    Ports: ``i[S]`` (in, each slice's event beats), ``weights`` (in, weight-row writes with
    the layer's ``addr = tile * IN + input``: the row goes to the bank of the input's lane
    slice, at the slice's row), ``o`` (out, the summed accumulator vectors, as a
    :class:`~.pe_array.SparseAccumulatePEArray` of the whole configuration gives them).

    Raises ``TypeError`` if ``config`` is not an :class:`AcceleratorConfig`, ``ValueError``
    if it has fewer than two slices.
    """

    @classmethod
    def check_config(cls, config, **params) -> None:
        _check_sliced(config)

    def __init__(self, *, config: AcceleratorConfig):
        super().__init__({
            "i": In(EventStream(config.slice_config)).array(config.slices),
            "weights": In(WeightWriteStream(config)),
            "o": Out(AccumulatorStream(config) if config.bundle == 1 else BundleAccumulatorStream(config)),
        }, config=config)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        S, sub, B = c.slices, c.slice_config, c.bundle
        lane_bits, sub_lane_bits = c.lane_index_width, sub.lane_index_width
        arrays = [SparseAccumulatePEArray(config=sub) for _ in range(S)]
        addr = self.weights.p.addr
        target = addr[sub_lane_bits:lane_bits]  # the lane slice of the row's input
        local = Cat(addr[:sub_lane_bits], addr[lane_bits:])
        all_valid = Signal()
        m.d.comb += all_valid.eq(Cat(pe.o.valid for pe in arrays).all())
        for s, pe in enumerate(arrays):
            m.submodules[f"slice_{s}"] = pe
            m.d.comb += [
                pe.i.valid.eq(self.i[s].valid),
                pe.i.p.eq(self.i[s].p),
                self.i[s].ready.eq(pe.i.ready),
                pe.weights.valid.eq(self.weights.valid & (target == s)),
                pe.weights.p.addr.eq(local),
                pe.weights.p.row.eq(self.weights.p.row),
                pe.o.ready.eq(self.o.ready & all_valid),
            ]
            with m.If(target == s):
                m.d.comb += self.weights.ready.eq(pe.weights.ready)
        acc = signed(c.acc_width)
        for b in range(B):
            for p in range(c.pes):
                terms = [pe.o.p.acc[p] if B == 1 else pe.o.p.acc[b][p] for pe in arrays]
                out = self.o.p.acc[p] if B == 1 else self.o.p.acc[b][p]
                m.d.comb += out.eq(_tree_sum(m, terms, acc, name=f"sum_b{b}_p{p}"))
        m.d.comb += [
            self.o.valid.eq(all_valid),
            self.o.p.step.eq(arrays[0].o.p.step),
            self.o.p.last.eq(arrays[0].o.p.last),
        ]
        return m
