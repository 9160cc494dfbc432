"""Workloads for the SpikeCore testbenches: random and real converted layers, token
sequences mixing vision and text, and their golden outputs and cycle counts.

Three real workloads, chosen by name with :func:`workload_case`:

* ``"qwen2vl"`` (:func:`qwen2vl_case`): the query projection of layer 0 of the language
  model of the shapes-VQA Qwen2-VL trained here, over the tokens of real held-out images
  and questions, each tagged vision or text by the model's own token ids; read from the
  committed fixture ``sim/fixtures/qwen2vl_lm0_q_proj.json``, so no checkpoint is needed;
* ``"qwen2vl_mlp"`` (:func:`qwen2vl_mlp_case`): the same model's layer-0 MLP down
  projection over the same tokens, from ``sim/fixtures/qwen2vl_lm0_mlp_down_proj.json``;
  its 256 inputs make several spike vectors per token where the query projection's 96
  make one or two;
* ``"minilm"`` (:func:`minilm_case`): MiniLM's pretrained FFN layer 0 over real
  sentence tokens, with modality tags assigned in runs of three (a text-only model has
  no vision tokens of its own).

:data:`QWEN2VL_LAYERS` lists the Qwen2-VL layers with a fixture, by short name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import torch
from spikemllm.firmware.compiler import (
    LayerProgram,
    compile_layer,
    expected_outputs,
    timestep_table,
    token_beats,
    token_timesteps,
)
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.dense import fp16_layer_outputs
from spikemllm.golden.layer import IntegerLayer
from spikemllm.golden.quantize import quantize_per_token
from spikemllm.golden.timing.core_model import CoreCycles, core_cycles, dense_core_cycles
from spikemllm.hw.blocks import CoreKind, core_kind

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.modality import Modality

__all__ = ["LAYER", "Qwen2VLLayer", "QWEN2VL_LAYERS", "QWEN2VL_LAYER", "QWEN2VL_FIXTURE_NAME", "WORKLOADS",
           "QWEN2VL_WORKLOADS", "CoreCase", "case_schedule", "table_schedule", "random_case", "minilm_case",
           "qwen2vl_case", "qwen2vl_mlp_case", "qwen2vl_fixture", "qwen2vl_schedule", "fixture_parameters",
           "workload_case", "fitting_shape", "activation_bits", "spikes_by_modality", "core_expectation"]

LAYER = "encoder.layer.0.intermediate.dense"
"""The real layer of :func:`minilm_case`: MiniLM's first FFN input projection."""
MINILM_DESCRIPTION = "all-MiniLM-L6-v2 encoder.layer.0.intermediate.dense (pretrained), sliced"

QWEN2VL_GENERATOR = "python -m spikemllm.sim.fixtures.make_qwen2vl_fixture"


@dataclass(frozen=True)
class Qwen2VLLayer:
    """A layer of the shapes-VQA Qwen2-VL that a core workload runs, and its committed fixture."""

    name: str
    """short name, the generator's ``--layer`` and :func:`qwen2vl_case`'s ``layer``"""
    workload: str
    """the workload's name (:data:`WORKLOADS`)"""
    path: str
    """module path of the linear layer in the model"""
    fixture: str
    """file name of its fixture in ``sim/fixtures``"""

    @property
    def description(self) -> str:
        return f"shapes-VQA Qwen2-VL (trained by make train) {self.path}, sliced"

    @property
    def generator(self) -> str:
        """The command that writes the fixture (the query projection is the generator's default)."""
        return QWEN2VL_GENERATOR if self.name == "q_proj" else f"{QWEN2VL_GENERATOR} --layer {self.name}"


QWEN2VL_LAYERS = {
    layer.name: layer for layer in (
        Qwen2VLLayer("q_proj", "qwen2vl", "model.language_model.layers.0.self_attn.q_proj", "qwen2vl_lm0_q_proj.json"),
        Qwen2VLLayer("down_proj", "qwen2vl_mlp", "model.language_model.layers.0.mlp.down_proj",
                     "qwen2vl_lm0_mlp_down_proj.json"),
    )
}
"""The Qwen2-VL layers with a fixture: the layer-0 query projection (96 -> 96, with bias)
and the layer-0 MLP down projection (256 -> 96, no bias; its input is ``act(gate) * up``)."""

