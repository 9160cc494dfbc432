"""Timestep schedules: ``T`` per (layer, modality), their JSON file, and the allocators.

A converted model runs every linear layer of a *layer unit* (a transformer block, the
projector, a patch embedding, the LM head) at the timesteps the schedule gives that unit
for the token's modality. The same file programs the hardware's timestep table, so the
format is fixed and strictly validated.

File format (``format = "spikemllm-timestep-schedule"``, ``version = 1``)::

    {
      "format": "spikemllm-timestep-schedule",
      "version": 1,
      "modalities": ["text", "vision"],
      "t_min": 2,
      "t_max": 6,
      "layers": [
        {"name": "model.visual.patch_embed.proj", "stage": "vision_encoder", "timesteps": {"vision": 3}},
        {"name": "model.visual.blocks.0",         "stage": "vision_encoder", "timesteps": {"vision": 3}},
        {"name": "model.visual.merger",           "stage": "projector",      "timesteps": {"vision": 3}},
        {"name": "model.language_model.layers.0", "stage": "language_model", "timesteps": {"text": 4, "vision": 3}},
        {"name": "lm_head",                       "stage": "language_model", "timesteps": {"text": 4, "vision": 3}}
      ],
      "meta": {"allocator": "uniform"}
    }

* ``modalities`` is the modality tag order: tag 0 is text, tag 1 is vision (the same
  numbering as Qwen2-VL's ``mm_token_type_ids`` for text and image).
* ``layers`` is in execution order; the position in the list is the layer index of the
  hardware table. ``name`` is the module path of the layer unit in the model.
* Vision-encoder and projector units carry only ``vision``; language-model units carry
  ``text`` and, in a multimodal model, ``vision``.
* Every ``T`` is an int in ``[t_min, t_max]``, and ``1 <= t_min <= t_max <= 15``.
* ``meta`` is free-form provenance (allocator, budget, ...), ignored by validation.

Allocators choose ``T`` per (layer, modality) within ``[t_min, t_max]`` so that the
token-weighted average number of steps is at most a budget:

* :func:`allocate_med` -- guided by MED (how much hidden states evolve through a layer).
* :func:`allocate_error_driven` -- guided by the measured output error when a step is removed.
* :func:`uniform_schedule` -- the same ``T`` per modality everywhere (``Tv/Tt = 3/4`` default).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spikemllm.modality import MODALITIES

__all__ = [
    "FORMAT",
    "VERSION",
    "MODALITIES",
    "STAGES",
    "T_LIMIT",
    "LayerSpec",
    "Schedule",
    "uniform_schedule",
    "quantization_noise",
    "average_timesteps",
    "allocate_med",
    "allocate_error_driven",
]

FORMAT = "spikemllm-timestep-schedule"
VERSION = 1
STAGES = ("vision_encoder", "projector", "language_model")
T_LIMIT = 15
"""Largest ``T`` a schedule may hold (TC-LIF steps; 15 steps carry 16-bit activations)."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer unit of a model: a block, the projector, a patch embedding or the LM head.

    ``modalities`` are the modalities whose tokens pass through it; ``linears`` the module
    paths of the linear (or patch-convolution) modules it contains; ``block`` is true for a
    residual block whose input and output hidden states have the same width (MED is
    defined there).
    """

    name: str
    stage: str
    modalities: tuple[str, ...]
    linears: tuple[str, ...] = ()
    block: bool = False

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {self.stage!r}")
        for m in self.modalities:
            if m not in MODALITIES:
                raise ValueError(f"modality must be one of {MODALITIES}, not {m!r}")


def _check_t(value, *, where: str, t_min: int = 1, t_max: int = T_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: T must be an int, not {value!r}")
    if not t_min <= value <= t_max:
        raise ValueError(f"{where}: T = {value!r} is outside [{t_min}, {t_max}]")
    return value


def _check_range(t_min, t_max) -> tuple[int, int]:
    _check_t(t_min, where="t_min")
    _check_t(t_max, where="t_max")
    if t_min > t_max:
        raise ValueError(f"t_min = {t_min} is larger than t_max = {t_max}")
    return t_min, t_max


@dataclass
class Schedule:
    """``T`` per (layer unit, modality), in execution order.

    ``timesteps`` maps layer name to ``{modality: T}``; ``stages`` maps layer name to its
    stage. Construct directly, with :func:`uniform_schedule` or an allocator, or load a
    file with :meth:`load`. Construction validates the values (range, modality names);
    :meth:`check_layers` validates against a model's layer units.
    """

    timesteps: dict[str, dict[str, int]]
    stages: dict[str, str]
    t_min: int = 1
    t_max: int = T_LIMIT
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_range(self.t_min, self.t_max)
        if not isinstance(self.timesteps, Mapping) or not self.timesteps:
            raise ValueError("a schedule needs at least one layer")
        if set(self.timesteps) != set(self.stages):
            raise ValueError(
                f"timesteps and stages name different layers: {sorted(set(self.timesteps) ^ set(self.stages))}"
            )
        for name, entry in self.timesteps.items():
            if self.stages[name] not in STAGES:
                raise ValueError(f"layer {name!r}: stage must be one of {STAGES}, not {self.stages[name]!r}")
            if not isinstance(entry, Mapping) or not entry:
                raise ValueError(f"layer {name!r}: timesteps must be a non-empty {{modality: T}} map, not {entry!r}")
            for modality, T in entry.items():
                if modality not in MODALITIES:
                    raise ValueError(f"layer {name!r}: unknown modality {modality!r}; modalities are {MODALITIES}")
                _check_t(T, where=f"layer {name!r}, modality {modality!r}", t_min=self.t_min, t_max=self.t_max)
            if self.stages[name] != "language_model" and set(entry) != {"vision"}:
                raise ValueError(
                    f"layer {name!r} is in the {self.stages[name]} and carries only vision tokens; "
                    f"its timesteps must be {{'vision': T}}, not {dict(entry)!r}"
                )

    # -- access -----------------------------------------------------------------------

    @property
    def layers(self) -> list[str]:
        """Layer names in execution order (the hardware table's layer index)."""
        return list(self.timesteps)

    def T(self, layer: str, modality: str) -> int:
        """Timesteps of ``layer`` for ``modality``; ``KeyError`` naming what is missing."""
        if layer not in self.timesteps:
            raise KeyError(f"schedule has no layer {layer!r}")
        entry = self.timesteps[layer]
        if modality not in entry:
            raise KeyError(f"layer {layer!r} has no timesteps for modality {modality!r}; it has {sorted(entry)}")
        return entry[modality]

    def table(self) -> list[list[int]]:
        """Hardware timestep table: one row per layer, one column per modality tag.

        ``table()[layer_index][tag]`` is ``T``; 0 marks a modality that never reaches the
        layer (text in the vision encoder).
        """
        return [[self.timesteps[name].get(m, 0) for m in MODALITIES] for name in self.timesteps]

    def replace(self, layer: str, modality: str, T: int) -> "Schedule":
        """A copy with one entry changed (validated)."""
        self.T(layer, modality)
        timesteps = {name: dict(entry) for name, entry in self.timesteps.items()}
        timesteps[layer][modality] = T
        return Schedule(timesteps, dict(self.stages), self.t_min, self.t_max, dict(self.meta))

    def check_layers(self, layers: Sequence[LayerSpec]) -> None:
        """Raise ``ValueError`` unless this schedule covers exactly ``layers``.

        Unknown layer names, missing layers, a wrong stage or a modality the layer does
        not carry are each reported by name.
        """
        known = {spec.name: spec for spec in layers}
        unknown = [name for name in self.timesteps if name not in known]
        if unknown:
            raise ValueError(
                f"schedule names layer(s) the model does not have: {unknown}; "
                f"the model's layers are {list(known)[:6]}{' ...' if len(known) > 6 else ''}"
            )
        missing = [name for name in known if name not in self.timesteps]
        if missing:
            raise ValueError(f"schedule has no timesteps for layer(s) {missing}")
        for name, spec in known.items():
            if self.stages[name] != spec.stage:
                raise ValueError(f"layer {name!r} is in the {spec.stage}, but the schedule says {self.stages[name]!r}")
            if set(self.timesteps[name]) != set(spec.modalities):
                raise ValueError(
                    f"layer {name!r} carries modalities {list(spec.modalities)}, "
                    f"but the schedule gives {sorted(self.timesteps[name])}"
                )

    # -- file -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "modalities": list(MODALITIES),
            "t_min": self.t_min,
            "t_max": self.t_max,
            "layers": [
                {"name": name, "stage": self.stages[name], "timesteps": {m: entry[m] for m in MODALITIES if m in entry}}
                for name, entry in self.timesteps.items()
            ],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Schedule":
        """Parse and validate the JSON structure; ``ValueError`` names what is wrong."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a schedule must be a JSON object, not {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"not a timestep schedule: format is {data.get('format')!r}, expected {FORMAT!r}")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported schedule version {data.get('version')!r}; this code reads version {VERSION}")
        if list(data.get("modalities", [])) != list(MODALITIES):
            raise ValueError(f"modalities must be {list(MODALITIES)}, not {data.get('modalities')!r}")
        extra = set(data) - {"format", "version", "modalities", "t_min", "t_max", "layers", "meta"}
        if extra:
            raise ValueError(f"unknown key(s) in schedule: {sorted(extra)}")
        layers = data.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError("schedule 'layers' must be a non-empty list")
        timesteps: dict[str, dict[str, int]] = {}
        stages: dict[str, str] = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Mapping) or set(layer) != {"name", "stage", "timesteps"}:
                raise ValueError(f"layers[{i}] must be an object with keys name, stage, timesteps; got {layer!r}")
            name = layer["name"]
            if not isinstance(name, str) or not name:
                raise ValueError(f"layers[{i}]: name must be a non-empty string, not {name!r}")
            if name in timesteps:
                raise ValueError(f"layer {name!r} appears twice")
            if not isinstance(layer["timesteps"], Mapping):
                raise ValueError(f"layer {name!r}: timesteps must be an object, not {layer['timesteps']!r}")
            timesteps[name] = dict(layer["timesteps"])
            stages[name] = layer["stage"]
        return cls(timesteps, stages, data.get("t_min"), data.get("t_max"), dict(data.get("meta", {})))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, layers: Sequence[LayerSpec] | None = None) -> "Schedule":
        """Read a schedule file; with ``layers``, also check it against a model."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        schedule = cls.from_dict(data)
        if layers is not None:
            schedule.check_layers(layers)
        return schedule


# -- building schedules -------------------------------------------------------------------


def uniform_schedule(
    layers: Sequence[LayerSpec], *, vision: int = 3, text: int = 4, t_min: int = 1, t_max: int = T_LIMIT
) -> Schedule:
    """Every layer at ``vision`` steps for vision tokens and ``text`` for text tokens.

    The default is the paper's ``Tv/Tt = 3/4`` read as timesteps (4-bit vision, 5-bit text
    activations).
    """
    _check_range(t_min, t_max)
    for value, what in ((vision, "vision"), (text, "text")):
        _check_t(value, where=f"uniform {what} timesteps", t_min=t_min, t_max=t_max)
    per = {"vision": vision, "text": text}
    timesteps = {spec.name: {m: per[m] for m in spec.modalities} for spec in layers}
    stages = {spec.name: spec.stage for spec in layers}
    return Schedule(timesteps, stages, t_min, t_max, {"allocator": "uniform", "vision": vision, "text": text})


def _cells(schedule_or_layers) -> list[tuple[str, str]]:
    if isinstance(schedule_or_layers, Schedule):
        return [(name, m) for name, entry in schedule_or_layers.timesteps.items() for m in entry]
    return [(spec.name, m) for spec in schedule_or_layers for m in spec.modalities]


def _weights(cells, token_counts: Mapping[str, Mapping[str, float]]) -> dict[tuple[str, str], float]:
    weights = {}
    for layer, m in cells:
        if layer not in token_counts or m not in token_counts[layer]:
            raise ValueError(f"token_counts has no count for layer {layer!r}, modality {m!r}")
        w = float(token_counts[layer][m])
        if not (w >= 0 and math.isfinite(w)):
            raise ValueError(f"token count for layer {layer!r}, modality {m!r} must be >= 0, not {w!r}")
        weights[(layer, m)] = w
    if not sum(weights.values()) > 0:
        raise ValueError("token_counts are all zero; no average can be formed")
    return weights


def average_timesteps(schedule: Schedule, token_counts: Mapping[str, Mapping[str, float]]) -> float:
    """Token-weighted average ``T``: ``sum(n[l,m] * T[l,m]) / sum(n[l,m])``.

    ``token_counts[layer][modality]`` is how many tokens of that modality pass through the
    layer (e.g. per calibration sample); this is the average number of steps a token spends
    per layer, i.e. what the spike workload scales with.
    """
    weights = _weights(_cells(schedule), token_counts)
    total = sum(weights.values())
    return sum(w * schedule.timesteps[l][m] for (l, m), w in weights.items()) / total


def _check_budget(budget, t_min, t_max) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget):
        raise TypeError(f"budget must be a number, not {budget!r}")
    if not t_min <= budget <= t_max:
        raise ValueError(f"budget = {budget!r} average steps is outside [t_min, t_max] = [{t_min}, {t_max}]")
    return float(budget)


