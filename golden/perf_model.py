"""Performance model of the SpikeCore: exact cycles of the RTL, and projections for
full-size multimodal LLMs that are far too large to simulate.

Exact model (:func:`core_cycles`)
---------------------------------
For a run of ``N`` tokens on a core with ``lanes`` L, ``pes`` P, ``E`` events per cycle, a
layer of ``K`` input chunks and ``J`` output tiles, with ideal streams (input offered from
the cycle after ``CTRL.START``, output always ready), the RTL's ``CYCLES`` counter is::

    cycles = K + 1 + sum over tokens n, tiles j of (Sigma_n + TILE_OVERHEAD)

where ``Sigma_n = sum_v max(1, ceil(nnz_v / E))`` over the ``T_n * K`` spike vectors of
token ``n`` (the compactor's cycles, :func:`~.cycle_model.compactor_vector_cycles`; the
spikes are the same for every tile). The pieces, from the RTL's timeline:

* ``K + 1``: the first token's ``K`` chunks load (one per cycle), then the scheduler looks
  up ``T`` (1 cycle); later tokens load into the other activation bank while the current
  one computes, so they cost nothing.
* ``TILE_OVERHEAD = 8`` per token and tile: parameter load (1, overlapping the previous
  tile's requantizer drain), neuron stage fill (2: membrane read, spike register), PE
  array (2) and requantizer (2) drain of the tile's final step, and the scheduler's
  detection of it (1). The last tile's drain is the run's tail.
* ``Sigma``: the compactor is the bottleneck stage, one event beat per cycle; a spike
  vector with no spike still takes one cycle (and, at a step end, an empty marker beat).

``pe_utilization = ACTIVE_CYCLES / CYCLES`` (cycles in which the PEs accumulate at least
one event); the breakdown says where the other cycles go.

Projection (:func:`project`)
----------------------------
For full-size models, the linear layers' shapes come from the ``transformers``
architectures built on the meta device (no weights); the spike statistics (firing rate
per step) come from real activations of a pretrained model quantized per token; the
expected compactor cycles of a spike vector follow from the binomial distribution of its
non-zero count. Compute time is cycles / clock; weight traffic is the bytes of the
weights each phase must stream; a phase is bound by whichever takes longer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

from ..config import AcceleratorConfig
from .cycle_model import compactor_vector_cycles
from .encoding import encode_count_signed, encode_tc_lif

__all__ = [
    "TILE_OVERHEAD",
    "CoreCycles",
    "core_cycles",
    "dense_core_cycles",
    "LinearShape",
    "MODELS",
    "model_linear_shapes",
    "step_firing_rates",
    "expected_vector_cycles",
    "ProjectionSetup",
    "project",
]

TILE_OVERHEAD = 8
"""Cycles per token and output tile outside the compactor's work (see the module doc)."""
FIRST_TOKEN_LOOKUP = 1
"""Cycles between the first token's last chunk and its parameter load."""


@dataclass(frozen=True)
class CoreCycles:
    """Predicted cycle count of a run and where the cycles go."""

    cycles: int
    events: int
    active_cycles: int
    """cycles in which the PE array accumulates at least one event"""
    empty_vector_cycles: int
    """compactor cycles spent on spike vectors without a spike"""
    tile_overhead_cycles: int
    load_cycles: int
    event_slots: int
    """``events_per_cycle``: events the PE array can take per cycle"""

    @property
    def pe_utilization(self) -> float:
        return self.active_cycles / self.cycles

    @property
    def event_slot_utilization(self) -> float:
        """Events over event slots offered: ``events / (E * cycles)``."""
        return self.events / (self.event_slots * self.cycles)

    def breakdown(self) -> dict[str, int]:
        """Cycles by cause; they add up to :attr:`cycles`."""
        return {
            "accumulate": self.active_cycles,
            "empty_spike_vectors": self.empty_vector_cycles,
            "tile_overhead": self.tile_overhead_cycles,
            "first_token_load": self.load_cycles,
        }


