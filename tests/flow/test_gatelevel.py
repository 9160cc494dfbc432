"""Gate-level power: transitions counted from a hand-written VCD, the energy of a tiny
hand-made netlist in a made-up library (tables linear in transition and load, so every
lookup is exact) against the sum written out by hand, and the mapped netlist of a small
block simulated by its cocotb testbench, bit-exact against the golden model."""

import json

import pytest
from spikemllm.flow import gatelevel, sky130
from spikemllm.flow.buffering import repair_fanout
from spikemllm.flow.liberty import read_library

VCD = """$version test $end
$timescale 1ps $end
 $scope module core $end
  $var wire 1 ! clk $end
  $var wire 1 " busy $end
  $var wire 1 x# n $end
  $var wire 3 z acc [2:0] $end
  $scope module sub $end
   $var wire 3 z acc_alias [2:0] $end
   $var wire 2 $ v [5:4] $end
  $upscope $end
 $upscope $end
$enddefinitions $end
#0
0!
0"
0x#
b000 z
b00 $
#10
1!
1x#
b011 z
#15
1"
#20
0!
0x#
b111 z
#30
1!
1x#
b010 z
b01 $
#40
0!
0"
0x#
b110 z
#50
1!
1x#
b000 z
b10 $
#60
0!
"""


