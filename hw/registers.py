"""The SpikeCore register map, declared once.

The hardware builds its address decoder from :func:`register_map`; the firmware's C header,
Python constants and JSON description are generated from the same object
(:mod:`spikemllm.firmware.regmap`), so no address is ever typed twice.

The bus is a simple synchronous register bus (:class:`RegisterBus`): 32-bit words, word
addresses; a write takes effect on the cycle ``w_stb`` is high; a read returns ``r_data``
one cycle after ``r_stb``. Byte addresses in the generated files are ``4 * word``.

Registers (``N`` = number of timestep-table entries = ``len(Modality) * layers``):

========================  ======  ==================================================
register                  access  meaning
========================  ======  ==================================================
``ID``                    ro      constant ``0x534D4C31`` ("SML1")
``HW_LANES_PES``          ro      ``lanes`` [15:0], ``pes`` [31:16]
``HW_STEPS``              ro      ``t_max`` [7:0], ``events_per_cycle`` [15:8], ``layers`` [23:16], coding [24] (1 = count),
                                  datapath [26:25] (0 spike, 1 dense INT8, 2 dense FP16), ``bundle`` [31:27]
``HW_MEMORY``             ro      ``max_fan_in`` (weight-memory rows) [23:0]
``HW_TILES``              ro      ``max_out_tiles`` [15:0]
``CTRL``                  wo      ``start`` [0], ``clear`` [1] (clear done, error and counters),
                                  ``abort`` [2] (stop a run; a write with it never starts one)
``STATUS``                ro      ``busy`` [0], ``done`` [1], ``error`` [2], ``aborted`` [3],
                                  ``error_code`` [11:8]
``IN_FEATURES``           rw      input features of the layer (a multiple of ``lanes``)
``OUT_FEATURES``          rw      output features of the layer (a multiple of ``pes``)
``TOKENS``                rw      tokens in the next run
``TTABLE[i]``             rw      ``T`` of layer ``i // 2``, modality ``i % 2`` (0 text, 1 vision;
                                  :func:`spikemllm.modality.timestep_index`)
``CYCLES``                ro      cycles spent busy in the last/current run
``EVENTS``                ro      spike events accumulated (every token's own)
``ACTIVE_CYCLES``         ro      cycles in which the PE array took at least one event (read a weight row)
``STALL_CYCLES``          ro      cycles the output stream was held by back-pressure
``IDLE_IN_CYCLES``        ro      busy cycles spent waiting for token input
``TOKENS_DONE``           ro      tokens whose outputs have all left
``WEIGHT_READS``          ro      weight-row reads (one per event slot filled; with bundles one read
                                  serves the events of the bundle's tokens at one input index)
========================  ======  ==================================================

Errors (``error_code``) never compute: the offending write or start is refused and the
register keeps its value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikemllm.config import AcceleratorConfig, Coding
from spikemllm.modality import Modality, timestep_entries

__all__ = [
    "ID_VALUE",
    "DATA_WIDTH",
    "ERRORS",
    "COUNTERS",
    "CoreKind",
    "Field",
    "Register",
    "RegisterMap",
    "register_map",
    "BUILD_FIELDS",
    "build_values",
    "decode_build",
    "RegisterBus",
]

ID_VALUE = 0x534D4C31
DATA_WIDTH = 32

ERRORS = {
    "NONE": (0, "no error"),
    "BAD_T": (1, "a timestep-table write outside [1, t_max]"),
    "BAD_SHAPE": (2, "IN_FEATURES not a positive multiple of lanes or OUT_FEATURES not a positive multiple of pes"),
    "TOO_LARGE": (3, "the layer does not fit the weight memory or the tile memories"),
    "START_WHILE_BUSY": (4, "start or a configuration write while a run is in progress"),
    "BAD_TOKEN": (5, "a token tagged with a layer beyond the timestep table"),
    "NO_TOKENS": (6, "start with TOKENS = 0"),
}
"""Error codes: name -> (code, meaning)."""


class CoreKind(enum.StrEnum):
    """The datapath of a core: the spike pipeline or a dense multiply-accumulate baseline.

    :attr:`code` is what the core reports in ``HW_STEPS.DATAPATH``.
    """

    SPIKE = "spike"
    INT8 = "int8"
    FP16 = "fp16"

    @property
    def code(self) -> int:
        return list(CoreKind).index(self)

    @classmethod
    def from_code(cls, code: int) -> "CoreKind":
        kinds = list(cls)
        if not 0 <= code < len(kinds):
            raise ValueError(f"datapath code must be in [0, {len(kinds) - 1}], not {code!r}")
        return kinds[code]


@dataclass(frozen=True)
class Field:
    """A bit field of a register."""

    name: str
    offset: int
    width: int
    doc: str

    @property
    def mask(self) -> int:
        """The field's bits in the register word."""
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    """A 32-bit register (or an array of ``count`` of them at consecutive words).

    Its :attr:`fields` pack and unpack its words, in the driver (:meth:`pack`,
    :meth:`unpack`) and in the hardware (:meth:`assemble`, :meth:`field`) alike.
    """

    name: str
    word: int
    access: str
    doc: str
    fields: tuple[Field, ...] = ()
    count: int = 1

    @property
    def address(self) -> int:
        """Byte address of the first word."""
        return 4 * self.word

    def _field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}; fields: {[f.name for f in self.fields]}")

    def pack(self, **values: int) -> int:
        """The word holding ``values`` (field name -> integer); fields not given are 0.

        Raises ``KeyError`` for an unknown field and ``ValueError`` naming a value that
        does not fit its field.
        """
        word = 0
        for name, value in values.items():
            f = self._field(name)
            if not isinstance(value, int) or not 0 <= value < 1 << f.width:
                raise ValueError(f"{self.name}.{name} is {f.width} bits wide and cannot hold {value!r}")
            word |= value << f.offset
        return word

    def unpack(self, word: int) -> dict[str, int]:
        """Field name -> value of a word read from the register."""
        return {f.name: (int(word) & f.mask) >> f.offset for f in self.fields}

    def assemble(self, values: dict) -> Value:
        """The register's word as an Amaranth value from ``values`` (field name -> value),
        with zeros in the bits no field occupies (the hardware's read data)."""
        parts, position = [], 0
        for f in sorted(self.fields, key=lambda f: f.offset):
            if f.offset > position:
                parts.append(Const(0, f.offset - position))
            parts.append(values[f.name])
            position = f.offset + f.width
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise KeyError(f"register {self.name} has no fields {sorted(unknown)}")
        return Cat(*parts)

    def field(self, word: Value, name: str) -> Value:
        """The bits of field ``name`` in a word written to the register (the hardware's decode)."""
        f = self._field(name)
        return word[f.offset:f.offset + f.width]


