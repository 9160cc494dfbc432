"""Cycle model of the spike core's datapath: neuron stage -> compactor -> PE array.

The datapath is a chain of registers with valid/ready hand-offs, and its timing depends on
how full each stage is, so the model steps it one clock cycle at a time, register for
register, as the RTL (:class:`spikemllm.hw.core.SpikeCore`'s neuron stage,
:class:`spikemllm.hw.compactor.SpikeEventCompactor`,
:class:`spikemllm.hw.pe_array.SparseAccumulatePEArray`) does. It moves counts, not data:
a spike vector is its number of spikes and its flags, an event beat its number of events
and its boundary. No simulator or hardware import; pure Python.

The packing rule (:func:`plan_beat`) is the compactor's contract and is shared with the
golden event beats of :func:`spikemllm.sim.blocks.expect.compact`, which turn the same
plans into events.

Packing, with ``E`` event slots per beat:

* A spike vector without a spike that ends no step is dropped when it enters the
  compactor's FIFO (:data:`~spikemllm.latency.COMPACTOR_DEPTH` entries): it costs the
  neuron stage its cycle and nothing downstream.
* A beat takes the lowest pending events of the oldest vector (the *head*); when the head
  has fewer than ``E`` left, it continues into the next vector: a window of two vectors.
* A step boundary may fall inside a beat (the head ends a step and the next vector starts
  the next step): the beat's ``split`` is the number of events before it. At most one
  boundary per beat: when the second vector also ends its step, its step end is left for
  the next beat (a beat of no event, or the start of the next beat, ``split = 0``).
* A beat continues past the end of a tile (``last``) only when the vector says that the
  next tile's vectors follow (``more``); otherwise the tile's final beat is emitted as it is.
* The compactor never emits a beat that the rule would extend with a vector not yet
  there: it waits for it. So the beats depend only on the vectors, never on when they
  arrive or leave (the same beats under every stall pattern).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spikemllm.latency import COMPACTOR_DEPTH

__all__ = [
    "SpikeVectorCount",
    "BeatPlan",
    "plan_beat",
    "pack",
    "SpikeDatapathModel",
    "TileRun",
    "run_tile",
    "run_back_to_back",
    "vector_counts",
    "slice_counts",
]


@dataclass(frozen=True)
class SpikeVectorCount:
    """A spike vector as the timing sees it: how many spikes and where it sits in the stream.

    ``step_end``: it completes its timestep; ``last``: that step is the tile's final one;
    ``more``: (with ``last``) the next tile's vectors follow, so a beat may continue past it.
    ``parts``: for a datapath of lane slices, the spikes in each slice's lanes (``nonzero``
    is their sum); empty for one slice.
    """

    nonzero: int
    step_end: bool = False
    last: bool = False
    more: bool = False
    parts: tuple[int, ...] = ()

    def part(self, n: int, slices: int) -> "SpikeVectorCount":
        """What slice ``n`` of ``slices`` sees: its spikes, and the vector's flags."""
        if slices == 1:
            return self
        return SpikeVectorCount(self.parts[n], self.step_end, self.last, self.more)

    @property
    def kept(self) -> bool:
        """Whether the compactor stores it (it has a spike or ends a step)."""
        return self.nonzero > 0 or self.step_end


@dataclass(frozen=True)
class BeatPlan:
    """One event beat as the compactor plans it.

    ``take0`` events from the head vector after its first ``offset`` ones, then ``take1``
    from the next vector. ``boundary``: a step ends at slot ``split`` (the events before it
    complete the step); ``last``: that step is the tile's final one. ``pops``: vectors
    retired by the beat (0, 1 or 2); ``next_offset``: events already taken of the head
    after the beat.
    """

    offset: int
    take0: int
    take1: int
    boundary: bool
    split: int
    last: bool
    pops: int
    next_offset: int

    @property
    def events(self) -> int:
        return self.take0 + self.take1