def test_transitions_are_counted_per_bit_in_the_busy_cycles_of_the_window(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    t = gatelevel.vcd_net_toggles(path, "core", (0, 1000))
    # rising edges at 10 (busy low), 30 (busy high), 50 (busy low): one cycle, from 30 to 50
    assert t.cycles == 1
    assert list(t.rises["x#"]) == [1] and list(t.falls["x#"]) == [1]  # a code holding an 'x' stays a code
    # acc in the cycle: 111 -> 010 at 30, 010 -> 110 at 40
    assert list(t.rises["z"]) == [0, 0, 1] and list(t.falls["z"]) == [1, 0, 1]
    assert list(t.rises["$"]) == [1, 0] and list(t.falls["$"]) == [0, 0]
    # the window ends before the cycle: nothing counted
    assert gatelevel.vcd_net_toggles(path, "core", (0, 30)).cycles == 0
    with pytest.raises(ValueError, match="no 'ready'"):
        gatelevel.vcd_net_toggles(path, "core", (0, 1000), gate="ready")


@pytest.mark.parametrize("width", [3, 61, 116])
def test_vector_transitions_per_bit(width):
    import random

    rng = random.Random(width)
    values = [rng.getrandbits(width) for _ in range(40)]
    pairs = list(zip(values[:-1], values[1:]))
    rises, falls = gatelevel._bit_counts(pairs, width)
    for i in range(width):
        bits = [(v >> i) & 1 for v in values]
        assert rises[i] == sum(1 for a, b in zip(bits, bits[1:]) if (a, b) == (0, 1))
        assert falls[i] == sum(1 for a, b in zip(bits, bits[1:]) if (a, b) == (1, 0))


def test_net_names_find_their_traced_bits(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    toggles = gatelevel.vcd_net_toggles(path, "core", (0, 1000))
    net = gatelevel.GateNetlist(
        top="core", cells=[], driver={10: ("cell", "sub"), 11: ("cell", "sub"), 12: ("flop", "top"), 13: ("cell", "top")},
        loads={}, other_loads={},
        names={10: [(("sub",), "v", 5)], 11: [(("sub",), "missing", 0), ((), "acc", 2)], 12: [((), "n", 0)],
               13: [((), "nowhere", 0)]})
    transitions, missing = gatelevel.net_transitions(net, toggles)
    assert transitions == {10: (0, 0), 11: (1, 1), 12: (1, 1)} and missing == [13]


# -- energy on a made-up library -----------------------------------------------------------

S = (0.01, 0.1, 1.0)
C = (0.001, 0.01, 0.1)


def table2(kind, f):
    rows = ", ".join('"' + ", ".join(f"{f(s, c):.9g}" for c in C) + '"' for s in S)
    return f'{kind} (t3) {{ index_1 ("{", ".join(map(str, S))}"); index_2 ("{", ".join(map(str, C))}"); values ({rows}); }}'


def table1(kind, f):
    return f'{kind} (t1) {{ index_1 ("{", ".join(map(str, S))}"); values ("{", ".join(f"{f(s):.9g}" for s in S)}"); }}'


# internal energies in pJ, s in ns, c in pF
NAND_A = {"rise_power": lambda s, c: 0.01 + 0.1 * s + 2 * c, "fall_power": lambda s, c: 0.005 + 0.05 * s + 1 * c}
NAND_B = {"rise_power": lambda s, c: 0.02 + 0.2 * s + 3 * c, "fall_power": lambda s, c: 0.007 + 0.02 * s + 4 * c}
Q_ARC = {"rise_power": lambda s, c: 0.02 + 0.01 * s + 1 * c, "fall_power": lambda s, c: 0.015 + 0.02 * s + 2 * c}
CLK_PIN = {"rise_power": lambda s: 0.004 + 0.01 * s, "fall_power": lambda s: 0.006 + 0.02 * s}
D_PIN = {"rise_power": lambda s: 0.003 + 0.001 * s, "fall_power": lambda s: 0.002 + 0.002 * s}
BUF_A = {"rise_power": lambda s, c: 0.03 + 0.1 * s + 5 * c, "fall_power": lambda s, c: 0.025 + 0.1 * s + 6 * c}

LIB = f"""
library (testlib) {{
  capacitive_load_unit (1, pf);
  power_lut_template (t3) {{ variable_1 : input_transition_time; variable_2 : total_output_net_capacitance; }}
  power_lut_template (t1) {{ variable_1 : input_transition_time; }}
  cell (NAND2) {{
    area : 2; cell_leakage_power : 1.0;
    pin (A) {{ direction : input; capacitance : 0.002; }}
    pin (B) {{ direction : input; capacitance : 0.003; }}
    pin (Y) {{ direction : output; function : "!(A&B)";
      internal_power () {{ related_pin : "A"; {' '.join(table2(k, f) for k, f in NAND_A.items())} }}
      internal_power () {{ related_pin : "B"; {' '.join(table2(k, f) for k, f in NAND_B.items())} }}
    }}
  }}
  cell (sky130_fd_sc_hd__buf_4) {{
    area : 3; cell_leakage_power : 0.5;
    pin (A) {{ direction : input; capacitance : 0.004; }}
    pin (X) {{ direction : output; function : "A";
      internal_power () {{ related_pin : "A"; {' '.join(table2(k, f) for k, f in BUF_A.items())} }}
    }}
  }}
  cell (DFF) {{
    area : 4; cell_leakage_power : 2.0;
    ff (IQ, IQN) {{ clocked_on : "CLK"; next_state : "D"; }}
    pin (CLK) {{ direction : input; capacitance : 0.0015; clock : true;
      internal_power () {{ {' '.join(table1(k, f) for k, f in CLK_PIN.items())} }} }}
    pin (D) {{ direction : input; capacitance : 0.001;
      internal_power () {{ {' '.join(table1(k, f) for k, f in D_PIN.items())} }} }}
    pin (Q) {{ direction : output; function : "IQ";
      internal_power () {{ related_pin : "CLK"; {' '.join(table2(k, f) for k, f in Q_ARC.items())} }}
    }}
  }}
}}
"""


def test_energy_of_a_hand_made_netlist(tmp_path):
    """A flip-flop in the top level and two NANDs and a memory read port in ``sub``:

    net 2 clk (input) -> ff.CLK; net 3 a (input) -> u1.A; net 4 ff.Q -> u1.B and the memory's
    address; net 5 u1.Y -> ff.D and u2.B; net 7 the memory's read data -> u2.A; net 8 u2.Y ->
    the output port only."""
    cells = {
        "ff": {"type": "DFF", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
               "connections": {"CLK": [2], "D": [5], "Q": [4]}, "attributes": {}},
        "sub.u1": {"type": "NAND2", "port_directions": {"A": "input", "B": "input", "Y": "output"},
                   "connections": {"A": [3], "B": [4], "Y": [5]}, "attributes": {"hdlname": "sub u1"}},
        "sub.u2": {"type": "NAND2", "port_directions": {"A": "input", "B": "input", "Y": "output"},
                   "connections": {"A": [7], "B": [5], "Y": [8]}, "attributes": {"hdlname": "sub u2"}},
        "$flatten\\sub.$memrd$m$1": {"type": "$memrd", "port_directions": {"ADDR": "input", "DATA": "output"},
                                     "connections": {"ADDR": [4], "DATA": [7]}, "attributes": {}},
    }
    module = {"ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]},
                        "q": {"direction": "output", "bits": [8]}},
              "cells": cells, "netnames": {"q": {"bits": [8], "attributes": {}}}}
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"modules": {"top": module}}))
    lib = read_library(LIB)
    net = gatelevel.read_netlist(path, "top", lib)
    assert net.driver == {2: ("input", "top"), 3: ("input", "top"), 4: ("flop", "top"), 5: ("cell", "sub"),
                          7: ("memory", "sub"), 8: ("cell", "sub")}
    transitions = {2: (10, 10), 3: (5, 4), 4: (3, 3), 5: (6, 5), 7: (2, 2), 8: (4, 4)}
    gating = {"top": {"flip_flops": 5, "clocked_bit_cycles": 40, "enables": 1}}  # 80 % of the clock kept
    V, W, cycles, hz = 1.2, 0.001, 10, 1e8
    e = gatelevel.energy(net, lib, transitions, cycles, clock_hz=hz, gating=gating, wire_pf_per_pin=W,
                         clock_transition_ns=0.1, supply_v=V)

    def sw(n, cap):  # n transitions of cap pF
        return n * cap * 1e-12 * V**2 / 2

    pj = 1e-12
    # switching: ff.Q drives u1.B and one memory pin; u1.Y drives ff.D and u2.B; u2.Y no library pin
    assert e["top"]["switching_j"] == pytest.approx(sw(6, 0.003 + 2 * W))
    assert e["top"]["boundary_switching_j"] == pytest.approx(sw(9, 0.002 + W))  # input a; the clock apart
    assert e["sub"]["switching_j"] == pytest.approx(sw(11, 0.001 + 0.003 + 2 * W))
    assert e["sub"]["boundary_switching_j"] == pytest.approx(sw(4, 0.002 + W))  # the memory's read data
    # internal: u1's output (load 0.006 pF) weighted by its inputs' transitions, A 9 and B 6;
    # u2's (load 0) by A 4 and B 11
    load5 = 0.004 + 2 * W
    u1 = 6 * (9 / 15 * NAND_A["rise_power"](0.1, load5) + 6 / 15 * NAND_B["rise_power"](0.1, load5)) + \
        5 * (9 / 15 * NAND_A["fall_power"](0.1, load5) + 6 / 15 * NAND_B["fall_power"](0.1, load5))
    u2 = 4 * (4 / 15 * NAND_A["rise_power"](0.1, 0) + 11 / 15 * NAND_B["rise_power"](0.1, 0)) + \
        4 * (4 / 15 * NAND_A["fall_power"](0.1, 0) + 11 / 15 * NAND_B["fall_power"](0.1, 0))
    assert e["sub"]["internal_j"] == pytest.approx((u1 + u2) * pj)
    # flip-flop: Q 3 rises and 3 falls at its load (0.005 pF), D 6 rises and 5 falls
    ff = 3 * Q_ARC["rise_power"](0.1, 0.005) + 3 * Q_ARC["fall_power"](0.1, 0.005) + \
        6 * D_PIN["rise_power"](0.1) + 5 * D_PIN["fall_power"](0.1)
    assert e["top"]["flip_flop_j"] == pytest.approx(ff * pj)
    # clock: 8 clocked cycles of 10; the rising edge's pin energy in the 2 of them without a Q change;
    # the falling edge's and the clock net (pin + wire, charged and discharged) in all 8; one clock gate
    clk_net = (0.0015 + W) * 1e-12 * V**2
    gate = sky130.clock_capacitance("dlclkp") * V**2
    assert e["top"]["clock_j"] == pytest.approx(2 * CLK_PIN["rise_power"](0.1) * pj
                                                + 8 * (CLK_PIN["fall_power"](0.1) * pj + clk_net) + 10 * gate)
    assert e["top"]["clock_ungated_j"] == pytest.approx(4 * CLK_PIN["rise_power"](0.1) * pj
                                                        + 10 * (CLK_PIN["fall_power"](0.1) * pj + clk_net))
    assert e["top"]["clock_share"] == 0.8 and e["sub"]["clock_j"] == 0
    # leakage over 10 cycles at 100 MHz
    assert e["top"]["leakage_j"] == pytest.approx(2e-9 * 1e-7) and e["sub"]["leakage_j"] == pytest.approx(2e-9 * 1e-7)
    total = sum(e[b][k] for b in ("top", "sub") for k in ("switching_j", "boundary_switching_j", "internal_j",
                                                          "flip_flop_j", "clock_j", "leakage_j"))
    assert e["total"]["total_j"] == pytest.approx(total)
    # the leakage follows the clock
    slower = gatelevel.at_clock(e, cycles, hz / 2)
    assert slower["total"]["leakage_j"] == pytest.approx(2 * e["total"]["leakage_j"])
    with pytest.raises(ValueError, match="gating names blocks"):
        gatelevel.energy(net, lib, transitions, cycles, gating={"pe_array": gating["top"]})
    with pytest.raises(ValueError, match="cycles must be positive"):
        gatelevel.energy(net, lib, transitions, 0)