def _to_schedule(layers, T: dict, t_min, t_max, meta) -> Schedule:
    timesteps = {spec.name: {m: T[(spec.name, m)] for m in spec.modalities} for spec in layers}
    return Schedule(timesteps, {spec.name: spec.stage for spec in layers}, t_min, t_max, meta)


_EPS = 1e-9
_MAX_CAPACITY = 200_000


def _weight_unit(weights: list[float], spare: float) -> float:
    """Grid on which the knapsack counts weight: exact for integer token counts."""
    positive = [w for w in weights if w > 0]
    if all(float(w).is_integer() for w in positive):
        unit = float(math.gcd(*(int(w) for w in positive)))
    else:
        unit = min(positive) / 64
    return max(unit, spare / _MAX_CAPACITY)


def _optimal_allocation(cells, weights, budget, t_min, t_max, cost) -> dict:
    """Minimize ``sum cost(c, T_c)`` subject to ``sum n_c T_c <= budget * sum n_c``.

    A multiple-choice knapsack solved exactly by dynamic programming over the spare budget
    ``budget * sum n - t_min * sum n`` counted on a weight grid (exact for integer token
    counts; otherwise a grid of 1/64 of the smallest count). If the grid rounding lets the
    result exceed the budget with the true counts, steps are taken back from the cells
    where that costs least until it fits.
    """
    import numpy as np

    total = sum(weights.values())
    spare = budget * total - t_min * total
    unit = _weight_unit(list(weights.values()), spare)
    capacity = int(math.floor(spare / unit + _EPS))
    levels = list(range(t_min, t_max + 1))
    dp = np.full(capacity + 1, np.inf)
    dp[0] = 0.0
    choices = []
    for c in cells:
        wi = int(round(weights[c] / unit))
        new = np.full(capacity + 1, np.inf)
        pick = np.zeros(capacity + 1, dtype=np.int64)
        for t in levels:
            shift = (t - t_min) * wi
            if shift > capacity:
                break
            candidate = dp[: capacity + 1 - shift] + float(cost(c, t))
            better = candidate < new[shift:] - 1e-15
            new[shift:][better] = candidate[better]
            pick[shift:][better] = t
        dp = new
        choices.append((c, wi, pick))
    cap = int(np.argmin(dp))
    if not np.isfinite(dp[cap]):
        raise ValueError(f"no schedule within [{t_min}, {t_max}] meets the budget {budget}")
    T = {}
    for c, wi, pick in reversed(choices):
        T[c] = int(pick[cap])
        cap -= (T[c] - t_min) * wi
    used = sum(weights[c] * T[c] for c in cells)
    while used > budget * total + _EPS:
        options = [c for c in cells if T[c] > t_min and weights[c] > 0]
        c = min(options, key=lambda c: (cost(c, T[c] - 1) - cost(c, T[c])) / weights[c])
        T[c] -= 1
        used -= weights[c]
    return T


