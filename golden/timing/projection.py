"""Projection of the SpikeCore's throughput for full-size multimodal LLMs that are far
too large to simulate.

For full-size models, the linear layers' shapes come from the ``transformers``
architectures built on the meta device (no weights); the spike statistics (firing rate
per step) come from real activations of a pretrained model quantized per token; the
expected compactor cycles of a spike vector follow from the binomial distribution of its
non-zero count and the compactor's packing (:func:`expected_vector_cycles`). Compute time is cycles / clock; weight traffic is the bytes of the
weights each phase must stream; a phase is bound by whichever takes longer.

Cycles per layer follow the structure of the exact model (:mod:`.core_model`): ``T * K``
spike vectors per token and tile plus the per-tile overhead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
from spikemllm.golden.encoding import encode_tc_lif

from spikemllm.latency import TOKEN_SWITCH

__all__ = [
    "LinearShape",
    "MODELS",
    "model_linear_shapes",
    "step_firing_rates",
    "expected_vector_cycles",
    "ProjectionSetup",
    "CORES",
    "layer_work",
    "phase_work",
    "project",
    "bound",
]


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
    (:mod:`spikemllm.golden.real_data`), MSB step first.
    """
    from spikemllm.golden.quantize import quantize_per_token
    from spikemllm.golden.real_data import capture_linear_inputs

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
    """Compactor cycles per spike vector of a step firing ``rate`` of its inputs, for
    ``X ~ Binomial(lanes, rate)`` spikes per vector: ``E[X] / E`` (events are packed ``E``
    per beat across vectors), but at least ``P(X > 0) / 2`` (a beat retires at most two
    vectors with a spike; vectors without one are dropped). An estimate of the steady
    state of :mod:`.spike_datapath`, whose exact timing also depends on its fill levels."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], not {rate!r}")
    nonempty = 1 - (1 - rate) ** lanes
    return max(lanes * rate / events_per_cycle, nonempty / 2)


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
    # tiles of a token run back to back; each token costs the sequencer's switch once
    return shape.count * (J * T * K * vector_cycles + TOKEN_SWITCH)


CORES = ("spike", "int8", "fp16")
"""The cores a projection can describe: the spike core and the dense baselines."""


def layer_work(shape: LinearShape, setup: ProjectionSetup, T: int, rates, *, core: str = "spike",
               dense_inputs: int | None = None) -> dict:
    """Expected work of one token through a group of identical linear layers (``shape``,
    all ``shape.count`` of them) on one core of ``setup``, following the cores' structure
    (:mod:`.core_model`): ``J = ceil(out / pes)`` output tiles run back to back, each
    streaming the token's ``K = ceil(in / lanes)`` activation chunks.

    ``core = "spike"``: per tile, ``T * K`` spike vectors (one activation-memory row read
    each); ``in * sum(rates)`` events, each one weight-row read and ``pes`` accumulates;
    cycles as :func:`project` counts them. ``rates``: firing rate of each of the ``T``
    steps. ``core = "int8"`` or ``"fp16"``: per tile, ``K * lanes / D`` beats of ``D =
    dense_inputs`` inputs (one activation-memory row read per chunk), every input one
    weight-row read and ``pes`` multiply-accumulates. Every core requantizes ``J * pes``
    outputs and writes the token's ``K`` activation rows once.

    Returns ``cycles``, ``work`` (events or inputs), ``operations`` (accumulates or MACs),
    ``weight_row_reads``, ``activation_row_reads``, ``activation_row_writes``, ``outputs``
    and ``tiles``. Raises ``ValueError`` for an unknown core, a missing or non-positive
    ``dense_inputs``, or rates that are not ``T`` values in [0, 1].
    """
    if core not in CORES:
        raise ValueError(f"core must be one of {CORES}, not {core!r}")
    K = -(-shape.in_features // setup.lanes)
    J = -(-shape.out_features // setup.pes)
    n = shape.count
    if core == "spike":
        rates = tuple(rates)
        if len(rates) != T or not all(0 <= r <= 1 for r in rates):
            raise ValueError(f"rates must be {T} firing rates in [0, 1], not {rates!r}")
        per_vector = max(1.0, sum(expected_vector_cycles(setup.lanes, r, setup.events_per_cycle) for r in rates) / T)
        work = n * J * shape.in_features * sum(rates)
        cycles = _layer_cycles_per_token(shape, setup, per_vector, T)
        activation_reads = n * J * T * K
    else:
        if not isinstance(dense_inputs, int) or dense_inputs < 1:
            raise ValueError(f"dense_inputs must be a positive int for a {core} core, not {dense_inputs!r}")
        work = n * J * K * setup.lanes
        cycles = n * (J * -(-(K * setup.lanes) // dense_inputs) + TOKEN_SWITCH)
        activation_reads = n * J * K
    return {"cycles": cycles, "work": work, "operations": work * setup.pes, "weight_row_reads": work,
            "activation_row_reads": activation_reads, "activation_row_writes": n * K, "outputs": n * J * setup.pes,
            "tiles": n * J}


def _phases(spec: dict, setup: ProjectionSetup, tv: int, tt: int) -> dict:
    """Each phase's ``(stage, T, tokens)`` parts, the stages whose weights it streams and
    its tokens: prefill is one image plus ``text_tokens``, decode one text token."""
    return {
        "prefill": {
            "parts": (("vision_encoder", tv, spec["vision_tokens"]), ("projector", tv, spec["lm_vision_tokens"]),
                      ("language_model", tv, spec["lm_vision_tokens"]), ("language_model", tt, setup.text_tokens)),
            "stages": ("vision_encoder", "projector", "language_model"),
            "tokens": spec["lm_vision_tokens"] + setup.text_tokens,
        },
        "decode": {"parts": (("language_model", tt, 1),), "stages": ("language_model",), "tokens": 1},
    }


def _spec(model: str) -> dict:
    spec = MODELS.get(model)
    if spec is None:
        raise ValueError(f"unknown model {model!r}; known: {sorted(MODELS)}")
    return spec


def phase_work(model: str, setup: ProjectionSetup = ProjectionSetup(), *, tv: int = 3, tt: int = 4,
               core: str = "spike", dense_inputs: int | None = None, shapes=None, rates=None) -> dict:
    """Expected work of each phase (prefill, batch-1 decode) of a full-size ``model`` on
    ``setup.cores`` cores: :func:`layer_work` summed over the model's linear layers and the
    phase's tokens (the same phases and shapes as :func:`project`).

    Per phase: ``tokens``, ``cycles`` (per core: the work spread evenly over the cores),
    the totals of :func:`layer_work`'s counts over all cores, and ``weight_bits``: the bits
    of the weights the phase streams (each weight once per phase, ``setup.weight_bits``
    each). ``shapes`` and ``rates`` (``T -> rates``) replace the model's linear layers and
    the measured firing rates (for tests). Raises ``ValueError`` for an unknown model.
    """
    spec = _spec(model)
    shapes = model_linear_shapes(model) if shapes is None else tuple(shapes)
    if rates is None:
        rates = {T: step_firing_rates(T) if core == "spike" else (0.0,) * T for T in {tv, tt}}
    result = {}
    for phase, p in _phases(spec, setup, tv, tt).items():
        totals: dict[str, float] = {}
        for stage, T, tokens in p["parts"]:
            for s in shapes:
                if s.stage != stage:
                    continue
                for key, value in layer_work(s, setup, T, rates[T], core=core, dense_inputs=dense_inputs).items():
                    totals[key] = totals.get(key, 0) + tokens * value
        totals["cycles"] = totals.get("cycles", 0) / setup.cores
        result[phase] = {"tokens": p["tokens"], **totals,
                         "weight_bits": sum(s.weights for s in shapes if s.stage in p["stages"]) * setup.weight_bits}
    return result


def project(model: str, setup: ProjectionSetup = ProjectionSetup(), *, tv: int = 3, tt: int = 4) -> dict:
    """Tokens/s of prefill (one image plus ``text_tokens``) and batch-1 decode.

    Vision-encoder and projector tokens run at ``tv`` steps; language-model tokens at
    ``tv`` (vision) or ``tt`` (text). Returns compute- and bandwidth-limited times per
    phase and which bound applies.
    """
    rates = {T: step_firing_rates(T) for T in {tv, tt}}
    work = phase_work(model, setup, tv=tv, tt=tt, rates=rates)
    result = {"model": model, "setup": asdict(setup), "tv": tv, "tt": tt,
              "firing_rate_per_step": {str(T): list(r) for T, r in rates.items()}}
    for phase, w in work.items():
        result[phase] = bound(w["tokens"], w["cycles"], w["weight_bits"] / 8, setup)
    return result


def bound(tokens: int, cycles: float, weight_bytes: float, setup: ProjectionSetup) -> dict:
    """A phase's time: compute (``cycles`` at the clock) or weight traffic (``weight_bytes``
    over the bandwidth), whichever takes longer, and its tokens/s."""
    compute_s = cycles / setup.clock_hz
    memory_s = weight_bytes / setup.bandwidth_bytes_per_s
    time_s = max(compute_s, memory_s)
    return {
        "tokens": tokens,
        "cycles": cycles,
        "compute_s": compute_s,
        "weight_bytes": weight_bytes,
        "memory_s": memory_s,
        "bound": "compute" if compute_s >= memory_s else "bandwidth",
        "tokens_per_s": tokens / time_s,
    }