@dataclass(frozen=True)
class RegisterMap:
    """All registers of one core instance, with lookups by name."""

    registers: tuple[Register, ...]

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"no register named {name!r}")

    @property
    def words(self) -> int:
        """Words the map spans."""
        return max(r.word + r.count for r in self.registers)

    @property
    def addr_width(self) -> int:
        """Width of a word address."""
        return max(1, (self.words - 1).bit_length())

    @property
    def build_registers(self) -> tuple[Register, ...]:
        """The read-only registers that report build parameters (``HW_*``)."""
        return tuple(self[name] for name in BUILD_FIELDS)


COUNTERS = (
    ("CYCLES", "cycles spent busy in the last or current run"),
    ("EVENTS", "spike events accumulated by the PE array (every token's own)"),
    ("ACTIVE_CYCLES", "cycles in which the PE array took at least one event (read a weight row)"),
    ("STALL_CYCLES", "cycles an output vector waited for the consumer (back-pressure)"),
    ("IDLE_IN_CYCLES", "busy cycles spent waiting for token input"),
    ("TOKENS_DONE", "tokens whose outputs have all left"),
    ("WEIGHT_READS", "weight-row reads by the PE array (one per filled event slot; with bundles one read serves "
                     "the events of the bundle's tokens at the same input index)"),
)
"""Performance counters, in register order: name -> meaning."""

BUILD_FIELDS = {
    "HW_LANES_PES": {"LANES": "lanes", "PES": "pes"},
    "HW_STEPS": {"T_MAX": "t_max", "EVENTS_PER_CYCLE": "events_per_cycle", "LAYERS": "layers",
                 "COUNT_CODING": "coding", "DATAPATH": "kind", "BUNDLE": "bundle"},
    "HW_MEMORY": {"MAX_FAN_IN": "max_fan_in", "DENSE_INPUTS": "dense_inputs"},
    "HW_TILES": {"MAX_OUT_TILES": "max_out_tiles", "REQUANTIZERS": "requantizers"},
}
"""Build-parameter registers: field -> the :class:`AcceleratorConfig` parameter it reports
(``coding`` as 1 for count coding, ``kind`` as the :class:`CoreKind` code)."""


