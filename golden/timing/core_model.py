"""Exact cycle model of the cores: what the RTL's ``CYCLES``, ``EVENTS`` and
``ACTIVE_CYCLES`` counters read after a run.

For a run of ``N`` tokens on a core with ``lanes`` L, ``pes`` P, ``E`` events per cycle, a
layer of ``K`` input chunks and ``J`` output tiles, with ideal streams (input offered from
the cycle after ``CTRL.START``, output always ready), the RTL's ``CYCLES`` counter is::

    cycles = K + 1 + sum over tokens n, tiles j of gap(n, j) + G
    gap(n, j) = W_n + TILE_OVERHEAD + TOKEN_LOOKUP * [j == 0], at least G after the first

where ``W_n`` is the datapath's work per tile: for the spike core :func:`spike_tile_work`
of token ``n``'s ``T_n * K`` spike vectors (the same for every tile), for a dense core
``IN / D``. The pieces, from the RTL's timeline:

* ``K + 1``: the first token's ``K`` chunks load (one per cycle), then the scheduler looks
  up ``T`` (1 cycle); later tokens load into the other activation bank while the current
  one computes, so they cost nothing.
* ``TILE_OVERHEAD = 7`` per token and tile (:mod:`spikemllm.latency` builds it): parameter
  load into the requantizer's pending set (1), neuron stage fill (2: membrane read, spike
  register), the PE array's drain of the tile's final step (2), the requantizer's capture
  of it (1) and the scheduler's detection (1); ``TOKEN_LOOKUP = 1`` more at every token's
  first tile. Dense cores: :func:`spikemllm.latency.dense_tile_overhead`.
* ``G = pes / requantizers``: the requantizer takes a final vector at most every ``G``
  cycles (its groups overlap the next tile's accumulation), so a tile shorter than that
  waits (``gap >= G``), and the last tile's groups and output are the run's tail
  (``G + 2`` cycles after its capture, the last of which ends the run).
* ``W_n`` (spike core): the cycles from the neuron stage's first spike vector to the
  PE array taking the tile's final event beat, plus one: the compactor's beats (about
  ``events / E``: events packed across spike vectors and step boundaries, spike vectors
  without a spike dropped), its fill (``COMPACTOR_LATENCY - 1``), and the cycles it
  waits for spike vectors where the neuron stage's one vector per cycle carries fewer
  than ``E`` events (the sparse most significant steps). The datapath is stepped cycle by
  cycle (:mod:`.spike_datapath`), since its stages' fill levels decide its timing.

``pe_utilization = ACTIVE_CYCLES / CYCLES`` (cycles in which the PEs accumulate at least
one event); the breakdown says where the other cycles go.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from spikemllm.golden.encoding import encode_count_signed, encode_tc_lif

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.latency import (
    FIRST_TOKEN_LOOKUP,
    NEURON_STAGE_FILL,
    PE_ARRAY_LATENCY,
    TILE_OVERHEAD,
    TILE_PARAMS_LOAD,
    TOKEN_LOOKUP,
    dense_tile_overhead,
)

from .spike_datapath import TileRun, run_tile, vector_counts

__all__ = [
    "TILE_OVERHEAD",
    "CoreCycles",
    "core_cycles",
    "spike_tile_work",
    "dense_core_cycles",
]



@dataclass(frozen=True)
class CoreCycles:
    """Predicted cycle count of a run and where the cycles go."""

    cycles: int
    events: int
    active_cycles: int
    """cycles in which the PE array accumulates at least one event"""
    empty_vector_cycles: int
    """cycles of the datapath's work without an event: compactor fill, waits for spike
    vectors, beats that only end a step"""
    tile_overhead_cycles: int
    """tile overhead, token lookups, waits for the requantizer and its tail"""
    load_cycles: int
    event_slots: int
    """``events_per_cycle``: events the PE array can take per cycle"""

    @property
    def pe_utilization(self) -> float:
        return self.active_cycles / self.cycles

    @property
    def event_slot_utilization(self) -> float:
        """Events over event slots offered: ``events / (E * cycles)``."""
        return self.events / (self.event_slots * self.cycles)

    def breakdown(self) -> dict[str, int]:
        """Cycles by cause; they add up to :attr:`cycles`."""
        return {
            "accumulate": self.active_cycles,
            "work_without_events": self.empty_vector_cycles,
            "tile_overhead": self.tile_overhead_cycles,
            "first_token_load": self.load_cycles,
        }


def _timeline(config: AcceleratorConfig, works: list[int], tiles: int, overhead: int) -> tuple[int, int]:
    """Cycles from the first token's lookup to the end of a run whose tokens take ``works``
    cycles of datapath work per tile (``tiles`` tiles each), and the cycles of it that are
    tile overhead, token lookups, requantizer waits and its tail."""
    G = config.requant_cycles
    total = 0
    first = True
    for work in works:
        for j in range(tiles):
            gap = work + overhead + (TOKEN_LOOKUP if j == 0 else 0)
            total += gap if first else max(G, gap)
            first = False
    total += G
    return total, total - tiles * sum(works)


def _encode(q: torch.Tensor, T: int, config: AcceleratorConfig) -> torch.Tensor:
    return encode_tc_lif(q, T) if config.coding is Coding.TC_LIF else encode_count_signed(q, T)


def spike_tile_work(config: AcceleratorConfig, nonzeros: list[int], chunks: int) -> tuple[int, TileRun]:
    """``W``, the spike datapath's work on one tile, and the tile's run through it.

    ``nonzeros``: spike counts of the tile's spike vectors in issue order (step-major,
    ``chunks`` per step). The tile is begun in an empty datapath (:func:`~.spike_datapath.run_tile`);
    ``W`` is the cycle its final accumulator vector is valid less the parameter load,
    the neuron stage's fill and the PE array's latency, which ``TILE_OVERHEAD`` counts.
    """
    run = run_tile(vector_counts(nonzeros, chunks), config.events_per_cycle)
    return run.final_valid - (TILE_PARAMS_LOAD + NEURON_STAGE_FILL + PE_ARRAY_LATENCY), run


def core_cycles(config: AcceleratorConfig, q: torch.Tensor, timesteps, out_tiles: int) -> CoreCycles:
    """Exact RTL cycles of a run under ideal streams.

    ``q``: integer activations ``(tokens, in)`` with ``in`` a multiple of ``lanes`` (the
    padded layer); ``timesteps``: ``T`` of every token; ``out_tiles``: output tiles ``J``.
    Raises ``ValueError`` for shapes the core cannot run or values ``T`` steps cannot carry.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    q = torch.as_tensor(q)
    steps = [int(t) for t in torch.as_tensor(timesteps).flatten().tolist()]
    if q.dim() != 2 or q.shape[0] == 0:
        raise ValueError(f"q must have shape (tokens, in) with at least one token, not {tuple(q.shape)}")
    if len(steps) != q.shape[0]:
        raise ValueError(f"{len(steps)} timestep counts for {q.shape[0]} tokens")
    if q.shape[1] % config.lanes or q.shape[1] == 0:
        raise ValueError(f"in={q.shape[1]} must be a positive multiple of lanes={config.lanes}")
    if not 1 <= out_tiles <= config.max_out_tiles:
        raise ValueError(f"out_tiles must be in [1, {config.max_out_tiles}], not {out_tiles!r}")
    for T in steps:
        if not 1 <= T <= config.t_max:
            raise ValueError(f"T={T} is outside [1, t_max={config.t_max}]")
    K = q.shape[1] // config.lanes
    E = config.events_per_cycle
    works = []
    events = active = empty = 0
    for n, T in enumerate(steps):
        nnz = (_encode(q[n], T, config).view(T, K, config.lanes) != 0).sum(dim=-1).flatten().tolist()
        work, run = spike_tile_work(config, nnz, K)
        works.append(work)
        events += run.events
        active += run.active
        empty += work - run.active
    J = out_tiles
    span, overhead = _timeline(config, works, J, TILE_OVERHEAD)
    load = K + FIRST_TOKEN_LOOKUP
    return CoreCycles(
        cycles=load + span,
        events=J * events,
        active_cycles=J * active,
        empty_vector_cycles=J * empty,
        tile_overhead_cycles=overhead,
        load_cycles=load,
        event_slots=E,
    )


