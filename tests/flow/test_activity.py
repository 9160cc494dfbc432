"""Activity read from a traced run: run cycles, toggles and samples of a hand-written VCD, the
netlist cell evaluator, and, end to end, the memory accesses and enable activity of a tiny
Amaranth design simulated by Verilator, against counts made independently from the stimulus."""

import json
import random
import subprocess

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from spikemllm.flow.activity import _CELLS, activity_netlist, measure_run, read_vcd
from spikemllm.flow.lint import verilator_env

VCD = """$timescale 1ps $end
 $scope module core $end
  $var wire 1 ! clk $end
  $var wire 1 " busy $end
  $var wire 3 # count [2:0] $end
  $scope module sub $end
   $var wire 1 $ flag $end
  $upscope $end
 $upscope $end
$enddefinitions $end
#0
0!
0"
b000 #
0$
#5
1!
1"
#10
0!
b001 #
#15
1!
1$
#20
0!
b011 #
0"
#25
1!
b100 #
#30
0!
#35
1!
0$
"""


def test_run_cycles_are_the_edges_with_the_gate_high(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    # rising edges at 5 (busy was 0 before it), 15 (busy 1), 25 (busy 0 again), 35 (busy 0)
    run = read_vcd(path, "core", gate="busy", sample=['#', '$'])
    assert run.cycles == 1
    assert run.samples == {"#": [1], "$": [0]}  # values just before the edge at 15
    # toggles of the cycle started at 15 (until the edge at 25): flag 0->1, count 001->011, busy 1->0
    assert run.toggles == {"top": {"toggles": 2, "bits": 4}, "sub": {"toggles": 1, "bits": 1}}
    ungated = read_vcd(path, "core", window=(10, 30), sample=['#'])
    assert ungated.cycles == 2 and ungated.samples == {"#": [1, 3]}
    # inside [10, 30): count 000->001->011->100 (5 bits), busy 1->0, flag 0->1; flag's 1->0 at 35 is after it
    assert ungated.toggles == {"top": {"toggles": 6, "bits": 4}, "sub": {"toggles": 1, "bits": 1}}
    with pytest.raises(ValueError, match="no gate signal 'ready'"):
        read_vcd(path, "core", gate="ready")


def _bits(value, width):
    return [np.array([(v >> i) & 1 for v in value], dtype=bool) for i in range(width)]


def _int(bits):
    return sum(int(b[0]) << i for i, b in enumerate(bits))


@pytest.mark.parametrize("ctype,params,a,b,expected", [
    ("$add", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 3}, 5, 6, 3),          # 11 mod 8
    ("$sub", {"A_SIGNED": 1, "B_SIGNED": 1, "Y_WIDTH": 4}, 1, 3, 14),         # -2 in 4 bits
    ("$lt", {"A_SIGNED": 1, "B_SIGNED": 1, "Y_WIDTH": 1}, 0b111, 0b001, 1),   # -1 < 1 signed
    ("$lt", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 1}, 0b111, 0b001, 0),   # 7 < 1 unsigned
    ("$eq", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 1}, 0b010, 0b010, 1),
    ("$ne", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 1}, 0b010, 0b011, 1),
    ("$and", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 3}, 0b110, 0b011, 0b010),
    ("$shl", {"A_SIGNED": 0, "B_SIGNED": 0, "Y_WIDTH": 3}, 0b011, 1, 0b110),
])
def test_cell_evaluator(ctype, params, a, b, expected):
    y = _CELLS[ctype]({"A": _bits([a], 3), "B": _bits([b], 3)}, params, 1)["Y"]
    assert _int(y) == expected


def test_multiplexers():
    a, b = _bits([0b01], 2), _bits([0b10], 2)
    assert _int(_CELLS["$mux"]({"A": a, "B": b, "S": _bits([1], 1)}, {"WIDTH": 2}, 1)["Y"]) == 0b10
    pm = _CELLS["$pmux"]({"A": a, "B": _bits([0b1110], 4), "S": _bits([0b10], 2)}, {"WIDTH": 2}, 1)["Y"]
    assert _int(pm) == 0b11  # the second word of B


