"""Static timing of a mapped netlist with the characterized library's NLDM tables:
register-to-register critical path and Fmax at the typical corner, pre-layout.

:func:`analyze` reads a flattened Yosys JSON netlist of sky130_fd_sc_hd cells (what
:func:`spikemllm.flow.synth.synth_asic` writes) and a liberty file read by
:func:`spikemllm.flow.liberty.read_library`, and propagates arrival times and transitions,
rising and falling separately, through the combinational cells in topological order:

* a cell arc adds ``cell_rise``/``cell_fall`` looked up at the input's transition and the
  output net's load (bilinear inside the table, linear beyond it); the output transition
  is the ``rise_transition``/``fall_transition`` of the arc that gives the latest
  arrival; unate arcs map input edges to output edges by their sense, ``non_unate`` arcs
  take both input edges;
* a net's load is the input capacitance of every pin it drives plus a wire of
  :data:`WIRE_UM_PER_FANOUT` um per driven pin at the metal-1 capacitance of the
  technology LEF (:func:`spikemllm.flow.sky130.wire_capacitance_pf_per_um`); the wire's
  resistance is not modelled, there is no placement;
* the clock is ideal: every flip-flop's clock pin switches at time 0 with a transition
  of :data:`CLOCK_TRANSITION_NS` (no skew, no clock-tree delay, no uncertainty);
* startpoints: flip-flop outputs (clock-to-Q from the library at the ``Q`` net's load),
  memory read-data outputs and the design's inputs (arrival 0, transition
  :data:`BOUNDARY_TRANSITION_NS`); endpoints: flip-flop data pins (plus the setup time
  from the library at the data and clock transitions), memory inputs and the design's
  outputs (no required time beyond the arrival).

Memories are SRAM macros outside the standard-cell netlist: their pins cut the paths,
and the macro's own access and setup times are not included. The register-to-register
(flip-flop to flip-flop) paths set :attr:`Timing.fmax_mhz`; paths from or to memories
and the design's ports are reported beside it. Hold is not checked (no clock skew).

Raises ``ValueError`` for a cell the library does not have or a combinational loop.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import sky130
from .liberty import Library, lookup, read_library

__all__ = ["WIRE_UM_PER_FANOUT", "WIRE_LAYER", "CLOCK_TRANSITION_NS", "BOUNDARY_TRANSITION_NS", "wire_pf_per_fanout",
           "fo4_delay", "flip_flop_figures",
           "Stage", "TimingPath", "Timing", "analyze", "analyze_file"]

WIRE_UM_PER_FANOUT = 10.0
"""Pre-layout wire length per driven pin (um): about four cell rows of 2.72 um, an
assumption for short local nets of a placed block, not a measured figure."""
WIRE_LAYER = "met1"
CLOCK_TRANSITION_NS = 0.1
"""Transition of the ideal clock at every flip-flop (ns)."""
BOUNDARY_TRANSITION_NS = 0.1
"""Transition of a path starting at a memory output or a design input (ns)."""

RISE, FALL = 0, 1
_NEG = -math.inf


def wire_pf_per_fanout(um_per_fanout: float = WIRE_UM_PER_FANOUT) -> float:
    """Wire capacitance in pF per driven pin of the wire-load assumption."""
    return um_per_fanout * sky130.wire_capacitance_pf_per_um(WIRE_LAYER)


@dataclass
class Stage:
    """One step of a path: a cell arc (or the startpoint) and the net it drives."""

    instance: str
    cell: str
    pin: str
    net: str
    edge: str
    delay_ns: float
    arrival_ns: float
    transition_ns: float
    load_pf: float


@dataclass
class TimingPath:
    """A timing path: its stages from startpoint to endpoint and the time it needs."""

    kind: str
    """``"reg->reg"``, ``"reg->mem"``, ``"mem->reg"``, ``"in->reg"``, ``"reg->out"``, ..."""
    required_ns: float
    """arrival at the endpoint plus its setup time: the shortest clock period it allows"""
    setup_ns: float
    endpoint: str
    stages: list[Stage]

    @property
    def startpoint(self) -> str:
        """The net the path starts on (a register's or memory's output, or a port)."""
        return self.stages[0].net if self.stages else ""

    def summary(self) -> dict:
        """The path as JSON-able data: its ends, the time it needs, and per stage the
        instance, cell and net."""
        return {
            "kind": self.kind, "period_ns": round(self.required_ns, 4), "setup_ns": round(self.setup_ns, 4),
            "startpoint": self.startpoint, "endpoint": self.endpoint, "cells": len(self.stages) - 1,
            "stages": [{"instance": s.instance, "cell": s.cell, "pin": s.pin, "net": s.net, "edge": s.edge,
                        "delay_ns": round(s.delay_ns, 4), "arrival_ns": round(s.arrival_ns, 4),
                        "transition_ns": round(s.transition_ns, 4), "load_pf": round(s.load_pf, 6)}
                       for s in self.stages],
        }


@dataclass
class Timing:
    """The result of :func:`analyze`."""

    paths: dict[str, TimingPath]
    """the worst path of each kind"""
    wire_pf_per_fanout: float
    clock_transition_ns: float
    cells: int
    flip_flops: int
    endpoints: dict[str, int] = field(default_factory=dict)

    @property
    def critical(self) -> TimingPath | None:
        """The worst register-to-register path."""
        return self.paths.get("reg->reg")

    @property
    def fmax_mhz(self) -> float | None:
        """1 / the worst register-to-register path's period, in MHz."""
        p = self.critical
        return 1e3 / p.required_ns if p and p.required_ns > 0 else None

    def summary(self) -> dict:
        return {
            "fmax_mhz": round(self.fmax_mhz, 2) if self.fmax_mhz else None,
            "critical_path": self.critical.summary() if self.critical else None,
            "paths": {k: {kk: vv for kk, vv in p.summary().items() if kk != "stages"} for k, p in self.paths.items()},
            "wire_pf_per_fanout": self.wire_pf_per_fanout, "clock_transition_ns": self.clock_transition_ns,
            "cells": self.cells, "flip_flops": self.flip_flops, "endpoints": self.endpoints,
        }


