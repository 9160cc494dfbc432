"""Schedule file format, validation, and the allocators against brute-force optima."""

from __future__ import annotations

import itertools
import json

import pytest
from spikemllm.golden.convert.schedule import (
    LayerSpec,
    Schedule,
    allocate_error_driven,
    allocate_med,
    average_timesteps,
    quantization_noise,
    uniform_schedule,
)

LAYERS = [
    LayerSpec("v.patch", "vision_encoder", ("vision",)),
    LayerSpec("v.blocks.0", "vision_encoder", ("vision",), block=True),
    LayerSpec("proj", "projector", ("vision",)),
    LayerSpec("lm.layers.0", "language_model", ("text", "vision"), block=True),
    LayerSpec("lm.layers.1", "language_model", ("text", "vision"), block=True),
]
TOKENS = {
    "v.patch": {"vision": 16},
    "v.blocks.0": {"vision": 16},
    "proj": {"vision": 4},
    "lm.layers.0": {"vision": 4, "text": 6},
    "lm.layers.1": {"vision": 4, "text": 6},
}


def test_file_round_trip_and_table(tmp_path):
    s = uniform_schedule(LAYERS, vision=3, text=4, t_min=2, t_max=6)
    s.save(tmp_path / "s.json")
    loaded = Schedule.load(tmp_path / "s.json", LAYERS)
    assert loaded.timesteps == s.timesteps and loaded.stages == s.stages
    assert (loaded.t_min, loaded.t_max) == (2, 6)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["format"] == "spikemllm-timestep-schedule" and data["modalities"] == ["text", "vision"]
    assert [row["name"] for row in data["layers"]] == [spec.name for spec in LAYERS]
    # table columns follow the modality tags: text 0, vision 1; 0 where text never arrives
    assert loaded.table() == [[0, 3], [0, 3], [0, 3], [4, 3], [4, 3]]


def test_average_timesteps_is_token_weighted():
    s = uniform_schedule(LAYERS, vision=3, text=4)
    vision_tokens = 16 + 16 + 4 + 4 + 4
    text_tokens = 6 + 6
    expected = (3 * vision_tokens + 4 * text_tokens) / (vision_tokens + text_tokens)
    assert average_timesteps(s, TOKENS) == pytest.approx(expected)


def _file(**changes):
    data = uniform_schedule(LAYERS, vision=3, text=4, t_min=2, t_max=6).to_dict()
    for key, value in changes.items():
        data[key] = value
    return data


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda d: d["layers"][3]["timesteps"].update(text=9), ValueError, "outside"),
        (lambda d: d["layers"][3]["timesteps"].update(text=1), ValueError, "outside"),
        (lambda d: d["layers"][3]["timesteps"].update(text=True), TypeError, "int"),
        (lambda d: d["layers"][3]["timesteps"].update(audio=3), ValueError, "audio"),
        (lambda d: d["layers"][0]["timesteps"].update(text=3), ValueError, "only vision"),
        (lambda d: d["layers"][1].update(stage="decoder"), ValueError, "decoder"),
        (lambda d: d["layers"].append(dict(d["layers"][0])), ValueError, "twice"),
        (lambda d: d.update(format="other"), ValueError, "format"),
        (lambda d: d.update(version=7), ValueError, "version"),
        (lambda d: d.update(modalities=["vision", "text"]), ValueError, "modalities"),
        (lambda d: d.update(t_min=5, t_max=3), ValueError, "larger"),
        (lambda d: d.update(extra=1), ValueError, "extra"),
    ],
)
def test_bad_files_are_rejected_by_name(mutate, error, match):
    data = _file()
    mutate(data)
    with pytest.raises(error, match=match):
        Schedule.from_dict(data)


def test_schedule_must_fit_the_model():
    s = uniform_schedule(LAYERS)
    with pytest.raises(ValueError, match="lm.layers.9"):
        s.check_layers(LAYERS[:-1] + [LayerSpec("lm.layers.9", "language_model", ("text", "vision"))])
    with pytest.raises(ValueError, match="no timesteps for layer"):
        uniform_schedule(LAYERS[:-1]).check_layers(LAYERS)
    text_only = [LayerSpec(s.name, s.stage, ("text",)) if s.stage == "language_model" else s for s in LAYERS]
    with pytest.raises(ValueError, match="carries modalities"):
        s.check_layers(text_only)


