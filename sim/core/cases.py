"""Workloads for the SpikeCore testbenches: random and real converted layers, token
sequences mixing vision and text, and their golden outputs and cycle counts."""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["LAYER", "CoreCase", "case_schedule", "random_case", "minilm_case", "fitting_shape", "activation_bits",
           "core_expectation"]

LAYER = "encoder.layer.0.intermediate.dense"
"""The real layer of :func:`minilm_case`: MiniLM's first FFN input projection."""


@dataclass
class CoreCase:
    """One run: a compiled layer, its timestep schedule, input beats and what must come out."""

    program: LayerProgram
    schedule: Schedule
    """``T`` per layer and modality; the case's layer is ``schedule.layers[layer_index]``."""
    layer_index: int
    q: torch.Tensor
    modality: torch.Tensor
    timesteps: torch.Tensor
    beats: list
    expected: list
    model: CoreCycles

    @property
    def tokens(self) -> int:
        return self.q.shape[0]

    @property
    def table(self) -> list[int]:
        """The ``TTABLE`` entries of :attr:`schedule` (:func:`~spikemllm.firmware.compiler.timestep_table`)."""
        return timestep_table(self.program.config, self.schedule)


def case_schedule(layer_index: int, tv: int, tt: int, *, name: str = "layer") -> Schedule:
    """A schedule of ``layer_index + 1`` language-model layers, each with vision ``tv`` and text ``tt``."""
    names = [f"{name}{n}" if n != layer_index else name for n in range(layer_index + 1)]
    return Schedule({n: {"vision": tv, "text": tt} for n in names}, {n: "language_model" for n in names},
                    meta={"purpose": "core testbench"})


def _finish(program: LayerProgram, schedule: Schedule, layer_index, q, modality) -> CoreCase:
    T = token_timesteps(timestep_table(program.config, schedule), modality, layer_index)
    padded = torch.zeros(q.shape[0], program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = q
    return CoreCase(
        program, schedule, layer_index, q, modality, T,
        token_beats(program, q, modality, layer_index),
        expected_outputs(program, q, T),
        core_cycles(program.config, padded, T, program.out_tiles),
    )


def random_case(config: AcceleratorConfig, *, seed: int, tokens: int, in_features: int, out_features: int,
                tv: int, tt: int, layer_index: int = 1, density: float = 0.6) -> CoreCase:
    """Random weights and activations; ``density`` is the fraction of non-zero activations."""
    g = torch.Generator().manual_seed(seed)
    wmax = (1 << (config.weight_bits - 1)) - 1
    weight = torch.randint(-wmax, wmax + 1, (out_features, in_features), generator=g)
    bias_max = min(1 << 10, (1 << (config.bias_bits - 1)) - 1)
    layer = IntegerLayer(
        weight, torch.randint(-bias_max, bias_max + 1, (out_features,), generator=g),
        torch.randint(1 << (config.multiplier_bits - 1), 1 << config.multiplier_bits, (out_features,), generator=g),
        torch.randint(config.multiplier_bits, min(config.max_shift, config.multiplier_bits + 8) + 1, (out_features,), generator=g),
        out_bits=config.out_bits, weight_bits=config.weight_bits,
    )
    program = compile_layer(config, layer)
    schedule = case_schedule(layer_index, tv, tt)
    modality = torch.randint(0, 2, (tokens,), generator=g)
    T = token_timesteps(timestep_table(config, schedule), modality, layer_index)
    limit = [config.coding.max_value(int(t)) for t in T]
    q = torch.stack([torch.randint(-m, m + 1, (in_features,), generator=g) for m in limit])
    q = q * (torch.rand(q.shape, generator=g) < density)
    return _finish(program, schedule, layer_index, q, modality)


def fitting_shape(config: AcceleratorConfig, *, chunks: int = 24, tiles: int = 4) -> tuple[int, int]:
    """``(in, out)`` of a slice of MiniLM's 384 -> 1536 layer that fits ``config``: up to
    ``chunks`` spike vectors (24 x 16 lanes = the real 384 inputs), at most half the
    activation memory, and up to ``tiles`` output tiles within the weight memory."""
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
    return _finish(compile_layer(config, layer), schedule, layer_index, q, modality)


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
