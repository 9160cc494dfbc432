"""Hardware-exact integer inference of a whole converted model.

:func:`convert_integer` replaces every linear layer that :func:`convert_model` converts
(vision encoder, patch embedding, projector, language model, LM head) by an
:class:`IntegerLinear` and calibrates it. Each linear layer then computes what the
SpikeCore computes, and the host does everything else in floating point:

1. **host, float -> integer**: the layer's input ``x`` is quantized with a *static*
   per-tensor scale ``s_in`` to the ``T + 1`` bits that ``T`` TC-LIF steps carry,
   ``q = clamp(round(x / s_in), -Q, Q)`` (:func:`~spikemllm.golden.quantize.quantize_static`),
   ``T`` from the schedule for the layer unit and the token's modality;
2. **core**: ``acc = q @ W_int^T`` with per-channel integer weights (TC-LIF spikes and
   :func:`~spikemllm.golden.spike_linear.spike_linear`, or the dense
   :func:`~spikemllm.golden.spike_linear.integer_matmul`, which equals it exactly), then
   ``r = requantize(acc + bias, multiplier, shift, out_bits)``
   (:func:`~spikemllm.golden.requantize.requantize`): integers of ``out_bits`` bits;
3. **host, integer -> float**: ``y = r * s_out[o]`` with a static per-output-channel scale
   (the requantizer's multiplier is per channel, so per-channel output scales are free).

Norms, activations (SiLU, GELU, QuickGELU), softmax and the attention products, rotary
embeddings, residual additions, patch merging and token embeddings stay on the host in
float, as in :func:`convert_model`.

Every ``(layer, modality, T)`` has one :class:`StaticProgram`: an
:class:`~spikemllm.golden.layer.IntegerLayer` (what
:func:`~spikemllm.firmware.compiler.compile_layer` turns into one core program) and the
two host scales. Scales are calibrated per modality: a language-model layer that sees both
modalities has two programs that share the integer weights and differ in bias,
multiplier and shift (the bias is in accumulator units ``s_in * s_w``, so it depends on
the modality's input scale). The core runs vision tokens with one and text tokens with
the other.

Calibration runs the float model on calibration inputs and records, per layer and
modality, input rows and each output channel's largest magnitude. The input scale for
``T`` is the MSE-optimal clipping of those inputs at ``T + 1`` bits
(:func:`~spikemllm.golden.quantize.calibrate_mse_scale`; ``clip="absmax"``: their largest
magnitude), the output scale the channel's largest magnitude over
``Q_out = 2^(out_bits-1) - 1``. Optionally SmoothQuant factors or a block Hadamard
rotation are folded into the weights (``transform``); the host then applies the inverse
to each input before quantizing it (:meth:`IntegerLinear.map_input`).

Step 2 is the golden model's unless a :class:`Core` is installed (:func:`set_core`): then
every layer call hands its integers to that core and continues from the integers it
returns, so the rest of the forward pass runs on what the core computed (the SpikeCore
RTL under simulation, :mod:`spikemllm.sim.core.model_run`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from spikemllm.config import WIDE_CONFIG, AcceleratorConfig
from spikemllm.modality import Modality

from ..encoding import tc_lif_max
from ..layer import IntegerLayer, run_integer_layer
from ..quantize import (
    block_hadamard,
    calibrate_mse_scale,
    calibrate_static_scale,
    qmax,
    quantize_static,
    quantize_weight_per_channel,
    smoothquant_factors,
)
from ..requantize import requantize
from ..spike_linear import integer_matmul
from .model import ModalityRouter, convert_layers
from .schedule import Schedule

__all__ = ["StaticProgram", "IntegerLinear", "Core", "convert_integer", "integer_layers", "set_spikes", "set_core",
           "TRANSFORMS", "CLIPS", "CALIBRATION_VALUES"]

CALIBRATION_VALUES = 1 << 16
"""Input values kept per (layer, modality) for choosing the input scale (whole rows, evenly strided)."""


@dataclass(frozen=True)
class StaticProgram:
    """One layer's integer program for one modality at one ``T``, with the host's scales."""

    layer: IntegerLayer
    """what the core runs (compile with :func:`~spikemllm.firmware.compiler.compile_layer`)"""
    timesteps: int
    in_scale: float
    """host: ``q = clamp(round(x / in_scale), -Q, Q)``, ``Q = 2^T - 1``"""
    out_scale: torch.Tensor
    """host: ``y[o] = r[o] * out_scale[o]`` (float64, ``(out,)``)"""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Host side, float -> integer: the ``T + 1``-bit activations the core encodes."""
        return quantize_static(x, self.in_scale, self.timesteps + 1).q

    def integers(self, q: torch.Tensor, *, spikes: bool = False) -> torch.Tensor:
        """Core side: requantized ``out_bits`` integers of ``q``.

        ``spikes=True`` runs TC-LIF spikes through the sparse accumulation
        (:func:`~spikemllm.golden.layer.run_integer_layer`); ``False`` forms the same
        accumulator with a dense integer product, which equals it exactly and is faster.
        """
        if spikes:
            return run_integer_layer(self.layer, q, self.timesteps).out
        acc = integer_matmul(q, self.layer.weight)
        return requantize(acc, self.layer.bias, self.layer.multiplier, self.layer.shift, self.layer.out_bits)

    def dequantize(self, r: torch.Tensor) -> torch.Tensor:
        """Host side, integer -> float (float64)."""
        return r.double() * self.out_scale

    def __call__(self, x: torch.Tensor, *, spikes: bool = False) -> torch.Tensor:
        return self.dequantize(self.integers(self.quantize(x), spikes=spikes))


