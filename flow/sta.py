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
           "Macro", "UnsettledHierarchy", "analyze_hierarchical", "Stage", "TimingPath", "Timing", "analyze", "analyze_file"]

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
    hierarchy: dict[str, int] = field(default_factory=dict)
    """module kept as a cell -> its instances (:func:`analyze_hierarchical`)"""
    outputs: dict = field(default_factory=dict, repr=False)
    """output port -> per bit ``{origin: (arrival, transition)}``"""
    pins: dict = field(default_factory=dict, repr=False)
    """``(macro module, input port, bit)`` -> ``{origin: (arrival, transition, worst (instance, net bit))}``,
    each the latest (largest) over the macro's instances, per edge"""
    preds: dict = field(default_factory=dict, repr=False)
    """origin -> the predecessor map that traces a path back to its startpoint"""

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
            **({"hierarchy": self.hierarchy} if self.hierarchy else {}),
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


Arrival = tuple  # ([rise, fall] arrival in ns, [rise, fall] transition in ns)


@dataclass
class Macro:
    """A module kept as a cell of its parent (:func:`analyze_hierarchical`), as the parent
    sees it: the load of its input pins and the arrivals at its output pins."""

    input_pf: dict[str, list[float]]
    """input port -> per bit the capacitance its pin loads the parent's net with (pF)"""
    outputs: dict[str, list[dict[str, Arrival]]]
    """output port -> per bit ``{origin: (arrival, transition)}``, ``origin`` the kind of
    startpoint (``"reg"``, ``"mem"``, ``"in"``) the latest path to it comes from"""


