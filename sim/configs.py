"""Hypothesis strategies over accelerator configurations, for tests that fuzz the generator.

* :func:`accelerator_configs` draws valid :class:`~spikemllm.config.AcceleratorConfig`\\ s,
  every field across its range (:data:`~spikemllm.config.FIELD_RANGES` and the constraints
  between fields), each range's ends drawn as often as its inside. The structural sizes
  that cost simulation time (lanes, PEs, weight-memory chunks, output tiles) are capped by
  :class:`FuzzBounds`; every width, ``t_max``, ``E``, ``R``, ``D`` and the timestep
  table's layers reach the ends of their whole ranges.
* :func:`core_runs` draws a run for a configuration (:class:`RunPlan`): a random layer
  shape within it, random tokens with random modality and layer tags, a random timestep
  table, input stalls and output back-pressure; :meth:`RunPlan.case` builds it with
  :func:`spikemllm.sim.core.cases.random_case`.
* :func:`invalid_changes` lists, for a valid configuration, each field's values just
  outside its range given the other fields (and wrong types); :func:`invalid_configs`
  draws one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hypothesis import strategies as st

from spikemllm.config import FIELD_RANGES, PRODUCT_BITS, AcceleratorConfig, Coding
from spikemllm.golden.convert.schedule import T_LIMIT
from spikemllm.sim.patterns import PATTERNS

__all__ = ["FuzzBounds", "FUZZ_BOUNDS", "edge_integers", "accelerator_configs", "RunPlan", "core_runs",
           "invalid_changes", "invalid_configs"]


@dataclass(frozen=True)
class FuzzBounds:
    """Caps on the sizes that make a configuration slow to emit and simulate.

    ``lanes``, ``pes``, ``max_fan_in`` (whose tops, set by the build registers, are far
    beyond a simulation) and ``max_out_tiles`` (whose top, 4096, takes minutes to emit)
    are drawn up to these;
    the runs keep their simulated work (events over ``E``) near :attr:`run_work`.
    """

    lanes: int = 64
    pes: int = 16
    chunks: int = 16
    """``max_fan_in / lanes``"""
    out_tiles: int = 16
    layers: int = 255
    """the timestep table's layers (255, the field's top, takes seconds to emit)"""
    tokens: int = 4
    run_chunks: int = 4
    run_tiles: int = 3
    bundle: int = 4
    """tokens per weight-row read (``B`` accumulators per PE)"""
    run_work: int = 1500
    """about the most beats a run's tokens may take (``tokens * tiles * chunks * lanes * T / E``)"""


FUZZ_BOUNDS = FuzzBounds()


