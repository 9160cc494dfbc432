"""The generated cell models against the liberty they come from: every combinational cell of
the committed library simulated by Verilator on every input combination, compared with
its liberty ``function`` evaluated by a separate small reader here and with the PDK's own
functional model (:func:`spikemllm.flow.sky130.cell_function`, gate primitives); the
flip-flop loads ``D`` at the rising clock edge and holds otherwise."""

import itertools
import re
import subprocess

import pytest
from spikemllm.flow import sky130
from spikemllm.flow.cellmodels import cell_models, verilog_expression
from spikemllm.flow.liberty import LibertyError, parse
from spikemllm.flow.lint import verilator_env
from spikemllm.flow.runner import _PCH_FIX
from spikemllm.flow.synth import LIBERTY


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
    """One Verilator build of every cell driven through all its input combinations."""
    cells = library_cells()
    comb = [c for c in cells if not c[3]]
    flops = [c for c in cells if c[3]]
    assert len(comb) >= 60 and [f[0] for f in flops] == ["sky130_fd_sc_hd__dfxtp_1"]
    width = max(len(c[1]) for c in comb)
    n = len(comb)
    lines = [f"module harness(input [{width - 1}:0] x, input clk, input d, output [{n - 1}:0] y, output q);"]
    for k, (name, inputs, outs, _) in enumerate(comb):
        (out, _), = outs
        ports = ", ".join([f".{p}(x[{j}])" for j, p in enumerate(inputs)] + [f".{out}(y[{k}])"])
        lines.append(f"  {name} c{k} ({ports});")
    lines += ["  sky130_fd_sc_hd__dfxtp_1 ff (.CLK(clk), .D(d), .Q(q));", "endmodule"]
    (tmp_path / "harness.v").write_text("\n".join(lines) + "\n")
    (tmp_path / "cells.v").write_text(cell_models(LIBERTY))
    bit = "(top->y >> k)" if n <= 64 else "(top->y[k / 32] >> (k % 32))"
    (tmp_path / "main.cpp").write_text(f"""#include "Vharness.h"
#include <cstdio>
int main() {{
  Vharness* top = new Vharness;
  for (unsigned i = 0; i < {1 << width}u; ++i) {{
    top->x = i; top->eval();
    printf("C %u ", i);
    for (int k = 0; k < {n}; ++k) {{
      printf("%c", {bit} & 1 ? '1' : '0');
    }}
    printf("\\n");
  }}
  // the flip-flop: D changes with the clock low and high; Q follows at rising edges only
  int steps[][2] = {{{{0, 1}}, {{1, 1}}, {{1, 0}}, {{0, 0}}, {{1, 0}}, {{0, 1}}}};
  for (auto& s : steps) {{ top->clk = s[0]; top->d = s[1]; top->eval(); printf("F %d\\n", top->q); }}
  delete top;
  return 0;
}}
""")
    env = {**verilator_env(), "MAKEFLAGS": _PCH_FIX}
    build = subprocess.run(["verilator", "--cc", "--exe", "--build", "-O0", "-Wno-fatal", "--top-module", "harness",
                            "-Mdir", "obj", "cells.v", "harness.v", "main.cpp"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    run = subprocess.run(["obj/Vharness"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in run.splitlines() if line.startswith("C ")]
    assert len(rows) == 1 << width
    checked = 0
    for _, i, bits in rows:
        i = int(i)
        for k, (name, inputs, outs, _) in enumerate(comb):
            values = {p: (i >> k) & 1 for k, p in enumerate(inputs)}
            if i >> len(inputs):
                continue  # the unused high bits of x
            (_, function), = outs
            got = bits[k] == "1"
            assert got == evaluate(function, values), f"{name} at {values}: model {got}, liberty {function!r}"
            # the PDK's functional model, evaluated from its gate primitives
            pdk_inputs, _, pdk_function = sky130.cell_function(name.removeprefix("sky130_fd_sc_hd__").rsplit("_", 1)[0])
            assert got == evaluate(pdk_function, {p: values[p] for p in pdk_inputs}), name
            checked += 1
    assert checked == sum(1 << len(c[1]) for c in comb)
    flop = [line.split()[1] for line in run.splitlines() if line.startswith("F ")]
    # a rising edge with D = 1 loads 1; D falling with the clock high, and the clock falling, keep it;
    # the next rising edge loads 0; D rising with the clock low keeps 0
    assert flop == ["0", "1", "1", "1", "0", "0"]
