"""The shapes-VQA Qwen2-VL answering held-out questions with every linear layer run by a core.

The model is the hardware-exact integer path of
:func:`~spikemllm.golden.convert.integer_model.convert_integer`, calibrated as ``make eval``
calibrates it, with a :class:`~spikemllm.golden.convert.integer_model.Core` installed in
every linear layer (patch embedding, vision blocks, projector, language model, LM head).
What runs where, per layer call:

* **host, float -> integer**: the layer's input is quantized with its static input scale
  to the ``T + 1``-bit integers ``q`` that ``T`` TC-LIF steps carry (``T`` from the
  schedule for the layer unit and the tokens' modality);
* **core**: the layer's program (:func:`~spikemllm.firmware.compiler.compile_layer` of
  the ``(layer, modality, T)`` program: weight rows, biases, requantizer multipliers and
  shifts) is loaded through the core's load streams and registers, the tokens are
  streamed in as spike-vector beats tagged with their modality and layer (the core takes
  ``T`` from its timestep table, programmed once from the schedule file), and the
  requantized ``out_bits`` integers are read back from the output stream;
* **host, integer -> float**: the integers times the per-channel output scales; then
  norms, activations, attention products and softmax, rotary embeddings, residual
  additions, patch merging, token embeddings and the answer's argmax, in float.

So the answer comes from the integers the core returned. Two cores implement the
layer calls: :class:`GoldenCore`, the golden integer path (it records every call), and
:class:`RtlCore`, which executes every call on a SpikeCore through a blocking ``execute``
function (the cocotb testbench :mod:`.vqa` gives one that drives the RTL under Verilator
through the firmware driver) and checks each run on the spot: outputs against the golden
spike path on the same integers, ``CYCLES`` and ``EVENTS`` against the cycle model
(:func:`~spikemllm.golden.timing.core_model.core_cycles`) and ``CYCLES`` against the
backend's own count of the run's clock cycles. :func:`compare_question` then checks a
question's RTL calls against an independent golden forward pass: the same calls with the
same integers in and out, the same counters as the cycle model and the same answer.
Every mismatch raises :class:`CoreMismatch` naming the question, the layer, the modality
and the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from spikemllm.firmware.compiler import LayerProgram, compile_layer, timestep_table, token_beats
from spikemllm.golden.convert.integer_model import (
    CLIPS,
    IntegerLinear,
    StaticProgram,
    convert_integer,
    integer_layers,
    set_core,
)
from spikemllm.golden.convert.model import set_schedule
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.timing.core_model import core_cycles
from spikemllm.golden.vqa.data import VOCAB, Sample, collate, generate
from spikemllm.golden.vqa.evaluate import CALIBRATION_SEED, INTEGER_CONFIG
from spikemllm.golden.vqa.model import answers, load_checkpoint
from spikemllm.golden.vqa.train import HELDOUT_SEED

from spikemllm.config import AcceleratorConfig
from spikemllm.modality import Modality, timestep_index

__all__ = ["CALIBRATION_SCENES", "DEFAULT_CLIP", "CoreMismatch", "LayerRun", "QuestionRun", "ModelRun", "load_model_run", "heldout_questions",
           "GoldenCore", "RtlCore", "compare_question"]

CALIBRATION_SCENES = 128
"""Calibration scenes of the static scales, in batches of :data:`CALIBRATION_BATCH`, from the
training split (seed :data:`~spikemllm.golden.vqa.evaluate.CALIBRATION_SEED`): as ``make eval``."""
CALIBRATION_BATCH = 64
DEFAULT_CLIP = "mse"
"""The input-scale rule: the one ``make eval`` chooses for the committed checkpoint (on its
validation questions; ``integer_path.clip`` in ``accuracy.json``)."""


class CoreMismatch(AssertionError):
    """The core's outputs, counters or answer differ from the golden model's."""


@dataclass
class LayerRun:
    """One layer call's integer step: the tokens of one modality through one program."""

    layer: str
    """module path of the linear layer"""
    unit: str
    """its layer unit (schedule entry); its index in the schedule is the tokens' layer tag"""
    modality: int
    timesteps: int
    tokens: list[int]
    """positions of the tokens among the call's tokens"""
    q: torch.Tensor
    """int64 ``(tokens, in)``: the activations the host quantized"""
    outputs: torch.Tensor
    """int64 ``(tokens, out)``: the requantized integers the core returned"""
    cycles: int
    """the run's ``CYCLES`` counter (the cycle model's for the golden core)"""
    events: int
    """the run's ``EVENTS`` counter (the cycle model's for the golden core)"""
    model_cycles: int
    model_events: int
    weight_rows: int = 0
    """weight-memory rows the program loads"""
    clock_cycles: int = 0
    """RTL: clock cycles of the whole call (program load, registers, run, counters)"""
    seconds: float = 0.0
    """wall time of the call (RTL: including the simulation)"""

    @property
    def label(self) -> str:
        return Modality(self.modality).label

    def summary(self) -> dict:
        return {"layer": self.layer, "unit": self.unit, "modality": self.label, "T": self.timesteps,
                "tokens": len(self.tokens), "in": self.q.shape[1], "out": self.outputs.shape[1],
                "cycles": self.cycles, "model_cycles": self.model_cycles, "events": self.events,
                "weight_rows": self.weight_rows, "clock_cycles": self.clock_cycles}