def test_load_reports_invalid_json(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Schedule.load(tmp_path / "bad.json")


def _brute_force(cells, weights, budget, t_min, t_max, cost):
    best = None
    total = sum(weights.values())
    for combo in itertools.product(range(t_min, t_max + 1), repeat=len(cells)):
        avg = sum(weights[c] * t for c, t in zip(cells, combo)) / total
        if avg > budget + 1e-9:
            continue
        err = sum(cost(c, t) for c, t in zip(cells, combo))
        if best is None or err < best[0] - 1e-12:
            best = (err, combo)
    return best


SMALL = [
    LayerSpec("v.blocks.0", "vision_encoder", ("vision",), block=True),
    LayerSpec("lm.layers.0", "language_model", ("text", "vision"), block=True),
]
SMALL_TOKENS = {"v.blocks.0": {"vision": 8}, "lm.layers.0": {"vision": 4, "text": 4}}


@pytest.mark.parametrize("budget", [2.5, 3.0, 3.5, 4.25])
def test_med_allocator_reaches_the_optimum_of_its_error_model(budget):
    med = {"v.blocks.0": {"vision": 0.05}, "lm.layers.0": {"vision": 0.02, "text": 0.3}}
    s = allocate_med(SMALL, med, SMALL_TOKENS, budget, t_min=2, t_max=6)
    assert average_timesteps(s, SMALL_TOKENS) <= budget + 1e-9
    cells = [("v.blocks.0", "vision"), ("lm.layers.0", "vision"), ("lm.layers.0", "text")]
    weights = {c: SMALL_TOKENS[c[0]][c[1]] for c in cells}
    # the noise power of a (T + 1)-bit symmetric quantizer, step range / (2^T - 1)
    model_error = lambda c, t: weights[c] * med[c[0]][c[1]] / (2.0**t - 1) ** 2  # noqa: E731
    got = sum(model_error(c, s.T(*c)) for c in cells)
    best, _ = _brute_force(cells, weights, budget, 2, 6, model_error)
    assert got == pytest.approx(best, rel=1e-9)


def test_med_allocator_gives_more_steps_where_tokens_evolve_more():
    med = {name: {m: 0.01 for m in spec.modalities} for name, spec in ((s.name, s) for s in LAYERS)}
    med["lm.layers.1"]["text"] = 0.5
    s = allocate_med(LAYERS, med, TOKENS, 3.5, t_min=2, t_max=6)
    assert s.T("lm.layers.1", "text") > s.T("lm.layers.0", "text")
    assert all(2 <= t <= 6 for entry in s.timesteps.values() for t in entry.values())
    s.check_layers(LAYERS)


def test_allocators_reject_bad_budgets_and_inputs():
    med = {name: {m: 0.1 for m in spec.modalities} for name, spec in ((s.name, s) for s in LAYERS)}
    with pytest.raises(ValueError, match="budget"):
        allocate_med(LAYERS, med, TOKENS, 7.0, t_min=2, t_max=6)
    with pytest.raises(TypeError, match="budget"):
        allocate_med(LAYERS, med, TOKENS, "3")
    del med["proj"]
    with pytest.raises(ValueError, match="proj"):
        allocate_med(LAYERS, med, TOKENS, 3.0)
    with pytest.raises(ValueError, match="token_counts"):
        allocate_med(LAYERS, {}, {}, 3.0)


def test_error_driven_allocator_uses_measured_costs():
    """Additive convex costs: the greedy result must be the brute-force optimum."""
    sensitivity = {("v.blocks.0", "vision"): 1.0, ("lm.layers.0", "vision"): 0.3, ("lm.layers.0", "text"): 5.0}
    cells = list(sensitivity)
    calls = []

    def cell_cost(c, t):
        return sensitivity[c] * (2.0 ** (-t) - 2.0 ** (-6))

    def measure(schedule):
        calls.append(schedule)
        return 0.125 + sum(cell_cost(c, schedule.T(*c)) for c in cells)

    weights = {c: SMALL_TOKENS[c[0]][c[1]] for c in cells}
    for budget in (2.5, 3.0, 4.0):
        calls.clear()
        s = allocate_error_driven(SMALL, measure, SMALL_TOKENS, budget, t_min=2, t_max=6)
        assert len(calls) == 1 + len(cells) * 4
        assert average_timesteps(s, SMALL_TOKENS) <= budget + 1e-9
        got = sum(cell_cost(c, s.T(*c)) for c in cells)
        best, _ = _brute_force(cells, weights, budget, 2, 6, cell_cost)
        assert got == pytest.approx(best, rel=1e-9)
        assert s.meta["allocator"] == "error_driven"


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
def test_med_noise_model_matches_the_measured_quantization_noise(T):
    """The MED allocator's noise power per T against the error the quantizer really makes
    on values spread over its range: the ratio to T = 2 must agree (T = 1 is 9x worse, not 4x)."""
    import torch
    from spikemllm.golden.quantize import qmax, quantize_static

    x = torch.rand(200_000, generator=torch.Generator().manual_seed(T), dtype=torch.float64) * 2 - 1

    def measured(t):
        q = quantize_static(x, 1.0 / qmax(t + 1), t + 1)
        return float(((q.q.double() * q.scale - x) ** 2).mean())

    assert measured(T) / measured(2) == pytest.approx(quantization_noise(T) / quantization_noise(2), rel=0.03)
