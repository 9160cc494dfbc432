"""``make eval-rtl``: a held-out shapes-VQA question with every linear layer on the SpikeCore RTL
(Verilator, firmware driver), against a golden integer path computed here; and a corrupted
core output, which must fail naming question, layer and token.

The integer model is calibrated on a few scenes to keep the set-up short (``make eval-rtl``
calibrates on ``make eval``'s 128); the RTL path is the same whatever the scales are.
"""

import json

import pytest
import torch
from spikemllm.firmware.compiler import compile_layer
from spikemllm.flow.eval_rtl import eval_rtl
from spikemllm.flow.runner import build_block
from spikemllm.golden.convert.integer_model import convert_integer, integer_layers
from spikemllm.golden.convert.model import discover_layers
from spikemllm.golden.convert.schedule import uniform_schedule
from spikemllm.golden.timing.core_model import core_cycles
from spikemllm.golden.vqa.data import VOCAB, collate, generate
from spikemllm.golden.vqa.evaluate import CALIBRATION_SEED
from spikemllm.golden.vqa.model import COMMITTED_CHECKPOINT, answers, load_checkpoint
from spikemllm.golden.vqa.train import HELDOUT_SEED

from spikemllm.config import WIDE_CONFIG
from spikemllm.modality import Modality

QUESTION = 1
CALIBRATION = 8


@pytest.fixture(scope="module")
def build():
    return build_block(WIDE_CONFIG, "core")


@pytest.fixture(scope="module")
def golden():
    """The golden integer path of the question, computed here: the answer and, per layer
    call and modality, the path, the integers out and the cycle model's counters."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: a second thread only waits for a core
    model, _ = load_checkpoint(COMMITTED_CHECKPOINT)
    scenes = generate(CALIBRATION, CALIBRATION_SEED, split="train")
    integer = convert_integer(model, [collate(scenes)["inputs"]], uniform_schedule(discover_layers(model)),
                              config=WIDE_CONFIG)
    calls = []
    paths = {id(m): name for name, m in integer_layers(integer).items()}

    def record(layer, args):
        x = args[0]
        modality = layer.router.modality_of(layer.layer_name, x.shape[:-1]).reshape(-1)
        flat = x.reshape(-1, layer.in_features).double()
        for m in modality.unique().tolist():
            program = layer.program(m, layer.router.schedule.timesteps[layer.layer_name][Modality(m).label])
            q = program.quantize(layer.map_input(flat[modality == m]))
            compiled = compile_layer(WIDE_CONFIG, program.layer)
            padded = torch.nn.functional.pad(q, (0, compiled.padded_in - q.shape[1]))
            model = core_cycles(WIDE_CONFIG, padded, torch.full((q.shape[0],), program.timesteps), compiled.out_tiles)
            calls.append({"layer": paths[id(layer)], "modality": m, "outputs": program.integers(q),
                          "tokens": (modality == m).nonzero().flatten().tolist(), "cycles": model.cycles,
                          "events": model.events})

    hooks = [layer.register_forward_pre_hook(record) for layer in integer_layers(integer).values()]
    sample = generate(QUESTION + 1, HELDOUT_SEED, split="heldout")[QUESTION]
    batch = collate([sample])
    with torch.no_grad():
        answer = VOCAB.decode([int(answers(integer, batch)[0])])[0]
    for hook in hooks:
        hook.remove()
    torch.set_num_threads(threads)
    return {"answer": answer, "calls": calls, "words": VOCAB.decode(batch["inputs"]["input_ids"][0].tolist()),
            "sample": sample}


def test_a_question_on_the_rtl_is_the_golden_integer_path(build, golden, tmp_path):
    lines = []
    report = eval_rtl(COMMITTED_CHECKPOINT, tmp_path, questions=1, first=QUESTION, calibration_scenes=CALIBRATION,
                      build=build, progress=lines.append)
    (r,) = report["questions"]
    calls = golden["calls"]
    assert r["question"] == QUESTION and r["text"] == " ".join(golden["sample"].question)
    assert r["rtl_answer"] == r["golden_answer"] == golden["answer"]
    assert r["answer_match"] and r["outputs_match"] and r["cycles_match"]
    assert r["layer_runs"] == len(calls) == 41  # 11 vision-only layers, 15 language-model layers x 2 modalities
    assert [(x["layer"], x["modality"]) for x in r["runs"]] == [(c["layer"], Modality(c["modality"]).label) for c in calls]
    assert [x["cycles"] for x in r["runs"]] == [c["cycles"] for c in calls]
    assert r["cycles"] == sum(c["cycles"] for c in calls) and r["events"] == sum(c["events"] for c in calls)
    assert r["clock_cycles"] > r["cycles"] + r["weight_rows"]  # program loads and register traffic on top
    assert report["totals"]["answers_identical"] == report["totals"]["questions"] == 1
    assert json.loads((tmp_path / "eval_rtl.json").read_text())["totals"] == report["totals"]
    assert "| 1 | " in (tmp_path / "eval_rtl.md").read_text()
    assert any(line.startswith(f"question   {QUESTION}:") and "identical" in line for line in lines)


def test_a_corrupted_core_output_fails_naming_question_layer_and_token(build, golden, tmp_path):
    """One output integer of the first text run of the language model's layer-0 query
    projection is off by one on its way back from the RTL (the third token, channel 5)."""
    calls = golden["calls"]
    run = next(n for n, c in enumerate(calls) if c["layer"] == "model.language_model.layers.0.self_attn.q_proj"
               and c["modality"] == Modality.TEXT)
    tiles = -(-calls[run]["outputs"].shape[1] // WIDE_CONFIG.pes)
    token, channel = 2, 5
    position = calls[run]["tokens"][token]
    value = int(calls[run]["outputs"][token, channel])
    with pytest.raises(AssertionError) as info:
        eval_rtl(COMMITTED_CHECKPOINT, tmp_path, questions=1, first=QUESTION, calibration_scenes=CALIBRATION,
                 build=build, corrupt={"run": run, "beat": token * tiles, "lane": channel}, progress=lambda _: None)
    assert str(info.value).startswith(
        f"question {QUESTION}: model.language_model.layers.0.self_attn.q_proj (text, T=4): token {position} "
        f"({golden['words'][position]}): 1 outputs differ from the golden model, first channel {channel}: "
        f"RTL {value + 1}, golden {value}")
    assert not (tmp_path / "eval_rtl.json").exists()
