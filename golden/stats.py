"""Spike statistics: how much work a spike train causes on a sparse-accumulate core."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_integer_tensor, check_range

__all__ = ["SpikeStats", "spike_statistics"]


@dataclass(frozen=True)
class SpikeStats:
    """Counts and rates of a spike train of shape ``(T, ...)``.

    An *event* is a non-zero spike: one add or subtract per output channel in the PE array.
    """

    timesteps: int
    values: int
    """number of encoded values (elements per timestep)"""
    events: int
    positive: int
    negative: int
    events_per_step: tuple[int, ...]

    @property
    def slots(self) -> int:
        """Spike slots: ``timesteps * values``."""
        return self.timesteps * self.values

    @property
    def firing_rate(self) -> float:
        """Fraction of slots holding a spike."""
        return self.events / self.slots if self.slots else 0.0

    @property
    def sparsity(self) -> float:
        """Fraction of slots holding no spike: ``1 - firing_rate``."""
        return 1.0 - self.firing_rate

    @property
    def events_per_value(self) -> float:
        """Average number of events (accumulates) per encoded value."""
        return self.events / self.values if self.values else 0.0

    @property
    def firing_rate_per_step(self) -> tuple[float, ...]:
        """Firing rate at each timestep."""
        return tuple(e / self.values if self.values else 0.0 for e in self.events_per_step)

    def as_dict(self) -> dict:
        """Plain dictionary including the derived rates (for JSON reports)."""
        return {
            "timesteps": self.timesteps,
            "values": self.values,
            "events": self.events,
            "positive": self.positive,
            "negative": self.negative,
            "events_per_step": list(self.events_per_step),
            "firing_rate": self.firing_rate,
            "firing_rate_per_step": list(self.firing_rate_per_step),
            "sparsity": self.sparsity,
            "events_per_value": self.events_per_value,
        }


def spike_statistics(spikes: torch.Tensor) -> SpikeStats:
    """Statistics of a ternary spike train ``(T, ...)``; raises on non-ternary values."""
    spikes = check_integer_tensor(spikes, name="spikes")
    if spikes.dim() < 1:
        raise ValueError("spikes must have a leading timestep dimension, got a 0-d tensor")
    check_range(spikes, -1, 1, name="spikes", hint="spikes are ternary")
    T = spikes.shape[0]
    flat = spikes.reshape(T, -1)
    per_step = (flat != 0).sum(dim=1)
    return SpikeStats(
        timesteps=T,
        values=flat.shape[1],
        events=int(per_step.sum()),
        positive=int((flat > 0).sum()),
        negative=int((flat < 0).sum()),
        events_per_step=tuple(int(e) for e in per_step),
    )
