"""``make eval-rtl``: held-out shapes-VQA questions answered with every linear layer on the SpikeCore RTL.

``python -m spikemllm.flow.eval_rtl [--questions 20] [--first 0] [--checkpoint FILE]
[--config wide] [--out build/reports]`` builds the SpikeCore for the configuration the
integer path is compiled for (``wide`` by default) with Verilator, writes the schedule
file (``Tv/Tt = 3/4`` timesteps on every layer unit, ``eval_rtl_schedule.json``) and runs
the testbench :mod:`spikemllm.sim.core.vqa` in one simulation: for every question, every
linear layer of the vision encoder, the projector, the language model and the LM head is
loaded into the core through the firmware driver and runs there, the forward pass
continuing on the host from the RTL's integers (:mod:`spikemllm.sim.core.model_run` says
what runs where). Per question it checks the answer, every layer's integers and every
run's ``CYCLES`` and ``EVENTS`` against the golden integer path and the cycle model, and
fails at the first difference with a message naming question, layer and token.

It prints one line per question as the simulation finishes it and writes
``eval_rtl.json`` and ``eval_rtl.md``: per question the answers (RTL, golden, float,
truth), the match flags, the simulated cycles of the answer (sum of the runs' ``CYCLES``),
events, clock cycles including program loads, wall time; and the totals. Exit status 1 on
a mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from pathlib import Path

from spikemllm.golden.convert.integer_model import CLIPS
from spikemllm.golden.convert.model import discover_layers
from spikemllm.golden.convert.schedule import uniform_schedule
from spikemllm.golden.vqa.model import default_checkpoint, load_checkpoint
from spikemllm.sim.core.model_run import CALIBRATION_SCENES, DEFAULT_CLIP

from spikemllm.config import PRESETS, AcceleratorConfig, add_config_arguments, config_from_args, describe_config

from .runner import BlockBuild, build_block, run_block

__all__ = ["VQA_MODULE", "LEVEL", "eval_rtl", "markdown", "main"]

VQA_MODULE = "spikemllm.sim.core.vqa"
LEVEL = (3, 4)
"""``Tv/Tt`` in timesteps of the schedule the RTL runs: the paper's ``3/4``."""


def _follow(path: Path, stop: threading.Event, progress) -> None:
    """Report each line appended to ``path`` until ``stop`` is set and nothing is left."""
    offset = 0
    while True:
        done = stop.is_set()
        if path.exists():
            with path.open() as f:
                f.seek(offset)
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break
                    offset += len(line.encode())
                    progress(json.loads(line))
        if done:
            return
        stop.wait(1.0)


def _progress_line(record: dict) -> str:
    if "error" in record:
        return f"question {record['question']}: MISMATCH: {record['error']}"
    ok = record["answer_match"] and record["outputs_match"] and record["cycles_match"]
    return (f"question {record['question']:3d}: {record['text']:<40s} RTL {record['rtl_answer']:<7s} "
            f"golden {record['golden_answer']:<7s} truth {record['truth']:<7s} {'identical' if ok else 'DIFFERENT'}; "
            f"{record['cycles']} cycles, {record['events']} events, {record['wall_seconds']:.1f} s")


