"""Flattening around repeated modules, and the fanout repair and static timing that treat a
repeated module once: checked against Yosys's own ``flatten`` and against the flat analysis
of the same netlist."""

import json
from pathlib import Path

import pytest

from spikemllm.flow import sta
from spikemllm.flow.buffering import repair_fanout, repair_hierarchy
from spikemllm.flow.hierarchy import flatten, instance_counts, repeated_modules
from spikemllm.flow.liberty import read_library
from spikemllm.flow.synth import LIBERTY, REPAIRED_NETLIST, run_tool, synth_asic, yosys_command

# Three instances of one stage. ``broadcast`` feeds them all the same nets, so flat and
# hierarchical timing agree exactly; ``skewed`` feeds them through logic of different
# depths; ``chain`` feeds each stage's combinational output to the next.
STAGES = """
module leaf(input [3:0] a, output [3:0] y);
  assign y = ~a;
endmodule
module stage(input clk, input [3:0] a, input [3:0] b, input [3:0] c, output [3:0] y, output reg [7:0] q);
  wire [3:0] na;
  leaf inv(.a(a), .y(na));
  assign y = na + b;
  always @(posedge clk) q <= q + a * b + c;
endmodule
module broadcast(input clk, input [3:0] x, input [3:0] w, output reg [7:0] z);
  reg [3:0] r, s, t;
  wire [3:0] y0, y1, y2;
  wire [7:0] q0, q1, q2;
  always @(posedge clk) begin r <= x; s <= w; t <= x ^ w; z <= q0 ^ q1 ^ q2 ^ {y0, y1 ^ y2}; end
  stage s0(.clk(clk), .a(r), .b(s), .c(t), .y(y0), .q(q0));
  stage s1(.clk(clk), .a(r), .b(s), .c(t), .y(y1), .q(q1));
  stage s2(.clk(clk), .a(r), .b(s), .c(t), .y(y2), .q(q2));
endmodule
module skewed(input clk, input [3:0] x, input [3:0] w, output reg [7:0] z);
  reg [3:0] r, s;
  wire [3:0] y0, y1, y2;
  wire [7:0] q0, q1, q2;
  always @(posedge clk) begin r <= x; s <= w; z <= q0 ^ q1 ^ q2 ^ {y0, y1 ^ y2}; end
  stage s0(.clk(clk), .a(r), .b(s), .c(r), .y(y0), .q(q0));
  stage s1(.clk(clk), .a(r * s), .b(s), .c(r + s), .y(y1), .q(q1));
  stage s2(.clk(clk), .a(s), .b(r ^ s), .c(s), .y(y2), .q(q2));
endmodule
module chain(input clk, input [3:0] x, output reg [7:0] z);
  reg [3:0] r;
  wire [3:0] y0, y1, y2;
  wire [7:0] q0, q1, q2;
  always @(posedge clk) begin r <= x; z <= q0 ^ q1 ^ q2 ^ {4'b0, y2}; end
  stage s0(.clk(clk), .a(r), .b(q2[3:0]), .c(r), .y(y0), .q(q0));
  stage s1(.clk(clk), .a(y0), .b(q0[3:0]), .c(r), .y(y1), .q(q1));
  stage s2(.clk(clk), .a(y1), .b(q1[3:0]), .c(r), .y(y2), .q(q2));
endmodule
"""


@pytest.fixture(scope="module")
def lib():
    return read_library(LIBERTY)


@pytest.fixture(scope="module", params=["broadcast", "skewed", "chain"])
def mapped(request, tmp_path_factory):
    """``synth_asic`` of a design: its folder, top and repaired netlist (the stages kept)."""
    top = request.param
    out = tmp_path_factory.mktemp(top)
    (out / "stages.v").write_text(STAGES)
    result = synth_asic(out / "stages.v", top, out / "asic")
    netlist = json.loads((out / "asic" / REPAIRED_NETLIST).read_text())
    return out, top, netlist, result


def test_repeated_modules_are_kept_and_counted(mapped):
    out, top, netlist, _ = mapped
    assert set(netlist["modules"]) == {top, "stage"}
    assert sum(c["type"] == "stage" for c in netlist["modules"][top]["cells"].values()) == 3
    # the single leaf inside each stage is flattened into it
    assert not any(c["type"] in netlist["modules"] for c in netlist["modules"]["stage"]["cells"].values())


def test_counts_and_outermost_repeated_module():
    modules = {"top": {"cells": {"a": {"type": "mid"}, "b": {"type": "mid"}, "c": {"type": "solo"},
                                 "g": {"type": "$_AND_"}}},
               "mid": {"cells": {"l0": {"type": "leaf"}, "l1": {"type": "leaf"}}},
               "solo": {"cells": {"l": {"type": "leaf"}, "m": {"type": "mid"}}},
               "leaf": {"cells": {}}, "unused": {"cells": {}}}
    netlist = {"modules": modules}
    assert instance_counts(netlist, "top") == {"top": 1, "mid": 3, "solo": 1, "leaf": 7, "unused": 0}
    assert repeated_modules(netlist, "top") == {"mid"}
    with pytest.raises(ValueError, match="no module 'nope'"):
        instance_counts(netlist, "nope")
    with pytest.raises(ValueError, match="cannot keep"):
        flatten(netlist, "top", {"nope"})