def test_energy_with_the_fanout_repair(tmp_path):
    """A flip-flop in ``sub`` whose ``Q`` (net 4) drives three NAND inputs in the top level,
    read with a fanout limit of 2: two buffers of the driver's block, one for ``u1``'s
    pins and one for ``u2.A``, each carrying net 4's transitions."""
    nand = {"A": "input", "B": "input", "Y": "output"}
    cells = {
        "sub.ff": {"type": "DFF", "port_directions": {"CLK": "input", "D": "input", "Q": "output"},
                   "connections": {"CLK": [2], "D": [3], "Q": [4]}, "attributes": {"hdlname": "sub ff"}},
        "u1": {"type": "NAND2", "port_directions": nand, "connections": {"A": [4], "B": [4], "Y": [5]}, "attributes": {}},
        "u2": {"type": "NAND2", "port_directions": nand, "connections": {"A": [4], "B": [3], "Y": [6]}, "attributes": {}},
    }
    module = {"ports": {"clk": {"direction": "input", "bits": [2]}, "d": {"direction": "input", "bits": [3]},
                        "y": {"direction": "output", "bits": [5, 6]}},
              "cells": cells, "netnames": {"sub.q": {"bits": [4], "attributes": {"hdlname": "sub q"}}}}
    lib = read_library(LIB)
    path, repaired = tmp_path / "flat.json", tmp_path / "repaired.json"
    path.write_text(json.dumps({"modules": {"top": module}}))
    repair = repair_fanout(module, lib, max_fanout=2)
    repaired.write_text(json.dumps({"modules": {"top": module}}))
    assert repair.buffers == 2 and repair.blocks == {"sub": {"buffers": 2, "area_um2": 6}}
    plain = gatelevel.read_netlist(path, "top", lib)
    net = gatelevel.read_netlist(repaired, "top", lib)
    assert plain.carries == {} and sorted(net.carries.values()) == [4, 4] and net.carries == repair.carries
    buffers = [c for c in net.cells if c.type == "sky130_fd_sc_hd__buf_4"]
    assert [c.block for c in buffers] == ["sub", "sub"] and all(c.pins["A"] == 4 for c in buffers)
    b1, b2 = (c.pins["X"] for c in buffers)
    assert sorted(p for b in (b1, b2) for _, p in net.loads[b]) == ["A", "A", "B"]
    # the VCD traces net 4 (3 rises, 2 falls) and the inputs; the buffer nets follow net 4
    toggles = gatelevel.NetToggles(10, {"q": [3], "d": [4]}, {"q": [2], "d": [4]},
                                   {("top", "sub"): {"q": ("q", 1, 0)}, ("top",): {"d": ("d", 1, 0)}})
    transitions, missing = gatelevel.net_transitions(net, toggles)
    assert transitions[b1] == transitions[b2] == transitions[4] == (3, 2)
    V, W = 1.2, 0.001
    kw = {"wire_pf_per_pin": W, "clock_transition_ns": 0.1, "supply_v": V}
    e = gatelevel.energy(net, lib, transitions, 10, **kw)
    before = gatelevel.energy(plain, lib, {k: v for k, v in transitions.items() if k not in net.carries}, 10, **kw)

    def sw(n, cap):
        return n * cap * 1e-12 * V**2 / 2

    pj = 1e-12
    # unbuffered, net 4 drives three NAND pins; buffered, two buffer inputs, and the buffers
    # drive the three pins (u1's two, u2.A) -- every net of the tree switching 5 times
    assert before["sub"]["switching_j"] == pytest.approx(sw(5, 0.002 + 0.003 + 0.002 + 3 * W))
    assert e["sub"]["switching_j"] == pytest.approx(sw(5, 2 * (0.004 + W)) + sw(5, 0.002 + 0.003 + 2 * W)
                                                    + sw(5, 0.002 + W))
    loads = {b: 0.002 + 0.003 + 2 * W if b == b1 else 0.002 + W for b in (b1, b2)}
    buf = sum(3 * BUF_A["rise_power"](0.1, c) + 2 * BUF_A["fall_power"](0.1, c) for c in loads.values())
    assert e["sub"]["internal_j"] == pytest.approx(buf * pj)
    q = lambda c: 3 * Q_ARC["rise_power"](0.1, c) + 2 * Q_ARC["fall_power"](0.1, c)  # noqa: E731
    assert e["sub"]["flip_flop_j"] - before["sub"]["flip_flop_j"] == pytest.approx(
        (q(2 * (0.004 + W)) - q(0.007 + 3 * W)) * pj)
    assert e["sub"]["leakage_w"] == pytest.approx(before["sub"]["leakage_w"] + 1e-9)
    assert e["top"]["internal_j"] == pytest.approx(before["top"]["internal_j"])
    assert e["sub"]["cells"] == 3 and before["sub"]["cells"] == 1


