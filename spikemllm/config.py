"""One accelerator instance, described once.

:class:`AcceleratorConfig` is a frozen, keyword-only dataclass that the hardware generator
(:mod:`spikemllm.hw`), the golden cycle model (:mod:`spikemllm.golden.timing.cycle_model`) and the
testbenches (:mod:`spikemllm.sim`) all take. It validates itself at construction, so a bad
instance raises before any Verilog is written, and it exposes every derived width as a
read-only property so that nobody recomputes one. Variants come from
``dataclasses.replace(config, lanes=...)``, which validates again.

The module is pure Python (no Amaranth, no torch) so that every layer of the project can
import it.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = [
    "AcceleratorConfig",
    "Coding",
    "CODINGS",
    "MAX_SHIFT_LIMIT",
    "FIELD_RANGES",
    "PRODUCT_BITS",
    "bits_for",
    "DEFAULT_CONFIG",
    "SMALL_CONFIG",
    "COUNT_CONFIG",
    "WIDE_CONFIG",
    "ACCEL_CONFIG",
    "PRESETS",
    "BOARD_ICE40_CONFIG",
    "load_config",
    "describe_config",
    "add_config_arguments",
    "config_from_args",
]

class Coding(enum.StrEnum):
    """How a neuron turns an integer into spikes over ``T`` timesteps.

    * ``TC_LIF`` (the method): threshold ``2^(T-1-t)`` at step ``t``, so the steps are the
      binary digits of ``|q|``, most significant first; the PE array doubles its
      accumulators at every step boundary. ``T`` steps carry ``|q| <= 2^T - 1``.
    * ``COUNT`` (the baseline): threshold 1, one spike per unit, no doubling. ``T`` steps
      carry ``|q| <= T``.

    A member equals its string (``Coding.TC_LIF == "tc_lif"``), which is how configuration
    files and the golden functions' ``coding=`` arguments spell it.
    """

    TC_LIF = "tc_lif"
    COUNT = "count"

    def max_value(self, steps: int) -> int:
        """Largest magnitude ``steps`` timesteps carry: ``2^T - 1`` or ``T``."""
        return (1 << steps) - 1 if self is Coding.TC_LIF else steps

    @property
    def doubles(self) -> bool:
        """Whether accumulators double at every step boundary (each step weighs twice the next)."""
        return self is Coding.TC_LIF


CODINGS = tuple(c.value for c in Coding)
"""Spike codings the neuron array can be built for: the method and its baseline."""

MAX_SHIFT_LIMIT = 62
"""Largest requantizer shift: the golden model's product ``|acc * M|`` plus the rounding bias
stays an int64 shifted by at most 62 (``golden.requantize.MAX_SHIFT`` reads it from here)."""

FIELD_RANGES = {
    "lanes": (2, 1 << 15),
    "pes": (1, (1 << 16) - 1),
    "act_bits": (2, 16),
    "weight_bits": (2, 8),
    "t_max": (1, 255),
    "events_per_cycle": (1, 255),
    "max_fan_in": (2, (1 << 24) - 1),
    "bias_bits": (2, 48),
    "out_bits": (2, 16),
    "multiplier_bits": (2, 31),
    "shift_bits": (1, 6),
    "layers": (1, 255),
    "max_out_tiles": (1, 1 << 12),
    "requantizers": (1, (1 << 16) - 1),
    "dense_inputs": (1, 128),
    "bundle": (1, 16),
    "slices": (1, 64),
}
"""Integer field -> ``(low, high)`` of its own range. The upper bounds of ``lanes``,
``pes``, ``t_max``, ``events_per_cycle``, ``max_fan_in``, ``dense_inputs``, ``requantizers``
and ``bundle`` are what the cores' build registers (``HW_*``, :mod:`spikemllm.hw.registers`)
report in their fields. The constraints between fields narrow these: ``t_max <= t_max_limit`` (from ``act_bits`` and
``coding``), ``events_per_cycle <= lanes``, ``max_fan_in`` a multiple of ``lanes``,
``requantizers`` a divisor of ``pes``, ``dense_inputs`` a power of two at most ``lanes``,
``slices`` a power of two dividing ``events_per_cycle`` with at least two lanes per slice,
``lanes`` a power of two, and the requantizer product ``acc_width + multiplier_bits``
at most :data:`PRODUCT_BITS`."""

PRODUCT_BITS = 64
"""Widest requantizer product: it must stay an int64 in the golden model."""

_ACT_BITS = FIELD_RANGES["act_bits"]
_WEIGHT_BITS = FIELD_RANGES["weight_bits"]
_OUT_BITS = FIELD_RANGES["out_bits"]
_BIAS_BITS = FIELD_RANGES["bias_bits"]
_MULTIPLIER_BITS = FIELD_RANGES["multiplier_bits"]
_SHIFT_BITS = FIELD_RANGES["shift_bits"]
_PRODUCT_BITS = PRODUCT_BITS


def bits_for(value: int) -> int:
    """Bits of an unsigned field that holds every integer in ``[0, value]`` (at least 1)."""
    return max(1, int(value).bit_length())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, not {value!r}")


def _check_power_of_two(name: str, value) -> None:
    _check_int(name, value, 1)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    """Sizes and bit widths of one spike-driven accelerator instance.

    Parameters
    ----------
    name:
        Label of the instance (build folders and the JSON description use it).
    lanes:
        Neurons in the TC-LIF neuron array, i.e. spikes per spike vector; a power of two.
    pes:
        Processing elements of the sparse-accumulate PE array: output channels computed in
        parallel, also the width of the requantizer.
    act_bits:
        Width of a signed activation entering the neuron array.
    weight_bits:
        Width of a signed weight (2 to 8; 8 and 4 are the usual choices).
    t_max:
        Largest number of timesteps a token may use. With TC-LIF coding ``t_max`` steps
        carry ``|q| <= 2^t_max - 1``, so ``t_max <= act_bits - 1`` (more steps would carry
        nothing an activation can hold); with count coding ``t_max <= 2^(act_bits-1) - 1``.
    coding:
        ``"tc_lif"`` (the method: threshold ``2^(T-1-t)``, accumulators double at every
        step boundary) or ``"count"`` (the baseline: threshold 1, no doubling).
    events_per_cycle:
        Spike events ``(index, sign)`` the compactor emits and the PE array consumes per
        cycle (``E``); at most ``lanes``.
    max_fan_in:
        Depth of the weight memory: the largest number of inputs a layer tile may have.
        A multiple of ``lanes``.
    bias_bits:
        Width of a signed bias loaded into the PE array.
    out_bits:
        Width of the signed requantized outputs (the next layer's activations).
    multiplier_bits:
        Width of the requantizer's unsigned per-channel multiplier.
    shift_bits:
        Width of the requantizer's per-channel right shift (shifts up to
        ``min(2^shift_bits - 1, 62)`` are meaningful).
    layers:
        Layers in the top level's programmable timestep table (``T`` per layer and modality).
    max_out_tiles:
        Output tiles of ``pes`` channels the top level's bias and requantizer memories hold;
        a layer needs ``in_features * out_tiles <= max_fan_in`` weight rows as well.
    requantizers:
        Multipliers of the requantizer every core shares (``R``): it requantizes ``R`` of
        the ``pes`` outputs per cycle, ``pes / R`` cycles per tile; a divisor of ``pes``.
    dense_inputs:
        Inputs the dense baseline cores multiply-accumulate per cycle (``D``): each PE has
        ``D`` multipliers. A power of two, at most ``lanes``. The spike core ignores it.
    bundle:
        Tokens that share each weight-row read (``B``): the spike core computes ``B``
        consecutive tokens of a run together, and the events of the bundle's tokens at the
        same input index use one read of the weight row (``B`` accumulators per PE).
        ``1`` computes one token at a time. See :mod:`spikemllm.golden.bundle`.
    zero_skipping:
        Whether the spike core issues events only where a token fires (``True``, the
        method). ``False`` builds the variant that issues every (step, input) pair, the
        zero-skipping baseline of the decomposition (``docs/ppa.md``): every lane of every
        spike vector is an event and costs an event slot and a weight-row read, its fire bits
        saying which tokens add. It needs ``bundle > 1``, whose events carry fire bits (an
        event of ``B = 1`` is a spike). Outputs are the same; the build registers do not
        report it.
    slices:
        Lane slices of the spike core (``S``): the lanes of a spike vector split into ``S``
        groups of ``lanes / S`` consecutive lanes, each with its own compactor
        (``events_per_cycle / S`` events per cycle) and weight memory bank
        (``events_per_cycle / S`` read ports, the rows of its lanes); the PE array is shared
        and the slices meet at every step end (see :mod:`spikemllm.hw.slices`).
        ``S = events_per_cycle`` gives single-port weight banks; ``1`` is one compactor and
        one weight memory with ``events_per_cycle`` read ports. A power of two dividing
        ``events_per_cycle``, with ``lanes / S >= 2``. The dense cores ignore it.

    Raises ``TypeError`` for a parameter of the wrong type and ``ValueError`` naming the
    bad value for one out of range.
    """

    name: str = "default"
    lanes: int = 16
    pes: int = 8
    act_bits: int = 8
    weight_bits: int = 8
    t_max: int = 7
    coding: Coding = Coding.TC_LIF
    events_per_cycle: int = 2
    max_fan_in: int = 1024
    bias_bits: int = 24
    out_bits: int = 8
    multiplier_bits: int = 16
    shift_bits: int = 6
    layers: int = 8
    max_out_tiles: int = 8
    requantizers: int = 1
    dense_inputs: int = 1
    bundle: int = 1
    zero_skipping: bool = True
    slices: int = 1

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name must be a non-empty identifier of letters, digits and '_', not {self.name!r}")
        _check_power_of_two("lanes", self.lanes)
        if self.lanes < 2:
            raise ValueError(f"lanes must be at least 2, not {self.lanes!r}")
        _check_int("lanes", self.lanes, *FIELD_RANGES["lanes"])
        _check_int("pes", self.pes, *FIELD_RANGES["pes"])
        _check_int("act_bits", self.act_bits, *_ACT_BITS)
        _check_int("weight_bits", self.weight_bits, *_WEIGHT_BITS)
        if self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {CODINGS}, not {self.coding!r}")
        object.__setattr__(self, "coding", Coding(self.coding))
        _check_int("t_max", self.t_max, *FIELD_RANGES["t_max"])
        if self.t_max > self.t_max_limit:
            need = "act_bits - 1" if self.coding is Coding.TC_LIF else "2^(act_bits-1) - 1"
            raise ValueError(
                f"t_max={self.t_max!r} is more than {self.coding} coding of {self.act_bits}-bit "
                f"activations needs: at most {need} = {self.t_max_limit}"
            )
        _check_int("events_per_cycle", self.events_per_cycle, 1, min(self.lanes, FIELD_RANGES["events_per_cycle"][1]))
        _check_int("max_fan_in", self.max_fan_in, self.lanes, FIELD_RANGES["max_fan_in"][1])
        if self.max_fan_in % self.lanes:
            raise ValueError(f"max_fan_in must be a multiple of lanes={self.lanes}, not {self.max_fan_in!r}")
        _check_int("bias_bits", self.bias_bits, *_BIAS_BITS)
        _check_int("out_bits", self.out_bits, *_OUT_BITS)
        _check_int("multiplier_bits", self.multiplier_bits, *_MULTIPLIER_BITS)
        _check_int("shift_bits", self.shift_bits, *_SHIFT_BITS)
        _check_int("layers", self.layers, *FIELD_RANGES["layers"])
        _check_int("max_out_tiles", self.max_out_tiles, *FIELD_RANGES["max_out_tiles"])
        _check_int("requantizers", self.requantizers, 1, self.pes)
        if self.pes % self.requantizers:
            raise ValueError(f"requantizers must divide pes={self.pes}, not {self.requantizers!r}")
        _check_power_of_two("dense_inputs", self.dense_inputs)
        _check_int("dense_inputs", self.dense_inputs, *FIELD_RANGES["dense_inputs"])
        if self.dense_inputs > self.lanes:
            raise ValueError(f"dense_inputs must be at most lanes={self.lanes}, not {self.dense_inputs!r}")
        _check_int("bundle", self.bundle, *FIELD_RANGES["bundle"])
        if not isinstance(self.zero_skipping, bool):
            raise TypeError(f"zero_skipping must be a bool, not {self.zero_skipping!r}")
        if not self.zero_skipping and self.bundle == 1:
            raise ValueError("zero_skipping=False needs bundle > 1: the events of bundle=1 carry no fire bit, "
                             "so an event cannot say that no token fires")
        _check_power_of_two("slices", self.slices)
        _check_int("slices", self.slices, *FIELD_RANGES["slices"])
        if self.events_per_cycle % self.slices:
            raise ValueError(f"slices must divide events_per_cycle={self.events_per_cycle}, not {self.slices!r}")
        if self.lanes // self.slices < 2:
            raise ValueError(f"slices={self.slices!r} leaves fewer than 2 of the {self.lanes} lanes per slice")
        if self.product_width > _PRODUCT_BITS:
            raise ValueError(
                f"acc_width={self.acc_width} (from t_max={self.t_max!r}, coding={self.coding.value!r}, "
                f"max_fan_in={self.max_fan_in!r}, weight_bits={self.weight_bits!r}, bias_bits={self.bias_bits!r}) "
                f"plus multiplier_bits={self.multiplier_bits!r} gives a {self.product_width}-bit requantizer "
                f"product, more than {_PRODUCT_BITS}; reduce max_fan_in, bias_bits or multiplier_bits"
            )

    # -- activations and timesteps -------------------------------------------------------

    @property
    def t_max_limit(self) -> int:
        """Most timesteps the activation width can use with this coding."""
        if self.coding is Coding.TC_LIF:
            return self.act_bits - 1
        return (1 << (self.act_bits - 1)) - 1

    @property
    def act_max(self) -> int:
        """Largest activation magnitude the spike trains can carry in ``t_max`` steps."""
        return self.coding.max_value(self.t_max)

    @property
    def timesteps_width(self) -> int:
        """Width of the per-token ``T`` field (holds ``0 .. t_max``)."""
        return bits_for(self.t_max)

    @property
    def step_width(self) -> int:
        """Width of a timestep index ``t`` in ``[0, t_max - 1]``."""
        return bits_for(self.t_max - 1)

    # -- events and memories ---------------------------------------------------------------

    @property
    def lane_index_width(self) -> int:
        """Width of a lane number inside one spike vector."""
        return bits_for(self.lanes - 1)

    @property
    def index_width(self) -> int:
        """Width of an event's input index, i.e. the weight-memory address."""
        return bits_for(self.max_fan_in - 1)

    @property
    def event_count_width(self) -> int:
        """Width of a count of events in one beat (``0 .. events_per_cycle``)."""
        return bits_for(self.events_per_cycle)

    @property
    def weight_max(self) -> int:
        """Largest weight magnitude: ``2^(weight_bits-1) - 1``."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def weight_row_bits(self) -> int:
        """Bits of one weight-memory row (``pes`` weights)."""
        return self.pes * self.weight_bits

    @property
    def weight_memory_bits(self) -> int:
        """Total bits of the weight memory."""
        return self.max_fan_in * self.weight_row_bits

    @property
    def slice_config(self) -> "AcceleratorConfig":
        """The configuration of one lane slice (``slices`` of them): ``lanes / S`` lanes,
        ``events_per_cycle / S`` events per cycle and ``max_fan_in / S`` weight rows; the
        configuration itself when ``slices = 1``."""
        S = self.slices
        if S == 1:
            return self
        return dataclasses.replace(self, name=f"{self.name}_slice", lanes=self.lanes // S,
                                   events_per_cycle=self.events_per_cycle // S, max_fan_in=self.max_fan_in // S,
                                   slices=1)

    # -- accumulator and requantizer ---------------------------------------------------------

    @property
    def acc_bound(self) -> int:
        """Largest ``|accumulator|`` any input can produce, bias included.

        ``act_max * max_fan_in * weight_max`` bounds every per-step partial sum (for TC-LIF
        the partial after step ``t`` is the dot product of the first ``t+1`` digits) and
        the bias adds at most ``2^(bias_bits-1)``.
        """
        return self.act_max * self.max_fan_in * self.weight_max + (1 << (self.bias_bits - 1))

    @property
    def acc_width(self) -> int:
        """Signed accumulator width: holds ``+/- acc_bound`` so the largest fan-in cannot overflow."""
        return self.acc_bound.bit_length() + 1

    @property
    def product_width(self) -> int:
        """Signed width of accumulator times multiplier inside the requantizer."""
        return self.acc_width + self.multiplier_bits

    @property
    def max_shift(self) -> int:
        """Largest shift the requantizer field holds that the golden model also accepts."""
        return min((1 << self.shift_bits) - 1, MAX_SHIFT_LIMIT)

    @property
    def requant_cycles(self) -> int:
        """Cycles the shared requantizer spends on one tile: ``pes / requantizers``."""
        return self.pes // self.requantizers

    @property
    def out_max(self) -> int:
        """Saturation bound of the requantized outputs: ``2^(out_bits-1) - 1``."""
        return (1 << (self.out_bits - 1)) - 1

    # -- top level ---------------------------------------------------------------------------

    @property
    def layer_width(self) -> int:
        """Width of a token's layer tag (``0 .. layers - 1``)."""
        return bits_for(self.layers - 1)

    @property
    def in_chunks_max(self) -> int:
        """Most spike vectors (chunks of ``lanes`` inputs) one token of a layer may span."""
        return self.max_fan_in // self.lanes

    @property
    def tile_width(self) -> int:
        """Width of an output-tile number (``0 .. max_out_tiles - 1``)."""
        return bits_for(self.max_out_tiles - 1)

    # -- description -----------------------------------------------------------------------

    _DERIVED: ClassVar[tuple[str, ...]] = (
        "t_max_limit",
        "act_max",
        "timesteps_width",
        "step_width",
        "lane_index_width",
        "index_width",
        "event_count_width",
        "weight_max",
        "weight_row_bits",
        "weight_memory_bits",
        "acc_bound",
        "acc_width",
        "product_width",
        "max_shift",
        "requant_cycles",
        "out_max",
        "layer_width",
        "in_chunks_max",
        "tile_width",
    )

    def to_dict(self) -> dict:
        """Parameters and derived facts as a JSON-ready dict (keys sorted on dump)."""
        return {
            "parameters": {**dataclasses.asdict(self), "coding": self.coding.value},
            "derived": {name: getattr(self, name) for name in self._DERIVED},
        }

    def to_json(self) -> str:
        """Deterministic JSON text of :meth:`to_dict`, newline-terminated."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, description: dict) -> "AcceleratorConfig":
        """Rebuild a config from :meth:`to_dict` output (``derived`` is checked, not trusted).

        Raises ``ValueError`` if a derived value in the description disagrees with the one
        the parameters give (a stale or hand-edited description).
        """
        if not isinstance(description, dict) or "parameters" not in description:
            raise ValueError("a configuration description must be a dict with a 'parameters' entry")
        config = cls(**description["parameters"])
        for name, value in description.get("derived", {}).items():
            if name not in cls._DERIVED:
                raise ValueError(f"unknown derived entry {name!r} in configuration description")
            if getattr(config, name) != value:
                raise ValueError(f"derived {name}={value!r} disagrees with the parameters, which give {getattr(config, name)!r}")
        return config

    @classmethod
    def from_json(cls, text: str) -> "AcceleratorConfig":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


DEFAULT_CONFIG = AcceleratorConfig()
"""The default instance: 16 lanes, 8 PEs, 8-bit activations and weights, T_max = 7, 2 events/cycle."""

SMALL_CONFIG = AcceleratorConfig(
    name="small", lanes=8, pes=4, act_bits=5, weight_bits=4, t_max=4, events_per_cycle=1,
    max_fan_in=16, bias_bits=12, out_bits=5, multiplier_bits=12, shift_bits=5,
)
"""A small instance for fast simulation: 8 lanes, 4 PEs, 5-bit activations, 4-bit weights, 1 event/cycle."""

COUNT_CONFIG = AcceleratorConfig(
    name="count", lanes=8, pes=4, act_bits=4, weight_bits=4, t_max=7, coding="count",
    events_per_cycle=2, max_fan_in=16, bias_bits=12, out_bits=4, multiplier_bits=12, shift_bits=5,
)
"""Count-coding baseline: 4-bit activations need ``T = Q = 7`` steps instead of TC-LIF's 3."""

