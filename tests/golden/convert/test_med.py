"""MED against hand computation and against the model's own hidden-state outputs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from spikemllm.golden.convert.med import evolution, measure_med, plot_med
from spikemllm.golden.convert.model import convert_model, discover_layers

IMAGE = 5  # the image placeholder id of the conftest configs


def test_evolution_on_toy_vectors():
    h_in = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    h_out = torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0], [1.0, 1.0]])
    expected = [0.0, 1.0, 2.0, 1.0 - 24.0 / 25.0, 1.0]
    assert evolution(h_in, h_out).tolist() == pytest.approx(expected)
    with pytest.raises(ValueError, match="same shape"):
        evolution(h_in, h_out[:2])


def test_med_matches_hidden_states_of_the_language_model(qwen2vl, qwen2vl_batch):
    result = measure_med(qwen2vl, [qwen2vl_batch])
    with torch.no_grad():
        out = qwen2vl(**qwen2vl_batch, output_hidden_states=True)
    hidden = out.hidden_states  # embeddings, then the output of each decoder layer
    ids, mask = qwen2vl_batch["input_ids"], qwen2vl_batch["attention_mask"].bool()
    h0, h1 = hidden[0].double(), hidden[1].double()
    cos = (h0 * h1).sum(-1) / (h0.norm(dim=-1) * h1.norm(dim=-1))
    vision = (ids == IMAGE) & mask
    text = (ids != IMAGE) & mask
    got = result.med["model.language_model.layers.0"]
    assert got["vision"] == pytest.approx(float((1 - cos[vision]).mean()), rel=1e-6)
    assert got["text"] == pytest.approx(float((1 - cos[text]).mean()), rel=1e-6)
    # token counts per sample, padding left out
    tokens = result.tokens["model.language_model.layers.0"]
    assert tokens == {"vision": 4.0, "text": float(text.sum()) / 2}
    assert result.tokens["model.visual.blocks.0"] == {"vision": 16.0}
    assert result.tokens["model.visual.patch_embed.proj"] == {"vision": 16.0}


def test_med_of_vision_blocks_matches_a_manual_run(qwen2vl, qwen2vl_batch):
    visual = qwen2vl.model.visual
    captured = []
    handle = visual.blocks[1].register_forward_hook(
        lambda m, args, kwargs, out: captured.append((args[0] if args else kwargs["hidden_states"], out)),
        with_kwargs=True,
    )
    result = measure_med(qwen2vl, [qwen2vl_batch])
    handle.remove()
    h_in, h_out = captured[0]
    a, b = h_in.double(), h_out.double()
    manual = float((1 - (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))).mean())
    assert result.med["model.visual.blocks.1"]["vision"] == pytest.approx(manual, rel=1e-9)


def test_non_block_layers_inherit_from_the_nearest_block(qwen2vl, qwen2vl_batch, tmp_path):
    result = measure_med(qwen2vl, [qwen2vl_batch])
    assert result.inherited_from["model.visual.patch_embed.proj"] == "model.visual.blocks.0"
    assert result.inherited_from["model.visual.merger"] == "model.visual.blocks.1"
    assert result.inherited_from["lm_head"] == "model.language_model.layers.1"
    assert result.med["lm_head"] == result.med["model.language_model.layers.1"]
    assert all(result.inherited_from[s.name] is None for s in discover_layers(qwen2vl) if s.block)
    result.save(tmp_path / "med.json")
    data = json.loads((tmp_path / "med.json").read_text())
    assert [row["name"] for row in data["layers"]] == [s.name for s in discover_layers(qwen2vl)]
    assert all(math.isfinite(v) for row in data["layers"] for v in row["med"].values())
    plot_med(result, tmp_path / "med.png")
    assert (tmp_path / "med.png").stat().st_size > 1000


def test_med_on_the_converted_model_approaches_float_med(qwen2vl, qwen2vl_batch, internvl, internvl_batch):
    from spikemllm.golden.convert.schedule import uniform_schedule

    for model, batch in ((qwen2vl, qwen2vl_batch), (internvl, internvl_batch)):
        ref = measure_med(model, [batch])
        spiking = convert_model(model, uniform_schedule(discover_layers(model), vision=10, text=10), kind="fake_quant")
        got = measure_med(spiking, [batch])
        for name, per in ref.med.items():
            for m, value in per.items():
                assert got.med[name][m] == pytest.approx(value, rel=0.05, abs=1e-3)


def test_med_needs_calibration(qwen2vl):
    with pytest.raises(ValueError, match="at least one"):
        measure_med(qwen2vl, [])