def eval_rtl(checkpoint: Path, out: Path, *, questions: int = 20, first: int = 0,
             config: AcceleratorConfig = PRESETS["wide"], calibration_scenes: int = CALIBRATION_SCENES,
             clip: str = DEFAULT_CLIP, corrupt: dict | None = None, build: BlockBuild | None = None, progress=print) -> dict:
    """Run ``questions`` held-out questions from ``first`` on the RTL; write and return the report.

    ``calibration_scenes``: scenes the static scales are calibrated on (``make eval``'s
    128 by default; tests take fewer for a quicker set-up); ``clip``: the input-scale rule
    (``"mse"``, the one ``make eval`` chooses for the committed checkpoint, or ``"absmax"``). ``corrupt`` (tests):
    ``{"run": k, "beat": b, "lane": l}`` adds one to an output value of the ``k``-th core
    run on its way back (:class:`spikemllm.sim.core.vqa.CorruptOutput`). ``build``: the
    core's simulation build if already made (:func:`~.runner.build_block`). ``progress``
    receives one line per question. Raises ``ValueError`` for bad counts and
    :class:`AssertionError` with the mismatch's message when the RTL differs.
    """
    for name, value, low in (("questions", questions, 1), ("first", first, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    if clip not in CLIPS:
        raise ValueError(f"clip must be one of {CLIPS}, not {clip!r}")
    checkpoint = Path(checkpoint).resolve()
    start = time.monotonic()
    model, meta = load_checkpoint(checkpoint)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    schedule = uniform_schedule(discover_layers(model), vision=LEVEL[0], text=LEVEL[1])
    schedule_file = out / "eval_rtl_schedule.json"
    schedule.save(schedule_file)
    lines = out / "eval_rtl_questions.jsonl"
    lines.unlink(missing_ok=True)

    if build is None:
        progress(f"building the SpikeCore ({describe_config(config)}) with Verilator ...")
        build = build_block(config, "core")
    elif build.config != config or build.block != "core":
        raise ValueError(f"build is {build.block} for {build.config.name!r}, not the core for {config.name!r}")
    progress(f"running {questions} held-out questions from {first} on the RTL; the first one also calibrates the "
             f"integer model ({checkpoint.name}) ...")
    settings = {"checkpoint": str(checkpoint), "questions": questions, "first": first,
                "calibration_scenes": calibration_scenes, "clip": clip}
    if corrupt is not None:
        settings["corrupt"] = corrupt
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(lines, stop, lambda r: progress(_progress_line(r))), daemon=True)
    follower.start()
    failure = None
    simulation = time.monotonic()
    try:
        run_block(build, test_module=VQA_MODULE, results=lines, schedule=schedule_file,
                  extra_env={"SPIKEMLLM_EVAL_RTL": json.dumps(settings)})
    except AssertionError as exc:
        failure = exc
    finally:
        stop.set()
        follower.join()
    simulation = time.monotonic() - simulation
    records = [json.loads(line) for line in lines.read_text().splitlines()] if lines.exists() else []
    errors = [r for r in records if "error" in r]
    if failure is not None or errors:
        message = errors[0]["error"] if errors else str(failure)
        raise AssertionError(message)
    if len(records) != questions:
        raise AssertionError(f"the simulation reported {len(records)} of {questions} questions")

    def total(key):
        return sum(r[key] for r in records)

    n = len(records)
    report = {
        "generated_by": "make eval-rtl (python -m spikemllm.flow.eval_rtl)",
        "what": "held-out shapes-VQA questions answered by the Qwen2-VL's hardware-exact integer path with every "
                "linear layer executed by the SpikeCore RTL (Verilator) through the firmware driver; host float ops "
                "in between; compared with the golden integer path and the cycle model",
        "measured": "answers, integers and counters: measured on the RTL; wall times: measured on this machine",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "model": {k: meta[k] for k in ("size", "parameters") if k in meta},
        "config": describe_config(config),
        "simulator": build.simulator,
        "schedule": {"file": str(schedule_file), "vision": LEVEL[0], "text": LEVEL[1]},
        "calibration": {"scenes": calibration_scenes, "input_scales": clip},
        "questions": records,
        "totals": {
            "questions": n,
            "answers_identical": sum(r["answer_match"] for r in records),
            "outputs_identical": sum(r["outputs_match"] for r in records),
            "cycles_identical": sum(r["cycles_match"] for r in records),
            "rtl_correct": sum(r["correct"] for r in records),
            "float_correct": sum(r["float_answer"] == r["truth"] for r in records),
            "layer_runs": total("layer_runs"),
            "cycles": total("cycles"),
            "cycles_per_answer": round(total("cycles") / n, 1),
            "events": total("events"),
            "events_per_answer": round(total("events") / n, 1),
            "clock_cycles": total("clock_cycles"),
            "clock_cycles_per_answer": round(total("clock_cycles") / n, 1),
            "weight_rows_per_answer": round(total("weight_rows") / n, 1),
            "wall_seconds_per_question": round(total("wall_seconds") / n, 2),
            "golden_seconds_per_question": round(total("golden_seconds") / n, 2),
            "simulation_seconds": round(simulation, 1),
            "setup_seconds": round(simulation - total("total_seconds"), 1),
            "build_seconds": round(build.seconds, 1),
            "verilator_compiled": build.compiled,
            "seconds": round(time.monotonic() - start, 1),
        },
    }
    (out / "eval_rtl.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "eval_rtl.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    t = report["totals"]
    lines = [
        "# Shapes-VQA on the SpikeCore RTL (`make eval-rtl`)",
        "",
        f"{t['questions']} held-out questions; every linear layer (patch embedding, vision blocks, projector, language "
        f"model, LM head) executed by the SpikeCore RTL (`{report['config']}`, {report['simulator']}) through the "
        f"firmware driver, timestep table from `{Path(report['schedule']['file']).name}` (Tv/Tt = "
        f"{report['schedule']['vision']}/{report['schedule']['text']} timesteps); the host computes everything else "
        "in float from the RTL's integers. Measured: answers, integers and counters on the RTL; wall times on the "
        "machine that ran it.",
        "",
        f"* identical to the golden integer path: answers {t['answers_identical']}/{t['questions']}, every layer's "
        f"integers {t['outputs_identical']}/{t['questions']}, every run's CYCLES and EVENTS equal to the cycle model "
        f"{t['cycles_identical']}/{t['questions']}",
        f"* correct: {t['rtl_correct']}/{t['questions']} (float model: {t['float_correct']}/{t['questions']})",
        f"* per answer: {t['cycles_per_answer']:.0f} core cycles (sum of the runs' CYCLES), {t['events_per_answer']:.0f} "
        f"events, {t['clock_cycles_per_answer']:.0f} clock cycles including program loads "
        f"({t['weight_rows_per_answer']:.0f} weight rows), {t['layer_runs'] // t['questions']} core runs",
        f"* wall time per question: {t['wall_seconds_per_question']:.1f} s on the RTL path "
        f"(golden path {t['golden_seconds_per_question']:.2f} s); simulation {t['simulation_seconds']:.0f} s in all, "
        f"of which {t['setup_seconds']:.0f} s set-up (imports, calibration statistics, reset, timestep table; the first "
        "question's golden pass also builds the programs)",
        "",
        "| # | question | truth | float | golden | RTL | identical | cycles | events | clock cycles | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["questions"]:
        ok = r["answer_match"] and r["outputs_match"] and r["cycles_match"]
        lines.append(f"| {r['question']} | {r['text']} | {r['truth']} | {r['float_answer']} | {r['golden_answer']} | "
                     f"{r['rtl_answer']} | {'yes' if ok else 'NO'} | {r['cycles']} | {r['events']} | "
                     f"{r['clock_cycles']} | {r['wall_seconds']:.1f} |")
    first = report["questions"][0]
    lines += ["", f"Cycles and events by stage (question {first['question']}):", "",
              "| stage | core runs | cycles | events |", "|---|---|---|---|"]
    for stage, s in first["by_stage"].items():
        lines.append(f"| {stage.replace('_', ' ')} | {s['runs']} | {s['cycles']} | {s['events']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`: "))
    add_config_arguments(parser, default="wide")
    parser.add_argument("--questions", type=int, default=20, help="held-out questions (default: %(default)s)")
    parser.add_argument("--first", type=int, default=0, help="index of the first held-out question (default: 0)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained model (default: build/vqa/qwen2vl_shapes.pt if make train wrote it, else the "
                             "committed golden/vqa/qwen2vl_shapes.pt)")
    parser.add_argument("--clip", choices=CLIPS, default=DEFAULT_CLIP,
                        help="input-scale rule of the integer path (default: %(default)s, make eval's choice for the "
                             "committed checkpoint)")
    parser.add_argument("--out", type=Path, default=Path("build/reports"))
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    for name in ("questions", "first"):
        value = getattr(args, name)
        if value < (1 if name == "questions" else 0):
            parser.error(f"--{name} must be {'positive' if name == 'questions' else 'non-negative'}, not {value}")
    checkpoint = args.checkpoint or default_checkpoint()
    try:
        report = eval_rtl(checkpoint, args.out, questions=args.questions, first=args.first, config=config,
                          clip=args.clip, progress=lambda line: print(line, flush=True))
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    except AssertionError as exc:
        print(f"eval-rtl: {exc}", file=sys.stderr)
        return 1
    t = report["totals"]
    print(f"{t['questions']} questions: answers identical {t['answers_identical']}/{t['questions']}, layer integers "
          f"{t['outputs_identical']}, counters {t['cycles_identical']}; {t['cycles_per_answer']:.0f} cycles and "
          f"{t['wall_seconds_per_question']:.1f} s per question -> {args.out / 'eval_rtl.json'}, eval_rtl.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
