"""The synthesis flows on the small configuration, so a broken flow fails the suite: sky130
area recounted from the mapped netlist and the LEF, memories against the configuration,
FPGA resources and a placed-and-routed Fmax."""

import json
import re
from collections import Counter

import pytest
from spikemllm.flow import sky130
from spikemllm.flow import native_yosys
from spikemllm.flow.synth import fpga_harness, overfull_resources, run_tool, synth_asic, synth_fpga, yosys_command
from spikemllm.hw.generate import generate

from spikemllm.config import PRESETS, SMALL_CONFIG


def netlist_cells(text: str, top: str) -> tuple[Counter, Counter]:
    """(cell, drive) -> instances in the hierarchy of ``top`` of a Verilog netlist, and
    module -> instances."""
    bodies = {name.lstrip("\\"): body for name, body in
              re.findall(r"^module (\S+?)\s*\(.*?\);\n(.*?)^endmodule", text, re.S | re.M)}
    instances = Counter({top: 1})
    cells = Counter()
    pending = [top]
    while pending:
        name = pending.pop()
        body = bodies[name]
        for cell, drive in re.findall(r"^\s*sky130_fd_sc_hd__(\w+)_(\d+)\s", body, re.M):
            cells[(cell, drive)] += 1
        for child in re.findall(r"^\s*\\(\S+)\s+\S+\s*\(", body, re.M):
            instances[child] += 1
            pending.append(child)
    return cells, instances


@pytest.fixture(scope="module")
def spike_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(SMALL_CONFIG, out / "rtl", blocks=["core"])
    return out


def test_asic_flow_area_memories_and_transistors(spike_small):
    r = synth_asic(spike_small / "rtl" / "spike_core.v", "spike_core", spike_small / "asic")
    assert r["yosys"] == yosys_command("asic.ys")[1]
    assert set(r["sky130"]["blocks"]) == {"top", "compactor", "pe_array", "requantizer"}
    # independent recount: every sky130 instance in the written netlist times its LEF area,
    # a module's cells once per instance of the module (the PEs share one)
    cells, instances = netlist_cells((spike_small / "asic" / "sky130_netlist.v").read_text(), "spike_core")
    assert instances["spike_core.pe_array.pe_0"] == SMALL_CONFIG.pes
    area = sum(n * sky130.cell_area(cell, int(drive)) for (cell, drive), n in cells.items())
    # plus the fanout repair's buffers, which the timing's netlist alone holds
    buffers = r["sky130"]["timing"]["fanout_repair"]["buffers"]
    assert buffers > 0
    area += buffers * sky130.cell_area("buf", 4)
    assert r["sky130"]["total"]["area_um2"] == pytest.approx(area, rel=1e-6)
    assert r["sky130"]["total"]["flip_flops"] == cells[(sky130.FLIP_FLOP, "1")] > 0
    c = SMALL_CONFIG
    k = c.in_chunks_max
    expected = {
        "weight_memory": c.max_fan_in * c.pes * c.weight_bits,
        "activation_memory": 2 * k * c.lanes * c.act_bits,
        "bias_memory": c.max_out_tiles * c.pes * c.bias_bits,
        "params_memory": c.max_out_tiles * c.pes * (c.multiplier_bits + c.shift_bits),
    }
    assert {m["name"]: m["bits"] for m in r["memories"]} == expected
    generic = r["generic"]
    assert generic["total"]["transistors"] > generic["total"]["cells"] > 0
    assert generic["blocks"]["requantizer"]["transistors"] > generic["blocks"]["compactor"]["transistors"]
    # static timing of the flattened netlist: a register-to-register path whose stages add up
    timing = r["sky130"]["timing"]
    path = timing["critical_path"]
    assert path["kind"] == "reg->reg" and timing["flip_flops"] == r["sky130"]["total"]["flip_flops"]
    assert path["stages"][0]["cell"] == sky130.cell_name(sky130.FLIP_FLOP) and path["endpoint"].endswith("/D")
    assert path["cells"] == len(path["stages"]) - 1 >= 1
    assert sum(st["delay_ns"] for st in path["stages"]) == pytest.approx(path["stages"][-1]["arrival_ns"], abs=1e-3)
    assert path["period_ns"] == pytest.approx(path["stages"][-1]["arrival_ns"] + path["setup_ns"], abs=1e-3)
    assert timing["fmax_mhz"] == pytest.approx(1e3 / path["period_ns"], rel=1e-3)
    # every stage is a cell of the library
    assert all(st["cell"].startswith("sky130_fd_sc_hd__") for st in path["stages"])
    assert 20 < timing["fmax_mhz"] < 2000


