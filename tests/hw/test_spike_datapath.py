"""The spike core's datapath under the shell's back-to-back contract: the next tile begins in
the cycle the datapath finishes issuing the current one, the compactor packs the two tiles'
events into shared beats, and a tile's final accumulators wait on ``o`` while the next tile
accumulates. Per-step partial sums against the golden model, cycles against the stepped
datapath model (:func:`spikemllm.golden.timing.spike_datapath.run_back_to_back`)."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from amaranth.hdl import Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from spikemllm.golden import spike_linear
from spikemllm.golden.timing.spike_datapath import pack, run_back_to_back, slice_counts, vector_counts
from spikemllm.hw import signatures as sig
from spikemllm.hw.core import SpikeCore, neuron_input_layout
from spikemllm.hw.core_shell import Feed
from spikemllm.sim.backends.amaranth_sim import run_phases
from spikemllm.sim.blocks.benches import codecs
from spikemllm.sim.blocks.expect import encode
from spikemllm.sim.patterns import always, pattern
from spikemllm.sim.payload import PayloadCodec
from spikemllm.sim.streams import StreamDriver, StreamMonitor

from spikemllm.config import SMALL_CONFIG


class BackToBackDatapath(wiring.Component):
    """:meth:`SpikeCore.elaborate_datapath` with a stand-in shell: one token's ``K`` chunks
    in an activation memory, ``tiles`` output tiles begun back to back (a beat on ``go``
    begins the first; each next one begins in the cycle the datapath raises ``finished``)."""

    def __init__(self, config, chunks: list[list[int]], T: int, tiles: int):
        self.config, self.chunks, self.T, self.tiles = config, chunks, T, tiles
        super().__init__({
            "go": In(stream.Signature(data.StructLayout({"x": 1}))),
            "weights": In(sig.WeightWriteStream(config)),
            "o": Out(sig.AccumulatorStream(config)),
            # every beat the PE array takes, with its number of events (a monitor, never stalled)
            "beats": Out(stream.Signature(data.StructLayout({"events": range(config.events_per_cycle + 1)}))),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        K = len(self.chunks)
        # rows as the core's token loader writes them: sign and clamped magnitude per lane
        top = (1 << (c.act_bits - 1)) - 1
        rows = [[{"magnitude": min(abs(q), top), "negative": int(q < 0)} for q in chunk] for chunk in self.chunks]
        empty = [{"magnitude": 0, "negative": 0}] * c.lanes
        m.submodules.activations = act = Memory(shape=neuron_input_layout(c), depth=2 * c.in_chunks_max,
                                                init=rows + [empty] * (2 * c.in_chunks_max - K))
        in_features = K * c.lanes
        tile_base = Signal(c.index_width + 1)
        remaining = Signal(range(self.tiles + 1))
        begin = Signal()
        # the datapath builder needs only the configuration, not a whole core
        datapath = SpikeCore.elaborate_datapath(SimpleNamespace(config=c), m, Feed(
            act_read=act.read_port(), bank=Const(0, 1), timesteps=Const(self.T, c.timesteps_width),
            tile_base=tile_base, in_chunks=Const(K, range(c.in_chunks_max + 1)),
            in_features=Const(in_features, c.index_width + 1), begin=begin, flush=Const(0, 1),
        ))
        array = datapath.array
        wiring.connect(m, wiring.flipped(self.weights), array.weights)
        wiring.connect(m, array.o, wiring.flipped(self.o))
        m.d.comb += [self.beats.valid.eq(datapath.take), self.beats.p.events.eq(datapath.work)]
        start = self.go.valid & self.go.ready
        m.d.comb += [self.go.ready.eq(1), begin.eq(start | (datapath.finished & (remaining != 0)))]
        with m.If(start):
            m.d.sync += [tile_base.eq(0), remaining.eq(self.tiles - 1)]
        with m.Elif(begin):
            m.d.sync += [tile_base.eq(tile_base + in_features), remaining.eq(remaining - 1)]
        return m


def _case(config, *, seed, chunks, T, tiles, density):
    g = torch.Generator().manual_seed(seed)
    in_features = chunks * config.lanes
    m = config.coding.max_value(T)
    q = torch.randint(-m, m + 1, (in_features,), generator=g) * (torch.rand(in_features, generator=g) < density)
    Qw = config.weight_max
    weights = torch.randint(-Qw, Qw + 1, (tiles, config.pes, in_features), generator=g)
    return q, weights


@pytest.mark.parametrize("E, S, density, sink", [
    (1, 1, 0.5, "always"),
    (2, 1, 0.3, "always"),
    (3, 1, 0.8, "always"),
    (2, 1, 0.05, "always"),    # sparse: tiles whose steps fit one beat
    (2, 1, 0.5, "random30"),   # the tile's final vector waits on o while the next tile accumulates
    (4, 1, 0.6, "bursts"),
    (2, 2, 0.5, "always"),     # lane slices: their partial sums add up to the layer's
    (4, 4, 0.3, "always"),     # a single-port weight bank per slice
    (4, 2, 0.6, "random30"),   # slices wait for each other on o
])
def test_tiles_back_to_back(E, S, density, sink):
    config = dataclasses.replace(SMALL_CONFIG, name=f"b2b_e{E}_s{S}", events_per_cycle=E, max_fan_in=128, slices=S)
    chunks, T, tiles = 3, config.t_max, 3
    q, weights = _case(config, seed=E, chunks=chunks, T=T, tiles=tiles, density=density)
    spikes = encode(q, T, config)
    lanes = config.lanes
    expected = []
    for j in range(tiles):
        _, partials = spike_linear(spikes.unsqueeze(1), weights[j], coding=config.coding, return_partials=True)
        expected += [{"acc": partials[t, 0].tolist(), "step": t, "last": int(t == T - 1)} for t in range(T)]
    k = codecs(config)
    rows = [{"addr": j * chunks * lanes + i, "row": weights[j, :, i].tolist()}
            for j in range(tiles) for i in range(chunks * lanes)]
    dut = BackToBackDatapath(config, [q[n * lanes:(n + 1) * lanes].tolist() for n in range(chunks)], T, tiles)
    sink_pattern = always if sink == "always" else pattern(sink, seed=3)
    nonzeros = slice_counts((spikes != 0).reshape(T * chunks, lanes), S)
    tile = vector_counts(nonzeros, chunks)
    monitors = [StreamMonitor("o", k["accumulator"], len(expected), sink_pattern)]
    if S == 1:  # with slices, the beats of a cycle are several slices' (the model's work below)
        # each tile's final vector says that the next one follows, so beats span tiles
        packed = pack(vector_counts(nonzeros, chunks, more=True) * (tiles - 1) + tile, E)
        monitors.append(StreamMonitor("beats", PayloadCodec(data.StructLayout({"events": range(E + 1)})), len(packed)))
    phases = [
        ([StreamDriver("weights", k["weight_write"], rows)], []),
        ([StreamDriver("go", PayloadCodec(data.StructLayout({"x": 1})), [{"x": 0}])], monitors),
    ]
    result = run_phases(dut, phases)[-1]
    assert result.beats("o") == expected
    if S == 1:
        assert [b["events"] for b in result.beats("beats")] == [p.events for p in packed]
    model = run_back_to_back([tile] * tiles, E, slices=S)
    if sink == "always":
        assert result.cycles == model
    else:
        assert result.cycles >= model
