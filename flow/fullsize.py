"""Full-size energy per token and power (estimates), next to the throughput projections,
with the paper's figures beside ours.

``python -m spikemllm.flow.fullsize --ppa build/reports/ppa.json --out build/reports``
writes ``fullsize.json``, ``fullsize.md`` and ``fullsize_energy.png``; ``make synth`` runs it
at its end, ``make fullsize`` on an existing ``ppa.json``.

**Unit energies** (:func:`unit_energies`), per core, from what ``make synth`` measured on
the synthesized cores running the real layer (``ppa.json``: each block's logic + clock
energy with the clock-gating credit, the run's events or inputs, cycles, output tiles, and
the memories' shapes and the SRAM model's per-bit energies):

* ``operation_j``: the PE array's (spike) or MAC array's (dense) energy over the run's
  accumulates or multiply-accumulates (events or inputs x ``pes``): one weight added into
  one accumulator, or one multiply-accumulate;
* ``event_j`` (spike core): the compactor's energy over the run's events;
* ``output_j``: the requantizer's energy over the outputs it produced (tiles x ``pes``);
* ``cycle_j``: everything else (the shell: registers, sequencer, token loader, the neuron
  stage or the dense feeder, performance counters) over the run's cycles;
* SRAM: bits per weight, per activation lane and of tile parameters per output from the
  measured memories' widths; read and write energy per bit from the SRAM model;
* ``leakage_w``: a core's static power, when ``ppa.json`` gives one (``leakage_w`` of the
  core, or of its ``gate_level`` entry); otherwise leakage is not included.

**Full size** (:func:`project_energy`): the counts of
:func:`spikemllm.golden.timing.projection.phase_work` (the layer shapes, phases and
firing rates of the throughput projection) times the unit energies; the per-cycle energy
is paid for the compute cycles only (a core waiting for weights is assumed clock-gated),
leakage over the phase's whole time. With DRAM: every weight bit the phase streams
(once per phase: each weight crosses from DRAM once per prefill and once per decoded
token) costs the DRAM energy per bit and one SRAM write. Power is energy over the
phase's time, the longer of compute and weight traffic (:func:`.projection.bound`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from spikemllm.golden.timing.projection import CORES, MODELS, ProjectionSetup, bound, phase_work

__all__ = ["DRAM", "DramSpec", "PAPER", "READINGS", "unit_energies", "energy_of", "project_energy", "paper_ratios",
           "report", "markdown", "main"]


@dataclass(frozen=True)
class DramSpec:
    """Energy of moving one bit out of an off-chip memory, and where the figure comes from."""

    name: str
    pj_per_bit: float
    source: str


DRAM = {
    "hbm2": DramSpec("HBM2", 3.9, "O'Connor et al., \"Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth "
                                  "Systems\", MICRO 2017: about 3.9 pJ per bit for HBM2 (row activation, on-die data "
                                  "movement and I/O), the DRAM their FGDRAM halves"),
    "ddr3": DramSpec("DDR3", 1.3e3 / 64, "Horowitz, \"Computing's energy problem\", ISSCC 2014: 1.3-2.6 nJ per 64-bit "
                                         "DRAM access; the lower end, 20.3 pJ per bit"),
}
"""Off-chip memories the projection can charge for weight traffic (``--dram``)."""

PAPER = {
    "accelerator": {"label": "SpikeMLLM RTL accelerator (28 nm; synthesis, SRAM/HBM models, cycle-level simulation)",
                    "tokens_per_s": 393.7, "power_w": 7.13},
    "gpu": {"label": "A800 GPU, FP16, batch 1", "tokens_per_s": 43.5, "power_w": 184.0},
}
"""The paper's batch-1 decode figures: its accelerator against an FP16 GPU."""

READINGS = {"timesteps 3/4": (3, 4), "bits 3/4 (timesteps 2/3)": (2, 3)}
"""The two readings of ``Tv/Tt = 3/4`` (as in ``make perf``)."""

_DATAPATH = {"spike": "pe_array", "int8": "mac_array", "fp16": "mac_array"}


