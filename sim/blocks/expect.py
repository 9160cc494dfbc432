"""Transaction-level reference of every block, built from the golden model.

A :class:`LinearCase` is one layer tile as the hardware sees it: integer activations of
``tokens`` tokens with a ``T`` each, a ``(pes, fan_in)`` weight tile, biases and the
requantizer's multipliers and shifts. The functions here turn it into the beats each
block's streams carry and the beats each block must produce, using only
:mod:`spikemllm.golden` for the numbers:

* spikes from :func:`~spikemllm.golden.encode_tc_lif` (or ``encode_count_signed``),
* per-step partial sums from :func:`~spikemllm.golden.spike_linear`,
* outputs from :func:`~spikemllm.golden.requantize`.

The one reference that is not a golden numeric function is the compactor's packing
(:func:`compact`): events leave in ascending input order, ``E`` per beat, packed across
spike vectors and step boundaries by the rule of
:func:`spikemllm.golden.timing.spike_datapath.plan_beat`, which is the compactor's
documented contract; its numbers are checked by decoding the events back into the golden
spikes (:func:`scatter_events`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from spikemllm.golden import encode_count_signed, encode_tc_lif, requantize, spike_linear
from spikemllm.golden.timing.cycle_model import effective_timesteps
from spikemllm.golden.timing.spike_datapath import SpikeVectorCount, pack

from spikemllm.config import AcceleratorConfig, Coding

__all__ = [
    "LinearCase",
    "encode",
    "activation_beats",
    "neuron_array_expected",
    "spike_vector_beats",
    "compact",
    "scatter_events",
    "weight_beats",
    "accumulator_expected",
    "accumulator_beats",
    "params_beat",
    "output_expected",
]


def encode(q: torch.Tensor, T: int, config: AcceleratorConfig) -> torch.Tensor:
    """Golden spikes ``(T_eff, *q.shape)`` the neuron array must emit for ``q`` and ``T``.

    Values the hardware saturates (``|q|`` beyond what ``T`` steps carry, including
    ``-2^(act_bits-1)``) are encoded with ``saturate=True``, which is what a neuron with
    subtractive reset does with them.
    """
    steps = effective_timesteps(T, config)
    if config.coding is Coding.TC_LIF:
        return encode_tc_lif(q, steps, saturate=True)
    return encode_count_signed(q, steps, saturate=True)


@dataclass
class LinearCase:
    """One layer tile: what the blocks get and what the golden model says they produce."""

    config: AcceleratorConfig
    q: torch.Tensor
    """int64 ``(tokens, fan_in)`` activations; ``fan_in`` a multiple of ``lanes``."""
    timesteps: list[int]
    """``T`` of every token."""
    weight: torch.Tensor
    """int64 ``(pes, fan_in)`` weights."""
    bias: torch.Tensor
    """int64 ``(pes,)`` biases."""
    multiplier: torch.Tensor
    """int64 ``(pes,)`` requantizer multipliers."""
    shift: torch.Tensor
    """int64 ``(pes,)`` requantizer right shifts."""
    name: str = "case"
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        c = self.config
        if self.q.dim() != 2 or self.q.shape[1] % c.lanes or self.q.shape[1] > c.max_fan_in:
            raise ValueError(
                f"q must be (tokens, fan_in) with fan_in a multiple of lanes={c.lanes} and at most "
                f"max_fan_in={c.max_fan_in}, not shape {tuple(self.q.shape)}"
            )
        if len(self.timesteps) != self.q.shape[0]:
            raise ValueError(f"{len(self.timesteps)} timesteps for {self.q.shape[0]} tokens")
        if self.weight.shape != (c.pes, self.q.shape[1]):
            raise ValueError(f"weight must have shape ({c.pes}, {self.q.shape[1]}), not {tuple(self.weight.shape)}")
        for name in ("bias", "multiplier", "shift"):
            if getattr(self, name).shape != (c.pes,):
                raise ValueError(f"{name} must have shape ({c.pes},), not {tuple(getattr(self, name).shape)}")

    @property
    def tokens(self) -> int:
        return self.q.shape[0]

    @property
    def fan_in(self) -> int:
        return self.q.shape[1]

    @property
    def chunks(self) -> int:
        """Spike vectors per timestep: ``fan_in / lanes``."""
        return self.fan_in // self.config.lanes

    def spikes(self, token: int) -> torch.Tensor:
        """Golden spikes of one token, ``(T_eff, fan_in)``."""
        return encode(self.q[token], self.timesteps[token], self.config)

    def partials(self, token: int) -> torch.Tensor:
        """Golden per-step accumulators of one token, ``(T_eff, pes)`` (no bias)."""
        _, partials = spike_linear(
            self.spikes(token).unsqueeze(1), self.weight, coding=self.config.coding, return_partials=True
        )
        return partials[:, 0, :]


def activation_beats(case: LinearCase) -> list[dict]:
    """Neuron-array input: every ``lanes`` slice of every token is one activation vector."""
    lanes = case.config.lanes
    beats = []
    for k in range(case.tokens):
        for chunk in range(case.chunks):
            values = case.q[k, chunk * lanes:(chunk + 1) * lanes].tolist()
            beats.append({"values": values, "timesteps": case.timesteps[k], "base": chunk * lanes})
    return beats


def neuron_array_expected(case: LinearCase) -> list[dict]:
    """Spike vectors the neuron array must emit for :func:`activation_beats`."""
    lanes = case.config.lanes
    out = []
    for k in range(case.tokens):
        spikes = case.spikes(k)
        steps = spikes.shape[0]
        for chunk in range(case.chunks):
            for t in range(steps):
                out.append({
                    "spikes": spikes[t, chunk * lanes:(chunk + 1) * lanes].tolist(),
                    "base": chunk * lanes,
                    "step": t,
                    "step_end": 1,
                    "last": int(t == steps - 1),
                    "more": 0,
                })
    return out


def spike_vector_beats(case: LinearCase) -> list[dict]:
    """Spike vectors of the whole tile in step-outer order (all chunks of step 0, then
    step 1, ...), with ``step_end`` on the last chunk of each step and ``last`` on the
    token's final step: the compactor's input. Tokens follow each other at once, so every
    token's final vector but the last one has ``more``."""
    lanes = case.config.lanes
    out = []
    for k in range(case.tokens):
        spikes = case.spikes(k)
        steps = spikes.shape[0]
        for t in range(steps):
            for chunk in range(case.chunks):
                end = chunk == case.chunks - 1
                out.append({
                    "spikes": spikes[t, chunk * lanes:(chunk + 1) * lanes].tolist(),
                    "base": chunk * lanes,
                    "step": t,
                    "step_end": int(end),
                    "last": int(end and t == steps - 1),
                    "more": int(end and t == steps - 1 and k < case.tokens - 1),
                })
    return out


