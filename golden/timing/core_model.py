"""Exact cycle model of the cores: what the RTL's ``CYCLES``, ``EVENTS`` and
``ACTIVE_CYCLES`` counters read after a run.

For a run of ``N`` tokens on a core with a layer of ``K`` input chunks and ``J`` output
tiles, under ideal streams (input offered from the cycle after ``CTRL.START``, output
always ready), the model steps the shell (:mod:`spikemllm.hw.core_shell`) one clock
cycle at a time, register for register, around a model of the datapath: the spike core's
(:class:`.spike_datapath.SpikeDatapathModel`, which moves spike counts) or a dense core's
(:class:`.dense_datapath.DenseDatapathModel`). The shell's timeline:

* Loader: the first token's ``K`` chunks load one per cycle from cycle 1; later tokens
  load into the other activation bank while the current one computes.
* Sequencer: when the current bank is full, the token's ``T`` is looked up (1 cycle,
  :data:`~spikemllm.latency.TOKEN_LOOKUP`) and its first tile begins in the next
  (``TOKEN_BEGIN``). Every next tile of the token begins in the cycle the datapath issues
  the previous tile's final work item (tiles back to back: the datapath's fill, drain and
  the requantizer's capture overlap the next tile; the spike compactor packs events across
  the tile boundary). After the token's last tile is issued its bank is released and the
  next token's lookup follows.
* Requantizer: takes a tile's final accumulator vector at most every ``G = pes /
  requantizers`` cycles (its groups overlap the next tile's accumulation); a final vector
  that comes sooner waits in the datapath's output register and stalls the datapath. The
  run ends ``G + 5`` cycles after the last tile's final vector is taken, when its output
  leaves (:func:`spikemllm.latency.requantizer_latency`).

The datapath's work per tile is about ``events / E`` beats for the spike core (events
packed across spike vectors, step ends and tile ends; spike vectors without a spike
dropped) and ``IN / D`` beats for a dense core. Because the stages' fill levels decide
the timing, no closed form is exact; stepping is, and a run of thousands of cycles takes
milliseconds.

``event_slot_utilization = EVENTS / (E * CYCLES)`` is the utilization; the breakdown says
where the other cycles go.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from spikemllm.golden.bundle import bundle_spikes, bundles

from spikemllm.config import AcceleratorConfig
from spikemllm.latency import requantizer_latency

from .dense_datapath import DenseDatapathModel
from .spike_datapath import SpikeDatapathModel, slice_counts, vector_counts

__all__ = [
    "CoreCycles",
    "core_cycles",
    "dense_core_cycles",
]


@dataclass(frozen=True)
class CoreCycles:
    """Predicted counters of a run and where its cycles go."""

    cycles: int
    events: int
    active_cycles: int
    """cycles in which the datapath takes a beat with at least one event (or input)"""
    idle_cycles: int
    """cycles between the first tile's begin and the last tile's capture in which the
    datapath takes no event: its fill and drain, waits for spike vectors in sparse
    steps, beats that only end a step, waits for the requantizer"""
    token_switch_cycles: int
    """of the rest, cycles in which the sequencer looks up a token's ``T`` or begins its
    first tile and the datapath takes no event"""
    load_cycles: int
    """cycles before the first tile begins: the first token's load and lookup"""
    tail_cycles: int
    """cycles after the last tile's final vector is taken: the requantizer's groups and output"""
    event_slots: int
    """events (spike core) or inputs (dense core) the datapath can take per cycle"""
    weight_reads: int
    """weight-row reads (the ``WEIGHT_READS`` counter): one per event slot filled. Equal to
    :attr:`events` without bundles; with ``B`` tokens per bundle, one read serves the
    events of the bundle's tokens at the same input index and step"""

    @property
    def pe_utilization(self) -> float:
        """Cycles with any event over all cycles (a favourable reading)."""
        return self.active_cycles / self.cycles

    @property
    def event_slot_utilization(self) -> float:
        """Filled event slots over event slots offered: ``weight_reads / (E * cycles)``
        (``events / (E * cycles)`` without bundles)."""
        return self.weight_reads / (self.event_slots * self.cycles)

    def reads_per_token(self, tokens: int) -> float:
        """Weight-row reads per token of a run of ``tokens`` tokens."""
        return self.weight_reads / tokens

    def breakdown(self) -> dict[str, int]:
        """Cycles by cause; they add up to :attr:`cycles`."""
        return {
            "accumulate": self.active_cycles,
            "work_without_events": self.idle_cycles,
            "token_switch": self.token_switch_cycles,
            "first_token_load": self.load_cycles,
            "requantizer_tail": self.tail_cycles,
        }


