"""Shapes-VQA data, training smoke run, checkpoint round trip and the evaluation pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from spikemllm.golden.vqa import data as vqa_data
from spikemllm.golden.vqa.data import (
    CELL,
    COLORS,
    GRID,
    collate,
    collate_training,
    generate,
    generate_training,
    to_patches,
)
from spikemllm.golden.vqa.evaluate import evaluate, paired_gap, parse_level
from spikemllm.golden.vqa.model import build_model, load_checkpoint, save_checkpoint
from spikemllm.golden.vqa.train import train


def test_generation_is_deterministic_and_seeded():
    a, b, c = generate(20, 7), generate(20, 7), generate(20, 8)
    assert all(np.array_equal(x.scene.image, y.scene.image) and x.question == y.question for x, y in zip(a, b))
    assert not all(np.array_equal(x.scene.image, y.scene.image) for x, y in zip(a, c))
    with pytest.raises(ValueError, match="seed"):
        generate(3, -1)
    with pytest.raises(ValueError, match="n must"):
        generate(0, 1)


def _pairs(objects_and_questions):
    """(layout, question) keys recomputed here: the objects as a sorted tuple and the words."""
    return {(tuple(sorted(tuple(o) for o in objects)), tuple(words)) for objects, words in objects_and_questions}


def test_heldout_pairs_never_appear_in_training():
    from spikemllm.golden.vqa.evaluate import CALIBRATION_SEED
    from spikemllm.golden.vqa.train import HELDOUT_SEED, TRAIN_SEED

    training = generate_training(1500, TRAIN_SEED, questions=6)
    seen = _pairs((item.scene.objects, q) for item in training for _kind, q, _answer in item.questions)
    heldout = generate(500, HELDOUT_SEED, split="heldout")
    assert not seen & _pairs((s.scene.objects, s.question) for s in heldout)
    calibration = generate(128, CALIBRATION_SEED, split="train")
    assert not _pairs((s.scene.objects, s.question) for s in calibration) & _pairs((s.scene.objects, s.question) for s in heldout)
    # without the partition, held-out questions repeat training pairs (few-object layouts are few)
    assert len(seen & _pairs((s.scene.objects, s.question) for s in generate(500, HELDOUT_SEED))) > 50
    assert len({s.kind for s in heldout}) == len(vqa_data.KINDS)
    with pytest.raises(ValueError, match="split"):
        generate(3, 1, split="test")


def _cell_colors(image):
    """Independent reading of a rendered scene: the dominant object colour in each cell."""
    found = {}
    palette = {name: np.array(rgb, dtype=float) for name, rgb in COLORS.items()}
    for cell in range(GRID * GRID):
        r, c = divmod(cell, GRID)
        pixels = image[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL].reshape(-1, 3).astype(float)
        bright = pixels[pixels.max(axis=1) > 100]
        if len(bright) < 10:
            continue
        mean = bright.mean(axis=0)
        found[cell] = min(palette, key=lambda name: np.abs(palette[name] - mean).sum())
    return found


def test_answers_agree_with_the_pixels():
    for sample in generate(200, 11):
        colors = _cell_colors(sample.scene.image)
        assert sorted(colors) == sorted(o[0] for o in sample.scene.objects)
        if sample.kind == "count_color":
            color = sample.question[2]
            assert int(sample.answer) == sum(1 for v in colors.values() if v == color)
        if sample.kind in ("column_of", "row_of"):
            color = sample.question[4]
            cells = [cell for cell, v in colors.items() if v == color]
            pos = [divmod(cell, GRID)[1 if sample.kind == "column_of" else 0] for cell in cells]
            names = vqa_data.COLUMNS if sample.kind == "column_of" else vqa_data.ROWS
            assert names.index(sample.answer) in pos


def test_patch_order_follows_qwen2vl_vision_positions():
    from transformers.vision_utils import get_vision_position_ids

    images = np.stack([s.scene.image for s in generate(2, 3)])
    pixels, grid = to_patches(images)
    positions = get_vision_position_ids(grid, vqa_data.MERGE)  # (patches, 2): row, column of each patch
    x = torch.from_numpy(images).float().div(127.5).sub(1.0)
    P = vqa_data.PATCH
    per_image = int(grid[0].prod())
    for k in (0, 5, 17, per_image + 30):
        b = k // per_image
        r, c = positions[k].tolist()
        crop = x[b, r * P : (r + 1) * P, c * P : (c + 1) * P].permute(2, 0, 1)  # C, y, x
        patch = pixels[k].reshape(3, vqa_data.TEMPORAL_PATCH, P, P)
        assert torch.equal(patch[:, 0], crop) and torch.equal(patch[:, 1], crop)


def test_collate_marks_image_tokens_and_answer_positions():
    samples = generate(4, 5)
    batch = collate(samples)
    ids = batch["inputs"]["input_ids"]
    assert batch["inputs"]["mm_token_type_ids"].sum(1).tolist() == [vqa_data.IMAGE_TOKENS] * 4
    words = [vqa_data.VOCAB.decode(row) for row in ids]
    for i, s in enumerate(samples):
        assert words[i][int(batch["answer_index"][i])] == "?"
        assert tuple(words[i][int(batch["answer_index"][i]) - len(s.question) + 1 : int(batch["answer_index"][i]) + 1]) == s.question
    packed = collate_training(generate_training(3, 5, questions=3))
    assert packed["answer_index"].shape == (3, 3) and packed["answer"].shape == (3, 3)


def test_training_smoke_run_lowers_the_loss_and_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    losses = []
    model, meta = train(size="tiny", steps=24, batch_size=8, train_size=48, lr=3e-3, log_every=10,
                        log=lambda msg: losses.append(float(msg.split("loss ")[1].split()[0])) if "loss" in msg else None)
    assert losses[-1] < losses[0]
    path = tmp_path / "ck.pt"
    meta["heldout_accuracy"] = 0.0
    save_checkpoint(model, path, meta)
    loaded, loaded_meta = load_checkpoint(path)
    batch = collate(generate(3, 9))
    with torch.no_grad():
        assert torch.equal(model(**batch["inputs"]).logits, loaded(**batch["inputs"]).logits)
    assert loaded_meta["steps"] == 24
    with pytest.raises(FileNotFoundError, match="make train"):
        load_checkpoint(tmp_path / "missing.pt")


def test_evaluation_pipeline_writes_the_report(tmp_path):
    model = build_model("tiny", seed=1).eval()
    save_checkpoint(model, tmp_path / "ck.pt", {"size": "tiny", "parameters": 1})
    report = evaluate(tmp_path / "ck.pt", tmp_path / "reports", heldout_size=12, calibration_size=6,
                      levels=("3/4", "2/3"), integer_levels=("3/4",), msts_budgets=("2/2", "3/4"),
                      msts_t_range=(2, 4), validation_size=12, minilm=False, log=lambda msg: None)
    data = json.loads((tmp_path / "reports" / "accuracy.json").read_text())
    assert data == json.loads(json.dumps(report))
    assert 0.0 <= data["fp"] <= 1.0
    assert set(data["spike"]) == {"3/4", "2/3"} and set(data["fake_quant"]) == {"3/4", "2/3"}
    # the spike path and fake quantization form the same integers, so the same answers
    assert data["spike"] == data["fake_quant"]
    assert data["count_equal_levels"]["3/4"]["accuracy"] == data["spike"]["3/4"]
    assert set(data["integer"]) == {"3/4", "2/3"} and set(data["gaps"]) == {"3/4", "2/3"}
    for level, gaps in data["gaps"].items():
        assert gaps["integer"]["gap_points"] == round(100 * (data["fp"] - data["integer"][level]), 2)
        low, high = gaps["integer"]["ci95_points"]
        assert low <= gaps["integer"]["gap_points"] <= high
    assert data["headline"]["timesteps_reading"]["integer"] == data["gaps"]["3/4"]["integer"]
    assert set(data["integer_transforms"]) == {"smoothquant", "hadamard"}
    choice = data["integer_path"]["clip_choice"]["validation_accuracy"]
    assert data["integer_path"]["clip"] == max(choice, key=lambda c: (choice[c], c == "mse"))
    # the chosen rule's ablation row is the integer path itself
    chosen = data["integer_ablations"][f"input scales: {'mse clipping' if data['integer_path']['clip'] == 'mse' else 'absmax'}"]
    assert chosen["accuracy"] == data["integer"]["3/4"]
    assert set(data["spike_quantizers"]) == {"smoothquant", "hadamard", "gptq", "4-bit weights", "4-bit weights, gptq"}
    for row in data["spike_quantizers"].values():
        assert row["vs_spike"]["gap_points"] == round(100 * (data["spike"]["3/4"] - row["accuracy"]), 2)
    # tiny model: 1 vision block (4) + patch embedding + projector (2) vision-only, 1 LM layer (7) + head twice
    assert data["integer_path"]["compiled_programs"] == {"3/4": 7 + 2 * 8, "2/3": 7 + 2 * 8}
    assert "Hardware-exact integer path" in (tmp_path / "reports" / "accuracy.md").read_text()
    assert data["headline"]["timesteps_reading"]["level"] == "3/4"
    assert data["headline"]["bits_reading"]["level"] == "2/3"
    assert set(data["msts"]["paths"]) == {"spike", "integer"}
    for kind, path in data["msts"]["paths"].items():
        rows = path["comparisons"]
        assert [row["uniform"] for row in rows] == ["2/2", "3/4"]
        assert rows[0]["budget_avg_steps"] == 2.0 and rows[1]["budget_avg_steps"] > 3.0
        for row in rows:
            for name in ("med", "error_driven"):
                assert row[name]["avg_steps"] <= row["budget_avg_steps"] + 1e-6
                assert Path(row[name]["schedule_file"]).exists()
                assert row[name]["vs_uniform"]["gap_points"] == round(100 * (row[name]["accuracy"] - row["uniform_accuracy"]), 2)
        assert path["at_or_above_uniform"]["med"] == sum(r["med"]["accuracy"] >= r["uniform_accuracy"] for r in rows)
    # the uniform rows of the spike path are the spike accuracies measured per level
    assert data["msts"]["paths"]["spike"]["comparisons"][1]["uniform_accuracy"] == data["spike"]["3/4"]
    assert (tmp_path / "reports" / "plots" / "msts_budget.png").exists()
    for kind, choice in data["headline"]["msts"].items():
        if kind == "rule":
            continue
        row = data["msts"]["paths"][kind]["comparisons"][1]
        kls = {"uniform": row["uniform_kl"], "med": row["med"]["kl"], "error_driven": row["error_driven"]["kl"]}
        assert choice["schedule"] == min(kls, key=kls.get)
    assert (tmp_path / "reports" / "accuracy.md").read_text().startswith("# Spiking shapes-VQA")
    assert (tmp_path / "reports" / "plots" / "accuracy.png").exists()
    assert (tmp_path / "reports" / "med.json").exists()
    with pytest.raises(ValueError, match="Tv/Tt"):
        parse_level("3-4")


def test_shared_training_positions_equal_the_models_own():
    from spikemllm.golden.vqa.train import _positions

    model = build_model("tiny", seed=2).eval()
    inputs = collate_training(generate_training(3, 4, questions=3))["inputs"]
    with torch.no_grad():
        own = model(**inputs).logits
        shared = model(**inputs, position_ids=_positions(model, inputs)).logits
    real = inputs["attention_mask"].bool()
    assert torch.equal(own[real], shared[real])


def test_paired_gap_counts_discordant_questions_and_brackets_the_gap():
    rng = np.random.default_rng(5)
    a = rng.random(400) < 0.9
    b = a.copy()
    b[:30] = ~b[:30]  # flip 30 answers
    g = paired_gap(a.tolist(), b.tolist())
    assert g["only_reference_right"] == int((a & ~b).sum()) and g["only_other_right"] == int((~a & b).sum())
    assert g["gap_points"] == round(100 * (a.mean() - b.mean()), 2)
    low, high = g["ci95_points"]
    # the paired standard error of the difference is sqrt(discordant) / n; the interval is about +-2 of them
    se = 100 * np.sqrt(30) / 400
    assert low < g["gap_points"] < high and 3 * se < high - low < 5 * se
    assert paired_gap([True, False], [True, False])["ci95_points"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="equal"):
        paired_gap([True], [True, False])


def test_committed_checkpoint_is_the_trained_model():
    """The committed checkpoint loads strictly into the ``small`` architecture, was trained
    with ``make train``'s settings (the defaults of ``train``) and answers held-out questions."""
    import inspect

    from spikemllm.golden.vqa.model import COMMITTED_CHECKPOINT, accuracy
    from spikemllm.golden.vqa.train import HELDOUT_SEED

    model, meta = load_checkpoint(COMMITTED_CHECKPOINT)  # load_state_dict is strict
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items() if k not in ("log", "log_every")}
    assert {k: meta[k if k != "questions" else "questions_per_scene"] for k in defaults} == defaults
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())
    assert accuracy(model, generate(50, HELDOUT_SEED, split="heldout"))["accuracy"] >= 0.8


def test_default_checkpoint_prefers_a_trained_one(tmp_path, monkeypatch):
    from spikemllm.golden.vqa.model import COMMITTED_CHECKPOINT, DEFAULT_CHECKPOINT, default_checkpoint

    monkeypatch.chdir(tmp_path)
    assert default_checkpoint() == COMMITTED_CHECKPOINT
    (tmp_path / DEFAULT_CHECKPOINT).parent.mkdir(parents=True)
    (tmp_path / DEFAULT_CHECKPOINT).write_bytes(b"")
    assert default_checkpoint() == DEFAULT_CHECKPOINT
