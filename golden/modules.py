"""``SpikeLinear``: a drop-in ``nn.Linear`` replacement that computes through spikes.

Float in, float out. Inside, per token:

1. (optional) SmoothQuant: divide activations by the per-channel factors folded into W;
   (optional) rotation: multiply by the orthonormal matrix ``R`` folded into W (``W R``);
2. quantize activations per token (or with a static calibrated scale) to ``b = T + 1``
   bits, so the integers fit ``T`` TC-LIF steps;
3. encode to TC-LIF spikes and accumulate through the integer weights with
   :func:`spike_linear` (the real spike path);
4. dequantize: ``out = acc * s_x * s_w[o] + bias`` in float64, cast to the input dtype.

:class:`FakeQuantLinear` is the twin that forms the same integer product with a dense
matrix multiply instead of spikes; everything else is shared. Since the spike path is
exact, both produce bit-identical outputs, which the tests check.

``T`` may differ per token (modality-specific temporal scales): pass ``timesteps`` as an
integer tensor of the tokens' shape to ``forward``.
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from ._checks import check_integer_tensor, check_timesteps
from .encoding import encode_tc_lif
from .quantize import (
    gptq_weight_per_channel,
    qmax,
    quantize_per_token,
    quantize_static,
    quantize_weight_per_channel,
    smoothquant_factors,
)
from .spike_linear import integer_matmul, spike_linear

__all__ = ["SpikeLinear", "FakeQuantLinear"]


class _QuantLinearBase(nn.Module, abc.ABC):
    """Shared quantization, per-token timestep routing and dequantization."""

    def __init__(
        self,
        weight_int: torch.Tensor,
        weight_scale: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        timesteps: int = 3,
        weight_bits: int = 8,
        act_absmax: float | None = None,
        smooth: torch.Tensor | None = None,
        rotation: torch.Tensor | None = None,
    ):
        super().__init__()
        check_timesteps(timesteps, name="timesteps")
        weight_int = check_integer_tensor(weight_int, name="weight_int")
        if weight_int.dim() != 2:
            raise ValueError(f"weight_int must be (out, in), not shape {tuple(weight_int.shape)}")
        out_features, in_features = weight_int.shape
        Q = qmax(weight_bits)
        if int(weight_int.abs().max()) > Q:
            raise ValueError(f"weight_int does not fit {weight_bits} bits: max |w| = {int(weight_int.abs().max())} > {Q}")
        if weight_scale.shape != (out_features,):
            raise ValueError(f"weight_scale must have shape ({out_features},), not {tuple(weight_scale.shape)}")
        if bias is not None and bias.shape != (out_features,):
            raise ValueError(f"bias must have shape ({out_features},), not {tuple(bias.shape)}")
        if smooth is not None and smooth.shape != (in_features,):
            raise ValueError(f"smooth must have shape ({in_features},), not {tuple(smooth.shape)}")
        if rotation is not None and rotation.shape != (in_features, in_features):
            raise ValueError(f"rotation must have shape ({in_features}, {in_features}), not {tuple(rotation.shape)}")
        if act_absmax is not None and not act_absmax > 0:
            raise ValueError(f"act_absmax must be positive, not {act_absmax!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.timesteps = timesteps
        self.weight_bits = weight_bits
        self.act_absmax = act_absmax
        self.register_buffer("weight_int", weight_int)
        self.register_buffer("weight_scale", weight_scale.detach().double())
        self.register_buffer("bias", None if bias is None else bias.detach().double())
        self.register_buffer("smooth", None if smooth is None else smooth.detach().double())
        self.register_buffer("rotation", None if rotation is None else rotation.detach().double())

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        *,
        timesteps: int = 3,
        weight_bits: int = 8,
        calibration: torch.Tensor | None = None,
        static: bool = False,
        smooth_alpha: float | None = None,
        rotation: torch.Tensor | None = None,
        gram: torch.Tensor | None = None,
    ):
        """Convert an ``nn.Linear``.

        ``calibration`` (inputs of shape ``(..., in)``) is needed for ``static=True``
        (per-tensor activation scale) and for SmoothQuant (``smooth_alpha``).
        ``rotation``: an orthonormal ``(in, in)`` matrix ``R`` (e.g.
        :func:`~.quantize.block_hadamard`); the layer quantizes ``x R`` and ``W R``, whose
        product is ``x W^T``. ``gram``: ``X^T X`` of calibration inputs ``(in, in)``; the
        weights are then rounded by GPTQ (:func:`~.quantize.gptq_weight_per_channel`) on
        the inputs as the layer quantizes them (after smoothing and rotation) instead of to
        nearest.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected an nn.Linear, not {type(linear).__name__}")
        if (static or smooth_alpha is not None) and calibration is None:
            raise ValueError("static scales and SmoothQuant need calibration inputs")
        weight = linear.weight.detach().double()
        smooth = None
        if smooth_alpha is not None:
            absmax = calibration.detach().double().abs().reshape(-1, weight.shape[1]).amax(dim=0)
            smooth = smoothquant_factors(absmax, weight, smooth_alpha)
            weight = weight * smooth
            calibration = calibration.double() / smooth
        if rotation is not None:
            rotation = rotation.detach().double()
            if rotation.shape != (weight.shape[1], weight.shape[1]) or not torch.allclose(
                rotation @ rotation.T, torch.eye(weight.shape[1], dtype=torch.float64), atol=1e-9
            ):
                raise ValueError(f"rotation must be an orthonormal ({weight.shape[1]}, {weight.shape[1]}) matrix")
            weight = weight @ rotation
            if calibration is not None:
                calibration = calibration.double().reshape(-1, weight.shape[1]) @ rotation
        if gram is not None:
            g = gram.detach().double()
            if smooth is not None:
                g = g / smooth[:, None] / smooth[None, :]
            if rotation is not None:
                g = rotation.T @ g @ rotation
            wq = gptq_weight_per_channel(weight, g, weight_bits)
        else:
            wq = quantize_weight_per_channel(weight, weight_bits)
        act_absmax = None
        if static:
            act_absmax = float(calibration.detach().abs().max())
            if not act_absmax > 0:
                raise ValueError("calibration inputs are all zero; no static scale can be formed")
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(wq.q, wq.scale, bias, timesteps=timesteps, weight_bits=weight_bits, act_absmax=act_absmax, smooth=smooth,
                   rotation=rotation)

    def quantize_input(self, x: torch.Tensor, T: int):
        """Integers and scales of ``x`` (already smoothed) for ``T`` steps (``T+1`` bits)."""
        bits = T + 1
        if self.act_absmax is None:
            return quantize_per_token(x, bits)
        return quantize_static(x, self.act_absmax / qmax(bits), bits)

    @abc.abstractmethod
    def integer_product(self, q: torch.Tensor, T: int) -> torch.Tensor:
        """``q @ W_int.T`` in int64; subclasses decide how."""

    def _timesteps_per_token(self, x: torch.Tensor, timesteps) -> torch.Tensor:
        tokens = x.shape[:-1]
        if timesteps is None:
            timesteps = self.timesteps
        if isinstance(timesteps, int):
            check_timesteps(timesteps, name="timesteps")
            return torch.full(tokens, timesteps, dtype=torch.int64, device=x.device)
        t = check_integer_tensor(timesteps, name="timesteps")
        if t.shape != tokens:
            raise ValueError(f"timesteps must have the tokens' shape {tuple(tokens)}, not {tuple(t.shape)}")
        for value in t.unique().tolist():
            check_timesteps(int(value), name="timesteps")
        return t

    def forward(self, x: torch.Tensor, timesteps: int | torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(..., in)`` floats; ``timesteps``: int or per-token integer tensor."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, layer expects {self.in_features}")
        steps = self._timesteps_per_token(x, timesteps).reshape(-1)
        flat = x.reshape(-1, self.in_features).double()
        if self.smooth is not None:
            flat = flat / self.smooth
        if self.rotation is not None:
            flat = flat @ self.rotation
        out = torch.empty(flat.shape[0], self.out_features, dtype=torch.float64, device=x.device)
        for T in steps.unique().tolist():
            rows = steps == T
            q, scale = self.quantize_input(flat[rows], int(T))
            acc = self.integer_product(q, int(T))
            out[rows] = acc.double() * scale.double() * self.weight_scale
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        mode = "per-token" if self.act_absmax is None else f"static absmax={self.act_absmax:.4g}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"timesteps={self.timesteps}, weight_bits={self.weight_bits}, activations={mode}, "
            f"smooth={self.smooth is not None}, rotation={self.rotation is not None}"
        )


class SpikeLinear(_QuantLinearBase):
    """Linear layer computed through TC-LIF spikes and sparse accumulation.

    Construct with :meth:`from_linear` or from integer weights. ``forward(x, timesteps)``
    takes floats ``(..., in)`` and returns floats ``(..., out)``. The integer product goes
    through :func:`encode_tc_lif` and :func:`spike_linear`, i.e. the real spike path.
    """

    def integer_product(self, q: torch.Tensor, T: int) -> torch.Tensor:
        return spike_linear(encode_tc_lif(q, T), self.weight_int)


class FakeQuantLinear(_QuantLinearBase):
    """Fake-quantization twin of :class:`SpikeLinear`: same integers, dense product."""

    def integer_product(self, q: torch.Tensor, T: int) -> torch.Tensor:
        return integer_matmul(q, self.weight_int)