class _Graph:
    """A module's cells and nets as the static timing reads them: drivers, sinks, loads and
    the topological order of the combinational cells. Instances of ``macros`` are cells whose
    input pins load their nets with the macro's ``input_pf`` and whose outputs start paths."""

    def __init__(self, module: dict, library: Library, wire: float, macros: dict[str, Macro] | None = None):
        self.module, self.library, self.wire = module, library, wire
        self.macros = macros or {}
        self.names = _net_names(module)
        self.cells = cells = module.get("cells", {})
        lib = library.cells
        self.drivers: dict = {}   # bit -> (instance, pin, kind, index)
        self.sinks: dict = defaultdict(list)  # bit -> [(instance, pin, index)]
        self.comb, self.flops, self.memories, self.instances = [], [], [], []
        for inst, c in cells.items():
            kind = c["type"]
            if kind == "$mem_v2":
                self.memories.append(inst)
            elif kind in self.macros:
                self.instances.append(inst)
            elif kind.startswith("$"):
                if c.get("connections"):
                    raise ValueError(f"cell {inst} of type {kind} is not a library cell; map the netlist first")
                continue
            elif kind not in lib:
                raise ValueError(f"cell {inst} has type {kind!r}, which the library does not have")
            elif lib[kind].flip_flop:
                self.flops.append(inst)
            else:
                self.comb.append(inst)
            for pin, bits in c["connections"].items():
                # Yosys writes no directions for cells it has no module of: the library has them
                direction = c.get("port_directions", {}).get(pin) or ("output" if pin == lib[kind].output else "input")
                for i, b in enumerate(bits):
                    if not isinstance(b, int):
                        continue
                    if direction == "output":
                        origin = ("mem" if kind == "$mem_v2" else "macro" if kind in self.macros
                                  else "reg" if lib[kind].flip_flop else "cell")
                        self.drivers[b] = (inst, pin, origin, i)
                    else:
                        self.sinks[b].append((inst, pin, i))
        outputs = set()
        for port, p in module.get("ports", {}).items():
            for i, b in enumerate(p["bits"]):
                if not isinstance(b, int):
                    continue
                if p["direction"] == "input":
                    self.drivers[b] = (port, "", "in", i)
                else:
                    outputs.add(b)
        self.load = {b: self._sink_pf(b) for b in set(self.drivers) | outputs}
        self._order()

    def _sink_pf(self, b) -> float:
        total = 0.0
        for inst, pin, i in self.sinks.get(b, ()):
            kind = self.cells[inst]["type"]
            if kind in self.macros:  # the pin's load inside: its sinks' pins and wires
                total += self.macros[kind].input_pf[pin][i]
                continue
            if kind in self.library.cells:
                total += self.library.cells[kind].inputs.get(pin, 0.0)
            total += self.wire
        return total

    def _order(self) -> None:
        cells, lib = self.cells, self.library.cells
        self.out_bit = {}
        pending = {}
        users: dict = defaultdict(list)
        for inst in self.comb:
            c = cells[inst]
            cell = lib[c["type"]]
            self.out_bit[inst] = c["connections"][cell.output][0]
            ins = {c["connections"][p][0] for p in cell.inputs if isinstance(c["connections"][p][0], int)}
            deps = {b for b in ins if self.drivers.get(b, ("", "", ""))[2] == "cell"}
            pending[inst] = len(deps)
            for b in deps:
                users[b].append(inst)
        order, ready = [], [i for i, n in pending.items() if n == 0]
        while ready:
            inst = ready.pop()
            order.append(inst)
            for user in users.get(self.out_bit[inst], ()):
                pending[user] -= 1
                if pending[user] == 0:
                    ready.append(user)
        if len(order) != len(self.comb):
            stuck = sorted(i for i, n in pending.items() if n > 0)[:5]
            raise ValueError(f"combinational loop through {len(self.comb) - len(order)} cells, e.g. {stuck}")
        self.order = order

    def input_pf(self) -> dict[str, list[float]]:
        """The load on each input port bit: what a parent's net sees of this module's pin."""
        return {port: [self.load.get(b, 0.0) if isinstance(b, int) else 0.0 for b in p["bits"]]
                for port, p in self.module.get("ports", {}).items() if p["direction"] == "input"}

    def macro_output_pf(self) -> dict[str, dict[str, list[float]]]:
        """Per macro module and output port, per bit the largest load any instance drives."""
        out: dict = {}
        for inst in self.instances:
            c = self.cells[inst]
            for pin, bits in c["connections"].items():
                if c["port_directions"].get(pin) != "output":
                    continue
                loads = out.setdefault(c["type"], {}).setdefault(pin, [0.0] * len(bits))
                for i, b in enumerate(bits):
                    if isinstance(b, int):
                        loads[i] = max(loads[i], self.load[b])
        return out

    def add_output_pf(self, loads: dict[str, list[float]]) -> None:
        """Add a parent's load to this module's output port bits."""
        for port, per_bit in loads.items():
            for b, pf in zip(self.module["ports"][port]["bits"], per_bit):
                if isinstance(b, int):
                    self.load[b] = self.load.get(b, 0.0) + pf

    def register_name(self, inst: str) -> str:
        """A flip-flop by the name of the net its output drives (the RTL register's name)."""
        cell = self.cells[inst]
        q = cell["connections"].get(self.library.cells[cell["type"]].output, [None])[0]
        return self.names.get(q, inst)


