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
spike-event compactor       1         ``max(1, ceil(nnz / E))`` cycles per spike vector
sparse-accumulate PE array  2         one event beat per cycle
requantizer                 2         one accumulator vector per cycle
==========================  ========  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import COMPACTOR_LATENCY, NEURON_ARRAY_LATENCY, PE_ARRAY_LATENCY, requantizer_latency

__all__ = [
    "NEURON_ARRAY_LATENCY",
    "COMPACTOR_LATENCY",
    "PE_ARRAY_LATENCY",
    "requantizer_latency",
    "effective_timesteps",
    "neuron_array_cycles",
    "neuron_array_beats",
    "compactor_vector_cycles",
    "compactor_vector_beats",
    "compactor_cycles",
    "compactor_beats",
    "pe_array_cycles",
    "requantizer_cycles",
    "requantizer_beats",
    "spike_linear_event_beats",
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


def compactor_vector_cycles(nonzero: int, config: AcceleratorConfig) -> int:
    """Cycles the compactor spends on one spike vector with ``nonzero`` spikes: ``max(1, ceil(nnz/E))``."""
    _check_config(config)
    if not 0 <= nonzero <= config.lanes:
        raise ValueError(f"nonzero must be in [0, {config.lanes}], not {nonzero!r}")
    E = config.events_per_cycle
    return max(1, -(-nonzero // E))


def compactor_vector_beats(nonzero: int, step_end: bool, config: AcceleratorConfig) -> int:
    """Event beats one spike vector produces: ``ceil(nnz/E)``, or one empty end-of-step
    beat for an all-zero vector that ends a step, or none for an all-zero vector that does not."""
    cycles = compactor_vector_cycles(nonzero, config)
    if nonzero == 0:
        return 1 if step_end else 0
    return cycles


def _timeline(nonzeros: Sequence[int], step_ends: Sequence[bool], config) -> tuple[int, int]:
    if len(nonzeros) != len(step_ends):
        raise ValueError(f"{len(nonzeros)} non-zero counts but {len(step_ends)} step_end flags")
    if not nonzeros:
        raise ValueError("at least one spike vector is needed")
    taken, last_out, beats = 0, None, 0
    for nnz, end in zip(nonzeros, step_ends):
        cycles = compactor_vector_cycles(nnz, config)
        n_out = compactor_vector_beats(nnz, bool(end), config)
        if n_out:
            last_out = taken + COMPACTOR_LATENCY + n_out - 1
        beats += n_out
        taken += cycles
    if last_out is None:
        raise ValueError("no spike vector produces an event beat (all zero and none ends a step)")
    return last_out + 1, beats


def compactor_cycles(nonzeros: Sequence[int], step_ends: Sequence[bool], config: AcceleratorConfig) -> int:
    """Cycles of the compactor for spike vectors with these non-zero counts and step_end flags.

    The next vector is taken in the cycle the current one's final beat leaves (or, for an
    all-zero vector that ends no step, the cycle after it was taken), so the count is
    ``latency + sum(max(1, ceil(nnz/E)))`` when the last vector emits a beat. It grows
    with the number of spikes, not with ``lanes``.
    """
    return _timeline(_ints(nonzeros, "nonzeros"), list(step_ends), _check_config(config))[0]


def compactor_beats(nonzeros: Sequence[int], step_ends: Sequence[bool], config: AcceleratorConfig) -> int:
    """Event beats the compactor emits for these vectors (holds under any stall pattern)."""
    _check_config(config)
    return sum(compactor_vector_beats(n, bool(e), config) for n, e in zip(_ints(nonzeros, "nonzeros"), step_ends))


def spike_linear_event_beats(nonzeros_per_step: Sequence[int], config: AcceleratorConfig) -> int:
    """Event beats of one token whose timesteps each fit one spike vector: per step
    ``ceil(nnz/E)``, at least one (the end-of-step marker)."""
    return compactor_beats(nonzeros_per_step, [True] * len(nonzeros_per_step), config)


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