def _run(config: AcceleratorConfig, datapath, tiles: list, out_tiles: int, chunks: int, slots: int,
         sizes: list | None = None, events: int | None = None) -> CoreCycles:
    """Step the shell around ``datapath`` (a datapath model) for a run whose bundle ``n``
    (``sizes[n]`` tokens, one each when not given) begins each of its ``out_tiles`` tiles
    with ``tiles[n]`` (the argument of the datapath's ``tick(begin=...)``), with ``chunks``
    activation chunks per token and ``slots`` events or inputs per beat. The datapath's
    ``work`` per beat is its weight-row reads; ``events`` (the spike events of all tokens)
    defaults to their sum. Each cycle is counted once in the breakdown: a beat with work,
    else the first load, else a token switch, else work without events; the cycles after
    the last tile's final vector is taken are the requantizer's tail."""
    N, J, K, G = len(tiles), out_tiles, chunks, config.requant_cycles
    sizes = [1] * N if sizes is None else list(sizes)
    bank_full, load_bank, load_chunk, load_slot, loaded = [False, False], 0, 0, 0, 0
    cur, state, tile, token = 0, "WAIT_TOKEN", 0, 0
    last_capture, captures = None, 0
    rq_bundle, rq_tile, rq_slot = 0, 0, 0  # the bundle, tile and token slot of the next final vector the requantizer takes
    reads = active = idle = switch = load = 0
    started = False
    cycle = 1  # the first cycle after the START write
    limit = 1000 + 64 * sum(sizes) * J * max(K, 1) * (config.t_max + 1) + sum(sizes) * J * G
    while True:
        loading = loaded != N and not bank_full[load_bank]
        begin = next_tile = None
        if state == "BEGIN":
            begin = tiles[token]
        elif state == "FEED" and tile != J - 1:
            next_tile = tiles[token]
        can_capture = last_capture is None or cycle >= last_capture + G
        final_slot = rq_slot == sizes[rq_bundle] - 1
        # a final vector leaves the datapath's output register with its bundle's last token
        o_ready = not datapath.o_last or (can_capture and final_slot)
        capture = datapath.o_valid and datapath.o_last and can_capture
        datapath.tick(begin=begin, o_ready=o_ready, next_tile=next_tile)
        reads += datapath.work
        if datapath.work:
            active += 1
        elif not started:
            load += 1
        elif state in ("WAIT_TOKEN", "BEGIN") and token < N:
            switch += 1
        else:
            idle += 1
        started = started or begin is not None
        if capture:
            last_capture, captures = cycle, captures + 1
            if captures == sum(sizes) * J:
                tail = requantizer_latency(config)
                return CoreCycles(cycle + tail, reads if events is None else events, active, idle, switch, load, tail,
                                  slots, reads)
            if final_slot:
                rq_slot, rq_tile = 0, rq_tile + 1
                if rq_tile == J:
                    rq_tile, rq_bundle = 0, rq_bundle + 1
            else:
                rq_slot += 1
        # the clock edge
        token_ready = bank_full[cur]
        if loading:
            if load_chunk == K - 1:
                load_chunk = 0
                if load_slot == sizes[loaded] - 1:
                    bank_full[load_bank], load_bank, loaded, load_slot = True, load_bank ^ 1, loaded + 1, 0
                else:
                    load_slot += 1
            else:
                load_chunk += 1
        if state == "WAIT_TOKEN":
            if token_ready:
                state, tile = "BEGIN", 0
        elif state == "BEGIN":
            state = "FEED"
        elif datapath.finished:
            if tile != J - 1:
                tile += 1
            else:
                bank_full[cur], cur, state, token = False, cur ^ 1, "WAIT_TOKEN", token + 1
        cycle += 1
        if cycle > limit:
            raise RuntimeError(f"the core model did not finish the run in {limit} cycles")


