"""``make perf``: run real converted layers on the RTL and project full-size models.

``python -m spikemllm.flow.perf [--config default] [--workload qwen2vl] [--workload minilm]
[--workload qwen2vl_mlp] [--schedule FILE] [--out build/reports]`` writes ``perf.json`` and
``perf.md``:

* the SpikeCore RTL (Verilator, through the firmware driver) running workloads of
  :mod:`spikemllm.sim.core.cases` (default: ``DEFAULT_WORKLOADS``, ``qwen2vl`` then
  ``minilm``): the shapes-VQA Qwen2-VL's layer-0 query projection over the real tokens of
  two held-out questions (image tokens vision, the rest text, as the model tags them),
  and MiniLM's pretrained FFN layer 0 over sentence tokens tagged in runs of vision and
  text; ``--workload qwen2vl_mlp`` adds the Qwen2-VL's layer-0 MLP down projection over
  the same tokens. For each:
  ``rtl_cycles``, ``model_cycles``, ``testbench_cycles``, ``bit_exact``, ``events``,
  ``event_slot_utilization`` (the utilization: filled event slots over event slots),
  ``weight_reads`` and ``weight_reads_per_token`` (the ``WEIGHT_READS`` counter; with
  ``--set bundle=B`` one read serves the events of ``B`` tokens at one input index),
  ``pe_utilization`` (cycles with any event, the favourable reading), spikes per token
  by modality and where the cycles go. The first workload's figures are also the
  report's top-level keys;
* projected tokens/s of Qwen2-VL-7B, InternVL2-8B and Qwen2-VL-72B for prefill and
  batch-1 decode, compute or bandwidth bound, for both readings of ``Tv/Tt = 3/4``
  (3 and 4 timesteps; or 3- and 4-bit activations, i.e. 2 and 3 timesteps).

The timestep table is programmed from a schedule file: ``--schedule FILE`` (one workload
only: the Qwen2-VL workload looks its layer unit up by name, MiniLM takes the first
layer), otherwise each workload's default, written to ``perf_schedule_<workload>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.timing.projection import MODELS, ProjectionSetup, project
from spikemllm.sim.core.cases import LAYER, QWEN2VL_WORKLOADS, WORKLOADS, case_schedule, qwen2vl_schedule, workload_case

from spikemllm.config import add_config_arguments, config_from_args

from .runner import build_block, run_block

__all__ = ["DEFAULT_WORKLOADS", "main", "markdown", "default_schedule"]

DEFAULT_WORKLOADS = ("qwen2vl", "minilm")
"""The workloads ``make perf`` runs without ``--workload``, the first heading the report."""
READINGS = {"timesteps 3/4": (3, 4), "bits 3/4 (timesteps 2/3)": (2, 3)}
TITLES = {"qwen2vl": "Qwen2-VL (shapes-VQA, trained here): real image and question tokens",
          "qwen2vl_mlp": "Qwen2-VL (shapes-VQA, trained here), MLP down projection: real image and question tokens",
          "minilm": "MiniLM (pretrained): sentence tokens tagged in runs of vision and text"}
HEADLINE_KEYS = ("workload", "rtl_cycles", "model_cycles", "testbench_cycles", "bit_exact", "events",
                 "weight_reads_per_token", "event_slot_utilization", "pe_utilization")


def default_schedule(workload: str) -> Schedule:
    """The schedule a workload runs at without ``--schedule``: vision 3, text 4 timesteps
    (for the Qwen2-VL workloads over every layer unit of the model, for MiniLM its one layer)."""
    if workload in QWEN2VL_WORKLOADS:
        return qwen2vl_schedule()
    return case_schedule(0, 3, 4, name=LAYER)


def _workload_lines(r: dict) -> list[str]:
    lines = [
        f"### {TITLES.get(r['workload'], r['workload'])}",
        "",
        f"{r['layer']}: {r['in_features']} -> {r['out_features']}, {r['tokens']} tokens "
        f"({r['tokens_by_modality']['vision']} vision at T = {r['timesteps']['vision']}, "
        f"{r['tokens_by_modality']['text']} text at T = {r['timesteps']['text']}), Verilator through the "
        f"firmware driver, timestep table from `{Path(r['schedule_file']).name}`.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| RTL cycles (CYCLES counter) | {r['rtl_cycles']} |",
        f"| model cycles | {r['model_cycles']} |",
        f"| testbench's own count of the run's clock cycles | {r['testbench_cycles']} |",
        f"| bit-exact | {r['bit_exact']} |",
        f"| spike events | {r['events']} |",
        f"| weight-row reads (WEIGHT_READS), per token; tokens per bundle | {r['weight_reads']}, "
        f"{r['weight_reads_per_token']:.1f}; B = {r['bundle']} |",
        f"| **utilization: filled event slots / (E x cycles)** | {r['event_slot_utilization']:.3f} |",
        f"| cycles with any event / cycles (favourable reading) | {r['pe_utilization']:.3f} |",
        f"| with random stalls: cycles, bit-exact | {r['stalled_run']['cycles']}, {r['stalled_run']['bit_exact']} |",
        "",
    ]
    if "by_modality" in r:
        lines += [
            "Spikes by modality (golden encoder; their sum times the tiles is the EVENTS counter):",
            "",
            "| modality | tokens | T | spikes per token | firing rate (spikes / (T x inputs)) |",
            "|---|---|---|---|---|",
        ]
        for label, m in r["by_modality"].items():
            lines.append(f"| {label} | {m['tokens']} | {m['timesteps']} | {m['spikes_per_token']:.1f} | "
                         f"{m['firing_rate']:.3f} |")
        lines.append("")
    lines += [
        "Where the cycles go:",
        "",
        "| cause | cycles | share |",
        "|---|---|---|",
    ]
    for cause, n in r["cycle_breakdown"].items():
        lines.append(f"| {cause.replace('_', ' ')} | {n} | {n / r['rtl_cycles']:.1%} |")
    return lines + [""]


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    s = report["projection_setup"]
    lines = [
        "# SpikeCore performance",
        "",
        f"Generated by `make perf` (configuration `{report['rtl']['config']}`). Measured: the RTL's counters and "
        "outputs under Verilator. Exact model: the cycle model's prediction, which the RTL must equal.",
        "",
        "## Real layers on the RTL",
        "",
    ]
    for r in report["workloads"].values():
        lines += _workload_lines(r)
    lines += [
        "## Projection for full-size models",
        "",
        f"Accelerator: {s['cores']} cores x {s['pes']} PEs, {s['lanes']} lanes, {s['events_per_cycle']} events/cycle, "
        f"{s['clock_hz'] / 1e6:.0f} MHz, {s['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s weight bandwidth, "
        f"{s['weight_bits']}-bit weights; prefill = one 448x448 image + {s['text_tokens']} text tokens. "
        "Cycles per layer come from the exact model's structure with firing rates measured on real activations; "
        "these are projections, not simulations.",
        "",
        "| model | reading | prefill tokens/s | bound | decode tokens/s | bound |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["projections"]:
        lines.append(
            f"| {p['model']} | {p['reading']} | {p['prefill']['tokens_per_s']:.1f} | {p['prefill']['bound']} | "
            f"{p['decode']['tokens_per_s']:.1f} | {p['decode']['bound']} |"
        )
    return "\n".join(lines) + "\n"


def _check_workloads(parser, config, workloads: list[str], path: Path | None) -> None:
    """Refuse a configuration or schedule file a workload cannot run before anything is built."""
    if path is not None and len(workloads) != 1:
        parser.error(f"--schedule applies to one workload; name it with --workload (given {workloads})")
    for workload in workloads:
        try:
            schedule = None if path is None else Schedule.load(path)
            workload_case(config, workload, schedule=schedule, tokens=1)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            where = f"--schedule {path}" if path is not None else f"--workload {workload}"
            parser.error(f"{where}: {exc}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--workload", action="append", choices=WORKLOADS,
                        help=f"real layer to run (repeatable; default: {', then '.join(DEFAULT_WORKLOADS)}); the "
                             "first one's figures head the report")
    parser.add_argument("--schedule", type=Path, default=None,
                        help="timestep schedule file programmed into the core (one workload only; default: "
                             "vision T = 3, text T = 4, written to OUT/perf_schedule_<workload>.json)")
    parser.add_argument("--out", type=Path, default=Path("build/reports"))
    parser.add_argument("--clock-mhz", type=float, default=500.0)
    parser.add_argument("--bandwidth-gbs", type=float, default=1000.0, help="weight bandwidth in GB/s")
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    workloads = list(dict.fromkeys(args.workload or DEFAULT_WORKLOADS))
    _check_workloads(parser, config, workloads, args.schedule)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    print(f"building the SpikeCore ({config.name}) with Verilator ...", flush=True)
    build = build_block(config, "core")
    runs = {}
    for workload in workloads:
        schedule = args.schedule
        if schedule is None:
            schedule = args.out / f"perf_schedule_{workload}.json"
            default_schedule(workload).save(schedule)
        print(f"running the {workload} workload through the firmware driver, timestep table from {schedule} ...",
              flush=True)
        rtl_file = args.out / f"perf_rtl_{workload}.json"
        run_block(build, results=rtl_file, schedule=schedule, case={"workload": workload})
        runs[workload] = json.loads(rtl_file.read_text())
    setup = ProjectionSetup(clock_hz=args.clock_mhz * 1e6, bandwidth_bytes_per_s=args.bandwidth_gbs * 1e9)
    projections = []
    for model in MODELS:
        for reading, (tv, tt) in READINGS.items():
            print(f"projecting {model}, {reading} ...", flush=True)
            projections.append({"reading": reading, **project(model, setup, tv=tv, tt=tt)})
    headline = runs[workloads[0]]
    report = {
        **{k: headline[k] for k in HEADLINE_KEYS},
        "rtl": headline,
        "workloads": runs,
        "projection_setup": asdict(setup),
        "projections": projections,
    }
    (args.out / "perf.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "perf.md").write_text(markdown(report))
    ok = True
    for workload, rtl in runs.items():
        print(
            f"{workload}: rtl_cycles {rtl['rtl_cycles']}, model_cycles {rtl['model_cycles']}, "
            f"testbench_cycles {rtl['testbench_cycles']}, bit_exact {rtl['bit_exact']}, events {rtl['events']}, "
            f"weight-row reads per token {rtl['weight_reads_per_token']:.1f} (B = {rtl['bundle']}), "
            f"utilization (filled event slots / (E x cycles)) {rtl['event_slot_utilization']:.3f}"
        )
        ok &= rtl["bit_exact"] and rtl["rtl_cycles"] == rtl["model_cycles"] == rtl["testbench_cycles"]
    print(f"wrote {args.out / 'perf.json'} and {args.out / 'perf.md'} in {time.monotonic() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