def test_flatten_matches_yosys(tmp_path):
    """Python's flattening of Yosys's hierarchical JSON is Yosys's flatten: the same cells under
    the same names and ``hdlname``, connected to the same nets (a one-to-one map of net bits),
    including a port that a submodule passes straight through."""
    source = STAGES + """
module through(input [3:0] a, output [3:0] y, output [3:0] z);
  assign y = a;
  assign z = ~a;
endmodule
module passes(input clk, input [3:0] x, output [3:0] o, output [3:0] p);
  wire [3:0] m;
  through t0(.a(x), .y(m), .z(p));
  through t1(.a(m), .y(o), .z());
endmodule
"""
    (tmp_path / "d.v").write_text(source)
    for top in ("chain", "passes"):
        (tmp_path / "f.ys").write_text(f"""
read_verilog d.v
synth -top {top} -run :fine
techmap
opt -fast
rename -enumerate
write_json hier_{top}.json
flatten
write_json flat_{top}.json
""")
        command, _ = yosys_command("f.ys")
        run_tool(command, tmp_path / "f.log", cwd=tmp_path)
        hier = json.loads((tmp_path / f"hier_{top}.json").read_text())
        ours = flatten(hier, top)["modules"][top]
        theirs = json.loads((tmp_path / f"flat_{top}.json").read_text())["modules"][top]
        cells = {n: c for n, c in theirs["cells"].items() if c["type"] != "$scopeinfo"}
        assert set(ours["cells"]) == set(cells)
        forward, backward = {}, {}
        for name, c in ours["cells"].items():
            d = cells[name]
            assert c["type"] == d["type"]
            assert c.get("attributes", {}).get("hdlname") == d.get("attributes", {}).get("hdlname")
            for pin, bits in c["connections"].items():
                for a, b in zip(bits, d["connections"][pin], strict=True):
                    assert forward.setdefault(a, b) == b and backward.setdefault(b, a) == a, (name, pin)
        for port, p in ours["ports"].items():
            for a, b in zip(p["bits"], theirs["ports"][port]["bits"], strict=True):
                assert forward.setdefault(a, b) == b


def test_repair_counts_a_kept_module_once_per_instance(mapped, lib):
    out, top, netlist, result = mapped
    flat = flatten(netlist, top)
    per_module = repair_fanout(json.loads(json.dumps(netlist["modules"]["stage"])), lib)
    # the repaired netlist already holds the buffers: a second repair adds none
    again = repair_hierarchy(json.loads(json.dumps(netlist)), top, lib)
    assert again.buffers == 0 and per_module.buffers == 0
    buffers = sum(c.get("attributes", {}).get("fanout_repair_of") is not None for c in flat["modules"][top]["cells"].values())
    assert buffers == result["sky130"]["fanout_repair"]["buffers"]


def test_hierarchical_timing_is_the_flat_timing_or_above(mapped, lib):
    """The static timing of the netlist with its stages kept equals that of the same netlist
    flattened when every instance sees the same arrivals (``broadcast``) and bounds it from
    above when they do not (``skewed``: each stage's pins take the latest of the three). A
    stage feeding the next through logic alone (``chain``) would loop once the instances are
    merged: that netlist is analyzed flat."""
    out, top, netlist, result = mapped
    hier = sta.analyze(netlist, lib, top=top)
    flat = sta.analyze(flatten(netlist, top), lib, top=top)
    assert hier.hierarchy == ({} if top == "chain" else {"stage": 3})
    if top == "chain":
        with pytest.raises(sta.UnsettledHierarchy, match="did not settle"):
            sta.analyze_hierarchical(netlist, lib, top=top)
    assert (hier.cells, hier.flip_flops, hier.endpoints) == (flat.cells, flat.flip_flops, flat.endpoints)
    assert set(hier.paths) == set(flat.paths)
    for kind, p in flat.paths.items():
        if top == "skewed":
            assert hier.paths[kind].required_ns >= p.required_ns - 1e-9, kind
        else:
            assert hier.paths[kind].required_ns == pytest.approx(p.required_ns, abs=1e-9), kind
    if top == "skewed":  # the worst path enters the stage behind the multiplier, and is named by it
        assert hier.critical.endpoint.startswith("s1.")
    # the critical path is reported whole: from a flip-flop, its stages add up to its arrival
    path = hier.critical
    assert path.stages[0].cell.startswith("sky130_fd_sc_hd__df")
    assert result["sky130"]["timing"]["fmax_mhz"] == pytest.approx(hier.fmax_mhz, rel=1e-3)
    for p in hier.paths.values():
        assert p.stages[-1].arrival_ns == pytest.approx(sum(s.delay_ns for s in p.stages), abs=1e-9)
    if top != "chain":
        # paths into the stages are traced from the top's startpoint through the stage's pin,
        # their cells named by the instance's path
        inside = [p for p in hier.paths.values() if any(s.instance.split(".")[0] in ("s0", "s1", "s2")
                                                        for s in p.stages)]
        assert inside
