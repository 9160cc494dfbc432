"""Static timing against hand-computed paths: an inverter chain between two flip-flops in a
library whose tables are linear in transition and load (so every lookup is exact and the
path delay is a sum that can be written down), then memories and ports as path ends."""

import pytest
from spikemllm.flow import liberty, sta

# cell_rise = 0.02 + 0.5 s + 4 C, cell_fall = 0.01 + 0.3 s + 2 C (ns, s in ns, C in pF);
# rise_transition = 0.01 + 0.2 s + 6 C, fall_transition = 0.005 + 0.1 s + 3 C
S = (0.01, 0.1, 1.0)
C = (0.001, 0.01, 0.1)


def table(kind, f):
    rows = ", ".join('"' + ", ".join(f"{f(s, c):.6g}" for c in C) + '"' for s in S)
    return f'{kind} (t3) {{ index_1 ("{", ".join(map(str, S))}"); index_2 ("{", ".join(map(str, C))}"); values ({rows}); }}'


INV = {"cell_rise": lambda s, c: 0.02 + 0.5 * s + 4 * c, "cell_fall": lambda s, c: 0.01 + 0.3 * s + 2 * c,
       "rise_transition": lambda s, c: 0.01 + 0.2 * s + 6 * c, "fall_transition": lambda s, c: 0.005 + 0.1 * s + 3 * c}
CLKQ = {"cell_rise": lambda s, c: 0.2 + 0.1 * s + 3 * c, "cell_fall": lambda s, c: 0.25 + 0.1 * s + 2 * c,
        "rise_transition": lambda s, c: 0.02 + 5 * c, "fall_transition": lambda s, c: 0.015 + 4 * c}
SETUP = {"rise_constraint": lambda d, k: 0.05 + 0.1 * d + 0.02 * k, "fall_constraint": lambda d, k: 0.07 + 0.2 * d}

LIB = f"""
/* a made-up library for the test */
library (testlib) {{
  time_unit : "1ns";
  capacitive_load_unit (1, pf);
  lu_table_template (t3) {{ variable_1 : input_net_transition; variable_2 : total_output_net_capacitance; }}
  cell (INV) {{
    area : 1;
    pin (A) {{ direction : input; capacitance : 0.002; }}
    pin (Y) {{ direction : output; function : "(!A)";
      timing () {{ related_pin : "A"; timing_sense : negative_unate;
        {' '.join(table(k, f) for k, f in INV.items())} }}
    }}
  }}
  cell (BUF) {{
    area : 1;
    pin (A) {{ direction : input; capacitance : 0.003; }}
    pin (X) {{ direction : output; function : "A";
      timing () {{ related_pin : "A"; timing_sense : positive_unate;
        {' '.join(table(k, f) for k, f in INV.items())} }}
    }}
  }}
  cell (DFF) {{
    area : 4;
    ff (IQ, IQN) {{ clocked_on : "CLK"; next_state : "D"; }}
    pin (CLK) {{ direction : input; capacitance : 0.0015; clock : true; }}
    pin (D) {{ direction : input; capacitance : 0.001;
      timing () {{ related_pin : "CLK"; timing_type : setup_rising;
        {' '.join(table(k, f) for k, f in SETUP.items())} }}
    }}
    pin (Q) {{ direction : output; function : "IQ";
      timing () {{ related_pin : "CLK"; timing_type : rising_edge; timing_sense : non_unate;
        {' '.join(table(k, f) for k, f in CLKQ.items())} }}
    }}
  }}
}}
"""


def netlist(chain: list[str]) -> dict:
    """ff1 -> cells of ``chain`` (one input each) -> ff2, nets 10, 11, ...; clock on bit 2."""
    cells = {"ff1": {"type": "DFF", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                     "connections": {"CLK": [2], "D": [3], "Q": [10]}}}
    for n, kind in enumerate(chain):
        out = "Y" if kind == "INV" else "X"
        cells[f"u{n}"] = {"type": kind, "port_directions": {"A": "input", out: "output"},
                          "connections": {"A": [10 + n], out: [11 + n]}}
    cells["ff2"] = {"type": "DFF", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                    "connections": {"CLK": [2], "D": [10 + len(chain)], "Q": [4]}}
    return {"modules": {"top": {
        "ports": {"clk": {"direction": "input", "bits": [2]}, "d": {"direction": "input", "bits": [3]},
                  "q": {"direction": "output", "bits": [4]}},
        "cells": cells,
        "netnames": {f"n{b}": {"bits": [b], "hide_name": 0} for b in range(10, 11 + len(chain))}}}}


@pytest.fixture(scope="module")
def lib():
    return liberty.read_library(LIB)


