"""Switching activity of the real workload and the energy it implies (estimates).

Activity (measured): the core runs the real converted layer (:mod:`spikemllm.sim.core.testbench`: MiniLM's
pretrained FFN layer, vision and text tokens at different ``T``) under Verilator with VCD
tracing; :func:`vcd_toggles` counts, per block, the bit toggles of every RTL signal inside
the window of the ideal run (``run_window_ps``), so loading and the stalled rerun are
excluded.

Energy (estimates, :func:`activity_energy`), per block, from the activity and the block's
sky130 netlist (:func:`spikemllm.flow.synth.synth_asic`):

* logic: the block's cells are assumed to switch at the rate its RTL bits do (toggles per
  bit per cycle, ``alpha``), so ``cells * alpha * cycles`` output toggles, each costing
  ``0.5 * C_node * V^2`` with ``C_node = (1 + FANOUT) * C_in``: ``C_in`` is the mean
  input-pin gate capacitance of the library's cells (``W * L * eps_ox / toxe`` from the
  cells' SPICE netlists and the nFET model's ``toxe``, :mod:`spikemllm.flow.sky130`),
  ``FANOUT = 2`` is assumed, wires are not modeled;
* clock: every flip-flop's clock pin and internal clock nets (``C_clk`` from the
  ``dfxtp`` SPICE netlist) charge and discharge once per cycle: ``flip_flops * cycles *
  C_clk * V^2`` (no clock gating in the RTL, no clock tree modeled);
* ``V = 1.8 V``, sky130's core supply. Memories are SRAM macros outside the standard-cell
  netlist; their accesses are counted and costed only in the operation-count model.

Operation-count cross-check (:func:`opcount_energy`), with the published 45 nm energies
(Horowitz, ISSCC 2014, as used by SpikingBrain): FP16 MAC 1.5 pJ, INT8 MAC 0.23 pJ,
INT8 add 0.03 pJ, 32-bit integer multiply 3.1 pJ (requantizer), and 10 pJ per 64-bit read
of an 8 KB SRAM (weights; 0.156 pJ per bit).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from . import sky130

__all__ = ["SUPPLY_V", "FANOUT", "ENERGY_45NM_PJ", "vcd_toggles", "activity_energy", "opcount_energy", "cell_energies"]

SUPPLY_V = 1.8
"""sky130 core supply in volts."""
FANOUT = 2
"""Assumed mean fanout of a cell output (gate inputs it drives)."""

ENERGY_45NM_PJ = {
    "fp16_mac": 1.5,
    "int8_mac": 0.23,
    "int8_add": 0.03,
    "int32_mult": 3.1,
    "sram_bit_read": 10.0 / 64,
}
"""Published 45 nm energies in pJ (Horowitz, "Computing's energy problem", ISSCC 2014)."""


def cell_energies() -> dict:
    """The per-toggle and per-cycle energies of the model, with the capacitances behind them."""
    c_in = sky130.mean_input_capacitance()
    c_node = (1 + FANOUT) * c_in
    c_clk = sky130.clock_capacitance()
    return {
        "supply_v": SUPPLY_V,
        "gate_oxide_thickness_m": sky130.gate_oxide_thickness_m(),
        "mean_input_capacitance_f": c_in,
        "fanout": FANOUT,
        "node_capacitance_f": c_node,
        "energy_per_cell_toggle_j": 0.5 * c_node * SUPPLY_V**2,
        "flip_flop_clock_capacitance_f": c_clk,
        "energy_per_flip_flop_cycle_j": c_clk * SUPPLY_V**2,
    }


def vcd_toggles(path: Path, top: str, window: tuple[int, int] | None = None) -> dict:
    """Bit toggles per block of a Verilator VCD, counted in ``window`` (ps, ``[start, end)``).

    Blocks are the instances directly below ``top`` (``pe_array``, ``compactor``,
    ``requantizer``, ``mac_array``); everything else in ``top`` is ``"top"``. Returns
    ``block -> {"toggles", "bits"}``; the clock is excluded. Raises ``ValueError`` if
    ``top`` is not in the file.
    """
    scale = 1
    scopes: list[str] = []
    owner: dict[str, tuple[str, int]] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("$timescale"):
                text = line if "$end" in line else line + next(f)
                unit = re.search(r"(\d+)\s*(s|ms|us|ns|ps|fs)", text)
                factor = {"s": 10**12, "ms": 10**9, "us": 10**6, "ns": 10**3, "ps": 1, "fs": 10**-3}[unit.group(2)]
                scale = int(unit.group(1)) * factor
            elif line.startswith("$scope"):
                scopes.append(line.split()[2])
            elif line.startswith("$upscope"):
                scopes.pop()
            elif line.startswith("$var"):
                fields = line.split()
                width, code, name = int(fields[2]), fields[3], fields[4]
                if top not in scopes or name == "clk" or code in owner:
                    continue
                below = scopes[scopes.index(top) + 1:]
                owner[code] = (below[0] if below else "top", width)
            elif line.startswith("$enddefinitions"):
                break
        if not owner:
            raise ValueError(f"no signals of {top!r} in {path}")
        blocks = defaultdict(lambda: {"toggles": 0, "bits": 0})
        for block, width in owner.values():
            blocks[block]["bits"] += width
        state: dict[str, int] = {}
        now = 0
        start, end = window if window else (0, None)
        for line in f:
            head = line[:1]
            if head == "#":
                now = int(line[1:]) * scale
                continue
            if head == "b":
                value, code = line[1:].split()
            elif head in "01xzXZ" and len(line) > 1:
                value, code = line[0], line[1:].strip()
            else:
                continue
            if code not in owner:
                continue
            bits = int(value.replace("x", "0").replace("z", "0").replace("X", "0").replace("Z", "0"), 2)
            old = state.get(code)
            state[code] = bits
            if old is None or now < start or (end is not None and now >= end):
                continue
            blocks[owner[code][0]]["toggles"] += bin(old ^ bits).count("1")
    return dict(blocks)


def activity_energy(toggles: dict, cells: dict, cycles: int) -> dict:
    """Dynamic energy in J per block from measured ``toggles`` (:func:`vcd_toggles`) and the
    block's sky130 ``cells`` (``block -> {"cells", "flip_flops"}``) over ``cycles``.

    Returns ``block -> {"alpha", "logic_j", "clock_j", "total_j"}`` plus ``"total"``.
    Raises ``ValueError`` if the two disagree on the blocks or ``cycles`` is not positive.
    """
    if cycles <= 0:
        raise ValueError(f"cycles must be positive, not {cycles!r}")
    if set(toggles) != set(cells):
        raise ValueError(f"blocks differ: activity has {sorted(toggles)}, the netlist {sorted(cells)}")
    e = cell_energies()
    result = {}
    for block, act in toggles.items():
        alpha = act["toggles"] / (act["bits"] * cycles) if act["bits"] else 0.0
        logic = alpha * cells[block]["cells"] * cycles * e["energy_per_cell_toggle_j"]
        clock = cells[block]["flip_flops"] * cycles * e["energy_per_flip_flop_cycle_j"]
        result[block] = {"alpha": alpha, "toggles": act["toggles"], "bits": act["bits"],
                         "logic_j": logic, "clock_j": clock, "total_j": logic + clock}
    result["total"] = {k: sum(b[k] for b in result.values()) for k in ("logic_j", "clock_j", "total_j")}
    return result


def opcount_energy(kind: str, *, work: int, pes: int, tiles_run: int, weight_row_bits: int) -> dict:
    """Operation-count energy in J at 45 nm of one run.

    ``kind``: ``spike`` (``work`` = spike events, each one INT8 add per PE), ``int8`` or
    ``fp16`` (``work`` = multiply-accumulate beats, one MAC per PE); ``tiles_run``: output
    tiles computed (tokens x tiles, one requantizer multiply per PE each);
    ``weight_row_bits``: bits of one weight-memory row (one row read per event or beat).
    Raises ``ValueError`` for an unknown kind.
    """
    op = {"spike": "int8_add", "int8": "int8_mac", "fp16": "fp16_mac"}.get(kind)
    if op is None:
        raise ValueError(f"kind must be spike, int8 or fp16, not {kind!r}")
    pj = ENERGY_45NM_PJ
    arithmetic = work * pes * pj[op] * 1e-12
    requantize = tiles_run * pes * pj["int32_mult"] * 1e-12
    memory = work * weight_row_bits * pj["sram_bit_read"] * 1e-12
    return {"operation": op, "operations": work * pes, "arithmetic_j": arithmetic, "requantize_j": requantize,
            "weight_reads_j": memory, "total_j": arithmetic + requantize + memory,
            "compute_only_j": arithmetic + requantize}
