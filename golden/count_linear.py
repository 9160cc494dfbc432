"""``CountSpikeLinear``: the count-coding baseline as a drop-in linear layer.

Same interface and dequantization as :class:`~spikemllm.golden.modules.SpikeLinear`, but
the activations are carried by signed ternary count coding (SPEC section 3): ``T`` steps of
threshold 1 carry ``|q| <= T``, so a token quantized for ``T`` count steps has ``Q = T``
(``2T + 1`` levels), against ``2^(T+1) - 1`` levels for ``T`` TC-LIF steps.

Two comparisons follow from one class:

* *equal steps*: ``T`` count steps against ``T`` TC-LIF steps -- count coding has far fewer
  levels, so it loses accuracy;
* *equal levels*: ``2^T - 1`` count steps carry exactly the integers of ``T`` TC-LIF steps
  (``Q = 2^T - 1``), so the outputs are identical and only the step count differs.
"""

from __future__ import annotations

import torch

from .encoding import encode_count_signed
from .modules import SpikeLinear
from .rounding import round_half_away
from .spike_linear import spike_linear

__all__ = ["CountSpikeLinear", "quantize_per_token_levels"]


def quantize_per_token_levels(x: torch.Tensor, Q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token symmetric quantization to ``[-Q, Q]`` for any ``Q >= 1``.

    ``scale = max|x_token| / Q`` (an all-zero token gets scale 1) and
    ``q = clamp(round_half_away(x / scale), -Q, Q)``, in float64: for ``Q = 2^(b-1) - 1``
    this is exactly :func:`~spikemllm.golden.quantize.quantize_per_token` with ``b`` bits.
    Returns ``(q int64, scale float64 of shape (..., 1))``.
    """
    if isinstance(Q, bool) or not isinstance(Q, int) or Q < 1:
        raise ValueError(f"Q must be a positive int, not {Q!r}")
    absmax = x.detach().abs().amax(dim=-1, keepdim=True).double()
    scale = torch.where(absmax > 0, absmax / Q, torch.ones_like(absmax))
    q = round_half_away(x.double() / scale).clamp(-Q, Q).to(torch.int64)
    return q, scale


class CountSpikeLinear(SpikeLinear):
    """Linear layer computed through signed count-coded spikes (``T`` steps carry ``|q| <= T``).

    ``timesteps`` are count steps. Static activation scales are not supported (the
    comparison is made with per-token scales).
    """

    def quantize_input(self, x: torch.Tensor, T: int):
        if self.act_absmax is not None:
            raise ValueError("CountSpikeLinear supports per-token activation scales only, not static ones")
        return quantize_per_token_levels(x, T)

    def integer_product(self, q: torch.Tensor, T: int) -> torch.Tensor:
        return spike_linear(encode_count_signed(q, T), self.weight_int, coding="count")
