"""Stall patterns: which cycles a producer offers data and a consumer accepts it.

A pattern is a deterministic function ``cycle -> bool``. Producers are gated by one
(``False`` = idle this cycle, even with data to send) and consumers by another
(``False`` = back-pressure). Every stream in the testbenches is crossed with these.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Pattern", "PATTERNS", "pattern", "always", "LATE_START", "late_start"]

Pattern = Callable[[int], bool]


def always(_cycle: int) -> bool:
    """Never stall."""
    return True


def _alternate(cycle: int) -> bool:
    return cycle % 2 == 0


def _bursts(cycle: int) -> bool:
    # Seven cycles on, five off: stalls that straddle multi-beat transfers.
    return cycle % 12 < 7


def _random(probability: float, seed: int) -> Pattern:
    rng = random.Random(seed)
    table = [rng.random() < probability for _ in range(4096)]
    return lambda cycle: table[cycle % len(table)]


PATTERNS = ("always", "alternate", "bursts", "random30", "random70")
"""Names of the standard patterns, from no stall to mostly stalled."""


def pattern(name: str, *, seed: int = 0) -> Pattern:
    """The named pattern; ``random30``/``random70`` stall about 30 % / 70 % of cycles.

    Raises ``ValueError`` for an unknown name.
    """
    if name == "always":
        return always
    if name == "alternate":
        return _alternate
    if name == "bursts":
        return _bursts
    if name == "random30":
        return _random(0.7, seed)
    if name == "random70":
        return _random(0.3, seed)
    raise ValueError(f"unknown stall pattern {name!r}; known: {PATTERNS}")


LATE_START = 4
"""Cycles a stalled run holds its first input beat back, so that it must take longer than
the ideal run: random stalls alone can fall where the core does not wait for them (a
short run whose tokens arrive faster than it computes, an output buffer)."""


def late_start(gate: Pattern, cycles: int = LATE_START) -> Pattern:
    """``gate`` after the first ``cycles`` cycles of the transfer, idle before."""
    return lambda cycle: cycle >= cycles and gate(cycle)
