"""What each block's testbench drives, expects and predicts, independent of the simulator.

:func:`bench` turns a block name, a :class:`~.expect.LinearCase` and stall patterns into a
:class:`Bench`: phases of drivers and monitors (loading phases first, e.g. weights or requantizer parameters,
then the measured phase), the beats every monitor must see (from the golden model through
:mod:`.expect`), and the cycle count the golden cycle model predicts for the measured
phase. :meth:`Bench.check` compares a run's results with all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spikemllm.golden import requantize
from spikemllm.golden.timing import cycle_model
from spikemllm.hw import signatures as sig
from spikemllm.hw.blocks import PIPELINE_BLOCKS, block_component
from spikemllm.sim.backends.amaranth_sim import run_phases
from spikemllm.sim.patterns import Pattern, always
from spikemllm.sim.payload import PayloadCodec
from spikemllm.sim.streams import BenchResult, StreamDriver, StreamMonitor, check_beats

from spikemllm.config import AcceleratorConfig

from . import expect

__all__ = ["Bench", "bench", "requantizer_bench", "codecs", "simulate", "vector_counts"]


def codecs(config: AcceleratorConfig) -> dict[str, PayloadCodec]:
    """A codec for every payload layout of ``config``."""
    return {
        "activation": PayloadCodec(sig.activation_vector_layout(config)),
        "spike_vector": PayloadCodec(sig.spike_vector_layout(config)),
        "event_beat": PayloadCodec(sig.event_beat_layout(config)),
        "weight_write": PayloadCodec(sig.weight_write_layout(config)),
        "accumulator": PayloadCodec(sig.accumulator_vector_layout(config)),
        "requant_params": PayloadCodec(sig.requant_params_layout(config)),
        "output": PayloadCodec(sig.output_vector_layout(config)),
    }


@dataclass
class Bench:
    """Phases to run, what the measured (final) phase's monitors must see, and its cycles."""

    block: str
    config: AcceleratorConfig
    label: str
    phases: list[tuple[list[StreamDriver], list[StreamMonitor]]]
    expected: dict[str, list]
    model_cycles: int
    ideal: bool
    """True when every pattern is ``always``: only then is the cycle count exact."""
    extra_checks: list = field(default_factory=list)

    def check(self, results: list[BenchResult]) -> None:
        """Raise ``AssertionError`` at the first difference from the golden model."""
        measured = results[-1]
        for name, expected in self.expected.items():
            check_beats(f"{self.block}/{self.label}/{name}", measured.beats(name), expected)
        for extra in self.extra_checks:
            extra(measured)
        if self.ideal and measured.cycles != self.model_cycles:
            raise AssertionError(
                f"{self.block}/{self.label}: {measured.cycles} cycles, cycle model predicts {self.model_cycles}"
            )
        if measured.cycles < self.model_cycles:
            raise AssertionError(
                f"{self.block}/{self.label}: {measured.cycles} cycles under stalls is fewer than the "
                f"ideal {self.model_cycles} of the cycle model"
            )


def bench(block: str, case: expect.LinearCase, *, source: Pattern = always, sink: Pattern = always,
          label: str = "") -> Bench:
    """The testbench of ``block`` for ``case`` with input pattern ``source`` and output
    pattern ``sink`` (loading streams use ``source`` too). Raises ``ValueError`` for an
    unknown block."""
    c = case.config
    k = codecs(c)
    ideal = source is always and sink is always
    label = label or case.name
    if block == "neuron_array":
        beats = expect.activation_beats(case)
        expected = expect.neuron_array_expected(case)
        phases = [([StreamDriver("i", k["activation"], beats, source)],
                   [StreamMonitor("o", k["spike_vector"], len(expected), sink)])]
        cycles = cycle_model.neuron_array_cycles([b["timesteps"] for b in beats], c)
        return Bench(block, c, label, phases, {"o": expected}, cycles, ideal)
    if block == "compactor":
        vectors = expect.spike_vector_beats(case)
        expected = expect.compact(vectors, c)
        phases = [([StreamDriver("i", k["spike_vector"], vectors, source)],
                   [StreamMonitor("o", k["event_beat"], len(expected), sink)])]
        cycles = cycle_model.compactor_cycles(vector_counts(vectors), c)

        def decodes_to_golden_spikes(result: BenchResult) -> None:
            steps = expect.scatter_events(result.beats("o"), case.fan_in)
            golden = [row for n in range(case.tokens) for row in case.spikes(n).tolist()]
            if steps != golden:
                bad = next(n for n, (a, b) in enumerate(zip(steps, golden)) if a != b) if len(steps) == len(golden) else None
                raise AssertionError(f"compactor/{label}: events decode to different spikes (first bad step {bad})")

        return Bench(block, c, label, phases, {"o": expected}, cycles, ideal, [decodes_to_golden_spikes])
    if block == "pe_array":
        events = expect.compact(expect.spike_vector_beats(case), c)
        expected = expect.accumulator_expected(case)
        load = ([StreamDriver("weights", k["weight_write"], expect.weight_beats(case), source)], [])
        run = ([StreamDriver("i", k["event_beat"], events, source)],
               [StreamMonitor("o", k["accumulator"], len(expected), sink)])
        cycles = cycle_model.pe_array_cycles(len(events), c)
        return Bench(block, c, label, [load, run], {"o": expected}, cycles, ideal)
    if block == "requantizer":
        beats = expect.accumulator_beats(case)
        expected = expect.output_expected(case)
        return _requantizer(case.config, beats, expected, expect.params_beat(case), source, sink, label)
    raise ValueError(f"unknown block {block!r}; known: {PIPELINE_BLOCKS}")


def _requantizer(config, beats, expected, params, source, sink, label) -> Bench:
    k = codecs(config)
    ideal = source is always and sink is always
    load = ([StreamDriver("params", k["requant_params"], [params], source)], [])
    run = ([StreamDriver("i", k["accumulator"], beats, source)],
           [StreamMonitor("o", k["output"], len(expected), sink)])
    cycles = cycle_model.requantizer_cycles([b["last"] for b in beats], config)
    return Bench("requantizer", config, label, [load, run], {"o": expected}, cycles, ideal)


def requantizer_bench(config: AcceleratorConfig, *, seed: int, source: Pattern = always,
                      sink: Pattern = always, label: str = "") -> Bench:
    """Requantizer alone over the whole accumulator range (:func:`.cases.requantizer_vectors`)."""
    from .cases import requantizer_vectors

    beats, acc, bias, mult, shift, lasts = requantizer_vectors(config, seed=seed)
    finals = lasts.bool()
    r = requantize(acc[finals], bias, mult, shift, config.out_bits)
    expected = [{"values": row} for row in r.tolist()]
    params = {"bias": bias.tolist(), "multiplier": mult.tolist(), "shift": shift.tolist()}
    return _requantizer(config, beats, expected, params, source, sink, label or f"range{seed}")


def vector_counts(vectors: list[dict]) -> list[cycle_model.SpikeVectorCount]:
    """What the compactor's timing sees of spike-vector beats: spike counts and flags."""
    return [cycle_model.SpikeVectorCount(sum(1 for s in v["spikes"] if s), bool(v["step_end"]), bool(v["last"]),
                                         bool(v.get("more", 0))) for v in vectors]


def simulate(b: Bench) -> BenchResult:
    """Run ``b`` on a fresh block in ``amaranth.sim`` and check it; return the measured phase.

    Raises ``AssertionError`` at the first difference from the golden or the cycle model.
    """
    results = run_phases(block_component(b.block, b.config), b.phases)
    b.check(results)
    return results[-1]