def _net_names(module: dict) -> dict:
    """bit -> the best name of the net holding it (a visible name before a hidden one)."""
    names = {}
    for name, net in sorted(module.get("netnames", {}).items(), key=lambda kv: (kv[1].get("hide_name", 0), len(kv[0]))):
        bits = net["bits"]
        for i, b in enumerate(bits):
            if isinstance(b, int) and b not in names:
                names[b] = name if len(bits) == 1 else f"{name}[{i + net.get('offset', 0)}]"
    return names


def analyze(netlist: dict, library: Library, *, top: str | None = None, wire_um_per_fanout: float = WIRE_UM_PER_FANOUT,
            clock_transition_ns: float = CLOCK_TRANSITION_NS) -> Timing:
    """Static timing of ``top`` (the only module when ``None``) of a flattened Yosys JSON
    ``netlist`` with ``library``; see the module docstring."""
    modules = netlist["modules"]
    if top is None:
        if len(modules) != 1:
            raise ValueError(f"the netlist has modules {sorted(modules)}; name the top one (it must be flattened)")
        top = next(iter(modules))
    module = modules[top]
    wire = wire_pf_per_fanout(wire_um_per_fanout)
    names = _net_names(module)
    cells = module.get("cells", {})
    lib = library.cells

    drivers: dict = {}   # bit -> (instance, pin, kind)
    sinks: dict = defaultdict(list)  # bit -> [(instance, pin)]
    comb, flops, memories = [], [], []
    for inst, c in cells.items():
        kind = c["type"]
        if kind == "$mem_v2":
            memories.append(inst)
        elif kind.startswith("$"):
            if c.get("connections"):
                raise ValueError(f"cell {inst} of type {kind} is not a library cell; map the netlist first")
            continue
        elif kind not in lib:
            raise ValueError(f"cell {inst} has type {kind!r}, which the library does not have")
        elif lib[kind].flip_flop:
            flops.append(inst)
        else:
            comb.append(inst)
        for pin, bits in c["connections"].items():
            # Yosys writes no directions for cells it has no module of: the library has them
            direction = c.get("port_directions", {}).get(pin) or ("output" if pin == lib[kind].output else "input")
            for b in bits:
                if not isinstance(b, int):
                    continue
                if direction == "output":
                    drivers[b] = (inst, pin, "mem" if kind == "$mem_v2" else ("reg" if kind in lib and lib[kind].flip_flop else "cell"))
                else:
                    sinks[b].append((inst, pin))
    for port, p in module.get("ports", {}).items():
        for b in p["bits"]:
            if isinstance(b, int) and p["direction"] == "input":
                drivers[b] = (port, "", "in")

    def pin_cap(inst: str, pin: str) -> float:
        kind = cells[inst]["type"]
        return lib[kind].inputs.get(pin, 0.0) if kind in lib else 0.0

    load = {b: sum(pin_cap(i, p) for i, p in sinks.get(b, ())) + wire * len(sinks.get(b, ())) for b in drivers}

    # topological order of the combinational cells
    out_bit = {}
    pending = {}
    users: dict = defaultdict(list)
    for inst in comb:
        c = cells[inst]
        cell = lib[c["type"]]
        out_bit[inst] = c["connections"][cell.output][0]
        ins = {c["connections"][p][0] for p in cell.inputs if isinstance(c["connections"][p][0], int)}
        deps = {b for b in ins if drivers.get(b, ("", "", ""))[2] == "cell"}
        pending[inst] = len(deps)
        for b in deps:
            users[b].append(inst)
    order, ready = [], [i for i, n in pending.items() if n == 0]
    while ready:
        inst = ready.pop()
        order.append(inst)
        for user in users.get(out_bit[inst], ()):
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    if len(order) != len(comb):
        stuck = sorted(i for i, n in pending.items() if n > 0)[:5]
        raise ValueError(f"combinational loop through {len(comb) - len(order)} cells, e.g. {stuck}")

    def register_name(inst: str) -> str:
        """A flip-flop by the name of the net its output drives (the RTL register's name)."""
        q = cells[inst]["connections"].get(lib[cells[inst]["type"]].output, [None])[0]
        return names.get(q, inst)

    paths: dict[str, TimingPath] = {}
    endpoints = {
        "reg": len(flops),
        "mem": sum(len(bits) for inst in memories for pin, bits in cells[inst]["connections"].items()
                   if cells[inst]["port_directions"][pin] == "input" and not pin.endswith("CLK")),
        "out": sum(len(p["bits"]) for p in module.get("ports", {}).values() if p["direction"] == "output"),
    }
    for origin in ("reg", "mem", "in"):
        arrival: dict = {}   # bit -> [rise, fall]
        slew: dict = {}
        pred: dict = {}      # (bit, edge) -> (from bit, from edge, stage)
        for b, (inst, pin, kind) in drivers.items():
            if kind != origin:
                continue
            if kind == "reg":
                cell = lib[cells[inst]["type"]]
                arc = cell.arcs[0]
                arr = [lookup(arc.tables["cell_rise"], clock_transition_ns, load[b]),
                       lookup(arc.tables["cell_fall"], clock_transition_ns, load[b])]
                tr = [lookup(arc.tables["rise_transition"], clock_transition_ns, load[b]),
                      lookup(arc.tables["fall_transition"], clock_transition_ns, load[b])]
                cell_name = cells[inst]["type"]
            else:
                arr, tr, cell_name = [0.0, 0.0], [BOUNDARY_TRANSITION_NS] * 2, cells[inst]["type"] if kind == "mem" else "input"
            arrival[b], slew[b] = arr, tr
            for e in (RISE, FALL):
                pred[(b, e)] = (None, None, Stage(inst, cell_name, pin, names.get(b, str(b)), "rise" if e == RISE else "fall",
                                                  arr[e], arr[e], tr[e], load[b]))
        if not arrival:
            continue
        for inst in order:
            c = cells[inst]
            cell = lib[c["type"]]
            ob = out_bit[inst]
            best = [_NEG, _NEG]
            best_tr = [0.0, 0.0]
            best_from = [None, None]
            for arc in cell.arcs:
                ib = c["connections"][arc.related_pin][0]
                if ib not in arrival:
                    continue
                a_in, s_in = arrival[ib], slew[ib]
                edges = {"positive_unate": ((RISE, RISE), (FALL, FALL)), "negative_unate": ((FALL, RISE), (RISE, FALL))}.get(
                    arc.sense, ((RISE, RISE), (FALL, FALL), (FALL, RISE), (RISE, FALL)))
                for e_in, e_out in edges:
                    if a_in[e_in] == _NEG:
                        continue
                    key = "rise" if e_out == RISE else "fall"
                    d = lookup(arc.tables[f"cell_{key}"], s_in[e_in], load[ob])
                    t = a_in[e_in] + d
                    if t > best[e_out]:
                        best[e_out] = t
                        best_tr[e_out] = lookup(arc.tables[f"{key}_transition"], s_in[e_in], load[ob])
                        best_from[e_out] = (ib, e_in, arc.related_pin, d)
            if best[RISE] == _NEG and best[FALL] == _NEG:
                continue
            arrival[ob], slew[ob] = best, best_tr
            for e in (RISE, FALL):
                if best_from[e]:
                    ib, e_in, pin, d = best_from[e]
                    pred[(ob, e)] = (ib, e_in, Stage(inst, c["type"], f"{pin}->{cell.output}", names.get(ob, str(ob)),
                                                     "rise" if e == RISE else "fall", d, best[e], best_tr[e], load[ob]))

        def trace(b, e) -> list[Stage]:
            stages = []
            while (b, e) in pred:
                b2, e2, stage = pred[(b, e)]
                stages.append(stage)
                if b2 is None:
                    break
                b, e = b2, e2
            return stages[::-1]

        def consider(kind: str, required: float, setup: float, endpoint: str, b, e) -> None:
            if kind not in paths or required > paths[kind].required_ns:
                paths[kind] = TimingPath(kind, required, setup, endpoint, trace(b, e))

        for inst in flops:
            c = cells[inst]
            cell = lib[c["type"]]
            d_pin = cell.constrained_pin
            b = c["connections"][d_pin][0]
            if b not in arrival:
                continue
            setup = next((a for a in cell.constraints if a.timing_type == "setup_rising"), None)
            for e in (RISE, FALL):
                if arrival[b][e] == _NEG:
                    continue
                s = 0.0
                if setup is not None:
                    s = lookup(setup.tables["rise_constraint" if e == RISE else "fall_constraint"], slew[b][e],
                               clock_transition_ns)
                consider(f"{origin}->reg", arrival[b][e] + s, s, f"{register_name(inst)}/{d_pin}", b, e)
        for inst in memories:
            c = cells[inst]
            for pin, bits in c["connections"].items():
                if c["port_directions"][pin] != "input" or pin.endswith("CLK"):
                    continue
                for b in bits:
                    if b in arrival:
                        for e in (RISE, FALL):
                            if arrival[b][e] != _NEG:
                                consider(f"{origin}->mem", arrival[b][e], 0.0, f"{inst}/{pin}", b, e)
        for port, p in module.get("ports", {}).items():
            if p["direction"] != "output":
                continue
            for i, b in enumerate(p["bits"]):
                if b in arrival:
                    for e in (RISE, FALL):
                        if arrival[b][e] != _NEG:
                            consider(f"{origin}->out", arrival[b][e], 0.0, f"{port}[{i}]", b, e)
    return Timing(paths, wire, clock_transition_ns, len(comb) + len(flops), len(flops), endpoints)


