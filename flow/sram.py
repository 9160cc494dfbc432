"""Memories costed as OpenRAM sky130 SRAM macros (estimates from published figures).

The figures, and where they come from (the VLSIDA ``sky130_sram_macros`` repository, macros
built by the OpenRAM compiler for sky130 and characterized at the typical corner, 1.8 V,
25 C):

* **single port** ``sky130_sram_2kbyte_1rw_32x512_8`` (one read/write port, 512 words of
  32 bits): LEF ``SIZE 483.86 BY 326.1`` (um), so 9.63 um^2 per bit with its decoders,
  sense amplifiers and control;
* **dual port** ``sky130_sram_2kbyte_1rw1r_32x512_8`` (one read/write and one read port):
  LEF ``SIZE 659.98 BY 398.18``, 16.04 um^2 per bit; its characterization
  (``datasheet.info``) gives 2.707 + 2.420 pJ (rising + falling clock edge) per 32-bit read
  and 2.554 + 2.793 pJ per 32-bit write: **0.160 pJ per bit read, 0.167 pJ per bit
  written**. These two energies are used for every macro type. (The single-port macro's own
  liberty, 2022 revision, gives 4.82 pJ per read and 4.97 pJ per write, 0.151 and 0.155 pJ
  per bit: the same within 6%.)

How a memory of ``width x depth`` with the RTL's ports maps onto them:

* **ports**: the macro type follows the most accesses the memory takes in one cycle of the
  workload, measured from the RTL (:mod:`.activity`): one -> single port; two (at most one
  a write) -> dual port; more -> ``ceil(n / 2)`` dual-port copies, each holding every word
  (writes go to all copies);
* **area, headline -- per bit**: ``bits x`` the macro type's area per bit (times the
  copies). A compiler would generate a macro of the memory's own shape; scaling per bit
  keeps the periphery share of the 2 KB macro;
* **area, whole macros**: ``ceil(width / 32) x ceil(depth / 512)`` macros of the type
  (times the copies). This is what a design restricted to the published macros would pay;
  for memories much smaller than 2 KB it is far larger than the per-bit figure, and such
  memories would rather be register files. Reported beside the headline, never as it;
* **energy**: every access costs the port's width in bits times 0.160 pJ (read) or 0.167 pJ
  (write). Cycles without an access cost nothing: the macro's clock is assumed gated by its
  chip select, the same automatic clock-gating assumption the flip-flops get
  (:mod:`.power`); ungated, a deselected 2 KB macro draws about 1.6 pJ per cycle (its
  liberty). Leakage is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Macro", "SINGLE_PORT", "DUAL_PORT", "READ_J_PER_BIT", "WRITE_J_PER_BIT", "SOURCE", "macro_for",
           "memory_cost", "memory_costs"]

SOURCE = ("VLSIDA/sky130_sram_macros (OpenRAM sky130 macros): LEF SIZE of each macro; read and write energy "
          "from the characterization of sky130_sram_2kbyte_1rw1r_32x512_8 (datasheet.info, TT 1.8 V 25 C)")
"""Where the SRAM figures come from."""


@dataclass(frozen=True)
class Macro:
    """A published SRAM macro: its shape, ports and LEF size."""

    name: str
    words: int
    width: int
    ports: int
    """accesses it serves per cycle (at most one of them a write)"""
    width_um: float
    height_um: float

    @property
    def bits(self) -> int:
        return self.words * self.width

    @property
    def area_um2(self) -> float:
        return self.width_um * self.height_um

    @property
    def area_per_bit_um2(self) -> float:
        return self.area_um2 / self.bits


SINGLE_PORT = Macro("sky130_sram_2kbyte_1rw_32x512_8", 512, 32, 1, 483.86, 326.1)
"""One read/write port: LEF 483.86 x 326.1 um (9.63 um^2 per bit)."""
DUAL_PORT = Macro("sky130_sram_2kbyte_1rw1r_32x512_8", 512, 32, 2, 659.98, 398.18)
"""One read/write and one read port: LEF 659.98 x 398.18 um (16.04 um^2 per bit)."""

READ_J_PER_BIT = (2.707 + 2.420) * 1e-12 / 32
"""Energy per bit read: 5.127 pJ per 32-bit read of the dual-port macro (0.160 pJ per bit)."""
WRITE_J_PER_BIT = (2.554 + 2.793) * 1e-12 / 32
"""Energy per bit written: 5.347 pJ per 32-bit write (0.167 pJ per bit)."""


def macro_for(ports: int) -> tuple[Macro, int]:
    """The macro type and number of copies for a memory that takes ``ports`` accesses in one cycle.

    Raises ``ValueError`` for a negative count.
    """
    if not isinstance(ports, int) or ports < 0:
        raise ValueError(f"ports must be a non-negative int, not {ports!r}")
    if ports <= 1:
        return SINGLE_PORT, 1
    return DUAL_PORT, math.ceil(ports / 2)


def memory_cost(*, width: int, depth: int, ports: int, reads: int = 0, writes: int = 0) -> dict:
    """Area and access energy of one memory of ``width x depth`` bits.

    ``ports``: most accesses in one cycle; ``reads``/``writes``: accesses of the whole width.
    Returns the macro type, copies, ``area_um2`` (per bit, the headline),
    ``area_whole_macros_um2`` and the macros that takes, and ``read_j``/``write_j``/``energy_j``.
    Raises ``ValueError`` for a non-positive shape or negative counts.
    """
    for name, value in (("width", width), ("depth", depth)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    for name, value in (("reads", reads), ("writes", writes)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, not {value!r}")
    macro, copies = macro_for(ports)
    bits = width * depth
    macros = math.ceil(width / macro.width) * math.ceil(depth / macro.words) * copies
    read_j = reads * width * READ_J_PER_BIT
    # a write goes to every copy
    write_j = writes * width * WRITE_J_PER_BIT * copies
    return {
        "width": width, "depth": depth, "ports": ports, "macro": macro.name, "copies": copies, "bits": bits,
        "area_um2": bits * macro.area_per_bit_um2 * copies,
        "macros": macros, "area_whole_macros_um2": macros * macro.area_um2,
        "reads": reads, "writes": writes, "read_j": read_j, "write_j": write_j, "energy_j": read_j + write_j,
    }


def memory_costs(memories: list[dict]) -> dict:
    """:func:`memory_cost` of every memory (``name``, ``width``, ``depth``, ``ports``, ``reads``,
    ``writes``) and their totals: ``{"memories": {name: cost}, "total": {...}}``."""
    per = {m["name"]: memory_cost(width=m["width"], depth=m["depth"], ports=m["ports"], reads=m["reads"],
                                  writes=m["writes"]) for m in memories}
    keys = ("bits", "area_um2", "macros", "area_whole_macros_um2", "reads", "writes", "read_j", "write_j", "energy_j")
    return {"memories": per, "total": {k: sum(c[k] for c in per.values()) for k in keys}}