def _encode(q: torch.Tensor, T: int, config: AcceleratorConfig) -> torch.Tensor:
    return encode_tc_lif(q, T) if config.coding == "tc_lif" else encode_count_signed(q, T)


def core_cycles(config: AcceleratorConfig, q: torch.Tensor, timesteps, out_tiles: int) -> CoreCycles:
    """Exact RTL cycles of a run under ideal streams.

    ``q``: integer activations ``(tokens, in)`` with ``in`` a multiple of ``lanes`` (the
    padded layer); ``timesteps``: ``T`` of every token; ``out_tiles``: output tiles ``J``.
    Raises ``ValueError`` for shapes the core cannot run or values ``T`` steps cannot carry.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    q = torch.as_tensor(q)
    steps = [int(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
    if q.dim() != 2 or q.shape[0] == 0:
        raise ValueError(f"q must have shape (tokens, in) with at least one token, not {tuple(q.shape)}")
    if len(steps) != q.shape[0]:
        raise ValueError(f"{len(steps)} timestep counts for {q.shape[0]} tokens")
    if q.shape[1] % config.lanes or q.shape[1] == 0:
        raise ValueError(f"in={q.shape[1]} must be a positive multiple of lanes={config.lanes}")
    if not 1 <= out_tiles <= config.max_out_tiles:
        raise ValueError(f"out_tiles must be in [1, {config.max_out_tiles}], not {out_tiles!r}")
    for T in steps:
        if not 1 <= T <= config.t_max:
            raise ValueError(f"T={T} is outside [1, t_max={config.t_max}]")
    K = q.shape[1] // config.lanes
    E = config.events_per_cycle
    sigma = events = active = empty = 0
    for n, T in enumerate(steps):
        nnz = (_encode(q[n], T, config).view(T, K, config.lanes) != 0).sum(dim=-1).flatten().tolist()
        for count in nnz:
            sigma += compactor_vector_cycles(count, config)
            events += count
            active += -(-count // E)
            empty += count == 0
    J, N = out_tiles, len(steps)
    overhead = TILE_OVERHEAD * N * J
    load = K + FIRST_TOKEN_LOOKUP
    return CoreCycles(
        cycles=load + J * sigma + overhead,
        events=J * events,
        active_cycles=J * active,
        empty_vector_cycles=J * empty,
        tile_overhead_cycles=overhead,
        load_cycles=load,
        event_slots=E,
    )


def dense_core_cycles(config: AcceleratorConfig, tokens: int, in_features: int, out_tiles: int) -> CoreCycles:
    """Exact RTL cycles of a dense baseline core (``hw.dense_core``, INT8 or FP16) under ideal streams.

    The dense feeder issues one input per cycle whatever its value, so the time depends
    only on the shape: ``cycles = K + 1 + N * J * (IN + TILE_OVERHEAD)`` with ``IN`` the
    padded inputs (``K = IN / lanes`` chunks), ``J`` output tiles and ``N`` tokens; the
    8 cycles of tile overhead are the same pipeline fill and drain as the spike core's
    (parameter load 1, feeder 2, MAC array 2 + requantizer 2 drain, detection 1).
    ``events`` counts multiply-accumulate beats (``N * J * IN``), every one active.
    Raises ``ValueError`` for a shape the core cannot run.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    if not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, not {tokens!r}")
    if not isinstance(in_features, int) or in_features < 1 or in_features % config.lanes:
        raise ValueError(f"in_features={in_features!r} must be a positive multiple of lanes={config.lanes}")
    if not 1 <= out_tiles <= config.max_out_tiles:
        raise ValueError(f"out_tiles must be in [1, {config.max_out_tiles}], not {out_tiles!r}")
    K = in_features // config.lanes
    work = tokens * out_tiles * in_features
    overhead = TILE_OVERHEAD * tokens * out_tiles
    load = K + FIRST_TOKEN_LOOKUP
    return CoreCycles(
        cycles=load + work + overhead, events=work, active_cycles=work, empty_vector_cycles=0,
        tile_overhead_cycles=overhead, load_cycles=load, event_slots=1,
    )