def plan_beat(window: Sequence[SpikeVectorCount], offset: int, E: int) -> BeatPlan | None:
    """The next beat from the stored vectors ``window`` (oldest first, at least one), of
    which the head has ``offset`` events taken; ``None`` if the beat must wait for the
    second vector. This is the compactor's per-cycle decision (see the module text)."""
    head = window[0]
    p0 = head.nonzero - offset
    if p0 >= E:
        done = p0 == E
        boundary = done and head.step_end
        return BeatPlan(offset, E, 0, boundary, E, boundary and head.last, int(done), 0 if done else offset + E)
    extend = not (head.last and not head.more)
    if not extend:
        return BeatPlan(offset, p0, 0, head.step_end, p0, head.step_end and head.last, 1, 0)
    if len(window) < 2:
        return None
    nxt = window[1]
    room = E - p0
    take1 = min(nxt.nonzero, room)
    exhausted = nxt.nonzero <= room
    if head.step_end:  # the boundary is the head's; a step end of the next vector waits
        pops, next_offset = (2, 0) if exhausted and not nxt.step_end else (1, take1)
        return BeatPlan(offset, p0, take1, True, p0, head.last, pops, next_offset)
    if exhausted and nxt.step_end:
        return BeatPlan(offset, p0, take1, True, p0 + take1, nxt.last, 2, 0)
    pops, next_offset = (2, 0) if exhausted else (1, take1)
    return BeatPlan(offset, p0, take1, False, p0 + take1, False, pops, next_offset)


def pack(vectors: Iterable[SpikeVectorCount], E: int) -> list[BeatPlan]:
    """Every beat the compactor emits for these vectors, in order (independent of timing).

    Raises ``ValueError`` if the stream ends where the compactor would wait for more (a
    vector that is not a tile's final one, or one whose ``more`` promises a next tile).
    """
    kept = [v for v in vectors if v.kept]
    beats, start, offset = [], 0, 0
    while start < len(kept):
        plan = plan_beat(kept[start:start + 2], offset, E)
        if plan is None:
            raise ValueError("the spike vectors end where the compactor waits for another (no final 'last' vector)")
        beats.append(plan)
        start += plan.pops
        offset = plan.next_offset
    return beats


@dataclass
class _Beat:
    events: int
    boundary: bool
    last: bool


class _CompactorModel:
    """One compactor's registers (one per lane slice), and per cycle the enables that
    :meth:`decide` computes from them before :meth:`clock` moves them."""

    def __init__(self, E: int, depth: int):
        self.E, self.depth = E, depth
        self.fifo: deque[SpikeVectorCount] = deque()
        self.offset = 0
        self.plan: _Beat | None = None
        self.beat: _Beat | None = None

    @property
    def idle(self) -> bool:
        return not self.fifo and self.plan is None and self.beat is None

    def decide(self, taken: bool) -> None:
        """This cycle's enables; ``taken``: the PE array takes the beat register's beat."""
        self.taken = taken
        self.b_advance = self.beat is None or taken
        self.a_advance = self.plan is None or self.b_advance
        self.next_plan = None
        if self.a_advance and self.fifo:
            self.next_plan = plan_beat([self.fifo[0]] + ([self.fifo[1]] if len(self.fifo) > 1 else []), self.offset,
                                       self.E)
        self.ready = len(self.fifo) < self.depth

    def clock(self, vector: SpikeVectorCount | None) -> None:
        """The clock edge; ``vector``: the spike vector offered to the FIFO (kept if it has
        a spike or ends a step)."""
        if self.b_advance:
            self.beat = self.plan
        if self.a_advance:
            plan = self.next_plan
            self.plan = None if plan is None else _Beat(plan.events, plan.boundary, plan.last)
            if plan is not None:
                for _ in range(plan.pops):
                    self.fifo.popleft()
                self.offset = plan.next_offset
        if vector is not None and vector.kept:
            self.fifo.append(vector)


