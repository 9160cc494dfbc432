"""``make synth``: area, timing and activity-based energy of the spike core and the dense
INT8 and FP16 baselines, built and measured the same way.

``python -m spikemllm.flow.ppa [--config default] [--out build/reports]`` writes
``ppa.json``, ``ppa.md`` and ``ppa_area.png``/``ppa_energy.png``. For each core
(``spike``, ``int8``, ``fp16``):

* Verilog from :mod:`spikemllm.hw.generate`;
* :func:`spikemllm.flow.synth.synth_asic`: generic cells and Yosys's transistor estimate;
  sky130_fd_sc_hd area from the PDK's LEF (memories reported as bits);
* :func:`spikemllm.flow.synth.synth_fpga`: iCE40 and ECP5 resources, nextpnr Fmax;
* the real converted layer on the core under Verilator with VCD tracing (the cocotb
  testbench of ``make perf`` also checks it bit- and cycle-exact), toggles per block in
  the ideal run, and the energy models of :mod:`.power`.

Each dense baseline is built with the number of inputs per cycle ``D`` that matches the
spike core's throughput on the workload: the smallest power of two whose exact cycle
count (:func:`spikemllm.golden.timing.core_model.dense_core_cycles`) is at most the spike
core's (:func:`matched_dense_inputs`). Ratios are then taken at iso-throughput (area and
energy per token) and as throughput per area (the iso-area reading), logic only and with
the memories costed as SRAM (:mod:`.sram`), never between cores of unmatched width.
Throughput is computed at one stated common clock (``--clock-mhz``, 500 MHz by default,
the clock of SpikingBrain's comparison) and, separately, at each core's ECP5 Fmax.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spikemllm.hw.blocks import BLOCKS, CORES, CoreKind
from spikemllm.hw.generate import generate

from spikemllm.config import AcceleratorConfig, add_config_arguments, config_from_args, describe_config

from . import sky130, sram
from .power import ENERGY_45NM_PJ, activity_energy, cell_energies, opcount_energy, vcd_toggles
from .runner import build_block, run_block
from .synth import asic_results, synth_asic, synth_fpga

__all__ = ["TARGETS", "UTILIZATION_TARGET", "matched_dense_inputs", "measure", "summarize", "markdown", "main"]

TARGETS = {
    "fp16": {"throughput_per_area_with_sram": 9.06, "logic_energy_per_token": 25.8, "energy_per_token_with_sram": 5.0},
    "int8": {"throughput_per_area_with_sram": 3.4, "energy_per_token_with_sram": 1.87},
}
"""Targets of the spike core against each baseline at matched throughput (ratios, baseline /
spike or spike / baseline): the paper's 9.06x throughput and 25.8x power against an FP16
GPU, and SpikingBrain's published 70.6% area and 46.5% power reduction against INT8."""

UTILIZATION_TARGET = 0.95
"""Event-slot utilization (events / (E x cycles)) the spike core aims for."""


def matched_dense_inputs(config: AcceleratorConfig, kind: CoreKind, spike_cycles: int, *, tokens: int,
                         in_features: int, out_tiles: int) -> int:
    """Smallest power of two ``D <= lanes`` whose dense core of ``kind`` takes at most
    ``spike_cycles`` on the workload (``lanes`` if none does)."""
    from spikemllm.golden.timing.core_model import dense_core_cycles

    D = 1
    while D < config.lanes:
        trial = dataclasses.replace(config, dense_inputs=D)
        if dense_core_cycles(trial, tokens, in_features, out_tiles, kind.value).cycles <= spike_cycles:
            break
        D *= 2
    return D


DEFAULT_WORKLOAD = "qwen2vl"
"""The workload of the report: the trained Qwen2-VL's layer on real image and question tokens."""