# -- full-size projection -----------------------------------------------------------------


@dataclass(frozen=True)
class LinearShape:
    """A group of identical linear layers of a model."""

    stage: str
    """``vision_encoder``, ``projector`` or ``language_model``"""
    in_features: int
    out_features: int
    count: int

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features * self.count


# Published sizes of the models (from their released configurations). Each entry builds
# the architecture from transformers with these dimensions; nothing is downloaded.
MODELS = {
    "Qwen2-VL-7B": {
        "family": "qwen2_vl",
        "text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152064),
        "vision": dict(depth=32, embed_dim=1280, hidden_size=3584, mlp_ratio=4, num_heads=16),
        "vision_tokens": 1024, "lm_vision_tokens": 256,
    },
    "InternVL2-8B": {
        "family": "internvl",
        "text": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=92553),
        "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=[448, 448], patch_size=[14, 14]),
        "vision_tokens": 1025, "lm_vision_tokens": 256,
    },
    "Qwen2-VL-72B": {
        "family": "qwen2_vl",
        "text": dict(hidden_size=8192, intermediate_size=29568, num_hidden_layers=80, num_attention_heads=64,
                     num_key_value_heads=8, vocab_size=152064),
        "vision": dict(depth=32, embed_dim=1280, hidden_size=8192, mlp_ratio=4, num_heads=16),
        "vision_tokens": 1024, "lm_vision_tokens": 256,
    },
}
"""Full-size models: dimensions, and tokens of one 448x448 image (vision-encoder patches,
and language-model tokens after merging)."""

_STAGE_ROOTS = (
    ("projector", ("model.visual.merger", "model.multi_modal_projector")),
    ("vision_encoder", ("model.visual", "model.vision_tower")),
    ("language_model", ("model.language_model", "lm_head")),
)


