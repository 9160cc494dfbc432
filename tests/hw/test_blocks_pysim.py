"""Fast amaranth.sim checks of every block against the golden model and its cycle model.

The same benches (drivers, monitors, golden expectations, cycle model) run under Verilator
in tests/sim; here they run in Amaranth's Python simulator on small configurations.
"""

import dataclasses

import pytest
import torch
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikemllm.config import COUNT_CONFIG, DEFAULT_CONFIG, SMALL_CONFIG
from spikemllm.golden import cycle_model
from spikemllm.hw import Requantizer, SparseAccumulatePEArray, SpikeEventCompactor, TCLIFNeuronArray
from spikemllm.hw import signatures as sig
from spikemllm.sim import cases, expect
from spikemllm.sim.benches import BLOCKS, bench, codecs, requantizer_bench
from spikemllm.sim.patterns import PATTERNS, pattern
from spikemllm.sim.pysim import run_phases
from spikemllm.sim.streams import StreamDriver, StreamMonitor, StreamProtocolError

DUT = {
    "neuron_array": TCLIFNeuronArray,
    "compactor": SpikeEventCompactor,
    "pe_array": SparseAccumulatePEArray,
    "requantizer": Requantizer,
}
CONFIGS = {"small": SMALL_CONFIG, "count": COUNT_CONFIG}


def run(b, config):
    results = run_phases(DUT[b.block](config=config), b.phases)
    b.check(results)
    return results[-1]


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("block", BLOCKS)
def test_edge_cases_and_exact_cycles(block, config):
    for case in cases.edge_cases(config) + [cases.extreme_accumulator_case(config)]:
        result = run(bench(block, case), config)
        assert result.cycles > 0


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_tiles(block, config, seed):
    case = cases.random_case(config, seed=seed, tokens=3, chunks=seed, density=0.3 * seed)
    run(bench(block, case), config)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("source, sink", [(s, k) for s in PATTERNS for k in PATTERNS if s != k][::3])
def test_every_stream_under_stalls(block, source, sink):
    case = cases.random_case(SMALL_CONFIG, seed=5, tokens=2, chunks=2)
    b = bench(block, case, source=pattern(source, seed=1), sink=pattern(sink, seed=2))
    run(b, SMALL_CONFIG)


@pytest.mark.parametrize("block", BLOCKS)
def test_real_minilm_data(block):
    run(bench(block, cases.real_data_case(SMALL_CONFIG)), SMALL_CONFIG)


def test_requantizer_over_the_accumulator_range():
    for seed in (1, 2):
        run(requantizer_bench(SMALL_CONFIG, seed=seed), SMALL_CONFIG)
    run(requantizer_bench(DEFAULT_CONFIG, seed=3, source=pattern("random30"), sink=pattern("bursts")), DEFAULT_CONFIG)


def test_out_of_range_timesteps_are_clamped():
    # The T field holds 0..7 but t_max is 4: 0 runs one step, 5..7 run t_max steps.
    c = SMALL_CONFIG
    q = torch.tensor([[3, -3, 15, -15, 0, 1, -1, 7]] * 4)
    case = expect.LinearCase(c, q, [0, 5, 7, 4], torch.ones(c.pes, c.lanes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                             torch.zeros(c.pes, dtype=torch.int64))
    result = run(bench("neuron_array", case), c)
    assert [b["step"] for b in result.beats("o")] == [0] + [0, 1, 2, 3] * 3


def test_compactor_cycles_do_not_grow_with_lanes():
    cycles = {}
    for lanes in (8, 64):
        c = dataclasses.replace(SMALL_CONFIG, name=f"lanes{lanes}", lanes=lanes, max_fan_in=lanes)
        q = torch.zeros(1, lanes, dtype=torch.int64)
        q[0, [1, 5]] = torch.tensor([15, -9])
        case = expect.LinearCase(c, q, [c.t_max], torch.zeros(c.pes, lanes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64))
        cycles[lanes] = run(bench("compactor", case), c).cycles
    assert cycles[8] == cycles[64]


class SpikeLinearPipeline(wiring.Component):
    """Neuron array -> compactor -> PE array -> requantizer, for a fan-in of one spike vector."""

    def __init__(self, config):
        self.config = config
        super().__init__({
            "i": In(sig.ActivationStream(config)),
            "weights": In(sig.WeightWriteStream(config)),
            "bias": In(sig.BiasStream(config)),
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
        wiring.connect(m, wiring.flipped(self.bias), pes.bias)
        wiring.connect(m, pes.o, requantizer.i)
        wiring.connect(m, wiring.flipped(self.params), requantizer.params)
        wiring.connect(m, requantizer.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_blocks_chain_into_a_spike_linear_layer(config):
    """The four blocks connected: activations in, golden requantized outputs out."""
    case = cases.random_case(config, seed=9, tokens=5, chunks=1, density=0.7)
    k = codecs(config)
    expected = expect.output_expected(case)
    load = ([StreamDriver("weights", k["weight_write"], expect.weight_beats(case)),
             StreamDriver("bias", k["bias"], [expect.bias_beat(case)]),
             StreamDriver("params", k["requant_params"], [expect.params_beat(case)])], [])
    drive = ([StreamDriver("i", k["activation"], expect.activation_beats(case), pattern("random30", seed=3))],
             [StreamMonitor("o", k["output"], len(expected), pattern("bursts"))])
    results = run_phases(SpikeLinearPipeline(config), [load, drive])
    assert results[-1].beats("o") == expected


def test_checkers_catch_wrong_data_and_wrong_cycle_counts():
    case = cases.random_case(SMALL_CONFIG, seed=3, tokens=2)
    b = bench("pe_array", case)
    b.expected["o"][1]["acc"][0] += 1
    with pytest.raises(AssertionError, match="beat 1"):
        run(b, SMALL_CONFIG)
    b = bench("compactor", case)
    b.model_cycles += 1
    with pytest.raises(AssertionError, match="cycle model predicts"):
        run(b, SMALL_CONFIG)


def test_monitor_catches_a_payload_changing_while_stalled():
    codec = codecs(SMALL_CONFIG)["output"]
    monitor = StreamMonitor("o", codec, 1, pattern("always"))
    monitor.observe(0, 1, 0, 5)
    with pytest.raises(StreamProtocolError, match="payload changed"):
        monitor.observe(1, 1, 1, 6)
    monitor = StreamMonitor("o", codec, 1, pattern("always"))
    monitor.observe(0, 1, 0, 5)
    with pytest.raises(StreamProtocolError, match="valid dropped"):
        monitor.observe(1, 0, 1, 5)


def test_cycle_model_of_a_whole_token_matches_the_pe_array():
    case = cases.random_case(SMALL_CONFIG, seed=4, tokens=1, chunks=1, timesteps=[4])
    nnz = [int((case.spikes(0)[t] != 0).sum()) for t in range(4)]
    beats = cycle_model.spike_linear_event_beats(nnz, SMALL_CONFIG)
    assert run(bench("pe_array", case), SMALL_CONFIG).cycles == cycle_model.pe_array_cycles(beats, SMALL_CONFIG)


def test_blocks_reject_a_non_config():
    for cls in DUT.values():
        with pytest.raises(TypeError, match="AcceleratorConfig"):
            cls(config={"lanes": 8})