WIDE_CONFIG = AcceleratorConfig(name="wide", lanes=64, pes=64, events_per_cycle=4, requantizers=8)
"""An accelerator-sized instance: 64 lanes, 64 PEs, 4 events/cycle, 8 requantizer multipliers
(one output tile of 64 channels requantized in 8 cycles), otherwise the default's widths."""

ACCEL_CONFIG = dataclasses.replace(WIDE_CONFIG, name="accel", bundle=4, slices=4)
"""The accelerator-sized instance of the PPA comparison: ``wide`` (64 lanes, 64 PEs, 4
events/cycle, 8 requantizer multipliers) with bundles of 4 tokens sharing each weight-row
read and 4 lane slices, so that its weights are four single-port banks. ``make synth
CONFIG=accel`` compares it with dense cores of the same size (``docs/ppa.md``, "At
accelerator size")."""

BOARD_ICE40_CONFIG = dataclasses.replace(SMALL_CONFIG, name="board_ice40", max_out_tiles=2, layers=2)
"""The iCEBreaker's instance (iCE40 UP5K): ``small`` with two output tiles and a timestep
table of two layers, so that the core, the UART bridge and its buffers fit the device's
5280 logic cells (``make bitstream BOARD=icebreaker`` reports the count)."""

PRESETS = {c.name: c for c in (DEFAULT_CONFIG, SMALL_CONFIG, COUNT_CONFIG, WIDE_CONFIG, ACCEL_CONFIG,
                                      BOARD_ICE40_CONFIG)}