def dense_core_cycles(config: AcceleratorConfig, tokens: int, in_features: int, out_tiles: int,
                      arithmetic: str = "int8") -> CoreCycles:
    """Exact RTL cycles of a dense baseline core (``hw.dense_core``, INT8 or FP16) under ideal streams.

    The dense feeder issues ``D = dense_inputs`` inputs per cycle whatever their values, so
    the time depends only on the shape: the timeline of :func:`core_cycles` with ``IN / D``
    cycles of work per tile (``IN`` the padded inputs, ``K = IN / lanes`` chunks, ``J``
    output tiles, ``N`` tokens); the tile overhead (:func:`spikemllm.latency.dense_tile_overhead`,
    7 for INT8) is the pipeline fill and drain (parameter load 1, feeder 2, the MAC array's
    latency minus the read, requantizer capture 1, detection 1).
    ``events`` counts inputs multiplied per PE (``N * J * IN``); ``active_cycles`` the
    beats of ``D`` of them. Raises ``ValueError`` for a shape the core cannot run.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    if arithmetic not in ("int8", "fp16"):
        raise ValueError(f"arithmetic must be 'int8' or 'fp16', not {arithmetic!r}")
    if not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, not {tokens!r}")
    if not isinstance(in_features, int) or in_features < 1 or in_features % config.lanes:
        raise ValueError(f"in_features={in_features!r} must be a positive multiple of lanes={config.lanes}")
    if not 1 <= out_tiles <= config.max_out_tiles:
        raise ValueError(f"out_tiles must be in [1, {config.max_out_tiles}], not {out_tiles!r}")
    K = in_features // config.lanes
    D = config.dense_inputs
    work = tokens * out_tiles * in_features
    beats = work // D
    span, overhead = _timeline(config, [in_features // D] * tokens, out_tiles, dense_tile_overhead(arithmetic, D))
    load = K + FIRST_TOKEN_LOOKUP
    return CoreCycles(
        cycles=load + span, events=work, active_cycles=beats, empty_vector_cycles=0,
        tile_overhead_cycles=overhead, load_cycles=load, event_slots=D,
    )