class SpikeDatapathModel:
    """The datapath's registers, stepped one clock cycle per :meth:`tick`.

    ``E`` event slots, a compactor FIFO of ``depth`` vectors, ``slices`` lane slices
    (:attr:`~spikemllm.config.AcceleratorConfig.slices`, :mod:`spikemllm.hw.slices`): each
    slice has a compactor of its own with ``E / slices`` event slots and sees its part of
    every spike vector (:attr:`SpikeVectorCount.parts`); the neuron stage issues a vector
    when every compactor's FIFO has room, and the PE array takes the slices' beats in
    the same cycle, except that a beat ending a step waits until every slice offers one.
    Feed it tiles with :meth:`tick` (``begin`` = the shell's begin pulse with the tile's
    spike vectors, ``o_ready`` = whether the consumer of the PE array's accumulator
    vectors takes one this cycle). After each tick the attributes report what happened in
    that cycle: ``finished`` (the neuron stage issued the tile's final vector),
    ``take``/``work`` (the PE array accepted a beat of ``work`` events),
    ``o_valid``/``o_last`` (an accumulator vector was on ``o`` at the start of the cycle,
    and whether it is a tile's final one).
    """

    def __init__(self, E: int, depth: int = COMPACTOR_DEPTH, *, slices: int = 1):
        if not isinstance(slices, int) or slices < 1 or E % slices:
            raise ValueError(f"slices must be a positive divisor of E={E}, not {slices!r}")
        self.E, self.depth = E, depth
        # neuron stage: vectors of the tile being issued, the next index, R and S registers
        self.issuing = False
        self.vectors: list[SpikeVectorCount] = []
        self.index = 0
        self.r: SpikeVectorCount | None = None
        self.s: SpikeVectorCount | None = None
        # compactors: FIFO, head offset, plan register, beat register (one per slice)
        self.compactors = [_CompactorModel(E // slices, depth) for _ in range(slices)]
        # PE array: the skid register, stage 1 (weights read), stage 2 (sums) and the output register
        self.skid: _Beat | None = None
        self.s1: _Beat | None = None
        self.s2: _Beat | None = None
        self.out: bool | None = None  # None: empty; else the vector's last flag
        self.cycle = 0

    @property
    def o_valid(self) -> bool:
        return self.out is not None

    @property
    def o_last(self) -> bool:
        return bool(self.out)

    @property
    def idle(self) -> bool:
        """Nothing in flight anywhere."""
        return (not self.issuing and self.r is None and self.s is None and all(c.idle for c in self.compactors)
                and self.skid is None and self.s1 is None and self.s2 is None and self.out is None)

    def _offered(self) -> tuple[list[bool], _Beat | None]:
        """Which compactors' beats the PE array takes if it takes any, and the beat they make:
        a beat ending a step only when every compactor offers one."""
        beats = [c.beat for c in self.compactors]
        boundary = all(b is not None and b.boundary for b in beats)
        takes = [b is not None and (boundary or not b.boundary) for b in beats]
        if not any(takes):
            return takes, None
        events = sum(b.events for b, t in zip(beats, takes) if t)
        return takes, _Beat(events, boundary, boundary and beats[0].last)

    def tick(self, begin: Sequence[SpikeVectorCount] | None = None, o_ready: bool = True, *,
             next_tile: Sequence[SpikeVectorCount] | None = None) -> None:
        """Advance one clock cycle. ``begin``: the shell begins a tile of these vectors
        (step-major, ``step_end`` on each step's final vector, ``last`` on the tile's
        final one) in this cycle; ``next_tile``: begin this tile if the neuron stage issues
        its current tile's final vector in this cycle (tiles back to back)."""
        # PE array
        out_free = self.out is None or o_ready
        s2_go = self.s2 is not None and (not self.s2.boundary or out_free)
        s1_go = self.s1 is not None and (self.s2 is None or s2_go)
        pe_advance = self.s1 is None or s1_go
        # the PE array takes a beat while its skid register is empty; stage 1 takes the
        # skid's beat, else the one taken now
        takes, offered = self._offered()
        taken = offered is not None and self.skid is None
        entering = self.skid if self.skid is not None else (offered if taken else None)
        # compactors
        for c, t in zip(self.compactors, takes):
            c.decide(taken and t)
        ready = all(c.ready for c in self.compactors)
        # neuron stage
        advance = self.s is None or ready
        issue = advance and self.issuing
        finished = issue and self.index == len(self.vectors) - 1
        if finished and begin is None:
            begin = next_tile

        self.take = taken
        self.work = offered.events if taken else 0
        self.finished = finished
        # registers
        if self.out is not None and o_ready:
            self.out = None
        if s2_go and self.s2.boundary:
            self.out = self.s2.last
        if self.s2 is None or s2_go:
            self.s2 = self.s1 if s1_go else None
        if pe_advance:
            self.s1 = entering
            self.skid = None
        elif taken:
            self.skid = offered
        entering = self.s if self.s is not None and ready else None
        for n, c in enumerate(self.compactors):
            c.clock(None if entering is None else entering.part(n, len(self.compactors)))
        if advance:
            self.s = self.r
            self.r = None
            if issue:
                v = self.vectors[self.index]
                if finished:
                    v = dataclasses.replace(v, more=begin is not None)
                self.r = v
                self.index += 1
        if finished:
            self.issuing = False
        if begin is not None:
            if self.issuing:
                raise ValueError(f"cycle {self.cycle}: begin while the neuron stage is still issuing a tile")
            self.vectors, self.index, self.issuing = list(begin), 0, True
            if not self.vectors or not self.vectors[-1].last:
                raise ValueError("a tile's vectors must end with its final ('last') vector")
            if len(self.compactors) > 1 and any(len(v.parts) != len(self.compactors) for v in self.vectors):
                raise ValueError(f"every spike vector of a datapath of {len(self.compactors)} slices needs "
                                 f"its spikes per slice (parts)")
        self.cycle += 1


@dataclass(frozen=True)
class TileRun:
    """One tile through an empty datapath, begun in cycle 0 with the output always ready."""

    final_valid: int
    """cycle in which the tile's final accumulator vector is valid on the PE array's ``o``"""
    beats: int
    """event beats the PE array took"""
    active: int
    """beats with at least one event"""
    events: int


def run_tile(vectors: Sequence[SpikeVectorCount], E: int, depth: int = COMPACTOR_DEPTH) -> TileRun:
    """Step one tile through an empty datapath (:class:`SpikeDatapathModel`): the shell
    begins it in cycle 0 and takes every accumulator vector at once."""
    model = SpikeDatapathModel(E, depth)
    beats = active = events = 0
    model.tick(begin=vectors)
    limit = 16 * (len(vectors) + 8) + sum(v.nonzero for v in vectors)
    while not (model.o_valid and model.o_last):
        model.tick()
        beats += model.take
        active += model.work > 0
        events += model.work
        if model.cycle > limit:
            raise RuntimeError("the datapath model did not finish the tile")
    return TileRun(model.cycle, beats, active, events)


def run_back_to_back(tiles: Sequence[Sequence[SpikeVectorCount]], E: int, depth: int = COMPACTOR_DEPTH,
                     o_ready=lambda cycle: True, *, slices: int = 1) -> int:
    """Cycles of a run of tiles begun back to back: the first in cycle 0, each next one in
    the cycle the neuron stage issues the previous tile's final vector (the shell's contract
    for tiles of one token), counted up to and including the cycle the final tile's last
    accumulator vector is taken (``o_ready(cycle)`` says whether the consumer takes one),
    by a datapath of ``slices`` lane slices."""
    model = SpikeDatapathModel(E, depth, slices=slices)
    pending = [list(t) for t in tiles]
    if not pending:
        raise ValueError("at least one tile is needed")
    finals = 0
    model.tick(begin=pending.pop(0), o_ready=o_ready(0))
    limit = 64 * sum(len(t) + sum(v.nonzero for v in t) for t in tiles) + 64
    while True:
        cycle = model.cycle
        ready = o_ready(cycle)
        taken_final = model.o_valid and model.o_last and ready
        model.tick(o_ready=ready, next_tile=pending[0] if pending else None)
        if model.finished and pending and model.issuing:
            pending.pop(0)
        finals += taken_final
        if finals == len(tiles):
            return cycle + 1
        if model.cycle > limit:
            raise RuntimeError("the datapath model did not finish the tiles")


def slice_counts(fired, slices: int) -> list:
    """Spike counts of spike vectors for :func:`vector_counts`: ``fired`` holds a
    ``(vectors, lanes)`` tensor of which lanes fire; per vector its count, or with
    ``slices > 1`` a tuple of the counts in each slice's ``lanes / slices`` lanes."""
    per_slice = fired.reshape(fired.shape[0], slices, fired.shape[1] // slices).sum(dim=-1)
    if slices == 1:
        return per_slice.sum(dim=-1).tolist()
    return [tuple(row) for row in per_slice.tolist()]


def vector_counts(nonzeros: Sequence, chunks: int, *, more: bool = False) -> list[SpikeVectorCount]:
    """A tile's spike vectors from their spike counts in step-major order (``chunks``
    vectors per step): ``step_end`` on each step's final chunk, ``last`` (and ``more``) on
    the final one. A count may be a sequence of counts per lane slice (``parts``)."""
    n = len(nonzeros)
    if chunks < 1 or n % chunks or n == 0:
        raise ValueError(f"{n} spike vectors do not make whole steps of {chunks} chunks")
    out = []
    for i, nnz in enumerate(nonzeros):
        end = (i + 1) % chunks == 0
        final = i == n - 1
        parts = tuple(int(x) for x in nnz) if isinstance(nnz, Sequence) else ()
        out.append(SpikeVectorCount(sum(parts) if parts else int(nnz), end, final, more and final, parts))
    return out