@lru_cache(maxsize=None)
def model_linear_shapes(name: str) -> tuple[LinearShape, ...]:
    """Linear layers of a full-size model, grouped by stage and shape (meta device, no weights)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    spec = MODELS[name]
    if spec["family"] == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        config = Qwen2VLConfig(text_config=spec["text"], vision_config=spec["vision"])
        cls = Qwen2VLForConditionalGeneration
    else:
        from transformers import InternVLConfig, InternVLForConditionalGeneration

        config = InternVLConfig(text_config=spec["text"], vision_config=spec["vision"])
        cls = InternVLForConditionalGeneration
    with torch.device("meta"):
        model = cls(config)
    groups: dict[tuple[str, int, int], int] = {}
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        stage = next((s for s, roots in _STAGE_ROOTS if any(path == r or path.startswith(r + ".") for r in roots)), None)
        if stage is None:
            raise ValueError(f"linear layer {path!r} of {name} belongs to no known stage")
        key = (stage, module.in_features, module.out_features)
        groups[key] = groups.get(key, 0) + 1
    return tuple(LinearShape(s, i, o, n) for (s, i, o), n in sorted(groups.items()))


@lru_cache(maxsize=None)
def step_firing_rates(T: int, *, layers: tuple[str, ...] | None = None) -> tuple[float, ...]:
    """Firing rate per TC-LIF step of real activations quantized per token to ``T + 1`` bits.

    Measured on the inputs of several linear layers of the pretrained MiniLM
    (:mod:`.real_data`), MSB step first.
    """
    from .quantize import quantize_per_token
    from .real_data import capture_linear_inputs

    names = layers or (
        "encoder.layer.0.attention.self.query",
        "encoder.layer.0.intermediate.dense",
        "encoder.layer.0.output.dense",
        "encoder.layer.3.intermediate.dense",
        "encoder.layer.5.output.dense",
    )
    fired = torch.zeros(T)
    values = 0
    for layer in names:
        x, _ = capture_linear_inputs(layer)
        q, _ = quantize_per_token(x, T + 1)
        spikes = encode_tc_lif(q, T)
        fired += (spikes != 0).flatten(1).sum(dim=1).float()
        values += q.numel()
    return tuple(float(f) / values for f in fired)


def expected_vector_cycles(lanes: int, rate: float, events_per_cycle: int) -> float:
    """``E[max(1, ceil(X / E))]`` for ``X ~ Binomial(lanes, rate)``: compactor cycles per vector."""
    total = 0.0
    for x in range(lanes + 1):
        p = math.comb(lanes, x) * rate**x * (1 - rate) ** (lanes - x)
        total += p * max(1, -(-x // events_per_cycle))
    return total


@dataclass(frozen=True)
class ProjectionSetup:
    """An accelerator instance for projection: one SpikeCore scaled up, or several."""

    lanes: int = 64
    pes: int = 256
    events_per_cycle: int = 8
    cores: int = 8
    clock_hz: float = 500e6
    bandwidth_bytes_per_s: float = 1.0e12
    weight_bits: int = 8
    text_tokens: int = 64
    """text tokens of the prompt besides the image"""

    def __post_init__(self):
        for name in ("lanes", "pes", "events_per_cycle", "cores", "text_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        for name in ("clock_hz", "bandwidth_bytes_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")


def _layer_cycles_per_token(shape: LinearShape, setup: ProjectionSetup, vector_cycles: float, T: int) -> float:
    K = -(-shape.in_features // setup.lanes)
    J = -(-shape.out_features // setup.pes)
    return shape.count * J * (T * K * vector_cycles + TILE_OVERHEAD)


def project(model: str, setup: ProjectionSetup = ProjectionSetup(), *, tv: int = 3, tt: int = 4) -> dict:
    """Tokens/s of prefill (one image plus ``text_tokens``) and batch-1 decode.

    Vision-encoder and projector tokens run at ``tv`` steps; language-model tokens at
    ``tv`` (vision) or ``tt`` (text). Returns compute- and bandwidth-limited times per
    phase and which bound applies.
    """
    spec = MODELS.get(model)
    if spec is None:
        raise ValueError(f"unknown model {model!r}; known: {sorted(MODELS)}")
    shapes = model_linear_shapes(model)
    rates = {T: step_firing_rates(T) for T in {tv, tt}}
    per_vector = {
        T: sum(expected_vector_cycles(setup.lanes, r, setup.events_per_cycle) for r in rates[T]) / T
        for T in rates
    }

    def cycles(stage, T, tokens):
        return tokens * sum(_layer_cycles_per_token(s, setup, per_vector[T], T) for s in shapes if s.stage == stage)

    def weight_bytes(stages):
        return sum(s.weights for s in shapes if s.stage in stages) * setup.weight_bits / 8

    prompt = spec["lm_vision_tokens"] + setup.text_tokens
    prefill_cycles = (
        cycles("vision_encoder", tv, spec["vision_tokens"])
        + cycles("projector", tv, spec["lm_vision_tokens"])
        + cycles("language_model", tv, spec["lm_vision_tokens"])
        + cycles("language_model", tt, setup.text_tokens)
    ) / setup.cores
    decode_cycles = cycles("language_model", tt, 1) / setup.cores
    result = {"model": model, "setup": asdict(setup), "tv": tv, "tt": tt,
              "firing_rate_per_step": {str(T): list(r) for T, r in rates.items()}}
    for phase, cyc, stages, tokens in (
        ("prefill", prefill_cycles, ("vision_encoder", "projector", "language_model"), prompt),
        ("decode", decode_cycles, ("language_model",), 1),
    ):
        compute_s = cyc / setup.clock_hz
        memory_s = weight_bytes(stages) / setup.bandwidth_bytes_per_s
        time_s = max(compute_s, memory_s)
        result[phase] = {
            "tokens": tokens,
            "cycles": cyc,
            "compute_s": compute_s,
            "weight_bytes": weight_bytes(stages),
            "memory_s": memory_s,
            "bound": "compute" if compute_s >= memory_s else "bandwidth",
            "tokens_per_s": tokens / time_s,
        }
    return result