def _propagate(g: _Graph, clock_transition_ns: float, inputs: dict | None = None) -> Timing:
    """Arrival times through ``g`` from each kind of startpoint (see the module docstring).
    ``inputs``: per input port, per bit ``{origin: (arrival, transition)}`` -- the arrivals a
    parent gives the ports; ``None`` starts an ``"in"`` path at every input bit at time 0."""
    cells, lib, load, names = g.cells, g.library.cells, g.load, g.names
    paths: dict[str, TimingPath] = {}
    outputs: dict = {port: [dict() for _ in p["bits"]] for port, p in g.module.get("ports", {}).items()
                     if p["direction"] == "output"}
    pins: dict = {}      # (module, port, index) -> {origin: (arrival, transition, [(instance, bit)] per edge)}
    preds: dict = {}
    endpoints = {
        "reg": len(g.flops),
        "mem": sum(len(bits) for inst in g.memories for pin, bits in cells[inst]["connections"].items()
                   if cells[inst]["port_directions"][pin] == "input" and not pin.endswith("CLK")),
        "out": sum(len(p) for p in outputs.values()) if inputs is None else 0,
    }
    for origin in ("reg", "mem", "in"):
        arrival: dict = {}   # bit -> [rise, fall]
        slew: dict = {}
        pred: dict = {}      # (bit, edge) -> (from bit, from edge, stage)
        for b, (inst, pin, kind, i) in g.drivers.items():
            if kind == "reg" and origin == "reg":
                cell = lib[cells[inst]["type"]]
                arc = cell.arcs[0]
                arr = [lookup(arc.tables["cell_rise"], clock_transition_ns, load[b]),
                       lookup(arc.tables["cell_fall"], clock_transition_ns, load[b])]
                tr = [lookup(arc.tables["rise_transition"], clock_transition_ns, load[b]),
                      lookup(arc.tables["fall_transition"], clock_transition_ns, load[b])]
                cell_name = cells[inst]["type"]
            elif kind == "mem" and origin == "mem":
                arr, tr, cell_name = [0.0, 0.0], [BOUNDARY_TRANSITION_NS] * 2, cells[inst]["type"]
            elif kind == "in" and inputs is None and origin == "in":
                arr, tr, cell_name = [0.0, 0.0], [BOUNDARY_TRANSITION_NS] * 2, "input"
            elif kind == "in" and inputs is not None and inst in inputs and origin in inputs[inst][i]:
                arr, tr = (list(v) for v in inputs[inst][i][origin])
                cell_name = "input"
            elif kind == "macro" and origin in g.macros[cells[inst]["type"]].outputs[pin][i]:
                arr, tr = (list(v) for v in g.macros[cells[inst]["type"]].outputs[pin][i][origin])
                cell_name = cells[inst]["type"]
            else:
                continue
            arrival[b], slew[b] = arr, tr
            for e in (RISE, FALL):
                pred[(b, e)] = (None, None, Stage(inst, cell_name, f"{pin}[{i}]" if kind == "macro" else
                                                  f"[{i}]" if kind == "in" and inputs is not None else pin,
                                                  names.get(b, str(b)), "rise" if e == RISE else "fall",
                                                  arr[e], arr[e], tr[e], load[b]))
        if not arrival:
            continue
        preds[origin] = pred
        for inst in g.order:
            c = cells[inst]
            cell = lib[c["type"]]
            ob = g.out_bit[inst]
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

        def consider(kind: str, required: float, setup: float, endpoint: str, b, e, origin=origin) -> None:
            if kind not in paths or required > paths[kind].required_ns:
                paths[kind] = TimingPath(kind, required, setup, endpoint, _trace(preds[origin], b, e))

        for inst in g.flops:
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
                consider(f"{origin}->reg", arrival[b][e] + s, s, f"{g.register_name(inst)}/{d_pin}", b, e)
        for inst in g.memories:
            c = cells[inst]
            for pin, bits in c["connections"].items():
                if c["port_directions"][pin] != "input" or pin.endswith("CLK"):
                    continue
                for b in bits:
                    if b in arrival:
                        for e in (RISE, FALL):
                            if arrival[b][e] != _NEG:
                                consider(f"{origin}->mem", arrival[b][e], 0.0, f"{inst}/{pin}", b, e)
        for inst in g.instances:
            c = cells[inst]
            for pin, bits in c["connections"].items():
                if c["port_directions"].get(pin) != "input":
                    continue
                for i, b in enumerate(bits):
                    if b not in arrival:
                        continue
                    entry = pins.setdefault((c["type"], pin, i), {}).setdefault(
                        origin, ([_NEG, _NEG], [0.0, 0.0], [None, None]))
                    for e in (RISE, FALL):
                        if arrival[b][e] > entry[0][e]:
                            entry[0][e], entry[2][e] = arrival[b][e], (inst, b)
                        entry[1][e] = max(entry[1][e], slew[b][e])
        for port, p in g.module.get("ports", {}).items():
            if p["direction"] != "output":
                continue
            for i, b in enumerate(p["bits"]):
                if b not in arrival:
                    continue
                outputs[port][i][origin] = (tuple(arrival[b]), tuple(slew[b]))
                if inputs is None:
                    for e in (RISE, FALL):
                        if arrival[b][e] != _NEG:
                            consider(f"{origin}->out", arrival[b][e], 0.0, f"{port}[{i}]", b, e)
    return Timing(paths, g.wire, clock_transition_ns, len(g.comb) + len(g.flops), len(g.flops), endpoints,
                  outputs=outputs, pins=pins, preds=preds)