"""Named instances used by generation and verification."""


def _parse_override(text: str) -> tuple[str, object]:
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"an override must read field=value, not {text!r}")
    name, _, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    fields = {f.name: f for f in dataclasses.fields(AcceleratorConfig)}
    if name not in fields:
        raise ValueError(f"unknown configuration field {name!r} in {text!r}; fields: {sorted(fields)}")
    if name in ("name", "coding"):
        return name, raw
    if fields[name].type in (bool, "bool"):
        words = {"true": True, "1": True, "false": False, "0": False}
        if raw.lower() not in words:
            raise ValueError(f"{name} must be true or false, not {raw!r}")
        return name, words[raw.lower()]
    try:
        return name, int(raw, 0)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


def load_config(source: str | Path = "default", overrides: Sequence[str] = ()) -> AcceleratorConfig:
    """The configuration an entry point runs with.

    ``source`` is a preset name (:data:`PRESETS`) or the path of a JSON description in the
    format ``make verilog`` writes (``config.json``; its derived entries are checked
    against the parameters). ``overrides`` are ``field=value`` strings applied on top, in
    order, e.g. ``("lanes=32", "events_per_cycle=4")``; the name stays the source's unless
    ``name=...`` is among them.

    Raises ``ValueError`` naming an unknown preset, a missing or malformed file, an unknown
    field or a value the configuration refuses (``TypeError`` for a wrong type).
    """
    text = str(source)
    if text in PRESETS:
        config = PRESETS[text]
    elif text.endswith(".json") or Path(text).exists():
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"configuration file {text!r} does not exist")
        try:
            description = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"configuration file {text!r} is not valid JSON: {exc}") from None
        try:
            config = AcceleratorConfig.from_dict(description)
        except TypeError as exc:  # unknown or missing parameter names
            raise ValueError(f"configuration file {text!r}: {exc}") from None
    else:
        raise ValueError(f"unknown configuration {text!r}: not a preset ({sorted(PRESETS)}) or a JSON file")
    changes = dict(_parse_override(o) for o in overrides)
    return dataclasses.replace(config, **changes) if changes else config


def add_config_arguments(parser: argparse.ArgumentParser, *, default: str = "default") -> None:
    """Add ``--config PRESET|FILE.json`` and repeatable ``--set field=value`` to ``parser``."""
    parser.add_argument("--config", default=default, metavar="PRESET|FILE",
                        help=f"preset ({', '.join(sorted(PRESETS))}) or a config.json written by make verilog "
                             f"(default: {default})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one configuration field (repeatable), e.g. --set lanes=32")


def describe_config(config: AcceleratorConfig) -> str:
    """The configuration's name and, if it is a preset's name, the fields that differ from
    that preset (the overrides a run was given), e.g. ``default (lanes=64, pes=64)``."""
    preset = PRESETS.get(config.name)
    if preset is None:
        return config.name
    changed = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value != getattr(preset, f.name):
            changed.append(f"{f.name}={value.value if isinstance(value, Coding) else value}")
    return f"{config.name} ({', '.join(changed)})" if changed else config.name


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AcceleratorConfig:
    """The configuration of parsed :func:`add_config_arguments` options; a bad one exits
    through ``parser.error`` with the message that names it."""
    try:
        return load_config(args.config, args.overrides)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