def hand_path(chain, wire, clock_slew):
    """The two paths (Q rising, Q falling) through ``chain`` computed stage by stage."""
    caps = {"INV": 0.002, "BUF": 0.003}
    loads = [caps[k] + wire for k in chain] + [0.001 + wire]
    worst = 0.0
    for q_rise in (True, False):
        rise = q_rise
        c = loads[0]
        t = (CLKQ["cell_rise"] if rise else CLKQ["cell_fall"])(clock_slew, c)
        s = (CLKQ["rise_transition"] if rise else CLKQ["fall_transition"])(clock_slew, c)
        for kind, c in zip(chain, loads[1:]):
            rise = (not rise) if kind == "INV" else rise
            t += (INV["cell_rise"] if rise else INV["cell_fall"])(s, c)
            s = (INV["rise_transition"] if rise else INV["fall_transition"])(s, c)
        setup = (SETUP["rise_constraint"] if rise else SETUP["fall_constraint"])(s, clock_slew)
        worst = max(worst, t + setup)
    return worst


@pytest.mark.parametrize("chain", [["INV"], ["INV", "INV", "INV"], ["INV", "BUF", "INV", "BUF"]])
def test_chain_delay_is_the_sum_of_table_lookups(lib, chain):
    timing = sta.analyze(netlist(chain), lib, wire_um_per_fanout=0.0, clock_transition_ns=0.1)
    expected = hand_path(chain, 0.0, 0.1)
    assert timing.critical.required_ns == pytest.approx(expected, rel=1e-9)
    assert timing.fmax_mhz == pytest.approx(1e3 / expected)
    assert [s.instance for s in timing.critical.stages] == ["ff1"] + [f"u{n}" for n in range(len(chain))]
    assert timing.critical.startpoint == "n10" and timing.critical.endpoint == "ff2/D"  # ff2's Q has no name
    assert timing.critical.stages[-1].net == f"n{10 + len(chain)}"
    # the input port drives only ff1's D pin: an in->reg path with no cells; ff2's Q drives the output
    assert set(timing.paths) == {"reg->reg", "in->reg", "reg->out"}
    assert timing.endpoints == {"reg": 2, "mem": 0, "out": 1}


def test_wire_load_adds_capacitance_per_fanout(lib):
    chain = ["INV", "INV"]
    timing = sta.analyze(netlist(chain), lib, wire_um_per_fanout=20.0, clock_transition_ns=0.3)
    wire = sta.wire_pf_per_fanout(20.0)
    assert wire == pytest.approx(20.0 * 0.0847e-3, rel=1e-3)  # met1 of the technology LEF: 0.085 fF/um
    assert timing.critical.required_ns == pytest.approx(hand_path(chain, wire, 0.3), rel=1e-9)
    assert timing.critical.required_ns > sta.analyze(netlist(chain), lib, wire_um_per_fanout=0.0,
                                                     clock_transition_ns=0.3).critical.required_ns


def test_lookup_interpolates_and_extrapolates_linearly(lib):
    t = lib.cells["INV"].arcs[0].tables["cell_rise"]
    f = INV["cell_rise"]
    for s, c in ((0.05, 0.005), (0.001, 0.0001), (2.0, 0.3), (0.1, 0.01)):
        assert liberty.lookup(t, s, c) == pytest.approx(f(s, c), rel=1e-9)


def test_memories_and_unknown_cells(lib):
    n = netlist(["INV"])
    top = n["modules"]["top"]
    # a memory read port drives the chain's input instead of ff1, and ff1 writes the memory
    top["cells"]["ff1"]["connections"]["Q"] = [20]
    top["cells"]["mem"] = {"type": "$mem_v2", "port_directions": {"RD_DATA": "output", "WR_DATA": "input", "RD_CLK": "input"},
                           "connections": {"RD_DATA": [10], "WR_DATA": [20], "RD_CLK": [2]}}
    timing = sta.analyze(n, lib, wire_um_per_fanout=0.0)
    assert "mem->reg" in timing.paths and "reg->mem" in timing.paths and "reg->reg" not in timing.paths
    assert timing.fmax_mhz is None
    # mem -> INV -> ff2: arrival 0 with the boundary transition
    s0 = sta.BOUNDARY_TRANSITION_NS
    rise = INV["cell_rise"](s0, 0.001) + SETUP["rise_constraint"](INV["rise_transition"](s0, 0.001), sta.CLOCK_TRANSITION_NS)
    fall = INV["cell_fall"](s0, 0.001) + SETUP["fall_constraint"](INV["fall_transition"](s0, 0.001), sta.CLOCK_TRANSITION_NS)
    assert timing.paths["mem->reg"].required_ns == pytest.approx(max(rise, fall))
    top["cells"]["u0"]["type"] = "NAND9"
    with pytest.raises(ValueError, match="'NAND9'"):
        sta.analyze(n, lib)


def test_combinational_loop_is_refused(lib):
    n = netlist(["INV", "INV"])
    top = n["modules"]["top"]
    top["cells"]["u0"]["connections"]["A"] = [12]  # u1's output feeds u0
    with pytest.raises(ValueError, match="combinational loop"):
        sta.analyze(n, lib)