def analyze_file(netlist_json: Path, liberty: Path, **kwargs) -> Timing:
    """:func:`analyze` of a Yosys JSON file with a liberty file."""
    return analyze(json.loads(Path(netlist_json).read_text()), read_library(Path(liberty)), **kwargs)


def fo4_delay(library: Library, inverter: str = "sky130_fd_sc_hd__inv_1", *, iterations: int = 50) -> dict:
    """The fan-out-of-4 delay of ``inverter`` from its tables: the inverter drives four
    copies of its own input capacitance and is driven by a transition equal to the one it
    produces (the steady state of a chain of such stages, found by iteration); the delay
    is the mean of its rising and falling delays. Returns ns and the load and transition."""
    cell = library.cells[inverter]
    (pin, cap), = cell.inputs.items()
    arc = cell.arcs[0]
    load = 4 * cap
    rise_tr = fall_tr = CLOCK_TRANSITION_NS
    for _ in range(iterations):
        # in the chain a stage's rising output is driven by the previous stage's falling one
        rise_tr, fall_tr = (lookup(arc.tables["rise_transition"], fall_tr, load),
                            lookup(arc.tables["fall_transition"], rise_tr, load))
    rise = lookup(arc.tables["cell_rise"], fall_tr, load)
    fall = lookup(arc.tables["cell_fall"], rise_tr, load)
    return {"cell": inverter, "fo4_ns": (rise + fall) / 2, "rise_ns": rise, "fall_ns": fall, "load_pf": load,
            "input_capacitance_pf": cap, "rise_transition_ns": rise_tr, "fall_transition_ns": fall_tr}