def core_cycles(config: AcceleratorConfig, q: torch.Tensor, timesteps, out_tiles: int) -> CoreCycles:
    """Exact RTL counters of a spike-core run under ideal streams.

    ``q``: integer activations ``(tokens, in)`` with ``in`` a multiple of ``lanes`` (the
    padded layer); ``timesteps``: ``T`` of every token; ``out_tiles``: output tiles ``J``.
    With ``config.bundle = B > 1`` the tokens run in bundles of ``B``
    (:mod:`spikemllm.golden.bundle`): a bundle's spike vectors carry the union of its
    tokens' spikes over ``max T`` steps, its ``B * K`` chunks load before it starts, and the
    requantizer takes each tile's final accumulators once per token. With
    ``config.zero_skipping`` false every lane of every spike vector is an event (``EVENTS``
    still counts the tokens' spikes, ``WEIGHT_READS`` every lane). With ``config.slices =
    S > 1`` each spike vector's counts are taken per slice of ``lanes / S`` lanes.
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
    K, L = q.shape[1] // config.lanes, config.lanes
    tiles, sizes, spikes = [], [], 0
    for group in bundles(len(steps), config.bundle):
        trains = bundle_spikes(q[group.start:group.stop], steps[group.start:group.stop], config.coding)
        T = trains.shape[0]
        fired = trains.view(T, len(group), K, L) != 0
        spikes += int(fired.sum())
        S = config.slices
        if config.zero_skipping:  # one event per lane at which any of the bundle's tokens fires: the union
            nnz = slice_counts(fired.any(dim=1).reshape(T * K, L), S)
        else:  # every lane of every spike vector is an event
            nnz = [L if S == 1 else (L // S,) * S] * (T * K)
        tiles.append(vector_counts(nnz, K))
        sizes.append(len(group))
    E = config.events_per_cycle
    return _run(config, SpikeDatapathModel(E, slices=config.slices), tiles, out_tiles, K, E, sizes, spikes * out_tiles)


def dense_core_cycles(config: AcceleratorConfig, tokens: int, in_features: int, out_tiles: int,
                      arithmetic: str = "int8") -> CoreCycles:
    """Exact RTL counters of a dense baseline core (``hw.dense_core``, INT8 or FP16) under ideal streams.

    The dense feeder issues ``D = dense_inputs`` inputs per cycle whatever their values,
    ``IN / D`` beats per tile, so the time depends only on the shape (``IN`` the padded
    inputs, ``K = IN / lanes`` chunks, ``J`` output tiles, ``N`` tokens). ``events``
    counts inputs multiplied per PE (``N * J * IN``); ``active_cycles`` the beats of ``D``
    of them. With ``config.bundle = B > 1`` a beat carries the ``D`` inputs of each token
    of a bundle and reads the ``D`` weight rows once (``weight_reads`` = bundles ``* J *
    IN``), and the requantizer takes each tile's final accumulators once per token.
    Raises ``ValueError`` for a shape the core cannot run.
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
    D = config.dense_inputs
    model = DenseDatapathModel(arithmetic, D)
    sizes = [len(group) for group in bundles(tokens, config.bundle)]
    return _run(config, model, [in_features // D] * len(sizes), out_tiles, in_features // config.lanes, D, sizes,
                tokens * out_tiles * in_features)