def _trace(pred: dict, b, e) -> list[Stage]:
    stages = []
    while (b, e) in pred:
        b2, e2, stage = pred[(b, e)]
        stages.append(stage)
        if b2 is None:
            break
        b, e = b2, e2
    return stages[::-1]


def analyze(netlist: dict, library: Library, *, top: str | None = None, wire_um_per_fanout: float = WIRE_UM_PER_FANOUT,
            clock_transition_ns: float = CLOCK_TRANSITION_NS) -> Timing:
    """Static timing of ``top`` (the only module when ``None``) of a flattened Yosys JSON
    ``netlist`` with ``library``; see the module docstring. A netlist that keeps repeated
    modules as cells of the top (:func:`spikemllm.flow.hierarchy.flatten`) is analyzed by
    :func:`analyze_hierarchical`."""
    modules = netlist["modules"]
    if top is None:
        if len(modules) != 1:
            raise ValueError(f"the netlist has modules {sorted(modules)}; name the top one (it must be flattened)")
        top = next(iter(modules))
    if len(modules) > 1 and any(c["type"] in modules for c in modules[top].get("cells", {}).values()):
        try:
            return analyze_hierarchical(netlist, library, top=top, wire_um_per_fanout=wire_um_per_fanout,
                                        clock_transition_ns=clock_transition_ns)
        except UnsettledHierarchy:
            from .hierarchy import flatten

            modules = flatten(netlist, top)["modules"]
    g = _Graph(modules[top], library, wire_pf_per_fanout(wire_um_per_fanout))
    return _propagate(g, clock_transition_ns)


class UnsettledHierarchy(ValueError):
    """Raised by :func:`analyze_hierarchical` when arrivals through the kept modules do not settle."""


def _inside(stages: list[Stage], instance: str) -> list[Stage]:
    """``stages`` of a kept module's path named as they are in its ``instance``."""
    return [Stage(f"{instance}.{s.instance}", s.cell, s.pin, f"{instance}.{s.net}", s.edge, s.delay_ns, s.arrival_ns,
                  s.transition_ns, s.load_pf) for s in stages]


