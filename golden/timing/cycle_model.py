"""Cycle models of the accelerator blocks: exact cycle counts as functions of the inputs.

Each function predicts what the RTL block in :mod:`spikemllm.hw` takes for a sequence of
inputs, under the *ideal* stream condition: the producer offers the first input in cycle 0
and every later input as soon as the block can take it, and the consumer is always ready.
Cycle counts are counted from cycle 0 up to and including the cycle of the last output
handshake. Under stalls (idle producer, back-pressure) a block takes more cycles but moves
exactly the same beats; the beat-count functions hold under every stall pattern.

These functions are the pieces the top-level performance model is built from, and the
testbenches check the RTL against them exactly. No simulator or hardware import here: the
latencies come from :mod:`spikemllm.latency`, which the hardware blocks read too.

Block timings (``E`` = events per cycle):

==========================  ========  ===================================================
block                       latency   throughput (ideal streams)
==========================  ========  ===================================================
TC-LIF neuron array         1         one spike vector per cycle; a token of ``T`` steps
                                      occupies ``T`` cycles, tokens back to back
spike-event compactor       3         one beat of up to ``E`` events per cycle, packed
                                      across spike vectors and step boundaries
                                      (:mod:`.spike_datapath`)
sparse-accumulate PE array  3         one event beat per cycle
requantizer                 G + 5     one final accumulator vector per ``G`` cycles
==========================  ========  ===================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import (
    COMPACTOR_DEPTH,
    COMPACTOR_LATENCY,
    NEURON_ARRAY_LATENCY,
    PE_ARRAY_LATENCY,
    requantizer_latency,
)

from .spike_datapath import SpikeVectorCount, pack, plan_beat

__all__ = [
    "NEURON_ARRAY_LATENCY",
    "COMPACTOR_LATENCY",
    "PE_ARRAY_LATENCY",
    "requantizer_latency",
    "effective_timesteps",
    "neuron_array_cycles",
    "neuron_array_beats",
    "SpikeVectorCount",
    "compactor_cycles",
    "compactor_beats",
    "pe_array_cycles",
    "requantizer_cycles",
    "requantizer_beats",
]


def _check_config(config) -> AcceleratorConfig:
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    return config


def _ints(values: Iterable, name: str) -> list[int]:
    out = []
    for v in values:
        iv = int(v)
        if iv != v:
            raise ValueError(f"{name} must hold integers; found {v!r}")
        out.append(iv)
    return out


def effective_timesteps(T: int, config: AcceleratorConfig) -> int:
    """Steps the neuron array runs for a requested ``T``: ``T`` clamped to ``[1, t_max]``.

    The hardware cannot raise, so a ``T`` field of 0 runs one step and one above ``t_max``
    runs ``t_max`` steps; drivers validate ``T`` before it reaches the hardware.
    """
    _check_config(config)
    return min(max(int(T), 1), config.t_max)


def neuron_array_beats(timesteps: Sequence[int], config: AcceleratorConfig) -> int:
    """Spike vectors the neuron array emits for tokens with these ``T``: their sum."""
    return sum(effective_timesteps(T, config) for T in _ints(timesteps, "timesteps"))


def neuron_array_cycles(timesteps: Sequence[int], config: AcceleratorConfig) -> int:
    """Cycles of the neuron array for tokens with these ``T`` under ideal streams.

    A token's activations are taken in the cycle its predecessor's final spike vector
    leaves, so tokens follow each other with no gap: ``latency + sum(T)``.
    Raises ``ValueError`` for an empty sequence.
    """
    ts = _ints(timesteps, "timesteps")
    if not ts:
        raise ValueError("timesteps must name at least one token")
    return NEURON_ARRAY_LATENCY + neuron_array_beats(ts, config)


def _vectors(vectors) -> list[SpikeVectorCount]:
    out = []
    for v in vectors:
        if not isinstance(v, SpikeVectorCount):
            raise TypeError(f"vectors must be SpikeVectorCount, not {v!r}")
        out.append(v)
    if not out:
        raise ValueError("at least one spike vector is needed")
    return out


def compactor_beats(vectors: Sequence[SpikeVectorCount], config: AcceleratorConfig) -> int:
    """Event beats the compactor emits for these spike vectors (the same under every stall
    pattern): the length of :func:`~.spike_datapath.pack`. Raises ``ValueError`` if the
    vectors end where the compactor would wait for another."""
    _check_config(config)
    return len(pack(_vectors(vectors), config.events_per_cycle))


def compactor_cycles(vectors: Sequence[SpikeVectorCount], config: AcceleratorConfig) -> int:
    """Cycles of the compactor for these spike vectors under ideal streams.

    The producer offers a vector every cycle the FIFO has room (fewer than
    :data:`~spikemllm.latency.COMPACTOR_DEPTH` stored at the start of the cycle); a vector
    without a spike that ends no step is taken and dropped. Each cycle the compactor plans
    a beat from the stored vectors (:func:`~.spike_datapath.plan_beat`, unless it waits
    for a second vector) and the planned beat's events are selected in the next, so a
    beat leaves ``COMPACTOR_LATENCY`` cycles after its last vector was taken, and one
    beat per cycle after that. The count grows with the events (``events / E`` beats, a
    few more at step ends and in sparse steps where two vectors do not fill a beat) and
    with the vectors only while the FIFO runs empty.
    Raises ``ValueError`` if the vectors end where the compactor would wait for another.
    """
    c = _check_config(config)
    pending = _vectors(vectors)
    E, depth = c.events_per_cycle, COMPACTOR_DEPTH
    fifo: deque[SpikeVectorCount] = deque()
    offset, taken, cycle, last_out = 0, 0, 0, None
    plan = beat = None
    while taken < len(pending) or fifo or plan is not None or beat is not None:
        if beat is not None:
            last_out = cycle
        new_plan = None
        if fifo:
            new_plan = plan_beat(list(fifo)[:2], offset, E)
            if new_plan is None and taken == len(pending) and plan is None and beat is None:
                raise ValueError("the spike vectors end where the compactor waits for another")
        room = len(fifo) < depth
        beat, plan = plan, new_plan
        if new_plan is not None:
            for _ in range(new_plan.pops):
                fifo.popleft()
            offset = new_plan.next_offset
        if taken < len(pending) and room:
            if pending[taken].kept:
                fifo.append(pending[taken])
            taken += 1
        cycle += 1
    if last_out is None:
        raise ValueError("no spike vector produces an event beat (all zero and none ends a step)")
    return last_out + 1


def pe_array_cycles(event_beats: int, config: AcceleratorConfig) -> int:
    """Cycles of the PE array for ``event_beats`` beats ending with a step end, ideal streams.

    One beat per cycle; the last beat's accumulators leave ``latency`` cycles after it was
    taken: ``event_beats + latency``. Weight and bias loads happen before and are not counted.
    """
    _check_config(config)
    if event_beats < 1:
        raise ValueError(f"event_beats must be at least 1, not {event_beats!r}")
    return event_beats + PE_ARRAY_LATENCY


def requantizer_beats(lasts: Sequence[bool]) -> int:
    """Output vectors for accumulator vectors with these ``last`` flags: one per final vector."""
    return sum(1 for last in lasts if last)


def requantizer_cycles(lasts: Sequence[bool], config: AcceleratorConfig) -> int:
    """Cycles of the requantizer for accumulator vectors with these ``last`` flags, offered
    back to back from cycle 0 with the output always ready.

    Intermediate (non-final) vectors are taken and dropped in the cycle they arrive; a
    final vector is taken when the previous final one's last group is multiplied (one
    final vector per ``G = pes / requantizers`` cycles) and its output leaves
    :func:`~spikemllm.latency.requantizer_latency` cycles after it was taken.
    Raises ``ValueError`` if no vector is final.
    """
    _check_config(config)
    flags = [bool(x) for x in lasts]
    if not any(flags):
        raise ValueError("at least one accumulator vector must be final (last=1)")
    cycle = free = done = 0
    for final in flags:
        if final:
            cycle = max(cycle, free)
            free = cycle + config.requant_cycles
            done = cycle + requantizer_latency(config)
        cycle += 1
    return done + 1