def _need(mapping: dict, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise KeyError(f"ppa.json lacks {where}{key!r}")
    return mapping[key]


def _memory_width(memories: dict, prefix: str, where: str) -> int:
    widths = [m["width"] for name, m in memories.items() if name.startswith(prefix)]
    if not widths:
        raise KeyError(f"ppa.json lacks a memory named {prefix}* in {where}")
    if len(set(widths)) != 1:
        raise ValueError(f"{where}: memories {prefix}* differ in width: {widths}")
    return widths[0]


def unit_energies(ppa: dict) -> dict:
    """Per core of ``ppa`` (a ``ppa.json`` of ``make synth``): the unit energies of the
    module docstring in J, the bits behind the SRAM terms, and the measured core's size.
    Raises ``KeyError`` naming the first figure ``ppa`` lacks."""
    config = _need(ppa, "config", "")
    sram = _need(ppa, "sram_model", "")
    read_j = _need(sram, "read_pj_per_bit", "sram_model.") * 1e-12
    write_j = _need(sram, "write_pj_per_bit", "sram_model.") * 1e-12
    pes, lanes = _need(config, "pes", "config."), _need(config, "lanes", "config.")
    units = {}
    for kind in CORES:
        c = _need(_need(ppa, "cores", ""), kind, "cores.")
        where = f"cores.{kind}."
        blocks = {b: e for b, e in _need(c, "energy_by_block", where).items() if b != "total"}
        work, cycles = _need(c, "events", where), _need(c, "cycles", where)
        outputs = _need(c, "tiles_run", where) * pes
        if work <= 0 or cycles <= 0 or outputs <= 0:
            raise ValueError(f"{where}: events, cycles and tiles_run must be positive, not {work}, {cycles}, {outputs // pes}")

        def block_j(name, blocks=blocks, where=where):
            return _need(_need(blocks, name, f"{where}energy_by_block."), "total_j", f"{where}energy_by_block.{name}.")

        datapath = _DATAPATH[kind]
        front = ("compactor",) if kind == "spike" else ()
        shell = sorted(set(blocks) - {datapath, "requantizer", *front})
        memories = _need(c, "memories", where)
        leakage = c.get("leakage_w", (c.get("gate_level") or {}).get("leakage_w"))
        units[kind] = {
            "operation": "accumulate (one weight added into one accumulator)" if kind == "spike" else
                         f"{kind.upper()} multiply-accumulate",
            "operation_j": block_j(datapath) / (work * pes),
            "event_j": sum(block_j(b) for b in front) / work,
            "output_j": block_j("requantizer") / outputs,
            "cycle_j": sum(block_j(b) for b in shell) / cycles,
            "cycle_blocks": shell,
            "leakage_w": leakage,
            "weight_bits": _memory_width(memories, "weight_memory", where + "memories") / pes,
            "activation_bits_per_lane": _memory_width(memories, "activation_memory", where + "memories") / lanes,
            "parameter_bits_per_output": (_memory_width(memories, "params_memory", where + "memories")
                                          + _memory_width(memories, "bias_memory", where + "memories")) / pes,
            "sram_read_j_per_bit": read_j,
            "sram_write_j_per_bit": write_j,
            "measured": {"pes": pes, "lanes": lanes, "work_per_cycle": c.get("work_per_cycle"), "work": work,
                         "cycles": cycles, "tokens": c.get("tokens"), "energy_per_token_j": c.get("energy_per_token_j")},
        }
    return units


def energy_of(work: dict, unit: dict, setup: ProjectionSetup, dram: DramSpec) -> dict:
    """Energy in J of one phase's ``work`` (a phase of :func:`phase_work`) with a core's
    ``unit`` energies (:func:`unit_energies`) on ``setup``, by part; its time and power
    with and without DRAM. ``weight_bits`` of ``work`` must be in the core's weight width."""
    pes, lanes = setup.pes, setup.lanes
    parts = {
        "datapath": work["operations"] * unit["operation_j"],
        "compactor": work["work"] * unit["event_j"],
        "requantizer": work["outputs"] * unit["output_j"],
        "shell": work["cycles"] * setup.cores * unit["cycle_j"],
        "sram_weights": work["weight_row_reads"] * pes * unit["weight_bits"] * unit["sram_read_j_per_bit"],
        "sram_activations": lanes * unit["activation_bits_per_lane"] * (
            work["activation_row_reads"] * unit["sram_read_j_per_bit"]
            + work["activation_row_writes"] * unit["sram_write_j_per_bit"]),
        "sram_parameters": work["tiles"] * pes * unit["parameter_bits_per_output"] * unit["sram_read_j_per_bit"],
    }
    timing = bound(work["tokens"], work["cycles"], work["weight_bits"] / 8, setup)
    time_s = work["tokens"] / timing["tokens_per_s"]
    leakage = unit["leakage_w"]
    parts["leakage"] = leakage * setup.cores * time_s if leakage is not None else 0.0
    core_j = sum(parts.values())
    dram_parts = {"dram": work["weight_bits"] * dram.pj_per_bit * 1e-12,
                  "sram_weight_writes": work["weight_bits"] * unit["sram_write_j_per_bit"]}
    total_j = core_j + sum(dram_parts.values())
    tokens = work["tokens"]
    return {
        "tokens": tokens, "time_s": time_s, "bound": timing["bound"], "tokens_per_s": timing["tokens_per_s"],
        "cycles_per_core": work["cycles"], "weight_bits": work["weight_bits"],
        "parts_j": {**parts, **dram_parts},
        "leakage_included": leakage is not None,
        "energy_per_token_j": {"without_dram": core_j / tokens, "with_dram": total_j / tokens},
        "power_w": {"without_dram": core_j / time_s, "with_dram": total_j / time_s},
    }


def project_energy(model: str, units: dict, setup: ProjectionSetup, dram: DramSpec, *, tv: int = 3, tt: int = 4,
                   dense_inputs: int | None = None, weight_bits: int | None = None, work=None) -> dict:
    """Energy per token, power and tokens/s of ``model`` on ``setup.cores`` cores of each
    kind of ``units``, prefill and batch-1 decode.

    Every core gets the same ``setup`` (cores, lanes, PEs, clock, bandwidth); the dense
    cores take ``dense_inputs`` inputs per cycle (default: ``setup.events_per_cycle``,
    the spike core's width) and stream their own weight width (16 bits for FP16).
    ``weight_bits`` replaces the measured weight width of the integer cores (spike, INT8)
    in the weight traffic and the weight-row reads; their measured energy per operation
    stays. ``work``: ``kind -> phase_work(...)`` to use instead of computing it (for tests)."""
    if weight_bits is not None and (not isinstance(weight_bits, int) or not 1 <= weight_bits <= 16):
        raise ValueError(f"weight_bits must be an int in [1, 16], not {weight_bits!r}")
    D = setup.events_per_cycle if dense_inputs is None else dense_inputs
    out = {}
    for kind, unit in units.items():
        if weight_bits is not None and kind != "fp16":
            unit = {**unit, "weight_bits": weight_bits}
        core_setup = dataclasses.replace(setup, weight_bits=round(unit["weight_bits"]))
        if work is not None:
            w = work[kind]
        else:
            w = phase_work(model, core_setup, tv=tv, tt=tt, core=kind, dense_inputs=None if kind == "spike" else D)
        out[kind] = {"setup": asdict(core_setup), "dense_inputs": None if kind == "spike" else D,
                     **{phase: energy_of(w[phase], unit, core_setup, dram) for phase in ("prefill", "decode")}}
    return out


def paper_ratios(ours: dict) -> dict:
    """Our batch-1 decode (``energy_of`` of a core's decode phase) against the paper's
    figures: throughput ours over theirs, power and energy per token theirs over ours,
    with and without DRAM."""
    out = {}
    for name, p in PAPER.items():
        e_token = p["power_w"] / p["tokens_per_s"]
        out[name] = {
            "tokens_per_s": ours["tokens_per_s"] / p["tokens_per_s"],
            **{f"power_{k}": p["power_w"] / v for k, v in ours["power_w"].items()},
            **{f"energy_per_token_{k}": e_token / v for k, v in ours["energy_per_token_j"].items()},
        }
    return out


def _paper_figures() -> dict:
    acc, gpu = PAPER["accelerator"], PAPER["gpu"]
    return {
        **PAPER,
        "throughput_ratio": acc["tokens_per_s"] / gpu["tokens_per_s"],
        "power_ratio": gpu["power_w"] / acc["power_w"],
        "accelerator_energy_per_token_j": acc["power_w"] / acc["tokens_per_s"],
        "gpu_energy_per_token_j": gpu["power_w"] / gpu["tokens_per_s"],
        "energy_per_token_ratio": (gpu["power_w"] / gpu["tokens_per_s"]) / (acc["power_w"] / acc["tokens_per_s"]),
    }


def report(ppa: dict, setup: ProjectionSetup, dram: DramSpec, *, models=tuple(MODELS), readings=READINGS,
           dense_inputs: int | None = None, weight_bits: int | None = None, ppa_file: str = "") -> dict:
    """The whole report: unit energies, every model and reading, the comparisons."""
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known: {sorted(MODELS)}")
    units = unit_energies(ppa)
    measured_D = ppa["cores"]["int8"].get("dense_inputs")
    measured_E = ppa["config"].get("events_per_cycle")
    projections = []
    for model in models:
        for reading, (tv, tt) in readings.items():
            p = project_energy(model, units, setup, dram, tv=tv, tt=tt, dense_inputs=dense_inputs,
                               weight_bits=weight_bits)
            spike = p["spike"]["decode"]
            rate = PAPER["accelerator"]["tokens_per_s"]
            entry = {"model": model, "reading": reading, "tv": tv, "tt": tt, "cores": p,
                     "paper": paper_ratios(spike), "spike_vs_dense": {},
                     # what the paper's decode rate takes in weight traffic on our memory system
                     "at_paper_rate": {"tokens_per_s": rate, "weight_bits_per_token": spike["weight_bits"],
                                       "bandwidth_bytes_per_s": spike["weight_bits"] / 8 * rate,
                                       "dram_power_w": spike["weight_bits"] * dram.pj_per_bit * 1e-12 * rate}}
            for base in ("int8", "fp16"):
                entry["spike_vs_dense"][base] = {
                    phase: {
                        "tokens_per_s": p["spike"][phase]["tokens_per_s"] / p[base][phase]["tokens_per_s"],
                        **{f"power_{k}": p[base][phase]["power_w"][k] / p["spike"][phase]["power_w"][k]
                           for k in ("without_dram", "with_dram")},
                        **{f"energy_per_token_{k}": p[base][phase]["energy_per_token_j"][k]
                           / p["spike"][phase]["energy_per_token_j"][k] for k in ("without_dram", "with_dram")},
                    } for phase in ("prefill", "decode")}
            projections.append(entry)
    return {
        "label": "estimate: unit energies measured by make synth on the synthesized sky130 cores (RTL activity), "
                 "scaled to full-size models by the projection's work counts; not a simulation of a full-size chip",
        "ppa_file": ppa_file,
        "measured_config": ppa["config"],
        "measured_workload": ppa.get("workload"),
        "setup": asdict(setup),
        "dense_inputs": setup.events_per_cycle if dense_inputs is None else dense_inputs,
        "weight_bits": {k: (weight_bits if weight_bits is not None and k != "fp16" else u["weight_bits"])
                        for k, u in units.items()},
        "measured_dense_inputs": measured_D, "measured_events_per_cycle": measured_E,
        "dram": asdict(dram),
        "units": units,
        "paper": _paper_figures(),
        "projections": projections,
    }


# -- the report's pages -------------------------------------------------------------------------


def _nj(j: float) -> str:
    return f"{j * 1e3:,.1f} mJ" if j >= 1e-3 else f"{j * 1e6:,.1f} uJ"


def _w(w: float) -> str:
    return f"{w:,.2f} W" if w >= 0.1 else f"{w * 1e3:,.1f} mW"


def markdown(r: dict) -> str:
    """The report as a Markdown page."""
    s, d, paper = r["setup"], r["dram"], r["paper"]
    mc = r["measured_config"]
    lines = [
        "# Full-size energy per token and power (estimates)",
        "",
        f"Generated by `python -m spikemllm.flow.fullsize` from `{r['ppa_file']}`. {r['label'][0].upper()}{r['label'][1:]}.",
        "",
        f"Measured cores: configuration `{mc.get('name')}` ({mc['lanes']} lanes, {mc['pes']} PEs, E = "
        f"{mc['events_per_cycle']}; dense cores at D = {r['measured_dense_inputs']}), sky130 (130 nm, 1.8 V), "
        f"on {(r.get('measured_workload') or {}).get('layer', 'the make synth workload')}.",
        "",
        f"Projected accelerator, the same for every core: {s['cores']} cores x {s['pes']} PEs, {s['lanes']} lanes, "
        f"spike core E = {s['events_per_cycle']} events/cycle, dense cores D = {r['dense_inputs']} inputs/cycle, "
        f"{s['clock_hz'] / 1e6:.0f} MHz, {s['bandwidth_bytes_per_s'] / 1e9:,.0f} GB/s weight bandwidth, "
        f"{d['name']} at {d['pj_per_bit']:.3g} pJ/bit ({d['source']}). Weights: "
        f"{r['weight_bits']['spike']:g}-bit (spike), {r['weight_bits']['int8']:g}-bit (INT8), "
        f"{r['weight_bits']['fp16']:g}-bit (FP16). "
        f"Prefill = one 448x448 image + {s['text_tokens']} text tokens; each weight crosses from DRAM once per phase "
        "(full on-chip reuse over the prompt's tokens). Linear layers only: attention's score and context products, "
        "the KV cache, norms and activations are not included.",
        "",
        "## Unit energies (from ppa.json)",
        "",
        "| core | per operation | operation | per event (compactor) | per output (requantizer) | per core-cycle (shell) "
        "| leakage | weight / activation bits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, u in r["units"].items():
        leak = _w(u["leakage_w"]) if u["leakage_w"] is not None else "not in ppa.json"
        lines.append(f"| {kind} | {u['operation_j'] * 1e12:.3f} pJ | {u['operation']} | {u['event_j'] * 1e12:.3f} pJ | "
                     f"{u['output_j'] * 1e12:.3f} pJ | {u['cycle_j'] * 1e12:.3f} pJ | {leak} | "
                     f"{u['weight_bits']:g} / {u['activation_bits_per_lane']:g} |")
    u = r["units"]["spike"]
    lines += ["", f"SRAM: {u['sram_read_j_per_bit'] * 1e12:.3f} pJ per bit read, {u['sram_write_j_per_bit'] * 1e12:.3f} "
              "pJ per bit written (the SRAM model of make synth).", ""]
    lines += [
        "## Energy per token and power",
        "",
        "| model | reading | phase | core | tokens/s | bound | energy/token without DRAM | with DRAM | "
        "power without DRAM | with DRAM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["projections"]:
        for phase in ("prefill", "decode"):
            for kind, c in p["cores"].items():
                e = c[phase]
                lines.append(f"| {p['model']} | {p['reading']} | {phase} | {kind} | {e['tokens_per_s']:,.1f} | "
                             f"{e['bound']} | {_nj(e['energy_per_token_j']['without_dram'])} | "
                             f"{_nj(e['energy_per_token_j']['with_dram'])} | {_w(e['power_w']['without_dram'])} | "
                             f"{_w(e['power_w']['with_dram'])} |")
    lines += [
        "",
        "## Against the paper's figures (batch-1 decode)",
        "",
        f"The paper: its accelerator {paper['accelerator']['tokens_per_s']} tokens/s at {paper['accelerator']['power_w']} W "
        f"({paper['accelerator_energy_per_token_j'] * 1e3:.1f} mJ/token), an {paper['gpu']['label']} "
        f"{paper['gpu']['tokens_per_s']} tokens/s at {paper['gpu']['power_w']:g} W "
        f"({paper['gpu_energy_per_token_j']:.2f} J/token): {paper['throughput_ratio']:.2f}x throughput, "
        f"{paper['power_ratio']:.1f}x power (184 / 7.13), {paper['energy_per_token_ratio']:.0f}x energy per token. "
        "Which model the figures are for is not given in the material the project has; each of ours is set beside them.",
        "",
        "Ratios: throughput ours over theirs; power and energy per token theirs over ours (above 1: ours lower).",
        "",
        "| model | reading | against | tokens/s | power, without DRAM | with DRAM | energy/token, without DRAM | with DRAM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in r["projections"]:
        for name, ratio in p["paper"].items():
            lines.append(f"| {p['model']} | {p['reading']} | {PAPER[name]['label'].split(' (')[0]} | "
                         f"{ratio['tokens_per_s']:.2f}x | {ratio['power_without_dram']:.1f}x | "
                         f"{ratio['power_with_dram']:.1f}x | {ratio['energy_per_token_without_dram']:.1f}x | "
                         f"{ratio['energy_per_token_with_dram']:.1f}x |")
        for base, phases in p["spike_vs_dense"].items():
            ratio = phases["decode"]
            lines.append(f"| {p['model']} | {p['reading']} | our dense {base.upper()} core, same setup | "
                         f"{ratio['tokens_per_s']:.2f}x | {ratio['power_without_dram']:.2f}x | "
                         f"{ratio['power_with_dram']:.2f}x | {ratio['energy_per_token_without_dram']:.2f}x | "
                         f"{ratio['energy_per_token_with_dram']:.2f}x |")
    lines += ["", "The paper's decode rate on our memory system: the weight traffic per token (spike core's weight "
              "width) times 393.7 tokens/s, and the DRAM power that traffic alone draws:", "",
              "| model | reading | weight bytes per token | bandwidth for 393.7 tokens/s | DRAM power at that rate |",
              "|---|---|---|---|---|"]
    seen = set()
    for p in r["projections"]:
        a = p["at_paper_rate"]
        if p["model"] in seen:
            continue
        seen.add(p["model"])
        lines.append(f"| {p['model']} | any | {a['weight_bits_per_token'] / 8e9:.2f} GB | "
                     f"{a['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s | {a['dram_power_w']:.1f} W |")
    lines += [
        "",
        "What is comparable: the tokens/s of batch-1 decode, which the weight bandwidth sets on both sides. What is "
        "not: the paper's accelerator is 28 nm at its own clock and memory system, ours is projected from sky130 "
        "(130 nm, 1.8 V) cells; the GPU's 184 W is a whole board's power, ours the cores (and DRAM where said) for the "
        "linear layers only. Every figure here is an estimate.",
        "",
    ]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> Path:
    """Energy per token by model and phase, spike vs INT8 vs FP16, with and without DRAM
    (the first reading), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    first = next(iter(READINGS)) if any(p["reading"] == next(iter(READINGS)) for p in r["projections"]) else \
        r["projections"][0]["reading"]
    entries = [p for p in r["projections"] if p["reading"] == first]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for ax, phase in zip(axes, ("prefill", "decode")):
        groups = [p["model"] for p in entries]
        width = 0.8 / (2 * len(CORES))
        for n, kind in enumerate(CORES):
            for m, dram in enumerate(("without_dram", "with_dram")):
                x = [g + (2 * n + m) * width for g in range(len(groups))]
                values = [p["cores"][kind][phase]["energy_per_token_j"][dram] * 1e3 for p in entries]
                ax.bar(x, values, width, label=f"{kind}, {'with' if m else 'without'} DRAM",
                       color=f"C{n}", alpha=1.0 if m else 0.55)
        ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
        ax.set_yscale("log")
        smallest = min(p["cores"][k][phase]["energy_per_token_j"]["without_dram"] for p in entries for k in CORES) * 1e3
        if smallest > 0:  # the axis starts at a power of ten below the smallest bar
            ax.set_ylim(bottom=10 ** math.floor(math.log10(smallest)))
        # plain tick labels: the default ones are mathtext, whose fonts a bare system may lack
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylabel("energy per token (mJ, estimate)")
        ax.set_title(f"{phase} ({first})")
    axes[1].axhline(r["paper"]["accelerator_energy_per_token_j"] * 1e3, color="black", linestyle="--", linewidth=0.8,
                    label="paper's accelerator")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(ppa_file: Path, out: Path, *, setup: ProjectionSetup = ProjectionSetup(), dram: str = "hbm2",
          models=tuple(MODELS), dense_inputs: int | None = None, weight_bits: int | None = None, log=print) -> dict:
    """Read ``ppa_file``, write ``fullsize.json``, ``fullsize.md`` and ``fullsize_energy.png``
    to ``out``; returns the report. Raises ``FileNotFoundError`` naming a missing
    ``ppa_file``, ``KeyError``/``ValueError`` for a bad one, an unknown DRAM or model."""
    ppa_file = Path(ppa_file)
    if not ppa_file.is_file():
        raise FileNotFoundError(f"{ppa_file} does not exist: run make synth first (it writes build/reports/ppa.json)")
    if dram not in DRAM:
        raise ValueError(f"unknown DRAM {dram!r}; known: {sorted(DRAM)}")
    try:
        ppa = json.loads(ppa_file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ppa_file} is not JSON: {exc}") from exc
    r = report(ppa, setup, DRAM[dram], models=models, dense_inputs=dense_inputs, weight_bits=weight_bits,
               ppa_file=str(ppa_file))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fullsize.json").write_text(json.dumps(r, indent=2) + "\n")
    (out / "fullsize.md").write_text(markdown(r))
    plot(r, out / "fullsize_energy.png")
    for p in r["projections"]:
        if p["reading"] != next(iter(READINGS)):
            continue
        d = {k: c["decode"] for k, c in p["cores"].items()}
        log(f"{p['model']} decode: " + ", ".join(
            f"{k} {e['tokens_per_s']:.1f} tok/s {e['energy_per_token_j']['without_dram'] * 1e3:.2f} / "
            f"{e['energy_per_token_j']['with_dram'] * 1e3:.1f} mJ/token" for k, e in d.items()))
    log(f"wrote {out / 'fullsize.json'}, fullsize.md, fullsize_energy.png")
    return r


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppa", type=Path, default=Path("build/reports/ppa.json"), help="ppa.json of make synth")
    parser.add_argument("--out", type=Path, default=Path("build/reports"))
    parser.add_argument("--model", action="append", help=f"model to project (repeatable; default all of {list(MODELS)})")
    parser.add_argument("--dram", default="hbm2", help=f"off-chip memory, one of {sorted(DRAM)} (default hbm2)")
    defaults = ProjectionSetup()
    parser.add_argument("--cores", type=int, default=defaults.cores)
    parser.add_argument("--pes", type=int, default=defaults.pes)
    parser.add_argument("--lanes", type=int, default=defaults.lanes)
    parser.add_argument("--events-per-cycle", type=int, default=defaults.events_per_cycle)
    parser.add_argument("--dense-inputs", type=int, default=None,
                        help="inputs per cycle of the dense cores (default: the spike core's events per cycle)")
    parser.add_argument("--weight-bits", type=int, default=None,
                        help="weight width of the spike and INT8 cores in the weight traffic and weight-row reads "
                             "(default: the measured cores' width; FP16 stays 16)")
    parser.add_argument("--clock-mhz", type=float, default=defaults.clock_hz / 1e6)
    parser.add_argument("--bandwidth-gbs", type=float, default=defaults.bandwidth_bytes_per_s / 1e9)
    args = parser.parse_args(argv)
    try:
        setup = ProjectionSetup(lanes=args.lanes, pes=args.pes, events_per_cycle=args.events_per_cycle, cores=args.cores,
                                clock_hz=args.clock_mhz * 1e6, bandwidth_bytes_per_s=args.bandwidth_gbs * 1e9)
        if args.dense_inputs is not None and args.dense_inputs < 1:
            raise ValueError(f"--dense-inputs must be at least 1, not {args.dense_inputs!r}")
        write(args.ppa, args.out, setup=setup, dram=args.dram, models=tuple(args.model or MODELS),
              dense_inputs=args.dense_inputs, weight_bits=args.weight_bits)
    except (OSError, KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