def edge_integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in ``[low, high]``, either end as likely as the inside."""
    if low >= high:
        return st.just(low)
    return st.one_of(st.just(low), st.just(high), st.integers(low, high))


def _powers_of_two(low: int, high: int) -> st.SearchStrategy[int]:
    return edge_integers(low.bit_length() - 1, high.bit_length() - 1).map(lambda k: 1 << k)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def accelerator_configs(draw, *, bounds: FuzzBounds = FUZZ_BOUNDS, name: str = "fuzz") -> AcceleratorConfig:
    """A valid configuration: fields drawn in the order their constraints need."""
    r = FIELD_RANGES
    coding = draw(st.sampled_from(list(Coding)))
    act_bits = draw(edge_integers(*r["act_bits"]))
    probe = AcceleratorConfig(name=name, act_bits=act_bits, coding=coding, t_max=1)
    t_max = draw(edge_integers(1, min(probe.t_max_limit, r["t_max"][1])))
    lanes = draw(_powers_of_two(r["lanes"][0], bounds.lanes))
    chunks = draw(edge_integers(1, bounds.chunks))
    pes = draw(edge_integers(r["pes"][0], bounds.pes))
    divisors = _divisors(pes)
    requantizers = draw(st.one_of(st.just(1), st.just(pes), st.sampled_from(divisors)))
    fields = dict(
        name=name, coding=coding, act_bits=act_bits, t_max=t_max, lanes=lanes, pes=pes,
        requantizers=requantizers,
        events_per_cycle=draw(edge_integers(1, lanes)),
        max_fan_in=chunks * lanes,
        dense_inputs=draw(_powers_of_two(1, lanes)),
        weight_bits=draw(edge_integers(*r["weight_bits"])),
        out_bits=draw(edge_integers(*r["out_bits"])),
        shift_bits=draw(edge_integers(*r["shift_bits"])),
        layers=draw(edge_integers(r["layers"][0], min(bounds.layers, r["layers"][1]))),
        max_out_tiles=draw(edge_integers(1, min(bounds.out_tiles, r["max_out_tiles"][1]))),
        multiplier_bits=r["multiplier_bits"][0],
    )
    # The accumulator width follows from the fields above and the bias; the product
    # bound leaves the multiplier what the accumulator does not take.
    low, high = r["bias_bits"]
    while high > low and AcceleratorConfig(**fields, bias_bits=high).acc_width + r["multiplier_bits"][0] > PRODUCT_BITS:
        high -= 1
    fields["bias_bits"] = draw(edge_integers(low, high))
    acc_width = AcceleratorConfig(**fields).acc_width
    fields["multiplier_bits"] = draw(edge_integers(r["multiplier_bits"][0],
                                                   min(r["multiplier_bits"][1], PRODUCT_BITS - acc_width)))
    fields["bundle"] = draw(edge_integers(r["bundle"][0], min(bounds.bundle, r["bundle"][1])))
    # the variant without zero skipping exists for bundles (its events carry fire bits)
    fields["zero_skipping"] = draw(st.booleans()) if fields["bundle"] > 1 else True
    # lane slices: a power of two dividing the events per cycle, two lanes or more per slice
    E = fields["events_per_cycle"]
    fields["slices"] = draw(st.sampled_from([s for s in (1, 2, 4, 8) if E % s == 0 and lanes // s >= 2]))
    return AcceleratorConfig(**fields)


@dataclass(frozen=True)
class RunPlan:
    """A random run for one configuration (see :func:`core_runs`)."""

    seed: int
    tokens: int
    in_features: int
    out_features: int
    steps: tuple[tuple[int, int], ...]
    """``(vision T, text T)`` of every layer of the timestep table the run programs"""
    layer_tags: tuple[int, ...]
    """each token's layer tag"""
    density: float
    full_range: bool
    in_pattern: str
    out_pattern: str
    pattern_seed: int

    def case(self, config: AcceleratorConfig):
        """The :class:`~spikemllm.sim.core.cases.CoreCase` of this run."""
        from spikemllm.sim.core.cases import random_case

        return random_case(config, seed=self.seed, tokens=self.tokens, in_features=self.in_features,
                           out_features=self.out_features, steps=list(self.steps), layer_index=list(self.layer_tags),
                           density=self.density, full_range=self.full_range)

    def patterns(self):
        """The run's stall patterns: (input, output)."""
        from spikemllm.sim.patterns import pattern

        return pattern(self.in_pattern, seed=self.pattern_seed), pattern(self.out_pattern, seed=self.pattern_seed + 1)