class Tiny(wiring.Component):
    """A memory with a write port, a synchronous read port under an expression enable and an
    asynchronous read port, and an 8-bit register loaded under an enable."""

    busy: In(1)
    we: In(1)
    waddr: In(2)
    wdata: In(8)
    re: In(1)
    raddr: In(2)
    aaddr: In(2)
    load: In(1)
    d: In(8)
    q: Out(8)
    rdata: Out(8)
    adata: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.store = store = Memory(shape=8, depth=4, init=[])
        w, r, a = store.write_port(), store.read_port(), store.read_port(domain="comb")
        m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                     r.addr.eq(self.raddr), r.en.eq(self.re & (self.raddr != 3)), self.rdata.eq(r.data),
                     a.addr.eq(self.aaddr), self.adata.eq(a.data)]
        held = Signal(8)
        with m.If(self.load & ~self.we):
            m.d.sync += held.eq(self.d)
        m.d.comb += self.q.eq(held)
        return m


INPUTS = ("busy", "we", "waddr", "wdata", "re", "raddr", "aaddr", "load", "d")


def _stimulus(cycles, seed=3):
    rng = random.Random(seed)
    widths = {"busy": 1, "we": 1, "waddr": 2, "wdata": 8, "re": 1, "raddr": 2, "aaddr": 2, "load": 1, "d": 8}
    rows = []
    for n in range(cycles):
        row = {k: rng.randrange(1 << w) for k, w in widths.items()}
        row["busy"] = int(n % 7 != 0)  # some idle cycles that must not count
        if n % 5:
            row["aaddr"] = rows[-1]["aaddr"] if rows else 0  # the address changes only now and then
        rows.append(row)
    return rows


def test_memory_accesses_and_enables_of_a_traced_design(tmp_path):
    (tmp_path / "tiny.v").write_text(verilog.convert(Tiny(), name="tiny"))
    rows = _stimulus(120)
    drive = "\n".join("    @(negedge clk); " + " ".join(f"{k} = {row[k]};" for k in INPUTS) for row in rows)
    ports = ", ".join(f".{k}({k})" for k in ("clk", "rst", *INPUTS, "q", "rdata", "adata"))
    (tmp_path / "tb.sv").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg busy = 0, we = 0, re = 0, load = 0;
  reg [1:0] waddr = 0, raddr = 0, aaddr = 0;
  reg [7:0] wdata = 0, d = 0;
  wire [7:0] q, rdata, adata;
  tiny tiny({ports});
  always #5 clk = ~clk;
  initial begin
    $dumpfile("dump.vcd"); $dumpvars(0, tb);
    @(negedge clk); rst = 0;
{drive}
    @(negedge clk); busy = 0; we = 0; re = 0; load = 0;
    @(negedge clk); $finish;
  end
endmodule
""")
    env = verilator_env()
    subprocess.run(["verilator", "--binary", "--trace", "-Wno-fatal", "-CFLAGS", "-fcoroutines", "--top-module", "tb", "-Mdir", "obj", "tb.sv",
                    "tiny.v"], cwd=tmp_path, env=env, check=True, capture_output=True)
    subprocess.run(["obj/Vtb"], cwd=tmp_path, env=env, check=True, capture_output=True)
    netlist = activity_netlist(tmp_path / "tiny.v", "tiny", tmp_path / "activity")
    got = measure_run(tmp_path / "dump.vcd", netlist, "tiny", (0, 10**12))

    busy = [r for r in rows if r["busy"]]
    writes = sum(r["we"] for r in busy)
    reads = sum(r["re"] and r["raddr"] != 3 for r in busy)
    changes = [n == 0 or r["aaddr"] != busy[n - 1]["aaddr"] for n, r in enumerate(busy)]
    loads = sum(r["load"] and not r["we"] for r in busy)
    concurrent = max(r["we"] + (r["re"] and r["raddr"] != 3) + c for r, c in zip(busy, changes))
    assert got["cycles"] == len(busy)
    store = got["memories"]["store"]
    assert (store["width"], store["depth"], store["read_ports"], store["write_ports"]) == (8, 4, 2, 1)
    assert store["writes"] == writes
    assert store["reads"] == reads + sum(changes)
    assert store["ports"] == concurrent
    bank = got["enable_banks"]["top"]
    assert bank["enabled_flip_flops"] == bank["flip_flops"] == 8  # the register; the read register is the SRAM's
    assert bank["clocked_bit_cycles"] == 8 * loads
    assert bank["enables"] == 1 and got["banks_not_evaluated"] == {}
    assert json.dumps(got)  # what the flow stores in its raw file