def quantization_noise(T: int) -> float:
    """Relative noise power of ``T``-step activations: ``(2^T - 1)^-2``.

    ``T`` TC-LIF steps carry the ``T + 1``-bit integers ``[-Q, Q]``, ``Q = 2^T - 1``; a
    uniform quantizer of range ``a`` has step ``a / Q`` and noise power ``(a / Q)^2 / 12``.
    The high-resolution shorthand ``4^-T`` agrees within a factor of 1.8 from ``T = 2`` on
    but puts ``T = 1`` (ternary activations) only 4x worse than ``T = 2``, where the step
    really grows 3x and the noise power 9x.
    """
    return float((2 ** int(T) - 1) ** -2)


def allocate_med(
    layers: Sequence[LayerSpec],
    med: Mapping[str, Mapping[str, float]],
    token_counts: Mapping[str, Mapping[str, float]],
    budget: float,
    *,
    t_min: int = 2,
    t_max: int = 6,
) -> Schedule:
    """MED-guided modality-specific timesteps under a token-weighted average budget.

    Model: the output error a (layer, modality) cell contributes is proportional to how
    much that layer changes the modality's tokens (``E = med[layer][modality]``) times the
    quantization noise power of its ``T+1``-bit activations (:func:`quantization_noise`:
    ``(2^T - 1)^-2``) times its token count ``n``. The schedule minimizes
    ``sum n * E * (2^T - 1)^-2`` subject to the token-weighted average
    ``sum n * T / sum n <= budget``, exactly (a multiple-choice knapsack solved by dynamic
    programming). This is bit allocation by reverse water-filling: ``T`` grows with
    ``0.5 * log2(E)``, so layers and modalities that evolve more get more steps.

    Raises ``ValueError`` for a budget outside ``[t_min, t_max]``, a missing or negative
    MED value or token count.
    """
    t_min, t_max = _check_range(t_min, t_max)
    budget = _check_budget(budget, t_min, t_max)
    cells = _cells(layers)
    weights = _weights(cells, token_counts)
    for layer, m in cells:
        if layer not in med or m not in med[layer]:
            raise ValueError(f"med has no value for layer {layer!r}, modality {m!r}")
        e = float(med[layer][m])
        if not (e >= 0 and math.isfinite(e)):
            raise ValueError(f"med for layer {layer!r}, modality {m!r} must be >= 0, not {e!r}")
    T = _optimal_allocation(
        cells, weights, budget, t_min, t_max, lambda c, t: weights[c] * float(med[c[0]][c[1]]) * quantization_noise(t)
    )
    meta = {"allocator": "med", "budget": budget}
    return _to_schedule(layers, T, t_min, t_max, meta)


