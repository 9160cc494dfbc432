"""Integer -> spike-train encoders and their decoders (SPEC section 3).

A spike is ternary (-1, 0, +1). Spike trains are int8 tensors of shape ``(T, *q.shape)``,
timestep first, most significant step first.

* **TC-LIF** (temporally compressed LIF, the method): ``T`` steps carry ``|q| <= 2^T - 1``.
  Membrane ``V_0 = q``; threshold ``theta_t = 2^(T-1-t)``; fire ``sign(V_t)`` when
  ``|V_t| >= theta_t``; reset by subtraction. The spikes are the sign-magnitude binary
  digits of ``q``, most significant first, and ``q = sum_t s_t * theta_t`` exactly.
* **Signed count coding** (baseline): threshold 1 at every step, so ``T >= |q|`` steps are
  needed; ``T = Q = 2^(b-1) - 1`` for ``b``-bit activations.
* **Unsigned count coding** (baseline): one positive spike per unit of an unsigned
  integer ``u in [0, T]``; ``T = L - 1 = 2^b - 1`` for ``b``-bit levels.

Encoders raise on values they cannot represent (non-integers, or magnitudes beyond what
``T`` steps carry) unless ``saturate=True`` is passed explicitly.
"""

from __future__ import annotations

import torch

from ._checks import check_bits, check_integer_tensor, check_range, check_timesteps

__all__ = [
    "tc_lif_thresholds",
    "tc_lif_max",
    "tc_lif_timesteps",
    "count_timesteps",
    "encode_tc_lif",
    "decode_tc_lif",
    "encode_count_signed",
    "decode_count_signed",
    "encode_count_unsigned",
    "decode_count_unsigned",
]


def tc_lif_thresholds(T: int) -> torch.Tensor:
    """Thresholds ``[2^(T-1), ..., 2, 1]`` as an int64 tensor of shape ``(T,)``."""
    check_timesteps(T)
    return torch.tensor([1 << (T - 1 - t) for t in range(T)], dtype=torch.int64)


def tc_lif_max(T: int) -> int:
    """Largest magnitude ``T`` TC-LIF steps represent: ``2^T - 1``."""
    check_timesteps(T)
    return (1 << T) - 1


def tc_lif_timesteps(bits: int) -> int:
    """TC-LIF steps for ``bits``-bit symmetric activations: ``T = log2(L) - 1 = bits - 1``."""
    check_bits(bits)
    return bits - 1


def count_timesteps(bits: int, *, signed: bool = True) -> int:
    """Count-coding steps for ``bits``-bit activations: ``Q`` signed, ``L - 1`` unsigned."""
    check_bits(bits)
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def _prepare(q: torch.Tensor, low: int, high: int, *, saturate: bool, what: str) -> torch.Tensor:
    q = check_integer_tensor(q, name="q")
    if saturate:
        return q.clamp(low, high)
    check_range(q, low, high, name="q", hint=f"{what}; pass saturate=True to clamp explicitly")
    return q


def _fire(q: torch.Tensor, thresholds: list[int], *, signed: bool) -> torch.Tensor:
    """Run the integrate-and-fire neuron with subtractive reset over the given thresholds."""
    v = q.clone()
    spikes = torch.empty((len(thresholds), *q.shape), dtype=torch.int8, device=q.device)
    for t, theta in enumerate(thresholds):
        s = torch.sign(v) if signed else (v > 0).to(torch.int64)
        s = s * (v.abs() >= theta)
        v = v - s * theta
        spikes[t] = s
    # Every representable value leaves nothing behind; anything else is a bug here.
    if bool(v.any()):
        raise AssertionError("neuron left a residual membrane potential; encoder range check is wrong")
    return spikes


def encode_tc_lif(q: torch.Tensor, T: int, *, saturate: bool = False) -> torch.Tensor:
    """Encode integers as TC-LIF spike trains of ``T`` steps, most significant first.

    ``q``: integer tensor (any shape; floats accepted only if whole numbers) with
    ``|q| <= 2^T - 1``. Returns int8 spikes of shape ``(T, *q.shape)`` in {-1, 0, +1}.

    Raises ``ValueError`` naming the first value that is not an integer or exceeds
    ``2^T - 1`` (unless ``saturate=True``), and for ``T`` outside [1, 15].
    """
    check_timesteps(T)
    m = tc_lif_max(T)
    q = _prepare(q, -m, m, saturate=saturate, what=f"T={T} TC-LIF steps carry |q| <= 2^T-1 = {m}")
    return _fire(q, [1 << (T - 1 - t) for t in range(T)], signed=True)


def _check_spikes(spikes: torch.Tensor) -> torch.Tensor:
    spikes = check_integer_tensor(spikes, name="spikes")
    if spikes.dim() < 1:
        raise ValueError("spikes must have a leading timestep dimension, got a 0-d tensor")
    check_range(spikes, -1, 1, name="spikes", hint="spikes are ternary")
    return spikes


def decode_tc_lif(spikes: torch.Tensor) -> torch.Tensor:
    """Decode TC-LIF spikes ``(T, ...)`` to integers: ``q = sum_t s_t * 2^(T-1-t)`` (int64)."""
    spikes = _check_spikes(spikes)
    T = check_timesteps(spikes.shape[0], name="number of timesteps (spikes.shape[0])")
    theta = tc_lif_thresholds(T).to(spikes.device).view(T, *([1] * (spikes.dim() - 1)))
    return (spikes * theta).sum(dim=0)


def encode_count_signed(q: torch.Tensor, T: int, *, saturate: bool = False) -> torch.Tensor:
    """Signed ternary count coding: ``|q|`` spikes of sign ``sign(q)`` in the first steps.

    Needs ``T >= |q|`` (``T = Q`` covers every ``b``-bit value). Same errors as
    :func:`encode_tc_lif`; ``T`` may be up to 2^15 - 1.
    """
    check_timesteps(T, high=(1 << 15) - 1)
    q = _prepare(q, -T, T, saturate=saturate, what=f"T={T} count-coding steps carry |q| <= {T}")
    return _fire(q, [1] * T, signed=True)


def decode_count_signed(spikes: torch.Tensor) -> torch.Tensor:
    """Decode count-coded spikes ``(T, ...)``: ``q = sum_t s_t`` (int64)."""
    return _check_spikes(spikes).sum(dim=0)


def encode_count_unsigned(u: torch.Tensor, T: int, *, saturate: bool = False) -> torch.Tensor:
    """Unsigned binary count coding: ``u`` positive spikes in the first steps, ``0 <= u <= T``.

    A signed ``b``-bit value is carried as ``u = q + Q`` with ``T = L - 1``.
    """
    check_timesteps(T, high=(1 << 16) - 1)
    u = _prepare(u, 0, T, saturate=saturate, what=f"T={T} unsigned count-coding steps carry 0 <= u <= {T}")
    return _fire(u, [1] * T, signed=False)


def decode_count_unsigned(spikes: torch.Tensor) -> torch.Tensor:
    """Decode unsigned count-coded spikes; raises if a spike is negative."""
    spikes = _check_spikes(spikes)
    check_range(spikes, 0, 1, name="spikes", hint="unsigned count coding has no negative spikes")
    return spikes.sum(dim=0)