def analyze_hierarchical(netlist: dict, library: Library, *, top: str, wire_um_per_fanout: float = WIRE_UM_PER_FANOUT,
                         clock_transition_ns: float = CLOCK_TRANSITION_NS, iterations: int = 4) -> Timing:
    """Static timing of ``top`` whose repeated modules are kept as cells
    (:func:`spikemllm.flow.hierarchy.flatten`), each module analyzed once for all its
    instances, with the timing of a flattened netlist otherwise:

    * a kept module's input pin loads the parent's net with the load its port net has inside
      (pins and wire); its output port nets carry, besides their load inside, the largest
      load any instance's pin drives outside;
    * the parent's paths reach a kept module's input pins; per pin bit and kind of startpoint
      the latest arrival and the slowest transition over the instances start the module's
      paths from that pin, so a path through the module is timed for its worst instance
      (an upper bound: exact when the instances see the same arrivals, as broadcast nets
      give them);
    * the arrivals at the module's output ports (from its registers, and through it from
      its inputs) start the parent's paths from the instances' output pins; the two are
      propagated in turn until the output arrivals no longer change (at most
      ``iterations`` times, else :class:`UnsettledHierarchy`: an instance's output reaches
      an input of another instance of its module through logic alone, which merging the
      instances' arrivals turns into a loop; :func:`analyze` then analyzes the netlist flat).

    The worst path of each kind is the worst of the parent's and the modules' paths; a path
    that crosses a module's pins is reported whole, its stages inside the module named by the
    instance whose arrival was the latest."""
    modules = netlist["modules"]
    wire = wire_pf_per_fanout(wire_um_per_fanout)
    counts: dict = defaultdict(int)
    first: dict = {}
    for inst, c in modules[top].get("cells", {}).items():
        if c["type"] in modules and c["type"] != top:
            counts[c["type"]] += 1
            first.setdefault(c["type"], inst)
    for k in counts:
        nested = sorted({c["type"] for c in modules[k].get("cells", {}).values() if c["type"] in modules})
        if nested:
            raise ValueError(f"module {k} holds modules {nested}; flatten it first")
    subs = {k: _Graph(modules[k], library, wire) for k in counts}
    macros = {k: Macro(subs[k].input_pf(), {}) for k in counts}
    g = _Graph(modules[top], library, wire, macros)
    for k, loads in g.macro_output_pf().items():
        subs[k].add_output_pf(loads)
    inner = {k: _propagate(subs[k], clock_transition_ns, inputs={}) for k in counts}
    for _ in range(iterations):
        for k in counts:
            macros[k].outputs = inner[k].outputs
        outer = _propagate(g, clock_transition_ns)
        given = {k: {port: [dict() for _ in p["bits"]] for port, p in modules[k]["ports"].items()
                     if p["direction"] == "input"} for k in counts}
        for (k, port, i), by_origin in outer.pins.items():
            for origin, (arr, tr, _) in by_origin.items():
                given[k][port][i][origin] = (tuple(arr), tuple(tr))
        settled = {k: _propagate(subs[k], clock_transition_ns, inputs=given[k]) for k in counts}
        stable = all(settled[k].outputs == inner[k].outputs for k in counts)
        inner = settled
        if stable:
            break
    else:
        raise UnsettledHierarchy(f"arrivals through {sorted(counts)} did not settle in {iterations} passes: "
                                 "one instance's output reaches another's input without a register")

    paths = dict(outer.paths)
    for kind, p in list(paths.items()):
        start = p.stages[0] if p.stages else None
        if start is not None and start.cell in counts:  # starts at a kept module's output pin
            k, origin = start.cell, kind.split("->")[0]
            port, i = start.pin[:-1].split("[")
            b = modules[k]["ports"][port]["bits"][int(i)]
            edge = RISE if start.edge == "rise" else FALL
            inside = _inside(_trace(inner[k].preds.get(origin, {}), b, edge), start.instance)
            paths[kind] = TimingPath(kind, p.required_ns, p.setup_ns, p.endpoint, inside + p.stages[1:])
    for k, timing in inner.items():
        for kind, p in timing.paths.items():
            if kind in paths and paths[kind].required_ns >= p.required_ns:
                continue
            start = p.stages[0] if p.stages else None
            if start is not None and start.cell == "input":  # starts at an input pin: the parent's path to it
                edge = RISE if start.edge == "rise" else FALL
                port, i = start.instance, int(start.pin.strip("[]"))
                instance, bit = outer.pins[(k, port, i)][kind.split("->")[0]][2][edge]
                before = _trace(outer.preds[kind.split("->")[0]], bit, edge)
                stages = before + _inside(p.stages[1:], instance)
            else:
                instance = first[k]
                stages = _inside(p.stages, instance)
            paths[kind] = TimingPath(kind, p.required_ns, p.setup_ns, f"{instance}.{p.endpoint}", stages)
    endpoints = dict(outer.endpoints)
    for k, timing in inner.items():
        for key in ("reg", "mem"):
            endpoints[key] = endpoints.get(key, 0) + counts[k] * timing.endpoints.get(key, 0)
    return Timing(paths, wire, clock_transition_ns,
                  outer.cells + sum(counts[k] * inner[k].cells for k in counts),
                  outer.flip_flops + sum(counts[k] * inner[k].flip_flops for k in counts), endpoints,
                  hierarchy=dict(counts))


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