QWEN2VL_LAYER = QWEN2VL_LAYERS["q_proj"].path
"""The real layer of :func:`qwen2vl_case` by default: the shapes-VQA Qwen2-VL's layer-0 query projection."""
QWEN2VL_FIXTURE_NAME = QWEN2VL_LAYERS["q_proj"].fixture

FIXTURE_FIELDS = ("lanes", "pes", "act_bits", "weight_bits", "t_max", "coding", "max_fan_in", "max_out_tiles",
                  "bias_bits", "out_bits", "multiplier_bits", "shift_bits")
"""Configuration parameters a real-layer fixture's integers depend on: the slice's shape and
the quantization's widths (``events_per_cycle``, ``layers`` and the like do not matter)."""


@dataclass
class CoreCase:
    """One run: a compiled layer, its timestep schedule, input beats and what must come out."""

    program: LayerProgram
    schedule: Schedule
    """``T`` per layer and modality; the case's layer is ``schedule.layers[layer_index]``."""
    layer_index: int | list[int]
    """the tokens' layer tag, or one tag per token (a run mixing layers of the table)"""
    q: torch.Tensor
    modality: torch.Tensor
    timesteps: torch.Tensor
    beats: list
    expected: list
    model: CoreCycles
    workload: str = "random"
    """``"random"``, or the real workload's name (:data:`WORKLOADS`)"""
    layer_name: str = ""
    """module path of the real layer in its model"""
    description: str = ""
    """what the layer is, in a few words (model, layer, how it was cut)"""

    @property
    def tokens(self) -> int:
        return self.q.shape[0]

    @property
    def table(self) -> list[int]:
        """The ``TTABLE`` entries of :attr:`schedule` (:func:`~spikemllm.firmware.compiler.timestep_table`)."""
        return timestep_table(self.program.config, self.schedule)


def case_schedule(layer_index: int, tv: int, tt: int, *, name: str = "layer") -> Schedule:
    """A schedule of ``layer_index + 1`` language-model layers, each with vision ``tv`` and text ``tt``."""
    return table_schedule([(tv, tt)] * (layer_index + 1), name=name, layer_index=layer_index)


def table_schedule(steps, *, name: str = "layer", layer_index: int | None = None) -> Schedule:
    """A schedule of language-model layers with ``steps[n] = (vision T, text T)`` for layer
    ``n`` of the timestep table; layer ``layer_index`` (if given) is named ``name``, the
    others ``name`` plus their index."""
    names = [f"{name}{n}" if n != layer_index else name for n in range(len(steps))]
    return Schedule({n: {"vision": int(v), "text": int(t)} for n, (v, t) in zip(names, steps)},
                    {n: "language_model" for n in names}, meta={"purpose": "core testbench"})


