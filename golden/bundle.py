"""Multi-token bundles: ``B`` tokens share each weight-row read.

A run's tokens are taken ``B`` at a time in order (:func:`bundles`: tokens ``0 .. B-1``,
``B .. 2B-1``, ...; the last bundle may hold fewer). The tokens of a bundle are computed
together, step by step: at every step the spike core reads the weight row of each input
index at which *any* of the bundle's tokens fires, once, and every token that fires there
adds or subtracts the row into its own accumulators. A bundle changes the schedule, never
a token's result: every token's accumulators equal those of the token computed alone
(:func:`bundle_accumulators` checks this against :func:`~.spike_linear.spike_linear`).

**Steps.** Each token keeps its own ``T`` (from the timestep table, by its modality and
layer); the bundle runs ``T_B = max_b T_b`` steps. With TC-LIF coding the steps are aligned
at the *least* significant end, so that the threshold of bundle step ``t`` is the same
``2^(T_B-1-t)`` for every token: a token with ``T_b < T_B`` is silent in the first
``T_B - T_b`` steps and then fires its own digits (bundle step ``t`` is its step
``t - (T_B - T_b)``). The doubling at every step boundary is common to the bundle, and a
silent token's accumulators are 0, which doubling keeps, so its result is exactly its own
recurrence. With count coding (no doubling) a token fires in its own first ``T_b`` steps.

**Output order.** Outputs leave tile by tile: for each output tile, the tile of every token
of the bundle in order, then the next tile (tile-major within the bundle; the requantizer
takes the bundle's final accumulators one token at a time). :func:`output_order` lists
``(token, tile)`` in that order; the driver puts them back in token order.

**Counts.** A bundle's spike vector at a step and chunk has, per lane, one event if any of
its tokens fires there: the *union*. Weight-row reads per tile are the union events over
the bundle's steps; spike events are every token's own spikes, as without bundles.
"""

from __future__ import annotations

import torch

from spikemllm.config import Coding

from ._checks import check_integer_tensor
from .encoding import encode_count_signed, encode_tc_lif
from .spike_linear import spike_linear

__all__ = ["bundles", "bundle_steps", "bundle_spikes", "bundle_accumulators", "output_order"]


def bundles(tokens: int, B: int) -> list[range]:
    """Token indices of each bundle: ``B`` consecutive tokens, the last bundle the rest."""
    if not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"tokens must be a non-negative int, not {tokens!r}")
    if not isinstance(B, int) or B < 1:
        raise ValueError(f"bundle size B must be a positive int, not {B!r}")
    return [range(first, min(first + B, tokens)) for first in range(0, tokens, B)]


def bundle_steps(timesteps) -> int:
    """``T`` of a bundle: the largest ``T`` of its tokens."""
    steps = [int(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
    if not steps or min(steps) < 1:
        raise ValueError(f"a bundle needs tokens with T >= 1, not {steps!r}")
    return max(steps)


def bundle_spikes(q: torch.Tensor, timesteps, coding: Coding | str = Coding.TC_LIF) -> torch.Tensor:
    """Spike trains of a bundle's tokens on the bundle's steps: int8 ``(T_B, tokens, in)``.

    ``q``: integer activations ``(tokens, in)`` (each within what its ``T`` carries);
    ``timesteps``: each token's ``T``. Token ``b``'s own spike train (the encoder's, with
    ``T_b`` steps) sits in bundle steps ``T_B - T_b .. T_B - 1`` with TC-LIF coding (common
    thresholds ``2^(T_B-1-t)``) and in steps ``0 .. T_b - 1`` with count coding; elsewhere it
    is silent.
    """
    coding = Coding(coding)
    q = check_integer_tensor(q, name="q")
    steps = [int(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
    if q.dim() != 2 or len(steps) != q.shape[0]:
        raise ValueError(f"q must be (tokens, in) with one T per token; got {tuple(q.shape)} and {len(steps)} T")
    T = bundle_steps(steps)
    out = torch.zeros(T, *q.shape, dtype=torch.int8)
    for b, Tb in enumerate(steps):
        if coding is Coding.TC_LIF:
            out[T - Tb:, b] = encode_tc_lif(q[b], Tb)
        else:
            out[:Tb, b] = encode_count_signed(q[b], Tb)
    return out


def bundle_accumulators(q: torch.Tensor, timesteps, weight: torch.Tensor,
                        coding: Coding | str = Coding.TC_LIF) -> torch.Tensor:
    """Accumulators ``(tokens, out)`` of a bundle computed the bundle's way: one recurrence
    over the bundle's ``T_B`` steps (doubling at every boundary with TC-LIF) for all its
    tokens, from :func:`bundle_spikes`. Equal, token for token, to the token computed alone
    with its own ``T`` (the golden per-token computation); the tests check it."""
    coding = Coding(coding)
    return spike_linear(bundle_spikes(q, timesteps, coding), weight, coding=coding.value)


def output_order(tokens: int, out_tiles: int, B: int) -> list[tuple[int, int]]:
    """``(token, tile)`` of every output beat in the order the core sends them: per bundle,
    tile by tile, each tile for every token of the bundle."""
    if not isinstance(out_tiles, int) or out_tiles < 1:
        raise ValueError(f"out_tiles must be a positive int, not {out_tiles!r}")
    return [(n, j) for group in bundles(tokens, B) for j in range(out_tiles) for n in group]