@st.composite
def core_runs(draw, config: AcceleratorConfig, *, bounds: FuzzBounds = FUZZ_BOUNDS) -> RunPlan:
    """A run that fits ``config``: ``K`` input chunks and ``J`` output tiles within the
    weight and tile memories (``K * lanes * J <= max_fan_in``), logical sizes padded or
    not, 1 to ``bounds.tokens`` tokens, a timestep table of layers up to the largest tag
    with random ``T`` in ``[1, t_max]`` (capped so the run's work stays near
    ``bounds.run_work``), tags anywhere in ``[0, layers - 1]``, random stall patterns."""
    c = config
    chunks = draw(edge_integers(1, min(c.in_chunks_max, bounds.run_chunks)))
    tiles = draw(edge_integers(1, min(c.max_out_tiles, c.in_chunks_max // chunks, bounds.run_tiles)))
    in_features = draw(edge_integers((chunks - 1) * c.lanes + 1, chunks * c.lanes))
    out_features = draw(edge_integers((tiles - 1) * c.pes + 1, tiles * c.pes))
    tokens = draw(edge_integers(1, bounds.tokens))
    per_step = max(1, tokens * tiles * chunks * c.lanes // c.events_per_cycle)
    t_top = max(1, min(c.t_max, T_LIMIT, bounds.run_work // per_step))
    tags = tuple(draw(st.lists(edge_integers(0, c.layers - 1), min_size=tokens, max_size=tokens)))
    table_layers = max(tags) + 1
    step = edge_integers(1, t_top)
    steps = tuple(draw(st.lists(st.tuples(step, step), min_size=table_layers, max_size=table_layers)))
    return RunPlan(
        seed=draw(st.integers(0, 2**31 - 1)), tokens=tokens, in_features=in_features, out_features=out_features,
        steps=steps, layer_tags=tags, density=draw(st.sampled_from([0.0, 0.2, 0.6, 1.0])),
        full_range=draw(st.booleans()),
        in_pattern=draw(st.sampled_from(PATTERNS[1:])), out_pattern=draw(st.sampled_from(PATTERNS[1:])),
        pattern_seed=draw(st.integers(0, 1000)),
    )


def _unchecked(config: AcceleratorConfig, **changes) -> AcceleratorConfig:
    """A copy of ``config`` with ``changes`` and no validation, to read its derived widths."""
    copy = object.__new__(AcceleratorConfig)
    for f in dataclasses.fields(AcceleratorConfig):
        object.__setattr__(copy, f.name, changes.get(f.name, getattr(config, f.name)))
    return copy


def _product_breaking(config: AcceleratorConfig) -> list[tuple[str, int]]:
    """For each field the requantizer product depends on, its smallest value within the
    field's own range (above the current one) whose product is wider than :data:`PRODUCT_BITS`."""
    c, r = config, FIELD_RANGES
    found = []
    for field, high in (("bias_bits", r["bias_bits"][1]), ("multiplier_bits", r["multiplier_bits"][1]),
                        ("weight_bits", r["weight_bits"][1]), ("t_max", min(c.t_max_limit, r["t_max"][1]))):
        for value in range(getattr(c, field) + 1, high + 1):
            if _unchecked(c, **{field: value}).product_width > PRODUCT_BITS:
                found.append((field, value))
                break
    # the accumulator bound is linear in max_fan_in: solve for the first multiple of lanes
    # whose accumulator takes more than the multiplier leaves
    need = (1 << (PRODUCT_BITS - c.multiplier_bits - 1)) - (1 << (c.bias_bits - 1))
    fan_in = max(c.lanes, -(-need // (c.act_max * c.weight_max)))
    fan_in = -(-fan_in // c.lanes) * c.lanes
    if _unchecked(c, max_fan_in=fan_in).product_width > PRODUCT_BITS:
        found.append(("max_fan_in", fan_in))
    return found


def invalid_changes(config: AcceleratorConfig) -> list[tuple[str, object]]:
    """``(field, value)`` pairs that make ``config`` invalid: each field just below and
    above its range given the other fields, values that break a constraint between
    fields (not a power of two, not a multiple of ``lanes``, not a divisor of ``pes``,
    ``t_max`` beyond what ``act_bits`` and ``coding`` need, a requantizer product wider
    than :data:`PRODUCT_BITS`, no zero skipping without bundles, lane slices that do not divide
    the events per cycle or leave a slice one lane), and values of the wrong type."""
    c, r = config, FIELD_RANGES
    changes: list[tuple[str, object]] = [("name", ""), ("name", "two words"), ("name", 7)]
    for field in ("act_bits", "weight_bits", "out_bits", "multiplier_bits", "shift_bits", "bias_bits", "layers",
                  "max_out_tiles", "pes"):
        low, high = r[field]
        changes.append((field, low - 1))
        if high is not None:
            changes.append((field, high + 1))
    changes += [("lanes", 1), ("lanes", 0), ("lanes", 3 * c.lanes // 2 if c.lanes > 2 else 3), ("lanes", 2 * r["lanes"][1])]
    changes += [("t_max", 0), ("t_max", min(c.t_max_limit, r["t_max"][1]) + 1)]
    if c.t_max >= 2:  # the widest act_bits too narrow for t_max
        changes.append(("act_bits", c.t_max if c.coding is Coding.TC_LIF else c.t_max.bit_length()))
    if c.coding is Coding.COUNT and c.t_max > c.act_bits - 1:
        changes.append(("coding", Coding.TC_LIF.value))
    changes.append(("coding", "rate"))
    changes += [("events_per_cycle", 0), ("events_per_cycle", c.lanes + 1)]
    changes += [("max_fan_in", c.lanes - 1), ("max_fan_in", c.max_fan_in + 1), ("max_fan_in", r["max_fan_in"][1] + 1)]
    changes += [("requantizers", 0), ("requantizers", c.pes + 1)]
    changes += [("requantizers", d) for d in range(2, c.pes) if c.pes % d][:1]
    changes += [("dense_inputs", 0), ("dense_inputs", 2 * c.lanes), ("dense_inputs", 2 * r["dense_inputs"][1])]
    if c.lanes >= 4:
        changes.append(("dense_inputs", 3))
    changes += _product_breaking(c)
    if c.bundle == 1:  # an event of B = 1 has no fire bit to issue without zero skipping
        changes.append(("zero_skipping", False))
    changes += [("slices", 0), ("slices", 3), ("slices", 2 * c.events_per_cycle), ("slices", c.lanes)]
    changes += [("lanes", True), ("pes", 2.0), ("t_max", "3"), ("act_bits", None), ("zero_skipping", "yes"),
                ("slices", 2.0)]
    return changes


@st.composite
def invalid_configs(draw, *, bounds: FuzzBounds = FUZZ_BOUNDS) -> tuple[AcceleratorConfig, str, object]:
    """A valid configuration and one ``(field, value)`` of :func:`invalid_changes` that
    ``dataclasses.replace`` must refuse."""
    config = draw(accelerator_configs(bounds=bounds))
    field, value = draw(st.sampled_from(invalid_changes(config)))
    return config, field, value
