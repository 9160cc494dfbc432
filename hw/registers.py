"""The SpikeCore register map, declared once.

The hardware builds its address decoder from :func:`register_map`; the firmware's C header,
Python constants and JSON description are generated from the same object
(:mod:`spikemllm.firmware.regmap`), so no address is ever typed twice.

The bus is a simple synchronous register bus (:class:`RegisterBus`): 32-bit words, word
addresses; a write takes effect on the cycle ``w_stb`` is high; a read returns ``r_data``
one cycle after ``r_stb``. Byte addresses in the generated files are ``4 * word``.

Registers (``N`` = number of timestep-table entries = ``2 * layers``):

========================  ======  ==================================================
register                  access  meaning
========================  ======  ==================================================
``ID``                    ro      constant ``0x534D4C31`` ("SML1")
``HW_LANES_PES``          ro      ``lanes`` [15:0], ``pes`` [31:16]
``HW_STEPS``              ro      ``t_max`` [7:0], ``events_per_cycle`` [15:8], ``layers`` [23:16], coding [24] (1 = count),
                                  datapath [26:25] (0 spike, 1 dense INT8, 2 dense FP16)
``HW_MEMORY``             ro      ``max_fan_in`` (weight-memory rows) [23:0]
``HW_TILES``              ro      ``max_out_tiles`` [15:0]
``CTRL``                  wo      ``start`` [0], ``clear`` [1] (clear done, error and counters)
``STATUS``                ro      ``busy`` [0], ``done`` [1], ``error`` [2], ``error_code`` [11:8]
``IN_FEATURES``           rw      input features of the layer (a multiple of ``lanes``)
``OUT_FEATURES``          rw      output features of the layer (a multiple of ``pes``)
``TOKENS``                rw      tokens in the next run
``TTABLE[i]``             rw      ``T`` of layer ``i // 2``, modality ``i % 2`` (0 text, 1 vision)
``CYCLES``                ro      cycles spent busy in the last/current run
``EVENTS``                ro      spike events accumulated
``ACTIVE_CYCLES``         ro      cycles in which the PE array accumulated at least one event
``STALL_CYCLES``          ro      cycles the output stream was held by back-pressure
``IDLE_IN_CYCLES``        ro      busy cycles spent waiting for token input
``TOKENS_DONE``           ro      tokens whose outputs have all left
========================  ======  ==================================================

Errors (``error_code``) never compute: the offending write or start is refused and the
register keeps its value.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig

__all__ = [
    "ID_VALUE",
    "DATA_WIDTH",
    "ERRORS",
    "Field",
    "Register",
    "RegisterMap",
    "register_map",
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


@dataclass(frozen=True)
class Field:
    """A bit field of a register."""

    name: str
    offset: int
    width: int
    doc: str


@dataclass(frozen=True)
class Register:
    """A 32-bit register (or an array of ``count`` of them at consecutive words)."""

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


COUNTERS = (
    ("CYCLES", "cycles spent busy in the last or current run"),
    ("EVENTS", "spike events accumulated by the PE array"),
    ("ACTIVE_CYCLES", "cycles in which the PE array accumulated at least one event"),
    ("STALL_CYCLES", "cycles an output vector waited for the consumer (back-pressure)"),
    ("IDLE_IN_CYCLES", "busy cycles spent waiting for token input"),
    ("TOKENS_DONE", "tokens whose outputs have all left"),
)


def register_map(config: AcceleratorConfig) -> RegisterMap:
    """The register map of a core built for ``config``."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    regs = [
        Register("ID", 0, "ro", "identification constant 0x534D4C31 ('SML1')"),
        Register("HW_LANES_PES", 1, "ro", "build parameters", (
            Field("LANES", 0, 16, "neurons per spike vector"),
            Field("PES", 16, 16, "processing elements (output channels per tile)"),
        )),
        Register("HW_STEPS", 2, "ro", "build parameters", (
            Field("T_MAX", 0, 8, "largest timestep count"),
            Field("EVENTS_PER_CYCLE", 8, 8, "spike events per cycle"),
            Field("LAYERS", 16, 8, "layers in the timestep table"),
            Field("COUNT_CODING", 24, 1, "1 if built for count coding instead of TC-LIF"),
            Field("DATAPATH", 25, 2, "0 spike core, 1 dense INT8 baseline, 2 dense FP16 baseline"),
        )),
        Register("HW_MEMORY", 3, "ro", "weight-memory rows (input features x output tiles)", (
            Field("MAX_FAN_IN", 0, 24, "weight-memory rows"),
        )),
        Register("HW_TILES", 4, "ro", "output tiles the bias and requantizer memories hold", (
            Field("MAX_OUT_TILES", 0, 16, "output tiles"),
        )),
        Register("CTRL", 5, "wo", "control", (
            Field("START", 0, 1, "start a run of TOKENS tokens"),
            Field("CLEAR", 1, 1, "clear done, error and the performance counters"),
        )),
        Register("STATUS", 6, "ro", "status", (
            Field("BUSY", 0, 1, "a run is in progress"),
            Field("DONE", 1, 1, "the last run finished"),
            Field("ERROR", 2, 1, "a write or start was refused; see ERROR_CODE"),
            Field("ERROR_CODE", 8, 4, "first refused operation since the last clear"),
        )),
        Register("IN_FEATURES", 7, "rw", "input features (multiple of lanes)"),
        Register("OUT_FEATURES", 8, "rw", "output features (multiple of pes)"),
        Register("TOKENS", 9, "rw", "tokens in the next run"),
    ]
    word = 10
    for name, doc in COUNTERS:
        regs.append(Register(name, word, "ro", doc))
        word += 1
    regs.append(Register("TTABLE", 16, "rw", "timesteps of (layer, modality) at index 2*layer + modality", count=2 * config.layers))
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