def allocate_error_driven(
    layers: Sequence[LayerSpec],
    measure: Callable[[Schedule], float],
    token_counts: Mapping[str, Mapping[str, float]],
    budget: float,
    *,
    t_min: int = 2,
    t_max: int = 6,
    progress: Callable[[str], None] | None = None,
) -> Schedule:
    """Timesteps chosen from measured output error.

    ``measure(schedule)`` returns the model's output error under ``schedule`` (e.g. the KL
    divergence of its answers from the float model on calibration inputs; lower is better).
    With every cell at ``t_max`` as the reference, each (layer, modality) cell is lowered
    alone to every ``T`` in ``[t_min, t_max - 1]`` and the increase in error is recorded:
    ``cost[c][T]``. The schedule then minimizes ``sum cost[c][T_c]`` subject to the
    token-weighted average ``<= budget`` (exactly, as in :func:`allocate_med`). Costs are
    measured once (``1 + cells * (t_max - t_min)`` calls of ``measure``) and treated as
    additive across cells.

    The measured costs are stored in the schedule's ``meta["error_cost"]``.
    """
    t_min, t_max = _check_range(t_min, t_max)
    budget = _check_budget(budget, t_min, t_max)
    cells = _cells(layers)
    weights = _weights(cells, token_counts)
    top = _to_schedule(layers, {c: t_max for c in cells}, t_min, t_max, {})
    reference = float(measure(top))
    cost: dict[tuple[str, str], dict[int, float]] = {}
    for i, (layer, m) in enumerate(cells):
        cost[(layer, m)] = {t_max: 0.0}
        for t in range(t_min, t_max):
            cost[(layer, m)][t] = float(measure(top.replace(layer, m, t))) - reference
        if progress is not None:
            progress(f"error-driven: measured cell {i + 1}/{len(cells)} ({layer}, {m})")
    T = _optimal_allocation(cells, weights, budget, t_min, t_max, lambda c, t: cost[c][t])
    meta = {
        "allocator": "error_driven",
        "budget": budget,
        "reference_error": reference,
        "error_cost": {f"{l}|{m}": {str(t): v for t, v in sorted(cost[(l, m)].items())} for l, m in cells},
    }
    return _to_schedule(layers, T, t_min, t_max, meta)
