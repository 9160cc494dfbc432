"""Token modalities and the timestep table they index: one home for both.

Every token is tagged with its :class:`Modality`; the accelerator looks up its ``T`` in a
timestep table of ``len(Modality)`` entries per layer, at :func:`timestep_index`. The
schedule files of the conversion flow, the layer compiler, the hardware's ``TTABLE``
registers and the testbenches all use these.
"""

from __future__ import annotations

import enum

__all__ = ["Modality", "MODALITIES", "timestep_index", "timestep_entries"]


class Modality(enum.IntEnum):
    """A token's modality; its value is the tag the hardware carries (one bit)."""

    TEXT = 0
    VISION = 1

    @property
    def label(self) -> str:
        """The name schedule files use: ``"text"`` or ``"vision"``."""
        return self.name.lower()

    @classmethod
    def of(cls, value) -> "Modality":
        """A modality from its tag (``0``/``1``) or label (``"text"``/``"vision"``);
        raises ``ValueError`` naming anything else."""
        if isinstance(value, str):
            for m in cls:
                if m.label == value:
                    return m
            raise ValueError(f"modality must be one of {MODALITIES}, not {value!r}")
        try:
            return cls(int(value))
        except (TypeError, ValueError):
            raise ValueError(f"modality tag must be one of {[int(m) for m in cls]}, not {value!r}") from None


MODALITIES = tuple(m.label for m in Modality)
"""Labels of the modalities in tag order: ``("text", "vision")``."""


def timestep_index(layer: int, modality) -> int:
    """Index of ``(layer, modality)`` in the timestep table: ``len(Modality) * layer + modality``.

    The hardware forms it as ``Cat(modality, layer)``, the same number because
    ``len(Modality)`` is a power of two.
    """
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, not {layer!r}")
    return len(Modality) * layer + int(Modality.of(modality))


def timestep_entries(layers: int) -> int:
    """Entries of a timestep table of ``layers`` layers."""
    return len(Modality) * layers