def core_configs(config: AcceleratorConfig, workload: str = DEFAULT_WORKLOAD) -> dict[CoreKind, AcceleratorConfig]:
    """The configuration of every core: the spike core's as given, each dense baseline's
    with its throughput-matched ``dense_inputs`` on the real ``workload``."""
    from spikemllm.sim.core.cases import workload_case

    case = workload_case(config, workload)
    program = case.program
    configs = {}
    for kind in CORES:
        if kind is CoreKind.SPIKE:
            configs[kind] = config
        else:
            D = matched_dense_inputs(config, kind, case.model.cycles, tokens=case.tokens,
                                     in_features=program.padded_in, out_tiles=program.out_tiles)
            configs[kind] = dataclasses.replace(config, dense_inputs=D)
    return configs


def decomposition(config: AcceleratorConfig, workload: str = DEFAULT_WORKLOAD) -> dict:
    """Where the spike core's cycle advantage comes from, on the workload: the exact cycle
    model (which the RTL matches on every tested layer) of the spike core and of variants
    that each take one idea away.

    * ``spike``: the core as built (TC-LIF, MSTS schedule, zeros skipped);
    * ``no_zero_skipping``: every (step, input) pair issued as an event, zero or not (the
      model with every lane firing at every step; no such RTL variant exists);
    * ``count_coding``: the count-coded spike core (an RTL configuration the tests verify)
      carrying the same integers, ``2^T - 1`` steps instead of ``T``;
    * ``uniform_steps``: the same core with the larger of the two ``T`` for both modalities
      (the activations quantized to the matching width; MiniLM only: the Qwen2-VL
      fixture holds the integers of its MSTS schedule alone);
    * ``dense_int8_same_width``: the INT8 core taking ``E`` inputs per cycle.
    Each entry: cycles and events (inputs multiplied for the dense core).
    """
    import torch
    from spikemllm.golden.timing.core_model import core_cycles, dense_core_cycles
    from spikemllm.sim.core.cases import minilm_case, workload_case

    from spikemllm.config import Coding

    case = workload_case(config, workload)
    program = case.program
    padded = torch.zeros(case.tokens, program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = case.q
    J = program.out_tiles
    entries = {"spike": case.model}
    full = torch.stack([torch.full((program.padded_in,), config.coding.max_value(int(t))) for t in case.timesteps])
    entries["no_zero_skipping"] = core_cycles(config, full, case.timesteps, J)
    if config.coding is Coding.TC_LIF:
        steps = [(1 << int(t)) - 1 for t in case.timesteps]
        count = dataclasses.replace(config, coding="count", t_max=max(steps))
        entries["count_coding"] = core_cycles(count, padded, steps, J)
    tv, tt = (int(t) for t in (case.timesteps.min(), case.timesteps.max()))
    if workload == "minilm":
        entries["uniform_steps"] = minilm_case(config, tv=tt, tt=tt).model
    matched = dataclasses.replace(config, dense_inputs=config.events_per_cycle)
    entries["dense_int8_same_width"] = dense_core_cycles(matched, case.tokens, program.padded_in, J, "int8")
    base = entries["spike"].cycles
    return {
        "source": "exact cycle model (the RTL's CYCLES equals it on every tested layer); estimates for variants "
                  "without RTL are labelled",
        "schedule": {"msts": [tv, tt], "uniform": [tt, tt]},
        "entries": {name: {"cycles": m.cycles, "events": m.events, "cycles_over_spike": m.cycles / base}
                    for name, m in entries.items()},
    }


PLACE_TIMEOUT_S = 420.0
"""Time budget of one nextpnr run, so that ``make synth`` stays within minutes: the FP16
core's ECP5 routing can take far longer on two cores and then reports no Fmax."""


def _submit_synth(config: AcceleratorConfig, block: str, out: Path, families, pool,
                  place_timeout: float | None = PLACE_TIMEOUT_S) -> dict:
    module = BLOCKS[block].module
    rtl = out / "rtl"
    generate(config, rtl, blocks=[block])
    source = rtl / f"{module}.v"
    ports = json.loads((rtl / "config.json").read_text())["blocks"][block]["ports"]
    jobs = {"asic": pool.submit(synth_asic, source, module, out / "asic")}
    for family in families:
        jobs[family] = pool.submit(synth_fpga, source, module, family, out / family, ports=ports,
                                   place_timeout=place_timeout)
    return jobs


def _activity(config: AcceleratorConfig, block: str, root: Path, workload: str) -> dict:
    build = build_block(config, block, waves=True, root=root)
    results = build.build_dir / "run_results.json"
    run_block(build, results=results, waves=True, case={"workload": workload})
    run = json.loads(results.read_text())
    toggles = vcd_toggles(build.build_dir / "run" / "dump.vcd", BLOCKS[block].module, tuple(run["run_window_ps"]))
    return {"run": run, "toggles": toggles}


def measure(config: AcceleratorConfig, out: Path, *, workload: str = DEFAULT_WORKLOAD, families=("ice40", "ecp5"),
            jobs: int = 2, log=print) -> dict:
    """Synthesize, place and simulate the three cores; return their raw measurements.

    The synthesis and place-and-route runs go to a pool of ``jobs`` workers while the
    traced simulations run alongside.
    """
    raw = {}
    configs = core_configs(config, workload)
    for kind, c in configs.items():
        if kind is not CoreKind.SPIKE:
            log(f"{kind.value}: dense_inputs D = {c.dense_inputs} matches the spike core's cycles on the workload")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pending = {kind.value: _submit_synth(configs[kind], block, out / "synth" / config.name / kind.value, families, pool)
                   for kind, block in CORES.items()}
        for kind, block in CORES.items():
            name = kind.value
            start = time.monotonic()
            raw[name] = {"block": block, "dense_inputs": configs[kind].dense_inputs,
                         **_activity(configs[kind], block, out / "power" / name, workload)}
            log(f"{name}: traced simulation of the real layer done in {time.monotonic() - start:.0f} s")
        for name, jobs_of_core in pending.items():
            for flow, job in jobs_of_core.items():
                raw[name][flow] = job.result()
            log(f"{name}: synthesis done (sky130 {raw[name]['asic']['seconds']:.0f} s)")
    return raw


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("inf")


def summarize(config: AcceleratorConfig, raw: dict, *, clock_hz: float) -> dict:
    """Per-core metrics and ratios from :func:`measure` results."""
    cores = {}
    for name, r in raw.items():
        run = r["run"]
        core_config = dataclasses.replace(config, dense_inputs=r.get("dense_inputs", 1))
        tokens, cycles = run["tokens"], run["rtl_cycles"]
        sky = r["asic"]["sky130"]
        memory_bits = sum(m["bits"] for m in r["asic"]["memories"])
        logic_area = sky["total"]["area_um2"]
        memory_area = sram.area_um2(memory_bits)
        energy = activity_energy(r["toggles"], sky["blocks"], cycles)
        tiles_run = tokens * run["out_features"] // config.pes
        ops = opcount_energy(name, work=run["events"], pes=config.pes, tiles_run=tiles_run,
                             weight_row_bits=config.pes * (16 if name == "fp16" else config.weight_bits))
        timesteps = [run["timesteps"][m] for m, n in run["tokens_by_modality"].items() for _ in range(n)]
        counts = sram.accesses(name, core_config, tokens=tokens, in_features=run["in_features"],
                               out_features=run["out_features"], timesteps=timesteps, events=run["events"])
        memory_energy = sram.access_energy(counts)
        seconds = cycles / clock_hz
        ecp5 = r.get("ecp5", {})
        fmax = ecp5.get("fmax_mhz")
        logic_j = energy["total"]["total_j"]
        slots = config.events_per_cycle if name == "spike" else core_config.dense_inputs
        cores[name] = {
            "dense_inputs": core_config.dense_inputs if name != "spike" else None,
            "work_per_cycle": slots,
            "area_um2": logic_area + memory_area,
            "logic_area_um2": logic_area,
            "memory_area_um2": memory_area,
            "memory_area_flip_flop_estimate_um2": memory_bits * sky["flip_flop_area_um2"],
            "memory_bits": memory_bits,
            "transistors": r["asic"]["generic"]["total"]["transistors"],
            "generic_cells": r["asic"]["generic"]["total"]["cells"],
            "sky130_cells": sky["total"]["cells"],
            "flip_flops": sky["total"]["flip_flops"],
            "fmax_mhz": fmax,
            "fmax_flow": ecp5.get("flow"),
            "fpga": {family: r[family] for family in ("ice40", "ecp5") if family in r},
            "cycles": cycles,
            "tokens": tokens,
            "clock_mhz": clock_hz / 1e6,
            "tokens_per_s": tokens / seconds,
            "tokens_per_s_at_fmax": tokens / (cycles / (fmax * 1e6)) if fmax else None,
            "utilization": run["events"] / (slots * cycles),
            "utilization_definition": ("events / (E x cycles)" if name == "spike"
                                       else "inputs multiplied / (D x cycles)"),
            "busy_cycle_fraction": run["active_cycles"] / cycles,
            "logic_energy_per_token_j": logic_j / tokens,
            "sram_energy_per_token_j": memory_energy["total_j"] / tokens,
            "energy_per_token_j": (logic_j + memory_energy["total_j"]) / tokens,
            "power_w": (logic_j + memory_energy["total_j"]) / seconds,
            "sram_accesses": counts,
            "sram_energy_by_memory_j": memory_energy["by_memory_j"],
            "energy_per_token_opcount_45nm_j": ops["total_j"] / tokens,
            "energy_per_token_opcount_45nm_compute_only_j": ops["compute_only_j"] / tokens,
            "opcount_45nm": ops,
            "energy_by_block": energy,
            "area_by_block_um2": {b: v["area_um2"] for b, v in sky["blocks"].items()},
            "transistors_by_block": {b: v["transistors"] for b, v in r["asic"]["generic"]["blocks"].items()},
            "memories": r["asic"]["memories"],
            "bit_exact": run["bit_exact"] and run["stalled_run"]["bit_exact"],
            "cycle_exact": run["rtl_cycles"] == run["model_cycles"],
            "events": run["events"],
            "activity": r["toggles"],
        }
    ratios = {}
    spike = cores["spike"]
    for base in ("fp16", "int8"):
        b = cores[base]
        entry = {"dense_inputs": b["dense_inputs"], "throughput_matched": b["cycles"] <= spike["cycles"],
                 "throughput_same_clock": _ratio(spike["tokens_per_s"], b["tokens_per_s"])}
        for area_key, label in (("area_um2", "_with_sram"), ("logic_area_um2", "_logic_only")):
            # iso-area reading: tokens/s per um^2, spike over baseline
            entry[f"throughput_per_area{label}"] = _ratio(spike["tokens_per_s"] / spike[area_key],
                                                          b["tokens_per_s"] / b[area_key])
            # iso-throughput: the area the baseline needs over the spike core's
            entry[f"iso_throughput_area{label}"] = _ratio(b[area_key], spike[area_key])
        entry["logic_energy_per_token"] = _ratio(b["logic_energy_per_token_j"], spike["logic_energy_per_token_j"])
        entry["energy_per_token_with_sram"] = _ratio(b["energy_per_token_j"], spike["energy_per_token_j"])
        entry["energy_per_token_opcount_45nm"] = _ratio(b["energy_per_token_opcount_45nm_j"],
                                                        spike["energy_per_token_opcount_45nm_j"])
        entry["energy_per_token_opcount_45nm_compute_only"] = _ratio(b["energy_per_token_opcount_45nm_compute_only_j"],
                                                                     spike["energy_per_token_opcount_45nm_compute_only_j"])
        entry["targets"] = {metric: {"target": target, "value": entry[metric], "met": entry[metric] >= target}
                            for metric, target in TARGETS[base].items()}
        ratios[f"spike_vs_{base}"] = entry
    checks = {
        "event_slot_utilization": {"target": UTILIZATION_TARGET, "value": spike["utilization"],
                                   "met": spike["utilization"] >= UTILIZATION_TARGET},
        "rtl_cycles_equal_model": {"met": all(c["cycle_exact"] for c in cores.values())},
    }
    return {"config": config.to_dict()["parameters"], "config_label": describe_config(config), "cores": cores,
            "ratios": ratios, "checks": checks,
            "energy_model": {**cell_energies(), "opcount_45nm_pj": ENERGY_45NM_PJ, "sram": sram.MACRO,
                             "sram_area_per_bit_um2": sram.AREA_PER_BIT_UM2},
            "library": {"cells": len(sky130.CELLS) + 1, "flip_flop": sky130.FLIP_FLOP,
                        "flip_flop_area_um2": sky130.cell_area(sky130.FLIP_FLOP)}}


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    cores, ratios = report["cores"], report["ratios"]
    names = list(cores)
    run = report.get("workload", {})

    def row(label, fn):
        return f"| {label} | " + " | ".join(fn(cores[n]) for n in names) + " |"

    def opt(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    spike = cores["spike"]
    lines = [
        "# PPA: spike core vs dense INT8 and FP16 baselines",
        "",
        f"Generated by `make synth` (configuration `{report.get('config_label', report['config']['name'])}`). Workload: {run.get('layer', '')}, "
        f"{run.get('tokens', '')} tokens ({run.get('shape', '')}), vision T = {run.get('tv', '')}, text T = {run.get('tt', '')}; "
        "all three cores bit-exact against their golden models and cycle-exact against their cycle models.",
        "",
        f"Each dense baseline takes D inputs per cycle, the smallest power of two whose cycles on this workload are at "
        f"most the spike core's (E = {spike['work_per_cycle']} events per cycle): INT8 D = {cores['int8']['dense_inputs']}, "
        f"FP16 D = {cores['fp16']['dense_inputs']}. Every ratio below compares cores at that matched throughput.",
        "",
        "Measured: cycles (RTL under Verilator), cell counts, transistor estimate, sky130 standard-cell area, "
        "FPGA resources and Fmax, switching activity, events. **Estimates**: SRAM area and access energy (OpenRAM "
        "sky130 macro figures per bit, accesses from the RTL's memory-port enables), logic energies and powers "
        "(models below).",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        row("inputs or events per cycle (D or E)", lambda c: str(c["work_per_cycle"])),
        row("sky130 logic area (um^2)", lambda c: f"{c['logic_area_um2']:,.0f}"),
        row("memory (bits)", lambda c: f"{c['memory_bits']:,}"),
        row("SRAM area, estimate (um^2)", lambda c: f"{c['memory_area_um2']:,.0f}"),
        row("area (logic + SRAM, um^2)", lambda c: f"{c['area_um2']:,.0f}"),
        row("transistors (Yosys CMOS estimate, logic)", lambda c: f"{c['transistors']:,}"),
        row("generic cells / sky130 cells / flip-flops",
            lambda c: f"{c['generic_cells']:,} / {c['sky130_cells']:,} / {c['flip_flops']:,}"),
        row("ECP5 LUT / FF / DSP / BRAM", lambda c: "/".join(str(c['fpga'].get('ecp5', {}).get('resources', {}).get(k, '-'))
                                                            for k in ('lut', 'ff', 'dsp', 'bram'))),
        row("ECP5 Fmax (MHz, nextpnr)", lambda c: opt(c["fmax_mhz"], ".1f")),
        row("iCE40 UP5K LUT / FF / DSP / BRAM", lambda c: "/".join(str(c['fpga'].get('ice40', {}).get('resources', {}).get(k, '-'))
                                                                 for k in ('lut', 'ff', 'dsp', 'bram'))),
        row("iCE40 UP5K Fmax (MHz)", lambda c: opt(c['fpga'].get('ice40', {}).get('fmax_mhz'), ".1f")
            if c['fpga'].get('ice40', {}).get('fits') else "does not fit"),
        row("cycles (real layer)", lambda c: f"{c['cycles']:,}"),
        row("utilization: work / (slots x cycles)", lambda c: f"{c['utilization']:.3f}"),
        row("cycles with any work (favourable reading)", lambda c: f"{c['busy_cycle_fraction']:.3f}"),
        row(f"tokens/s at {names and cores[names[0]]['clock_mhz']:.0f} MHz", lambda c: f"{c['tokens_per_s']:,.0f}"),
        row("tokens/s at ECP5 Fmax", lambda c: opt(c["tokens_per_s_at_fmax"], ",.0f")),
        row("energy/token, logic: activity x sky130 (nJ, estimate)", lambda c: f"{c['logic_energy_per_token_j'] * 1e9:.2f}"),
        row("energy/token, SRAM accesses (nJ, estimate)", lambda c: f"{c['sram_energy_per_token_j'] * 1e9:.2f}"),
        row("energy/token, logic + SRAM (nJ, estimate)", lambda c: f"{c['energy_per_token_j'] * 1e9:.2f}"),
        row("power at the common clock (mW, estimate)", lambda c: f"{c['power_w'] * 1e3:.2f}"),
        row("energy/token, op count 45 nm incl. weight SRAM (nJ)", lambda c: f"{c['energy_per_token_opcount_45nm_j'] * 1e9:.2f}"),
        row("energy/token, op count 45 nm arithmetic only (nJ)",
            lambda c: f"{c['energy_per_token_opcount_45nm_compute_only_j'] * 1e9:.2f}"),
        "",
        "## Ratios at matched throughput (spike core against each baseline)",
        "",
        "| ratio | vs FP16 | vs INT8 |",
        "|---|---|---|",
    ]
    keys = [
        ("throughput_per_area_with_sram", "throughput per area (iso-area reading), logic + SRAM"),
        ("throughput_per_area_logic_only", "throughput per area (iso-area reading), logic only"),
        ("iso_throughput_area_with_sram", "area the baseline needs (iso-throughput), logic + SRAM"),
        ("iso_throughput_area_logic_only", "area the baseline needs (iso-throughput), logic only"),
        ("energy_per_token_with_sram", "energy per token, logic + SRAM (estimate)"),
        ("logic_energy_per_token", "energy per token, logic only (estimate)"),
        ("energy_per_token_opcount_45nm", "energy per token, op count 45 nm incl. weight reads"),
        ("energy_per_token_opcount_45nm_compute_only", "energy per token, op count 45 nm arithmetic only"),
        ("throughput_same_clock", "tokens/s at the same clock"),
    ]
    for key, label in keys:
        lines.append(f"| {label} | {ratios['spike_vs_fp16'][key]:.2f}x | {ratios['spike_vs_int8'][key]:.2f}x |")
    lines += ["", "Targets:", ""]
    for base, entry in ratios.items():
        for metric, t in entry["targets"].items():
            lines.append(f"* {base.replace('_', ' ')}, {metric.replace('_', ' ')}: {t['value']:.2f}x against a target of "
                         f"{t['target']}x -- {'met' if t['met'] else 'missed'}")
    u = report["checks"]["event_slot_utilization"]
    lines.append(f"* spike core event-slot utilization (events / (E x cycles)): {u['value']:.3f} against a target of "
                 f"{u['target']} -- {'met' if u['met'] else 'missed'}")
    lines.append(f"* RTL cycles equal model cycles in every core: {'yes' if report['checks']['rtl_cycles_equal_model']['met'] else 'NO'}")
    if "decomposition" in report:
        d = report["decomposition"]
        labels = {
            "spike": "spike core as built (TC-LIF, MSTS, zeros skipped)",
            "no_zero_skipping": "without zero skipping: every (step, input) pair issued (model only, no RTL variant)",
            "count_coding": "count coding carrying the same integers (2^T - 1 steps)",
            "uniform_steps": f"uniform steps {d['schedule']['uniform']} instead of MSTS {d['schedule']['msts']}",
            "dense_int8_same_width": "dense INT8 taking E inputs per cycle (same width, multiplies every input)",
        }
        lines += ["", "## Where the cycle advantage comes from (decomposition)", "",
                  f"Source: {d['source']}.", "", "| variant | cycles | events or MACs | cycles / spike core |",
                  "|---|---|---|---|"]
        for name, e in d["entries"].items():
            lines.append(f"| {labels.get(name, name)} | {e['cycles']:,} | {e['events']:,} | {e['cycles_over_spike']:.2f} |")
        spike_pe = cores["spike"]["area_by_block_um2"].get("pe_array")
        mac = cores["int8"]["area_by_block_um2"].get("mac_array")
        if spike_pe and mac:
            lines += ["", f"Multiplier-free datapath: the spike core's PE array is {spike_pe:,.0f} um^2 against the INT8 "
                      f"core's MAC array at D = {cores['int8']['dense_inputs']}: {mac:,.0f} um^2 "
                      f"({mac / spike_pe:.2f}x), measured."]
    lines += ["", "## Where the area and the energy go (per block)", ""]
    for name in names:
        c = cores[name]
        lines += [f"### {name}", "", "| block | sky130 area (um^2) | share of logic | transistors | activity (toggles/bit/cycle) "
                  "| energy/token (nJ) | share |", "|---|---|---|---|---|---|---|"]
        total_e = c["energy_by_block"]["total"]["total_j"]
        for block, area in sorted(c["area_by_block_um2"].items(), key=lambda kv: -kv[1]):
            e = c["energy_by_block"].get(block, {})
            lines.append(
                f"| {block} | {area:,.0f} | {area / c['logic_area_um2']:.1%} | {c['transistors_by_block'].get(block, 0):,} | "
                f"{e.get('alpha', 0):.4f} | {e.get('total_j', 0) / c['tokens'] * 1e9:.2f} | {e.get('total_j', 0) / total_e:.1%} |")
        mems = ", ".join(f"{m['name']} {m['depth']}x{m['width']}" for m in c["memories"])
        lines += ["", f"Memories: {mems}.", ""]
    m = report["energy_model"]
    lines += [
        "## Energy models (estimates) and their sources",
        "",
        f"* Activity: bit toggles of every RTL signal per block, counted from the Verilator VCD of the ideal run. "
        f"A block's sky130 cells are assumed to toggle at its RTL bits' rate.",
        f"* Per cell-output toggle: 0.5 C V^2 with V = {m['supply_v']} V and C = (1 + fanout {m['fanout']}) x "
        f"{m['mean_input_capacitance_f'] * 1e15:.2f} fF (mean input-pin gate capacitance of the library's cells: "
        f"W x L of the gates in the cells' SPICE netlists x eps_ox / toxe, toxe = {m['gate_oxide_thickness_m'] * 1e9:.3f} nm "
        f"from the sky130 nFET model): {m['energy_per_cell_toggle_j'] * 1e15:.2f} fJ. Wires and overlap capacitance are "
        "not modeled (an underestimate).",
        f"* Clock: {m['flip_flop_clock_capacitance_f'] * 1e15:.2f} fF per flip-flop (CLK pin and internal clock nets of "
        f"dfxtp_1 from its SPICE netlist), charged every cycle: {m['energy_per_flip_flop_cycle_j'] * 1e15:.2f} fJ per "
        "flip-flop per cycle; no clock gating is credited, no clock tree.",
        f"* SRAM: {m['sram']['name']} ({m['sram']['source']}): {m['sram']['width_um']} x {m['sram']['height_um']} um "
        f"per {m['sram']['bits']} bits = {m['sram_area_per_bit_um2']:.2f} um^2 per bit, {m['sram']['read_pj_per_bit']} pJ "
        "per bit read (writes costed the same). Accesses follow the RTL's memory-port enables (spike: one weight row "
        "per event, an activation row per spike vector; dense: one weight "
        "row per input, an activation row per chunk; all: one parameter row per tile). The flip-flop estimate of "
        f"memory area (bits x dfxtp_1, {report['library']['flip_flop_area_um2']} um^2) is kept in ppa.json.",
        "* Operation count at 45 nm (Horowitz, ISSCC 2014): " + ", ".join(f"{k} {v:.3g} pJ" for k, v in m["opcount_45nm_pj"].items())
        + ". Spike core: one INT8 add per event per PE; INT8 core: one INT8 MAC per input per PE; FP16 core: one FP16 "
        "MAC per input per PE (its FP32 accumulation would cost more: FP16 multiply 1.1 + FP32 add 0.9 pJ); one 32-bit "
        "multiply per output (requantizer); one weight-row read per event or MAC.",
        "",
    ]
    return "\n".join(lines)


def _plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = report["cores"]
    written = []
    for key, unit, scale, name in (("area_by_block_um2", "sky130 logic area (mm^2)", 1e-6, "ppa_area.png"),
                                   ("energy_by_block", "energy per token (nJ, estimate)", 1e9, "ppa_energy.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        blocks = sorted({b for c in cores.values() for b in c[key] if b != "total"})
        bottom = [0.0] * len(cores)
        for block in blocks:
            values = []
            for c in cores.values():
                v = c[key].get(block, 0)
                v = v["total_j"] / c["tokens"] if isinstance(v, dict) else v
                values.append(v * scale)
            ax.bar(list(cores), values, bottom=bottom, label=block)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel(unit)
        ax.legend()
        ax.set_title(unit.split(" (")[0] + " by block")
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)
    return written


def main(argv=None) -> int:
    from spikemllm.sim.core.cases import WORKLOADS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("build/reports"))
    parser.add_argument("--build", type=Path, default=Path("build/ppa"), help="folder for synthesis and traced simulation")
    parser.add_argument("--clock-mhz", type=float, default=500.0, help="common clock for tokens/s and power")
    parser.add_argument("--jobs", type=int, default=2, help="tool runs in parallel")
    parser.add_argument("--workload", choices=WORKLOADS, default=DEFAULT_WORKLOAD,
                        help=f"real layer the cores run (default: {DEFAULT_WORKLOAD})")
    parser.add_argument("--from-raw", action="store_true",
                        help="rebuild the report from the measurements of the last run (BUILD/raw_<config>.json)")
    args = parser.parse_args(argv)
    if args.clock_mhz <= 0:
        parser.error(f"--clock-mhz must be positive, not {args.clock_mhz!r}")
    config = config_from_args(parser, args)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    print("synthesis (generic, sky130, iCE40, ECP5 + nextpnr) and traced simulation of spike, int8, fp16 ...",
          flush=True)
    raw_file = args.build / f"raw_{config.name}_{args.workload}.json"
    if args.from_raw:
        raw = json.loads(raw_file.read_text())
        for name, r in raw.items():  # the statistics files stay: re-read them with the current code
            folder = args.build / "synth" / config.name / name / "asic"
            r["asic"] = asic_results(folder, BLOCKS[CORES[CoreKind(name)]].module, r["asic"]["memories"], r["asic"]["seconds"])
    else:
        raw = measure(config, args.build, workload=args.workload, jobs=args.jobs, log=lambda m: print(m, flush=True))
        args.build.mkdir(parents=True, exist_ok=True)
        raw_file.write_text(json.dumps(raw, indent=1) + "\n")
    report = summarize(config, raw, clock_hz=args.clock_mhz * 1e6)
    run = raw["spike"]["run"]
    report["workload"] = {"name": args.workload, "layer": run["layer"], "tokens": run["tokens"], "tv": run["timesteps"]["vision"],
                          "tt": run["timesteps"]["text"], "shape": f"{run['in_features']} -> {run['out_features']}"}
    report["decomposition"] = decomposition(config, args.workload)
    report["seconds"] = round(time.monotonic() - start, 1)
    (args.out / "ppa.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ppa.md").write_text(markdown(report))
    plots = _plots(report, args.out)
    for name, c in report["cores"].items():
        print(f"{name:>5}: area {c['area_um2']:,.0f} um^2 (logic {c['logic_area_um2']:,.0f}), "
              f"{c['cycles']} cycles, {c['tokens_per_s']:,.0f} tokens/s, {c['energy_per_token_j'] * 1e9:.2f} nJ/token, "
              f"Fmax {c['fmax_mhz']} MHz")
    for base, entry in report["ratios"].items():
        print(f"{base} (D = {entry['dense_inputs']}): throughput/area {entry['throughput_per_area_with_sram']:.2f}x "
              f"(logic only {entry['throughput_per_area_logic_only']:.2f}x), energy/token "
              f"{entry['energy_per_token_with_sram']:.2f}x (logic only {entry['logic_energy_per_token']:.2f}x)")
    print(f"spike event-slot utilization {report['checks']['event_slot_utilization']['value']:.3f}")
    print(f"wrote {args.out / 'ppa.json'}, ppa.md, {', '.join(p.name for p in plots)} in {report['seconds']:.0f} s")
    ok = all(c["bit_exact"] and c["cycle_exact"] for c in report["cores"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