def _finish(program: LayerProgram, schedule: Schedule, layer_index, q, modality, *, workload: str = "random",
            layer_name: str = "", description: str = "") -> CoreCase:
    T = token_timesteps(timestep_table(program.config, schedule), modality, layer_index)
    padded = torch.zeros(q.shape[0], program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = q
    return CoreCase(
        program, schedule, layer_index, q, modality, T,
        token_beats(program, q, modality, layer_index),
        expected_outputs(program, q, T),
        core_cycles(program.config, padded, T, program.out_tiles),
        workload, layer_name, description,
    )


def random_case(config: AcceleratorConfig, *, seed: int, tokens: int, in_features: int, out_features: int,
                tv: int = 1, tt: int = 1, layer_index=1, density: float = 0.6, steps=None,
                full_range: bool = False) -> CoreCase:
    """Random weights and activations; ``density`` is the fraction of non-zero activations.

    The timestep table holds vision ``tv`` and text ``tt`` for layers ``0 .. layer_index``,
    or ``steps`` (one ``(vision T, text T)`` per table layer) when given; ``layer_index``
    is every token's layer tag or one tag per token. Modality tags are random. Biases,
    multipliers and shifts scale the accumulators into the output range, or with
    ``full_range`` cover the whole range the configuration's fields hold (most outputs
    then saturate or round to zero).
    """
    g = torch.Generator().manual_seed(seed)
    wmax = (1 << (config.weight_bits - 1)) - 1
    weight = torch.randint(-wmax, wmax + 1, (out_features, in_features), generator=g)
    bias_full = (1 << (config.bias_bits - 1)) - 1
    bias_max = bias_full if full_range else min(1 << 10, bias_full)
    mb = config.multiplier_bits
    if full_range:
        multiplier, shift = (0, 1 << mb), (0, config.max_shift + 1)
    else:
        multiplier = (1 << (mb - 1), 1 << mb)
        shift = (min(mb, config.max_shift), min(config.max_shift, mb + 8) + 1)
    layer = IntegerLayer(
        weight, torch.randint(-bias_max, bias_max + 1, (out_features,), generator=g),
        torch.randint(*multiplier, (out_features,), generator=g),
        torch.randint(*shift, (out_features,), generator=g),
        out_bits=config.out_bits, weight_bits=config.weight_bits,
    )
    program = compile_layer(config, layer)
    if steps is None:
        schedule = case_schedule(layer_index if isinstance(layer_index, int) else max(layer_index), tv, tt)
    else:
        schedule = table_schedule(steps)
    modality = torch.randint(0, 2, (tokens,), generator=g)
    T = token_timesteps(timestep_table(config, schedule), modality, layer_index)
    limit = [config.coding.max_value(int(t)) for t in T]
    q = torch.stack([torch.randint(-m, m + 1, (in_features,), generator=g) for m in limit])
    q = q * (torch.rand(q.shape, generator=g) < density)
    return _finish(program, schedule, layer_index, q, modality)


def fitting_shape(config: AcceleratorConfig, *, chunks: int | None = None, tiles: int = 4) -> tuple[int, int]:
    """``(in, out)`` of a slice of a real layer that fits ``config``: up to ``chunks`` spike
    vectors, at most half the activation memory, and up to ``tiles`` output tiles within
    the weight memory. The defaults are MiniLM's 384 -> 1536 layer (``chunks = 384 //
    lanes``: its 384 inputs); the Qwen2-VL fixture asks for its 96 inputs (``chunks = 96 // lanes``)."""
    if chunks is None:
        chunks = max(1, 384 // config.lanes)
    k = max(1, min(chunks, config.in_chunks_max // 2))
    j = max(1, min(tiles, config.max_out_tiles, config.max_fan_in // (k * config.lanes)))
    return k * config.lanes, j * config.pes


def activation_bits(config: AcceleratorConfig, T: int) -> int:
    """Widest symmetric activation ``T`` steps carry: ``T + 1`` bits for TC-LIF; for count
    coding the widest ``b`` with ``2^(b-1) - 1 <= T``."""
    return T + 1 if config.coding is Coding.TC_LIF else (T + 1).bit_length()


def minilm_case(config: AcceleratorConfig, *, tokens: int = 12, in_features: int | None = None,
                out_features: int | None = None, tv: int = 3, tt: int = 4, layer_index: int = 0,
                schedule: Schedule | None = None) -> CoreCase:
    """A real converted layer: MiniLM's first FFN layer (pretrained weights) sliced to fit,
    its real captured inputs, tokens alternating in runs of vision and text.

    Each token is quantized per token to the bits its modality's ``T`` carries (so vision
    and text tokens carry different precision), weights per channel, requantization to
    ``config.out_bits`` with scales calibrated on the same tokens. The per-token scales
    stay with the host, which applies them to the outputs. ``in_features`` and
    ``out_features`` default to :func:`fitting_shape`. ``schedule`` (e.g. loaded from a
    schedule file) gives the layer's ``T`` instead of ``tv``/``tt``.
    """
    from spikemllm.golden.real_data import capture_linear_inputs

    if in_features is None or out_features is None:
        in_features, out_features = fitting_shape(config)
    x, linear = capture_linear_inputs(LAYER)
    if in_features > x.shape[1] or out_features > linear.out_features:
        raise ValueError(f"MiniLM's layer is {x.shape[1]} -> {linear.out_features}; "
                         f"a slice of {in_features} -> {out_features} does not fit in it")
    x = x[:tokens, :in_features].double()
    sliced = torch.nn.Linear(in_features, out_features)
    with torch.no_grad():
        sliced.weight.copy_(linear.weight[:out_features, :in_features])
        sliced.bias.copy_(linear.bias[:out_features])
    if schedule is None:
        schedule = case_schedule(layer_index, tv, tt, name=LAYER)
    table = timestep_table(config, schedule)
    modality = torch.tensor([Modality.VISION if (n // 3) % 2 == 0 else Modality.TEXT for n in range(x.shape[0])])
    T = token_timesteps(table, modality, layer_index)
    q = torch.empty(x.shape, dtype=torch.int64)
    scales = torch.empty(x.shape[0])
    for t in T.unique().tolist():
        rows = T == t
        qq, s = quantize_per_token(x[rows], activation_bits(config, int(t)))
        q[rows], scales[rows] = qq, s.squeeze(1).float()
    # Static per-layer scales for the integer layer: the median token scale in, and the
    # output range of the float layer out.
    in_scale = float(scales.median())
    with torch.no_grad():
        y = sliced(x.float())
    out_scale = float(y.abs().max()) / ((1 << (config.out_bits - 1)) - 1)
    layer = IntegerLayer.from_linear(sliced, in_scale=in_scale, out_scale=out_scale, out_bits=config.out_bits,
                                     weight_bits=config.weight_bits, multiplier_bits=config.multiplier_bits)
    return _finish(compile_layer(config, layer), schedule, layer_index, q, modality, workload="minilm",
                   layer_name=LAYER, description=MINILM_DESCRIPTION)


def fixture_parameters(config: AcceleratorConfig) -> dict:
    """The parameters of ``config`` a real-layer fixture's integers depend on (:data:`FIXTURE_FIELDS`)."""
    return {name: getattr(config, name) for name in FIXTURE_FIELDS}


def _qwen2vl_layer(layer: str) -> Qwen2VLLayer:
    if layer not in QWEN2VL_LAYERS:
        raise ValueError(f"layer must be one of {tuple(QWEN2VL_LAYERS)}, not {layer!r}")
    return QWEN2VL_LAYERS[layer]


@lru_cache(maxsize=len(QWEN2VL_LAYERS))
def _read_qwen2vl_fixture(file_name: str) -> str:
    return (resources.files("spikemllm.sim") / "fixtures" / file_name).read_text()


def qwen2vl_fixture(layer: str = "q_proj") -> dict:
    """The committed fixture of the Qwen2-VL layer ``layer`` (:data:`QWEN2VL_LAYERS`; a fresh
    copy; ``sim/fixtures/make_qwen2vl_fixture.py`` writes it). Raises ``ValueError`` for
    another layer."""
    return json.loads(_read_qwen2vl_fixture(_qwen2vl_layer(layer).fixture))


def qwen2vl_schedule(fixture: dict | None = None) -> Schedule:
    """The schedule the fixture was made at, over every layer unit of the model: the
    fixture's ``T`` per modality everywhere (vision only in the vision encoder and projector)."""
    fixture = qwen2vl_fixture() if fixture is None else fixture
    steps = fixture["schedule"]["timesteps"]
    timesteps = {u["name"]: {m: steps[m] for m in u["modalities"]} for u in fixture["units"]}
    stages = {u["name"]: u["stage"] for u in fixture["units"]}
    return Schedule(timesteps, stages, meta={"allocator": "uniform", "source": fixture["schedule"]["source"],
                                             "purpose": "core testbench, qwen2vl workload"})


def _qwen2vl_entry(fixture: dict, config: AcceleratorConfig, layer: Qwen2VLLayer) -> dict:
    wanted = fixture_parameters(config)
    for entry in fixture["configs"].values():
        if entry["config"] == wanted:
            return entry
    raise ValueError(
        f"the Qwen2-VL fixture {layer.fixture} ({layer.path}) has no slice for configuration {config.name!r} "
        f"({wanted}); it holds {sorted(fixture['configs'])}. Add one (from the committed checkpoint): "
        f"{layer.generator} --config default --config small --config count --config wide --config <yours>"
    )


def qwen2vl_case(config: AcceleratorConfig, *, tokens: int | None = None, schedule: Schedule | None = None,
                 layer: str = "q_proj") -> CoreCase:
    """A real multimodal workload: a layer of the shapes-VQA Qwen2-VL's language model,
    sliced to fit ``config``, over the tokens of two held-out questions in sequence order
    (image tokens vision, all others text, as the model's own token ids say).

    ``layer`` is a short name of :data:`QWEN2VL_LAYERS`: ``"q_proj"`` (the layer-0 query
    projection ``model.language_model.layers.0.self_attn.q_proj``, with bias; the
    ``qwen2vl`` workload) or ``"down_proj"`` (the layer-0 MLP down projection
    ``model.language_model.layers.0.mlp.down_proj``, no bias; ``qwen2vl_mlp``).

    The integers (per-token activations at each token's ``T``, weights, bias, multiplier,
    shift) come from the layer's committed fixture; see ``sim/fixtures/make_qwen2vl_fixture.py``
    for how they were made. ``tokens`` keeps the first ones (default: all 39).
    ``schedule`` programs the timestep table: by default :func:`qwen2vl_schedule` (every
    unit of the model, so the layer's index is its unit's place in the model); a schedule
    file's entry for the layer's unit must give the ``T`` the fixture was made at.

    Raises ``ValueError`` naming the problem: an unknown layer, a configuration the
    fixture has no slice for, a schedule without the layer's unit or with other ``T``, a
    bad ``tokens``.
    """
    spec = _qwen2vl_layer(layer)
    fixture = qwen2vl_fixture(spec.name)
    entry = _qwen2vl_entry(fixture, config, spec)
    unit, made_at = fixture["unit"], fixture["schedule"]["timesteps"]
    if schedule is None:
        schedule = qwen2vl_schedule(fixture)
    if unit not in schedule.layers:
        raise ValueError(f"the schedule has no entry for {unit!r}, the layer unit of {spec.path}; "
                         f"it has {schedule.layers[:4]}{' ...' if len(schedule.layers) > 4 else ''}")
    steps = {m: schedule.T(unit, m) for m in made_at}
    if steps != made_at:
        raise ValueError(
            f"the schedule gives {unit!r} vision T={steps['vision']}, text T={steps['text']}; the Qwen2-VL fixture "
            f"{spec.fixture} was quantized at vision T={made_at['vision']}, text T={made_at['text']}. Regenerate it "
            f"for this schedule: {spec.generator} --schedule FILE"
        )
    total = len(entry["q"])
    if tokens is None:
        tokens = total
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= total:
        raise ValueError(f"tokens must be an int in [1, {total}], not {tokens!r}")
    integers = IntegerLayer(torch.tensor(entry["weight"]), torch.tensor(entry["bias"]),
                            torch.tensor(entry["multiplier"]), torch.tensor(entry["shift"]),
                            out_bits=config.out_bits, weight_bits=config.weight_bits)
    q = torch.tensor(entry["q"][:tokens], dtype=torch.int64)
    modality = torch.tensor(fixture["tokens"]["modality"][:tokens], dtype=torch.int64)
    case = _finish(compile_layer(config, integers), schedule, schedule.layers.index(unit), q, modality,
                   workload=spec.workload, layer_name=spec.path, description=spec.description)
    if case.timesteps.tolist() != entry["timesteps"][:tokens]:
        raise ValueError(f"the fixture {spec.fixture}'s per-token T disagree with its modality tags and schedule; "
                         f"regenerate it: {spec.generator}")
    return case


def qwen2vl_mlp_case(config: AcceleratorConfig, *, tokens: int | None = None,
                     schedule: Schedule | None = None) -> CoreCase:
    """The ``qwen2vl_mlp`` workload: :func:`qwen2vl_case` of the layer-0 MLP down projection
    (``layer="down_proj"``, 256 -> 96, no bias), sliced to fit ``config``."""
    return qwen2vl_case(config, tokens=tokens, schedule=schedule, layer="down_proj")


WORKLOADS = ("qwen2vl", "qwen2vl_mlp", "minilm")
"""Names of the real workloads :func:`workload_case` builds."""
_WORKLOAD_CASES = {"qwen2vl": qwen2vl_case, "qwen2vl_mlp": qwen2vl_mlp_case, "minilm": minilm_case}
QWEN2VL_WORKLOADS = tuple(layer.workload for layer in QWEN2VL_LAYERS.values())
"""The workloads that run a layer of the Qwen2-VL fixtures (the others compute theirs)."""


def workload_case(config: AcceleratorConfig, name: str, **options) -> CoreCase:
    """The real workload ``name`` (:data:`WORKLOADS`) for ``config``; ``options`` go to its
    case function (:func:`qwen2vl_case`, :func:`qwen2vl_mlp_case`, :func:`minilm_case`).

    Raises ``ValueError`` for an unknown name, ``TypeError`` for an option the workload
    does not take.
    """
    if name not in _WORKLOAD_CASES:
        raise ValueError(f"workload must be one of {WORKLOADS}, not {name!r}")
    return _WORKLOAD_CASES[name](config, **options)


def spikes_by_modality(case: CoreCase) -> dict:
    """Per modality present in ``case``: tokens, ``T``, spikes per token (non-zero spikes of
    the token's spike train over the padded inputs, from the golden encoder as the exact
    cycle model counts them) and the firing rate, spikes per (timestep x input). The
    ``EVENTS`` counter is the sum of the spikes times the output tiles."""
    program = case.program
    padded = torch.zeros(case.tokens, program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = case.q
    profile = {}
    for m in Modality:
        rows = case.modality == m
        if not bool(rows.any()):
            continue
        steps = case.timesteps[rows]
        spikes = core_cycles(program.config, padded[rows], steps, 1).events
        n = int(rows.sum())
        profile[m.label] = {
            "tokens": n,
            "timesteps": sorted(set(steps.tolist())) if len(set(steps.tolist())) > 1 else int(steps[0]),
            "spikes_per_token": spikes / n,
            "firing_rate": spikes / (int(steps.sum()) * program.in_features),
        }
    return profile


def core_expectation(case: CoreCase, block: str) -> tuple[list, CoreCycles]:
    """Golden output beats and exact cycles of ``case`` on the core ``block``.

    The spike and INT8 cores share the integer golden layer; the FP16 core's outputs come
    from :func:`spikemllm.golden.dense.fp16_layer_outputs`. The dense cores' timing depends
    only on the shape (:func:`~spikemllm.golden.timing.core_model.dense_core_cycles`).
    """
    kind = core_kind(block)
    if kind is CoreKind.SPIKE:
        return case.expected, case.model
    program = case.program
    model = dense_core_cycles(program.config, case.tokens, program.padded_in, program.out_tiles, kind.value)
    if kind is CoreKind.INT8:
        return case.expected, model
    layer = program.layer
    padded = torch.zeros(case.tokens, program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = case.q
    out = fp16_layer_outputs(padded, layer.weight, layer.bias, layer.multiplier, layer.shift, layer.out_bits,
                             program.config.dense_inputs)
    P = program.config.pes
    beats = [
        {"values": row[j * P:(j + 1) * P], "tile": j, "last": int(j == program.out_tiles - 1)}
        for row in out.tolist() for j in range(program.out_tiles)
    ]
    return beats, model
