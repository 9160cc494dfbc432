"""The energy that the real workload's activity implies (estimates).

Activity (measured, :mod:`.activity`): the core runs the real converted layer
(:mod:`spikemllm.sim.core.testbench`: MiniLM's pretrained FFN layer, vision and text tokens
at different ``T``) under Verilator with VCD tracing; :func:`.activity.measure_run` counts,
per block, the bit toggles of every RTL signal in the run's cycles, and the enable activity
of the flip-flops. :func:`vcd_toggles` counts toggles in a time window alone.

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
  C_clk * V^2``, no clock tree modeled. With ``gating`` (:func:`.activity.measure_run`'s
  ``enable_banks``), flip-flops whose update the RTL guards by an enable are credited with
  automatic clock gating: their clock pins are charged only in the cycles their enable (or
  synchronous reset) is high, measured from the RTL, and every distinct enable pays a clock
  gate (``dlclkp``, its clock input and internal clock nets from its SPICE netlist) charged
  every cycle. The share of clock-pin charges the RTL netlist keeps is applied to the
  block's sky130 flip-flop count;
* ``V = 1.8 V``, sky130's core supply. Memories are SRAM macros outside the standard-cell
  netlist (:mod:`.sram`).

Operation-count cross-check (:func:`opcount_energy`), with the published 45 nm energies
(Horowitz, ISSCC 2014, as used by SpikingBrain): FP16 MAC 1.5 pJ, INT8 MAC 0.23 pJ,
INT8 add 0.03 pJ, 32-bit integer multiply 3.1 pJ (requantizer), and 10 pJ per 64-bit read
of an 8 KB SRAM (weights; 0.156 pJ per bit).
"""

from __future__ import annotations

from pathlib import Path

from . import sky130
from .activity import read_vcd

__all__ = ["SUPPLY_V", "FANOUT", "CLOCK_GATE", "ENERGY_45NM_PJ", "vcd_toggles", "activity_energy", "opcount_energy", "cell_energies"]

SUPPLY_V = 1.8
"""sky130 core supply in volts."""
FANOUT = 2
"""Assumed mean fanout of a cell output (gate inputs it drives)."""
CLOCK_GATE = "dlclkp"
"""The sky130 integrated clock gate (latch and AND) each gated enable is charged for."""

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
        "clock_gate": CLOCK_GATE,
        "clock_gate_capacitance_f": sky130.clock_capacitance(CLOCK_GATE),
        "energy_per_clock_gate_cycle_j": sky130.clock_capacitance(CLOCK_GATE) * SUPPLY_V**2,
    }


def vcd_toggles(path: Path, top: str, window: tuple[int, int] | None = None) -> dict:
    """Bit toggles per block of a Verilator VCD, counted in ``window`` (ps, ``[start, end)``).

    Blocks are the instances directly below ``top`` (``pe_array``, ``compactor``,
    ``requantizer``, ``mac_array``); everything else in ``top`` is ``"top"``. Returns
    ``block -> {"toggles", "bits"}``; the clock is excluded. Raises ``ValueError`` if
    ``top`` is not in the file. :func:`spikemllm.flow.activity.read_vcd` also limits the
    count to the run's cycles.
    """
    return read_vcd(path, top, window=window).toggles


def activity_energy(toggles: dict, cells: dict, cycles: int, *, gating: dict | None = None) -> dict:
    """Dynamic energy in J per block from measured ``toggles`` (:func:`vcd_toggles`) and the
    block's sky130 ``cells`` (``block -> {"cells", "flip_flops"}``) over ``cycles``.

    ``gating``: per block, ``{"flip_flops", "clocked_bit_cycles", "enables"}`` of the RTL's
    enable flip-flops (:func:`spikemllm.flow.activity.measure_run`); without it no clock
    gating is credited. Returns ``block -> {"alpha", "logic_j", "clock_j",
    "clock_ungated_j", "clock_share", "total_j"}`` plus ``"total"``; ``clock_share`` is the
    fraction of clock-pin charges left after gating. Raises ``ValueError`` if the blocks
    disagree or ``cycles`` is not positive.
    """
    if cycles <= 0:
        raise ValueError(f"cycles must be positive, not {cycles!r}")
    if set(toggles) != set(cells):
        raise ValueError(f"blocks differ: activity has {sorted(toggles)}, the netlist {sorted(cells)}")
    if gating is not None and not set(gating) <= set(cells):
        raise ValueError(f"gating names blocks {sorted(set(gating) - set(cells))} the netlist does not have")
    e = cell_energies()
    result = {}
    for block, act in toggles.items():
        alpha = act["toggles"] / (act["bits"] * cycles) if act["bits"] else 0.0
        logic = alpha * cells[block]["cells"] * cycles * e["energy_per_cell_toggle_j"]
        ungated = cells[block]["flip_flops"] * cycles * e["energy_per_flip_flop_cycle_j"]
        share, gates = 1.0, 0
        g = (gating or {}).get(block)
        if g and g["flip_flops"]:
            share = g["clocked_bit_cycles"] / (g["flip_flops"] * cycles)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{block}: clocked bit-cycles {g['clocked_bit_cycles']} do not fit "
                                 f"{g['flip_flops']} flip-flops over {cycles} cycles")
            gates = g["enables"]
        clock = ungated * share + gates * cycles * e["energy_per_clock_gate_cycle_j"]
        result[block] = {"alpha": alpha, "toggles": act["toggles"], "bits": act["bits"], "logic_j": logic,
                         "clock_j": clock, "clock_ungated_j": ungated, "clock_share": share, "clock_gates": gates,
                         "total_j": logic + clock}
    keys = ("logic_j", "clock_j", "clock_ungated_j", "total_j")
    result["total"] = {k: sum(b[k] for b in result.values()) for k in keys}
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