def build_values(config: AcceleratorConfig, kind: CoreKind) -> dict[str, int]:
    """The words of the ``HW_*`` registers of a ``kind`` core built for ``config``."""
    words = {}
    regmap = register_map(config)
    for reg, fields in BUILD_FIELDS.items():
        values = {}
        for name, param in fields.items():
            if param == "coding":
                values[name] = int(config.coding is Coding.COUNT)
            elif param == "kind":
                values[name] = CoreKind(kind).code
            else:
                values[name] = getattr(config, param)
        words[reg] = regmap[reg].pack(**values)
    return words


def decode_build(regmap: RegisterMap, words: dict[str, int]) -> dict:
    """Configuration parameters (and ``kind``) from the words read from the ``HW_*`` registers."""
    params = {}
    for reg, fields in BUILD_FIELDS.items():
        unpacked = regmap[reg].unpack(words[reg])
        for name, param in fields.items():
            value = unpacked[name]
            if param == "coding":
                params[param] = Coding.COUNT if value else Coding.TC_LIF
            elif param == "kind":
                params[param] = CoreKind.from_code(value)
            else:
                params[param] = value
    return params


def register_map(config: AcceleratorConfig) -> RegisterMap:
    """The register map of a core built for ``config``; words are assigned in declaration order."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    declared = [
        ("ID", "ro", "identification constant 0x534D4C31 ('SML1')", (), 1),
        ("HW_LANES_PES", "ro", "build parameters", (
            Field("LANES", 0, 16, "neurons per spike vector"),
            Field("PES", 16, 16, "processing elements (output channels per tile)"),
        ), 1),
        ("HW_STEPS", "ro", "build parameters", (
            Field("T_MAX", 0, 8, "largest timestep count"),
            Field("EVENTS_PER_CYCLE", 8, 8, "spike events per cycle"),
            Field("LAYERS", 16, 8, "layers in the timestep table"),
            Field("COUNT_CODING", 24, 1, "1 if built for count coding instead of TC-LIF"),
            Field("DATAPATH", 25, 2, "0 spike core, 1 dense INT8 baseline, 2 dense FP16 baseline"),
            Field("BUNDLE", 27, 5, "tokens sharing each weight-row read"),
        ), 1),
        ("HW_MEMORY", "ro", "weight-memory rows (input features x output tiles)", (
            Field("MAX_FAN_IN", 0, 24, "weight-memory rows"),
            Field("DENSE_INPUTS", 24, 8, "inputs per cycle of the dense baselines"),
        ), 1),
        ("HW_TILES", "ro", "output tiles the bias and requantizer memories hold", (
            Field("MAX_OUT_TILES", 0, 16, "output tiles"),
            Field("REQUANTIZERS", 16, 16, "multipliers of the shared requantizer"),
        ), 1),
        ("CTRL", "wo", "control", (
            Field("START", 0, 1, "start a run of TOKENS tokens"),
            Field("CLEAR", 1, 1, "clear done, error and the performance counters"),
            Field("ABORT", 2, 1, "stop the run in progress and drop everything in flight; never starts a run"),
        ), 1),
        ("STATUS", "ro", "status", (
            Field("BUSY", 0, 1, "a run is in progress"),
            Field("DONE", 1, 1, "the last run finished"),
            Field("ERROR", 2, 1, "a write or start was refused; see ERROR_CODE"),
            Field("ABORTED", 3, 1, "the last run was stopped by ABORT"),
            Field("ERROR_CODE", 8, 4, "first refused operation since the last clear"),
        ), 1),
        ("IN_FEATURES", "rw", "input features (multiple of lanes)", (), 1),
        ("OUT_FEATURES", "rw", "output features (multiple of pes)", (), 1),
        ("TOKENS", "rw", "tokens in the next run", (), 1),
        *((name, "ro", doc, (), 1) for name, doc in COUNTERS),
        ("TTABLE", "rw", f"timesteps of (layer, modality) at index {len(Modality)}*layer + modality", (),
         timestep_entries(config.layers)),
    ]
    regs, word = [], 0
    for name, access, doc, fields, count in declared:
        regs.append(Register(name, word, access, doc, fields, count))
        word += count
    return RegisterMap(tuple(regs))


class RegisterBus(wiring.Signature):
    """Synchronous register bus from the host's side: word address, strobes, 32-bit data."""

    def __init__(self, addr_width: int):
        if addr_width < 1:
            raise ValueError(f"addr_width must be at least 1, not {addr_width!r}")
        super().__init__({
            "addr": Out(unsigned(addr_width)),
            "r_stb": Out(1),
            "r_data": In(DATA_WIDTH),
            "w_stb": Out(1),
            "w_data": Out(DATA_WIDTH),
        })