def flip_flop_figures(library: Library, flip_flop: str = sky130.cell_name(sky130.FLIP_FLOP), *,
                      load_pf: float | None = None, clock_transition_ns: float = CLOCK_TRANSITION_NS,
                      data_transition_ns: float = CLOCK_TRANSITION_NS) -> dict:
    """Clock-to-Q (at ``load_pf``, by default four inverter inputs), setup and hold of a
    flip-flop from the library, at the given clock and data transitions (ns)."""
    cell = library.cells[flip_flop]
    if load_pf is None:
        load_pf = 4 * next(iter(library.cells[sky130.cell_name("inv")].inputs.values()))
    arc = cell.arcs[0]
    out = {"cell": flip_flop, "load_pf": load_pf, "clock_transition_ns": clock_transition_ns,
           "data_transition_ns": data_transition_ns,
           "clock_to_q_rise_ns": lookup(arc.tables["cell_rise"], clock_transition_ns, load_pf),
           "clock_to_q_fall_ns": lookup(arc.tables["cell_fall"], clock_transition_ns, load_pf),
           "clock_pin_capacitance_pf": cell.inputs[cell.flip_flop["clock"]],
           "data_pin_capacitance_pf": cell.inputs[cell.flip_flop["next_state"]]}
    for check in cell.constraints:
        name = check.timing_type.split("_")[0]
        for edge in ("rise", "fall"):
            out[f"{name}_{edge}_ns"] = lookup(check.tables[f"{edge}_constraint"], data_transition_ns, clock_transition_ns)
    return out