# -- a small block's netlist under its testbench ----------------------------------------------


def test_small_block_netlist_is_bit_exact(tmp_path):
    """The PE array of the small configuration, synthesized and simulated at gate level by
    its cocotb testbench: outputs against the golden model, cycles against the cycle model.
    The flattened netlist with the fanout repair's buffers, which the energy reads, names
    every driven net as the simulation traced it, and holds the buffers the timing counted."""
    from spikemllm.config import load_config
    from spikemllm.flow.runner import run_block
    from spikemllm.flow.synth import LIBERTY, REPAIRED_NETLIST, synth_asic
    from spikemllm.hw.generate import generate

    config = load_config("small")
    top = "sparse_accumulate_pe_array"
    generate(config, tmp_path / "rtl", blocks=["pe_array"])
    synth_asic(tmp_path / "rtl" / f"{top}.v", top, tmp_path / "asic")
    build = gatelevel.build_netlist(config, "pe_array", tmp_path / "asic" / "sky130_netlist.v", tmp_path / "gl")
    results = run_block(build, results=tmp_path / "results.json", waves=True)
    assert results.exists()
    repaired = json.loads((tmp_path / "asic" / "timing.json").read_text())["fanout_repair"]
    net = gatelevel.read_netlist(tmp_path / "asic" / REPAIRED_NETLIST, top, read_library(LIBERTY))
    assert repaired["buffers"] > 0 and len(net.carries) == repaired["buffers"]
    # the block has no busy signal: the reset's cycles give the VCD's names all the same
    toggles = gatelevel.vcd_net_toggles(build.build_dir / "run" / "dump.vcd", top, (0, 1e18), gate="rst")
    transitions, missing = gatelevel.net_transitions(net, toggles)
    assert missing == []
    assert all(transitions[b] == transitions[source] for b, source in net.carries.items())