class Core(Protocol):
    """What computes step 2 of a layer call in place of the golden model (:func:`set_core`)."""

    def __call__(self, layer: "IntegerLinear", modality: int, program: StaticProgram, q: torch.Tensor,
                 tokens: torch.Tensor) -> torch.Tensor:
        """The requantized ``out_bits`` integers ``(n, out)`` of ``program`` for ``q`` ``(n, in)``.

        ``modality``: the tokens' tag (0 text, 1 vision); ``tokens``: their positions among
        the call's tokens (flattened over the leading dimensions), for naming them.
        """


class _Statistics:
    """Calibration statistics of one layer for one modality: its input rows and output maxima."""

    def __init__(self, out_features: int):
        self.inputs: list[torch.Tensor] = []
        self.out_absmax = torch.zeros(out_features, dtype=torch.float64)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.inputs.append(x.detach().float())
        self.out_absmax = torch.maximum(self.out_absmax, y.detach().abs().amax(dim=0).double())

    def input_rows(self) -> torch.Tensor:
        """At most about ``CALIBRATION_VALUES`` values, as whole rows evenly strided."""
        rows = torch.cat(self.inputs)
        stride = max(1, rows.numel() // CALIBRATION_VALUES)
        return rows[::stride]


CLIPS = ("mse", "absmax")
"""How the static input scale is chosen from calibration inputs (:class:`IntegerLinear`)."""
TRANSFORMS = ("none", "smoothquant", "hadamard")
"""Input transforms folded into the integer weights (:class:`IntegerLinear`)."""


class IntegerLinear(nn.Module):
    """A linear layer computed as the accelerator computes it (see the module docstring).

    Built by :func:`convert_integer`; until it is calibrated (:meth:`finish_calibration`)
    it computes the float layer and, in calibration mode, records statistics.
    """

    layer_name: str
    router: ModalityRouter

    def __init__(self, linear: nn.Linear, *, config: AcceleratorConfig = WIDE_CONFIG, transform: str = "none",
                 alpha: float = 0.5, clip: str = "mse"):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected an nn.Linear, not {type(linear).__name__}")
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, not {transform!r}")
        if clip not in CLIPS:
            raise ValueError(f"clip must be one of {CLIPS}, not {clip!r}")
        self.transform, self.alpha, self.clip = transform, alpha, clip
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.config = config
        self.float_dtype = linear.weight.dtype
        self.register_buffer("float_weight", linear.weight.detach().double().clone())
        self.register_buffer("float_bias", None if linear.bias is None else linear.bias.detach().double().clone())
        self.register_buffer("input_map", None)
        self._quantize_weight(self.float_weight)
        self.calibrating = False
        self.spikes = False
        self.core: Core | None = None
        self.statistics: dict[int, _Statistics] = {}
        self._programs: dict[tuple[int, int], StaticProgram] = {}

    def _quantize_weight(self, weight: torch.Tensor) -> None:
        wq = quantize_weight_per_channel(weight, self.config.weight_bits)
        self.weight_int, self.weight_scale = wq.q, wq.scale.double()
        self.folded_weight = weight

    def map_input(self, x: torch.Tensor) -> torch.Tensor:
        """Host side: the input transform whose inverse is folded into the weights
        (SmoothQuant: divide by the per-channel factors; Hadamard: rotate), in float64."""
        return x if self.input_map is None else x @ self.input_map

    def _fit_transform(self) -> None:
        """Fold the transform into the weights from the calibration inputs of every modality."""
        if self.transform == "none":
            return
        if self.transform == "smoothquant":
            rows = torch.cat([s.input_rows() for s in self.statistics.values()]).double()
            factors = smoothquant_factors(rows.abs().amax(dim=0), self.float_weight, self.alpha)
            self.input_map = torch.diag(1.0 / factors)
            self._quantize_weight(self.float_weight * factors)
        else:
            self.input_map = block_hadamard(self.in_features)
            self._quantize_weight(self.float_weight @ self.input_map)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``W_int * s_w`` (model code reads its dtype and device)."""
        return (self.weight_int.double() * self.weight_scale[:, None]).to(self.float_dtype)

    @property
    def calibrated(self) -> bool:
        return bool(self.statistics) and not self.calibrating

    def program(self, modality: int, T: int) -> StaticProgram:
        """The program of ``modality`` at ``T`` steps (built once, then cached)."""
        key = (int(modality), int(T))
        if key not in self._programs:
            if int(modality) not in self.statistics:
                raise ValueError(f"layer {self.layer_name!r} saw no {Modality(int(modality)).label} tokens in calibration")
            if not 1 <= T <= self.config.t_max:
                raise ValueError(f"T={T} for {self.layer_name!r} is outside the core's [1, {self.config.t_max}]")
            stats = self.statistics[int(modality)]
            inputs = self.map_input(stats.input_rows().double())
            if self.clip == "mse":
                in_scale = float(calibrate_mse_scale(inputs, T + 1))
            else:
                in_scale = float(calibrate_static_scale(inputs, T + 1))
            out_max = stats.out_absmax
            out_scale = torch.where(out_max > 0, out_max, out_max.max().clamp(min=1.0)) / qmax(self.config.out_bits)
            linear = nn.Linear(self.in_features, self.out_features, bias=self.float_bias is not None, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(self.folded_weight)
                if self.float_bias is not None:
                    linear.bias.copy_(self.float_bias)
            c = self.config
            layer = IntegerLayer.from_linear(linear, in_scale=in_scale, out_scale=out_scale, out_bits=c.out_bits,
                                             weight_bits=c.weight_bits, multiplier_bits=c.multiplier_bits,
                                             max_shift=c.max_shift)
            assert tc_lif_max(T) == qmax(T + 1)  # T TC-LIF steps carry exactly the T + 1-bit integers
            self._programs[key] = StaticProgram(layer, int(T), in_scale, out_scale)
        return self._programs[key]

    def finish_calibration(self) -> None:
        self.calibrating = False
        self._programs.clear()
        self._fit_transform()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, layer expects {self.in_features}")
        router = self.router
        modality = router.modality_of(self.layer_name, x.shape[:-1]).reshape(-1)
        flat = x.reshape(-1, self.in_features).double()
        if not self.calibrated:
            out = flat @ self.float_weight.T
            if self.float_bias is not None:
                out = out + self.float_bias
            if self.calibrating:
                for m in modality.unique().tolist():
                    rows = modality == m
                    self.statistics.setdefault(int(m), _Statistics(self.out_features)).add(flat[rows], out[rows])
        else:
            out = torch.empty(flat.shape[0], self.out_features, dtype=torch.float64, device=x.device)
            entry = router.schedule.timesteps[self.layer_name]
            for m in modality.unique().tolist():
                rows = modality == m
                program = self.program(m, entry[Modality(int(m)).label])
                if self.core is None:
                    out[rows] = program(self.map_input(flat[rows]), spikes=self.spikes)
                else:
                    q = program.quantize(self.map_input(flat[rows]))
                    out[rows] = program.dequantize(self.core(self, int(m), program, q, rows.nonzero().flatten()))
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"layer={self.layer_name!r}, in_features={self.in_features}, out_features={self.out_features}, "
                f"config={self.config.name!r}, transform={self.transform!r}, calibrated={self.calibrated}")


def integer_layers(model: nn.Module) -> dict[str, IntegerLinear]:
    """The :class:`IntegerLinear` layers of a model from :func:`convert_integer`, by module path."""
    return {name: m for name, m in model.named_modules() if isinstance(m, IntegerLinear)}


def set_spikes(model: nn.Module, spikes: bool) -> None:
    """Compute every layer through TC-LIF spikes (``True``) or the equal dense integer product."""
    for layer in integer_layers(model).values():
        layer.spikes = bool(spikes)


def set_core(model: nn.Module, core: Core | None) -> None:
    """Compute every layer's integer step with ``core`` (``None``: the golden model again)."""
    for layer in integer_layers(model).values():
        layer.core = core


def convert_integer(
    model: nn.Module,
    calibration: Iterable[dict],
    schedule: Schedule | None = None,
    *,
    config: AcceleratorConfig = WIDE_CONFIG,
    transform: str = "none",
    alpha: float = 0.5,
    clip: str = "mse",
) -> nn.Module:
    """A calibrated hardware-exact integer copy of ``model``.

    ``calibration``: keyword-argument dicts for the model's forward (e.g. ``collate(...)
    ["inputs"]``), run through the float layers to fix the static scales. ``config`` gives
    the core's widths (weight bits, ``out_bits``, multiplier bits, shifts, ``t_max``).
    ``schedule`` as for :func:`convert_model` (:func:`set_schedule` changes it later;
    programs for a new ``T`` are built from the same statistics). ``transform``:
    ``"smoothquant"`` (per-input-channel factors with migration strength ``alpha``) or
    ``"hadamard"`` (block Hadamard rotation) folded into the integer weights, the host
    applying the inverse to the inputs; ``"none"`` by default. ``clip``: the input scale's
    clipping level minimizes the squared error (``"mse"``, default) or is the calibration
    inputs' absolute maximum (``"absmax"``).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, not {transform!r}")
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    def make(linear, _T, _path):
        return IntegerLinear(linear, config=config, transform=transform, alpha=alpha, clip=clip)

    converted = convert_layers(model, schedule, make, kind="integer", weight_bits=config.weight_bits)
    layers = integer_layers(converted)
    for layer in layers.values():
        layer.calibrating = True
    with torch.no_grad():
        for inputs in calibration:
            converted(**inputs)
    for layer in layers.values():
        layer.finish_calibration()
        if not layer.statistics:
            raise ValueError(f"calibration never reached layer {layer.layer_name!r}")
    return converted
