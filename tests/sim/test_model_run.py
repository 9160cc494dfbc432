"""The shapes-VQA model with its layers' integer steps on a core (:mod:`spikemllm.sim.core.model_run`),
without a simulator: the golden core changes nothing, a core that executes compiled programs
is checked run by run, and every kind of difference is named by question, layer and token."""

import dataclasses

import pytest
import torch
from spikemllm.firmware.compiler import expected_outputs
from spikemllm.firmware.driver import RunResult
from spikemllm.golden.convert.model import discover_layers
from spikemllm.golden.convert.schedule import uniform_schedule
from spikemllm.golden.timing.core_model import core_cycles
from spikemllm.golden.vqa.data import VOCAB, collate
from spikemllm.golden.vqa.model import COMMITTED_CHECKPOINT, answers, load_checkpoint
from spikemllm.sim.core.model_run import (
    CoreMismatch,
    GoldenCore,
    RtlCore,
    compare_question,
    heldout_questions,
    load_model_run,
)

from spikemllm.config import WIDE_CONFIG
from spikemllm.modality import Modality, timestep_index

QUESTION = 1


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The model's tensors are small: a second torch thread only waits for a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run():
    model, _ = load_checkpoint(COMMITTED_CHECKPOINT)
    return load_model_run(COMMITTED_CHECKPOINT, uniform_schedule(discover_layers(model), vision=3, text=4),
                          WIDE_CONFIG, calibration_scenes=8)


@pytest.fixture(scope="module")
def sample():
    return heldout_questions(1, QUESTION)[0]


@pytest.fixture(scope="module")
def golden(run, sample):
    return run.answer(QUESTION, sample, GoldenCore(run))


def test_golden_core_changes_nothing(run, sample, golden):
    """With the golden core installed the model answers as the plain integer model, and the
    core saw every linear layer once per modality its tokens carry."""
    with torch.no_grad():
        plain = int(answers(run.model, collate([sample]))[0])
    assert golden.answer == plain
    layers = [path for spec in discover_layers(run.float_model) for path in spec.linears]
    called = list(dict.fromkeys(r.layer.removesuffix(".linear") for r in golden.runs))
    assert called == layers
    for r in golden.runs:
        both = ".language_model." in f".{r.layer}" or r.layer == "lm_head"
        count = sum(1 for x in golden.runs if x.layer == r.layer)
        assert count == (2 if both else 1), r.layer
        assert r.timesteps == (3 if r.modality == Modality.VISION else 4)


def test_heldout_questions_are_make_evals(sample):
    from spikemllm.golden.vqa.data import generate
    from spikemllm.golden.vqa.train import HELDOUT_SEED

    same = generate(1000, HELDOUT_SEED, split="heldout")[QUESTION]
    assert (sample.question, sample.answer, sample.scene.objects) == (same.question, same.answer, same.scene.objects)
    assert (sample.scene.image == same.scene.image).all()
    with pytest.raises(ValueError, match="count must be an integer >= 1, not 0"):
        heldout_questions(0)


def _golden_execute(run, corrupt_call: int | None = None):
    """An ``execute`` that returns what a correct core returns for the beats it is given: the
    golden output beats of the integers in them at the ``T`` of their table entry, and the
    cycle model's counters; with ``corrupt_call``, that call's second output beat is off by one."""
    calls = []

    def execute(program, beats, tokens):
        chunks = program.in_chunks
        q = torch.tensor([[v for b in beats[t * chunks:(t + 1) * chunks] for v in b["values"]] for t in range(tokens)])
        T = run.table[timestep_index(beats[0]["layer"], beats[0]["modality"])]
        out = expected_outputs(program, q[:, : program.in_features], torch.full((tokens,), T))
        if len(calls) == corrupt_call:
            out[1]["values"][3] += 1
        calls.append(program)
        model = core_cycles(program.config, q, torch.full((tokens,), T), program.out_tiles)
        return RunResult(out, {"CYCLES": model.cycles, "EVENTS": model.events}, model.cycles), model.cycles + 10

    return execute


def test_a_correct_core_gives_the_golden_answer(run, sample, golden):
    core = RtlCore(run, _golden_execute(run))
    rtl = run.answer(QUESTION, sample, core)
    compare_question(QUESTION, rtl, golden, core)
    assert rtl.answer == golden.answer and len(rtl.runs) == len(golden.runs) == 41
    assert [r.clock_cycles for r in rtl.runs] == [g.model_cycles + 10 for g in golden.runs]


def test_a_wrong_output_is_named_by_question_layer_and_token(run, sample, golden):
    call = next(n for n, g in enumerate(golden.runs) if g.layer.endswith("layers.0.self_attn.q_proj")
                and g.modality == Modality.TEXT)
    g = golden.runs[call]
    core = RtlCore(run, _golden_execute(run, corrupt_call=call))
    with pytest.raises(CoreMismatch) as info:
        run.answer(QUESTION, sample, core)
    # output beat 1 of a two-tile layer is the first token's second tile: channel 64 + 3
    ids = collate([sample])["inputs"]["input_ids"][0].tolist()
    position = g.tokens[0]
    assert VOCAB.decode(ids)[position] == "<bos>"
    assert str(info.value).startswith(
        f"question {QUESTION}: model.language_model.layers.0.self_attn.q_proj (text, T=4): token {position} (<bos>): "
        f"1 outputs differ from the golden model, first channel 67: RTL {int(g.outputs[0, 67]) + 1}, golden "
        f"{int(g.outputs[0, 67])}")


def test_compare_question_names_every_kind_of_difference(run, sample, golden):
    runs = golden.runs

    def changed(n, **fields):
        copy = list(runs)
        copy[n] = dataclasses.replace(runs[n], **fields)
        return dataclasses.replace(golden, runs=copy)

    compare_question(QUESTION, golden, golden, GoldenCore(run))
    calls = GoldenCore(run)
    calls.start(QUESTION, VOCAB.decode(collate([sample])["inputs"]["input_ids"][0].tolist()))
    out = runs[3].outputs.clone()
    out[5, 7] += 1
    with pytest.raises(CoreMismatch, match=rf"question {QUESTION}: {runs[3].layer} \(vision, T=3\): token 5 \(image "
                                           r"patch\): output channel 7"):
        compare_question(QUESTION, changed(3, outputs=out), golden, calls)
    with pytest.raises(CoreMismatch, match=f"CYCLES {runs[0].cycles + 1}, EVENTS {runs[0].events} on the RTL"):
        compare_question(QUESTION, changed(0, cycles=runs[0].cycles + 1), golden, calls)
    with pytest.raises(CoreMismatch, match="the RTL path answers 'yes'"):
        compare_question(QUESTION, dataclasses.replace(golden, answer=VOCAB["yes"]), golden, calls)
    with pytest.raises(CoreMismatch, match="40 layer runs on the RTL, 41 in golden"):
        compare_question(QUESTION, dataclasses.replace(golden, runs=runs[:-1]), golden, calls)
