"""The four pipeline blocks connected: activations in, golden requantized outputs out."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from spikemllm.hw import Requantizer, SparseAccumulatePEArray, SpikeEventCompactor, TCLIFNeuronArray
from spikemllm.hw import signatures as sig
from spikemllm.sim.backends.amaranth_sim import run_phases
from spikemllm.sim.blocks import cases, expect
from spikemllm.sim.blocks.benches import codecs
from spikemllm.sim.patterns import pattern
from spikemllm.sim.streams import StreamDriver, StreamMonitor

from spikemllm.config import COUNT_CONFIG, SMALL_CONFIG


class SpikeLinearPipeline(wiring.Component):
    """Neuron array -> compactor -> PE array -> requantizer, for a fan-in of one spike vector."""

    def __init__(self, config):
        self.config = config
        super().__init__({
            "i": In(sig.ActivationStream(config)),
            "weights": In(sig.WeightWriteStream(config)),
            "params": In(sig.RequantParamsStream(config)),
            "o": Out(sig.OutputStream(config)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.neurons = neurons = TCLIFNeuronArray(config=c)
        m.submodules.compactor = compactor = SpikeEventCompactor(config=c)
        m.submodules.pes = pes = SparseAccumulatePEArray(config=c)
        m.submodules.requantizer = requantizer = Requantizer(config=c)
        wiring.connect(m, wiring.flipped(self.i), neurons.i)
        wiring.connect(m, neurons.o, compactor.i)
        wiring.connect(m, compactor.o, pes.i)
        wiring.connect(m, wiring.flipped(self.weights), pes.weights)
        wiring.connect(m, pes.o, requantizer.i)
        wiring.connect(m, wiring.flipped(self.params), requantizer.params)
        wiring.connect(m, requantizer.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("config", [SMALL_CONFIG, COUNT_CONFIG], ids=["small", "count"])
def test_blocks_chain_into_a_spike_linear_layer(config):
    case = cases.random_case(config, seed=9, tokens=5, chunks=1, density=0.7)
    k = codecs(config)
    expected = expect.output_expected(case)
    load = ([StreamDriver("weights", k["weight_write"], expect.weight_beats(case)),
             StreamDriver("params", k["requant_params"], [expect.params_beat(case)])], [])
    drive = ([StreamDriver("i", k["activation"], expect.activation_beats(case), pattern("random30", seed=3))],
             [StreamMonitor("o", k["output"], len(expected), pattern("bursts"))])
    results = run_phases(SpikeLinearPipeline(config), [load, drive])
    assert results[-1].beats("o") == expected