def compact(vectors: list[dict], config: AcceleratorConfig) -> list[dict]:
    """Event beats of spike vectors, as the compactor must emit them.

    A vector's events are its non-zero lanes in ascending order (``index = base + lane``,
    ``negative`` for -1). The beats are :func:`~spikemllm.golden.timing.spike_datapath.pack`'s
    plans filled with these events: ``take0`` events of the head vector after its first
    ``offset``, then ``take1`` of the next one, packed from slot 0 (empty slots all zero),
    with ``step_end``, ``split`` and ``last`` of the plan.
    """
    E = config.events_per_cycle
    empty = {"valid": 0, "negative": 0, "index": 0}
    counts, lists = [], []
    for v in vectors:
        events = [
            {"valid": 1, "negative": int(s < 0), "index": v["base"] + lane}
            for lane, s in enumerate(v["spikes"]) if s != 0
        ]
        count = SpikeVectorCount(len(events), bool(v["step_end"]), bool(v["last"]), bool(v.get("more", 0)))
        if count.kept:
            counts.append(count)
            lists.append(events)
    beats, head = [], 0
    for plan in pack(counts, E):
        events = lists[head][plan.offset:plan.offset + plan.take0]
        if plan.take1:
            events = events + lists[head + 1][:plan.take1]
        beats.append({
            "events": events + [dict(empty) for _ in range(E - len(events))],
            "step_end": int(plan.boundary),
            "split": plan.split,
            "last": int(plan.last),
        })
        head += plan.pops
    return beats


def scatter_events(beats: list[dict], fan_in: int) -> list[list[int]]:
    """Decode event beats back into one dense ternary vector per timestep: the events
    before a beat's ``split`` complete the step when the beat has ``step_end``."""
    steps, current = [], [0] * fan_in
    for beat in beats:
        for slot, ev in enumerate(beat["events"]):
            if beat["step_end"] and slot == beat["split"]:
                steps.append(current)
                current = [0] * fan_in
            if ev["valid"]:
                if current[ev["index"]]:
                    raise ValueError(f"input {ev['index']} fired twice in one step")
                current[ev["index"]] = -1 if ev["negative"] else 1
        if beat["step_end"] and beat["split"] == len(beat["events"]):
            steps.append(current)
            current = [0] * fan_in
    return steps


def weight_beats(case: LinearCase) -> list[dict]:
    """Weight-memory writes: row ``i`` holds input ``i``'s weights of all ``pes`` channels."""
    return [{"addr": i, "row": case.weight[:, i].tolist()} for i in range(case.fan_in)]


def accumulator_expected(case: LinearCase) -> list[dict]:
    """PE-array output: every step's partial sums (the bias is the requantizer's)."""
    out = []
    for k in range(case.tokens):
        partials = case.partials(k)
        steps = partials.shape[0]
        for t in range(steps):
            out.append({"acc": partials[t].tolist(), "step": t, "last": int(t == steps - 1)})
    return out


def accumulator_beats(case: LinearCase) -> list[dict]:
    """Requantizer input: the PE array's output stream (:func:`accumulator_expected`)."""
    return accumulator_expected(case)


def params_beat(case: LinearCase) -> dict:
    """The requantizer's per-channel biases, multipliers and shifts."""
    return {"bias": case.bias.tolist(), "multiplier": case.multiplier.tolist(), "shift": case.shift.tolist()}


def output_expected(case: LinearCase) -> list[dict]:
    """Requantized outputs, one vector per token: ``golden.requantize(acc, bias, M, S, out_bits)``."""
    out = []
    for k in range(case.tokens):
        acc = case.partials(k)[-1]
        r = requantize(acc, case.bias, case.multiplier, case.shift, case.config.out_bits)
        out.append({"values": r.tolist()})
    return out
