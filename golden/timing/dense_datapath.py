"""Cycle model of a dense baseline core's datapath: feeder -> MAC array, stepped one
clock cycle at a time as the RTL (:mod:`spikemllm.hw.dense_core`) does.

The feeder issues ``IN / D`` beats per tile (one per cycle while the MAC array takes
them) through a read register and an input register. The MAC array is a pipeline of
``L - 1`` registers (``L`` = :func:`spikemllm.latency.mac_array_latency`) followed by the
output register, all moving together: the array's ``go`` is low while its output register
holds a vector the consumer does not take, and then no stage moves and no beat is taken.

Same interface as :class:`.spike_datapath.SpikeDatapathModel`, so the shell's model
(:mod:`.core_model`) runs either. No simulator or hardware import; pure Python.
"""

from __future__ import annotations

from collections import deque

from spikemllm.latency import mac_array_latency

__all__ = ["DenseDatapathModel"]


class DenseDatapathModel:
    """The dense datapath's registers. ``tick(begin=beats)`` begins a tile of ``beats``
    input beats; ``next_tile=beats`` begins one in the cycle the feeder issues the current
    tile's final beat. After each tick: ``finished``, ``take``/``work`` (a beat of ``D``
    inputs taken), and ``o_valid``/``o_last`` describe the cycle as in the spike model."""

    def __init__(self, arithmetic: str, D: int):
        self.D = D
        # feeder: beats left to issue (0: not issuing), read and input registers (last flags)
        self.left = 0
        self.r: bool | None = None
        self.s: bool | None = None
        # MAC array: L - 1 pipeline registers (None: bubble, else the beat's last flag), output
        self.pipe: deque[bool | None] = deque([None] * (mac_array_latency(arithmetic, D) - 1))
        self.out = False
        self.cycle = 0

    @property
    def o_valid(self) -> bool:
        return self.out

    @property
    def o_last(self) -> bool:
        return self.out  # every vector the MAC array emits is a tile's final one

    def tick(self, begin: int | None = None, o_ready: bool = True, *, next_tile: int | None = None) -> None:
        go = not self.out or o_ready
        accept = self.s is not None and go
        advance = self.s is None or go
        issue = advance and self.left > 0
        finished = issue and self.left == 1
        if finished and begin is None:
            begin = next_tile
        self.take, self.work, self.finished = accept, self.D if accept else 0, finished
        if self.out and o_ready:
            self.out = False
        if go:
            if self.pipe[-1]:
                self.out = True
            self.pipe.rotate(1)
            self.pipe[0] = self.s if accept else None
        if advance:
            self.s = self.r
            self.r = finished if issue else None
            if issue:
                self.left -= 1
        if begin is not None:
            if self.left:
                raise ValueError(f"cycle {self.cycle}: begin while the feeder is still issuing a tile")
            if begin < 1:
                raise ValueError(f"a tile needs at least one beat, not {begin}")
            self.left = begin
        self.cycle += 1
