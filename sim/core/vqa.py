"""cocotb testbench: held-out shapes-VQA questions answered by the Qwen2-VL with every linear
layer executed by the SpikeCore RTL (Verilator), through the firmware driver.

One simulation, one test. The testbench resets the core, identifies it through the driver,
programs the timestep table from the schedule file (``SPIKEMLLM_SCHEDULE``) and builds the
integer model of the checkpoint (:func:`~.model_run.load_model_run`). For each question:

1. the golden integer path answers it (:class:`~.model_run.GoldenCore`), in the
   simulator's thread while simulated time stands still;
2. the same forward pass runs in a thread started with cocotb's ``bridge``; each linear
   layer call hands its integers to an :class:`~.model_run.RtlCore`, whose ``execute``
   is a coroutine turned blocking with cocotb's ``resume``: it loads the compiled
   program through the driver (weight, bias and requantizer streams, shape registers),
   streams the tokens in, collects the output beats and reads the counters, while the
   clock runs. The forward pass continues on the host from the integers the RTL
   returned;
3. :func:`~.model_run.compare_question` checks the RTL path against the golden one.

Settings come from ``SPIKEMLLM_EVAL_RTL``, a JSON object: ``checkpoint`` (path),
``questions`` and ``first`` (held-out questions ``first ..``), ``calibration_scenes``
(default :data:`~.model_run.CALIBRATION_SCENES`, as ``make eval``), ``clip`` (default
:data:`~.model_run.DEFAULT_CLIP`) and optionally ``corrupt``
(``{"run": k, "beat": b, "lane": l}``: add one to that output value of the ``k``-th run
of the simulation as it comes back through the backend, so a test can check that the
comparison catches it). Each question's record is appended as one JSON line to
``SPIKEMLLM_RESULTS`` when it is done; a mismatch appends ``{"question": n, "error":
message}`` and fails the test.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import torch
from cocotb.task import bridge, resume
from cocotb.utils import get_sim_time
from spikemllm.firmware.compiler import load_timestep_table
from spikemllm.firmware.driver import SpikeCoreDriver
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.hw.blocks import block_component
from spikemllm.sim.backends.cocotb_sim import CLOCK_PERIOD_NS, CocotbBackend, reset, start_clock
from spikemllm.sim.streams import stream_layouts

from spikemllm.config import AcceleratorConfig

from .model_run import CALIBRATION_SCENES, DEFAULT_CLIP, CoreMismatch, GoldenCore, RtlCore, compare_question, heldout_questions, load_model_run

__all__ = ["CorruptOutput", "question_record", "vqa_questions_on_the_core"]


class CorruptOutput:
    """A backend that adds one to output value ``lane`` of beat ``beat`` of the ``run``-th
    run (0-based, counting transfers that receive output beats); otherwise ``backend``."""

    def __init__(self, backend, *, run: int, beat: int, lane: int):
        self.backend, self.run, self.beat, self.lane = backend, run, beat, lane
        self.runs = 0

    async def write(self, word: int, value: int) -> None:
        await self.backend.write(word, value)

    async def read(self, word: int) -> int:
        return await self.backend.read(word)

    async def transfer(self, transfers, *, max_cycles: int = 1_000_000):
        received, cycles = await self.backend.transfer(transfers, max_cycles=max_cycles)
        if "o" in received:
            if self.runs == self.run:
                values = received["o"][self.beat]["values"]
                values[self.lane] += 1
            self.runs += 1
        return received, cycles


def question_record(index, sample, run, rtl, golden, float_answer: str) -> dict:
    """The report entry of one question (:mod:`spikemllm.flow.eval_rtl`)."""
    runs = rtl.runs
    stages = {}
    for r in runs:
        stage = run.schedule.stages[r.unit]
        stages.setdefault(stage, {"runs": 0, "cycles": 0, "events": 0})
        stages[stage]["runs"] += 1
        stages[stage]["cycles"] += r.cycles
        stages[stage]["events"] += r.events
    return {
        "question": index,
        "kind": sample.kind,
        "text": " ".join(sample.question),
        "truth": sample.answer,
        "float_answer": float_answer,
        "golden_answer": golden.word,
        "rtl_answer": rtl.word,
        "correct": rtl.word == sample.answer,
        "answer_match": rtl.answer == golden.answer,
        "outputs_match": all(r.q.equal(g.q) and r.outputs.equal(g.outputs) for r, g in zip(runs, golden.runs)),
        "cycles_match": all((r.cycles, r.events) == (g.model_cycles, g.model_events) for r, g in zip(runs, golden.runs)),
        "layer_runs": len(runs),
        "cycles": sum(r.cycles for r in runs),
        "model_cycles": sum(g.model_cycles for g in golden.runs),
        "events": sum(r.events for r in runs),
        "clock_cycles": sum(r.clock_cycles for r in runs),
        "weight_rows": sum(r.weight_rows for r in runs),
        "by_stage": stages,
        "wall_seconds": round(rtl.seconds, 2),
        "golden_seconds": round(golden.seconds, 2),
        "runs": [r.summary() for r in runs],
    }


def _settings() -> dict:
    settings = json.loads(os.environ.get("SPIKEMLLM_EVAL_RTL") or "{}")
    known = {"checkpoint", "questions", "first", "calibration_scenes", "clip", "corrupt"}
    if not isinstance(settings, dict) or set(settings) - known or "checkpoint" not in settings:
        raise ValueError(f"SPIKEMLLM_EVAL_RTL must be a JSON object with 'checkpoint' and keys from {sorted(known)}, "
                         f"not {settings!r}")
    return {"questions": 1, "first": 0, "calibration_scenes": CALIBRATION_SCENES, "clip": DEFAULT_CLIP, "corrupt": None,
            **settings}


@cocotb.test()
async def vqa_questions_on_the_core(dut):
    """Held-out questions answered through the RTL: answers, every layer's integers and every
    run's counters equal to the golden integer path and the cycle model."""
    settings = _settings()
    # The layers' tensors are small: torch's intra-op threads only compete with the simulator
    # (and, on a busy machine, make every op wait for a second core).
    torch.set_num_threads(1)
    config = AcceleratorConfig.from_dict(json.loads(Path(os.environ["SPIKEMLLM_DESCRIPTION"]).read_text()))
    schedule_file = Path(os.environ["SPIKEMLLM_SCHEDULE"])
    results = Path(os.environ["SPIKEMLLM_RESULTS"])
    run = load_model_run(Path(settings["checkpoint"]), Schedule.load(schedule_file), config,
                         calibration_scenes=settings["calibration_scenes"], clip=settings["clip"])
    questions = heldout_questions(settings["questions"], settings["first"])

    start_clock(dut)
    dut.bus__w_stb.value = 0
    dut.bus__r_stb.value = 0
    await reset(dut, ["i", "weights", "bias", "params"], ["o"])
    backend = CocotbBackend(dut, stream_layouts(block_component("core", config)))
    if settings["corrupt"]:
        backend = CorruptOutput(backend, **settings["corrupt"])
    driver = SpikeCoreDriver(backend, config)
    await driver.identify()
    table = load_timestep_table(config, schedule_file)
    assert table == run.table, "the schedule file's table differs from the host's schedule"
    await driver.set_timestep_table(table)

    period = CLOCK_PERIOD_NS * 1000

    async def execute(program, beats, tokens):
        begin = get_sim_time("ps")
        await driver.load_layer(program)
        result = await driver.run(beats, tokens=tokens, out_tiles=program.out_tiles)
        return result, round((get_sim_time("ps") - begin) / period)

    core = RtlCore(run, resume(execute))
    log = cocotb.log
    with results.open("a") as out:
        for n, sample in enumerate(questions):
            index = settings["first"] + n
            start = time.monotonic()
            golden = run.answer(index, sample, GoldenCore(run))
            try:
                rtl = await bridge(run.answer)(index, sample, core)
                compare_question(index, rtl, golden, core)
            except CoreMismatch as mismatch:
                out.write(json.dumps({"question": index, "error": str(mismatch)}) + "\n")
                out.flush()
                raise
            record = question_record(index, sample, run, rtl, golden, run.float_answer_word(sample))
            record["total_seconds"] = round(time.monotonic() - start, 2)
            out.write(json.dumps(record) + "\n")
            out.flush()
            log.info("question %d: %s -> RTL %s, golden %s (truth %s); %d cycles, %d events, %.1f s", index,
                     record["text"], record["rtl_answer"], record["golden_answer"], record["truth"], record["cycles"],
                     record["events"], record["wall_seconds"])