def test_native_yosys_runs_a_script_and_reports_its_error(tmp_path):
    """The ASIC flow's Yosys: native when pyosys is installed (it is a dependency on Linux
    x86-64); a failing script raises with Yosys's own error in the message."""
    command, name = yosys_command("bad.ys")
    assert native_yosys.available() == (name == "native (pyosys)")
    (tmp_path / "bad.ys").write_text("read_verilog missing_file.v\n")
    with pytest.raises(RuntimeError, match="missing_file.v"):
        run_tool(command, tmp_path / "bad.log", cwd=tmp_path)
    (tmp_path / "t.v").write_text("module t(input [3:0] a, b, output [4:0] y); assign y = a + b; endmodule\n")
    (tmp_path / "ok.ys").write_text("read_verilog t.v\nsynth -top t\ntee -q -o stat.json stat -json\n")
    run_tool(yosys_command("ok.ys")[0], tmp_path / "ok.log", cwd=tmp_path)
    assert json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells"] > 0


def test_fpga_flow_places_and_reports_fmax(tmp_path):
    # `small` with the board's table sizes: `small` itself packs into more logic cells
    # than the UP5K has once nextpnr packs it
    generate(PRESETS["board_ice40"], tmp_path / "rtl", blocks=["core"])
    ports = json.loads((tmp_path / "rtl" / "config.json").read_text())["blocks"]["core"]["ports"]
    r = synth_fpga(tmp_path / "rtl" / "spike_core.v", "spike_core", "ice40", tmp_path / "ice40", ports=ports)
    assert r["fits"] and r["fmax_mhz"] > 1
    assert r["resources"]["lut"] > 0 and r["resources"]["bram"] > 0 and r["resources"]["dsp"] > 0
    assert r["resources"]["ff"] >= r["harness_flip_flops"]
    with pytest.raises(ValueError, match="family must be one of"):
        synth_fpga(tmp_path / "rtl" / "spike_core.v", "spike_core", "virtex", tmp_path / "x", ports=ports)


def test_overfull_device_is_read_from_nextpnr_utilisation():
    log = (
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:    5398/   5280   102%\n"
        "Info: \t        ICESTORM_RAM:       4/     30    13%\n"
        "Info: \t               SB_IO:      13/     96    13%\n"
    )
    assert overfull_resources(log) == {"ICESTORM_LC": (5398, 5280)}
    assert overfull_resources(log.replace("5398", "5000")) == {}


def test_place_and_route_past_its_time_budget_reports_no_fmax(spike_small):
    ports = json.loads((spike_small / "rtl" / "config.json").read_text())["blocks"]["core"]["ports"]
    r = synth_fpga(spike_small / "rtl" / "spike_core.v", "spike_core", "ice40", spike_small / "ice40_budget",
                   ports=ports, place_timeout=0.01)
    assert r["fits"] and r["fmax_mhz"] is None
    assert "time budget of 0 s" in r["flow"] and r["resources"]["lut"] > 0


def test_harness_wires_every_port():
    text = fpga_harness("core_x", {"a": {"direction": "in", "width": 3}, "b": {"direction": "in", "width": 2},
                                   "y": {"direction": "out", "width": 4}})
    assert ".a(shift[2:0])" in text and ".b(shift[4:3])" in text and ".y(outputs[3:0])" in text
    assert "reg [4:0] shift;" in text