@dataclass
class QuestionRun:
    """One question answered through a core: the answer and every layer call."""

    index: int
    answer: int
    """the greedy answer's token id"""
    runs: list[LayerRun]
    seconds: float

    @property
    def word(self) -> str:
        return VOCAB.decode([self.answer])[0]


def heldout_questions(count: int, first: int = 0) -> list[Sample]:
    """Held-out questions ``first .. first + count - 1`` of the split ``make eval`` measures
    (seed :data:`~spikemllm.golden.vqa.train.HELDOUT_SEED`; the generator is sequential, so
    they are the first of its 1,000)."""
    for name, value, low in (("count", count, 1), ("first", first, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    return generate(first + count, HELDOUT_SEED, split="heldout")[first:]


class _Calls:
    """What the cores share: the model run, the question in progress and its calls."""

    def __init__(self, run: "ModelRun"):
        self.run = run
        self.question = -1
        self.words: list[str] = []
        self.runs: list[LayerRun] = []

    def start(self, question: int, words: list[str]) -> None:
        self.question, self.words, self.runs = question, words, []

    def where(self, layer: str, modality: int, T: int, token: int | None = None) -> str:
        """``question n: layer (modality, T=..)[: token p (word)]`` for messages."""
        text = f"question {self.question}: {layer} ({Modality(modality).label}, T={T})"
        if token is None:
            return text
        if ".language_model." in f".{layer}" or layer == "lm_head":
            name = self.words[token] if token < len(self.words) else "?"
        else:
            name = "image patch" if "merger" not in layer else "merged image patch"
        return f"{text}: token {token} ({name})"

    def model_counters(self, program: LayerProgram, q: torch.Tensor, T: int):
        padded = torch.zeros(q.shape[0], program.padded_in, dtype=torch.int64)
        padded[:, : program.in_features] = q
        return core_cycles(program.config, padded, torch.full((q.shape[0],), T), program.out_tiles)


class GoldenCore(_Calls):
    """The golden integer path as a core: requantized integers of the dense integer product
    (equal to TC-LIF spikes through ``spike_linear``), counters from the cycle model."""

    def __call__(self, layer: IntegerLinear, modality: int, program: StaticProgram, q: torch.Tensor,
                 tokens: torch.Tensor) -> torch.Tensor:
        start = time.monotonic()
        out = program.integers(q)
        compiled = self.run.compiled(layer, modality, program)
        model = self.model_counters(compiled, q, program.timesteps)
        self.runs.append(LayerRun(self.run.path(layer), layer.layer_name, modality, program.timesteps, tokens.tolist(),
                                  q.clone(), out.clone(), model.cycles, model.events, model.cycles, model.events,
                                  len(compiled.weight_rows), 0, time.monotonic() - start))
        return out


Execute = Callable[[LayerProgram, list, int], tuple]
"""``execute(program, beats, tokens) -> (RunResult, clock_cycles)``: load ``program`` into a
core, run ``tokens`` tokens given as input ``beats``, return the driver's
:class:`~spikemllm.firmware.driver.RunResult` and the clock cycles the whole call took."""


class RtlCore(_Calls):
    """Each layer call executed on a SpikeCore through ``execute`` (blocking), checked on the spot.

    The table layer of the tokens is their unit's index in the schedule; the ``T`` the
    core reads from its table must be the program's. Raises :class:`CoreMismatch` naming
    question, layer, modality and token when an output differs from the golden spike path
    (:meth:`StaticProgram.integers` with ``spikes=True``) on the same integers, an output
    beat comes out of order, or ``CYCLES``/``EVENTS`` differ from the cycle model or
    ``CYCLES`` from the backend's count of the run's clock cycles.
    """

    def __init__(self, run: "ModelRun", execute: Execute):
        super().__init__(run)
        self.execute = execute

    def __call__(self, layer: IntegerLinear, modality: int, program: StaticProgram, q: torch.Tensor,
                 tokens: torch.Tensor) -> torch.Tensor:
        start = time.monotonic()
        path, T, n = self.run.path(layer), program.timesteps, q.shape[0]
        unit = self.run.unit_index(layer)
        table_T = self.run.table[timestep_index(unit, modality)]
        if table_T != T:
            raise CoreMismatch(f"{self.where(path, modality, T)}: the timestep table holds T={table_T} for layer "
                               f"{unit} ({layer.layer_name}); the host quantized for T={T}")
        compiled = self.run.compiled(layer, modality, program)
        beats = token_beats(compiled, q, torch.full((n,), modality), unit)
        result, clock_cycles = self.execute(compiled, beats, n)
        outputs = self._decode(result.outputs, compiled, path, modality, T, tokens)
        golden = program.integers(q, spikes=True)
        wrong = (outputs != golden).any(dim=1).nonzero().flatten().tolist()
        if wrong:
            t = wrong[0]
            channels = (outputs[t] != golden[t]).nonzero().flatten().tolist()
            raise CoreMismatch(
                f"{self.where(path, modality, T, int(tokens[t]))}: {len(channels)} outputs differ from the golden "
                f"model, first channel {channels[0]}: RTL {int(outputs[t, channels[0]])}, golden "
                f"{int(golden[t, channels[0]])} ({len(wrong)} of {n} tokens differ)")
        model = self.model_counters(compiled, q, T)
        counters = result.counters
        if not counters["CYCLES"] == model.cycles == result.transfer_cycles or counters["EVENTS"] != model.events:
            raise CoreMismatch(
                f"{self.where(path, modality, T)}: CYCLES {counters['CYCLES']} (backend count {result.transfer_cycles}), "
                f"EVENTS {counters['EVENTS']}; the cycle model predicts {model.cycles} cycles, {model.events} events")
        self.runs.append(LayerRun(path, layer.layer_name, modality, T, tokens.tolist(), q.clone(), outputs.clone(),
                                  counters["CYCLES"], counters["EVENTS"], model.cycles, model.events,
                                  len(compiled.weight_rows), clock_cycles, time.monotonic() - start))
        return outputs

    def _decode(self, beats: list, program: LayerProgram, path: str, modality: int, T: int,
                tokens: torch.Tensor) -> torch.Tensor:
        """Output beats (one per tile per token, in order) -> ``(tokens, out_features)``."""
        J, P = program.out_tiles, program.config.pes
        if len(beats) != len(tokens) * J:
            raise CoreMismatch(f"{self.where(path, modality, T)}: {len(beats)} output beats, expected "
                               f"{len(tokens)} tokens x {J} tiles")
        rows = []
        for b, beat in enumerate(beats):
            t, j = divmod(b, J)
            if beat["tile"] != j or beat["last"] != int(j == J - 1) or len(beat["values"]) != P:
                raise CoreMismatch(f"{self.where(path, modality, T, int(tokens[t]))}: output beat {b} is tile "
                                   f"{beat['tile']} (last={beat['last']}), expected tile {j} of {J}")
            rows.append(beat["values"])
        out = torch.tensor(rows, dtype=torch.int64).reshape(len(tokens), J * P)
        return out[:, : program.out_features]


@dataclass
class ModelRun:
    """The integer model of a checkpoint, its schedule and the core it is compiled for."""

    model: torch.nn.Module
    """the calibrated integer model (:func:`convert_integer`)"""
    float_model: torch.nn.Module
    schedule: Schedule
    config: AcceleratorConfig
    checkpoint: Path
    meta: dict
    table: list[int] = field(init=False)
    """the core's ``TTABLE`` entries from the schedule"""

    def __post_init__(self):
        self.table = timestep_table(self.config, self.schedule)
        self._paths = {id(m): name for name, m in integer_layers(self.model).items()}
        self._compiled: dict[tuple, LayerProgram] = {}

    def path(self, layer: IntegerLinear) -> str:
        return self._paths[id(layer)]

    def unit_index(self, layer: IntegerLinear) -> int:
        return self.schedule.layers.index(layer.layer_name)

    def compiled(self, layer: IntegerLinear, modality: int, program: StaticProgram) -> LayerProgram:
        """The core program of ``program`` (compiled once per layer, modality and ``T``)."""
        key = (id(layer), modality, program.timesteps)
        if key not in self._compiled:
            self._compiled[key] = compile_layer(self.config, program.layer)
        return self._compiled[key]

    def answer(self, index: int, sample: Sample, core: _Calls) -> QuestionRun:
        """Answer ``sample`` with every layer's integer step on ``core``; ``index`` names it in messages."""
        start = time.monotonic()
        batch = collate([sample])
        core.start(index, VOCAB.decode(batch["inputs"]["input_ids"][0].tolist()))
        set_core(self.model, core)
        try:
            with torch.no_grad():
                answer = int(answers(self.model, batch)[0])
        finally:
            set_core(self.model, None)
        return QuestionRun(index, answer, core.runs, time.monotonic() - start)

    def float_answer_word(self, sample: Sample) -> str:
        """The float model's answer to ``sample``."""
        with torch.no_grad():
            return VOCAB.decode([int(answers(self.float_model, collate([sample]))[0])])[0]


def load_model_run(checkpoint: Path, schedule: Schedule, config: AcceleratorConfig = INTEGER_CONFIG, *,
                   calibration_scenes: int = CALIBRATION_SCENES, clip: str = DEFAULT_CLIP) -> ModelRun:
    """The integer model of ``checkpoint`` at ``schedule``, calibrated as ``make eval`` calibrates
    it (by default on :data:`CALIBRATION_SCENES` training-split scenes, fewer make a quicker
    set-up for tests; ``clip`` the input-scale rule, :data:`DEFAULT_CLIP` by default), every
    program compiled for ``config`` on first use (:func:`compile_layer` raises naming what
    does not fit)."""
    if isinstance(calibration_scenes, bool) or not isinstance(calibration_scenes, int) or calibration_scenes < 1:
        raise ValueError(f"calibration_scenes must be a positive integer, not {calibration_scenes!r}")
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, not {clip!r}")
    model, meta = load_checkpoint(checkpoint)
    scenes = generate(calibration_scenes, CALIBRATION_SEED, split="train")
    batches = [collate(scenes[i : i + CALIBRATION_BATCH])["inputs"] for i in range(0, len(scenes), CALIBRATION_BATCH)]
    integer = convert_integer(model, batches, schedule, config=config, clip=clip)
    set_schedule(integer, schedule)
    return ModelRun(integer, model, schedule, config, Path(checkpoint), meta)


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int] | None:
    """``(row, column)`` of the first element where ``a`` and ``b`` differ, or None."""
    if a.shape != b.shape:
        return (0, 0)
    where = (a != b).nonzero()
    return None if not len(where) else (int(where[0, 0]), int(where[0, 1]))


def compare_question(question: int, rtl: QuestionRun, golden: QuestionRun, calls: _Calls) -> None:
    """Raise :class:`CoreMismatch` at the first difference between a question's RTL calls
    and the golden path's: the calls (layer, modality, ``T``, tokens), the integers in and
    out, ``CYCLES`` and ``EVENTS`` against the cycle model on the golden integers, the answer."""
    if len(rtl.runs) != len(golden.runs):
        raise CoreMismatch(f"question {question}: {len(rtl.runs)} layer runs on the RTL, {len(golden.runs)} in golden")
    for r, g in zip(rtl.runs, golden.runs):
        if (r.layer, r.modality, r.timesteps, r.tokens) != (g.layer, g.modality, g.timesteps, g.tokens):
            raise CoreMismatch(f"question {question}: the RTL ran {r.layer} ({r.label}, T={r.timesteps}, "
                               f"{len(r.tokens)} tokens) where golden ran {g.layer} ({g.label}, T={g.timesteps}, "
                               f"{len(g.tokens)} tokens)")
        for what, x, y in (("input", r.q, g.q), ("output", r.outputs, g.outputs)):
            diff = _first_difference(x, y)
            if diff is not None:
                t, c = diff
                raise CoreMismatch(
                    f"{calls.where(r.layer, r.modality, r.timesteps, r.tokens[t])}: {what} channel {c} is "
                    f"{int(x[t, c]) if x.shape == y.shape else tuple(x.shape)} on the RTL path, "
                    f"{int(y[t, c]) if x.shape == y.shape else tuple(y.shape)} on the golden path")
        if (r.cycles, r.events) != (g.model_cycles, g.model_events):
            raise CoreMismatch(f"{calls.where(r.layer, r.modality, r.timesteps)}: CYCLES {r.cycles}, EVENTS {r.events} "
                               f"on the RTL; the cycle model gives {g.model_cycles} and {g.model_events} on the golden path")
    if rtl.answer != golden.answer:
        raise CoreMismatch(f"question {question}: the RTL path answers {rtl.word!r}, the golden path {golden.word!r}")
