"""The checked-in real-data fixtures: each is what its checked-in generator makes, and its
integers are consistent with the golden model and with the model they were captured from.

* MiniLM (``minilm_layer0_ffn.json``): regenerated from the packaged pretrained model.
* Qwen2-VL (``qwen2vl_lm0_q_proj.json``, ``qwen2vl_lm0_mlp_down_proj.json``): checked on
  their own (tokens, modality tags and schedule recomputed from the data generator and
  the model configuration, and the same in both; outputs recomputed by the golden model;
  the integers against the float layer's outputs) and regenerated from the committed
  checkpoint they were made from.
"""

import json
import math
import runpy
from importlib import resources

import pytest
import torch
from spikemllm.firmware.compiler import compile_layer
from spikemllm.golden.layer import IntegerLayer, run_integer_layer
from spikemllm.golden.requantize import requantize
from spikemllm.golden.encoding import encode_count_signed
from spikemllm.golden.spike_linear import spike_linear
from spikemllm.golden.vqa.model import COMMITTED_CHECKPOINT
from spikemllm.sim.blocks.cases import FIXTURE
from spikemllm.sim.core.cases import (
    QWEN2VL_LAYER,
    QWEN2VL_LAYERS,
    activation_bits,
    fitting_shape,
    fixture_parameters,
    qwen2vl_fixture,
)

from spikemllm.config import PRESETS, Coding
from spikemllm.modality import Modality

FIXTURES = resources.files("spikemllm.sim") / "fixtures"
SCRIPT = FIXTURES / "make_minilm_fixture.py"
QWEN2VL = {layer: qwen2vl_fixture(layer) for layer in QWEN2VL_LAYERS}


def assert_same(made, stored, path="fixture", rel_tol=1e-6, abs_tol=1e-12):
    """Integers (activations, weights, requantizer parameters) equal exactly; floats, kept
    as notes, within ``rel_tol`` or ``abs_tol`` (torch and transformers releases, and CPUs
    with other vector units, may reorder float32 arithmetic)."""
    if isinstance(stored, dict):
        assert made.keys() == stored.keys(), path
        for key in stored:
            assert_same(made[key], stored[key], f"{path}.{key}", rel_tol, abs_tol)
    elif isinstance(stored, list):
        assert len(made) == len(stored), path
        for n, (a, b) in enumerate(zip(made, stored)):
            assert_same(a, b, f"{path}[{n}]", rel_tol, abs_tol)
    elif isinstance(stored, float):
        assert math.isclose(made, stored, rel_tol=rel_tol, abs_tol=abs_tol), f"{path}: {made} != {stored}"
    else:
        assert made == stored, f"{path}: {made!r} != {stored!r}"


def test_fixture_is_up_to_date():
    module = runpy.run_path(str(SCRIPT), run_name="fixture_check")
    assert_same(json.loads(module["render"](module["build"]())), json.loads(FIXTURE.read_text()))


# -- Qwen2-VL --------------------------------------------------------------------------


LAYER_SHAPES = {"q_proj": (96, 96), "down_proj": (256, 96)}
"""``(in, out)`` of each whole layer of the model, whose slices the fixtures hold."""
ENTRIES = [pytest.param(layer, name, id=f"{layer}-{name}")
           for layer in QWEN2VL_LAYERS for name in sorted(QWEN2VL[layer]["configs"])]


def _layer(entry, config):
    return IntegerLayer(torch.tensor(entry["weight"]), torch.tensor(entry["bias"]), torch.tensor(entry["multiplier"]),
                        torch.tensor(entry["shift"]), out_bits=config.out_bits, weight_bits=config.weight_bits)


def test_qwen2vl_tokens_are_the_heldout_questions_tagged_by_the_model():
    """Token ids, the sample they come from and their modality, recomputed without the
    checkpoint: the held-out samples through the data collator, and the tags from the
    model configuration's image token id."""
    from spikemllm.golden.vqa.data import VOCAB, collate, generate
    from spikemllm.golden.vqa.model import model_config
    from spikemllm.golden.vqa.train import HELDOUT_SEED

    fixture = QWEN2VL["q_proj"]
    s = fixture["samples"]
    assert s["seed"] == HELDOUT_SEED and s["split"] == "held-out"
    samples = generate(s["count"], HELDOUT_SEED)
    assert s["questions"] == [" ".join(x.question) for x in samples] and s["answers"] == [x.answer for x in samples]
    inputs = collate(samples)["inputs"]
    real = inputs["attention_mask"].bool()
    tokens = fixture["tokens"]
    assert tokens["ids"] == inputs["input_ids"][real].tolist()
    assert tokens["words"] == VOCAB.decode(tokens["ids"])
    assert tokens["sample"] == torch.arange(len(samples)).unsqueeze(1).expand_as(real)[real].tolist()
    image = model_config("small").image_token_id
    assert tokens["modality"] == [int(Modality.VISION if i == image else Modality.TEXT) for i in tokens["ids"]]
    assert 0 < sum(tokens["modality"]) < len(tokens["modality"])  # both modalities pass the layer


@pytest.mark.parametrize("layer", QWEN2VL_LAYERS)
def test_qwen2vl_fixtures_share_tokens_calibration_and_schedule(layer):
    """Each fixture is its own layer over the same model, tokens, calibration scenes and schedule."""
    fixture, spec = QWEN2VL[layer], QWEN2VL_LAYERS[layer]
    assert fixture["layer"] == spec.path and spec.path.startswith(fixture["unit"] + ".")
    assert fixture["generator"] == spec.generator
    first = QWEN2VL["q_proj"]
    for key in ("model", "unit", "units", "schedule", "samples", "calibration", "tokens"):
        assert fixture[key] == first[key], key
    assert QWEN2VL_LAYER == QWEN2VL_LAYERS["q_proj"].path


@pytest.mark.parametrize("layer", QWEN2VL_LAYERS)
def test_qwen2vl_fixture_covers_the_presets_tests_use(layer):
    configs = QWEN2VL[layer]["configs"]
    for name in ("small", "default", "count", "wide"):
        assert configs[name]["config"] == fixture_parameters(PRESETS[name])
    # accel differs from wide only in what the integers do not depend on (the bundle)
    assert fixture_parameters(PRESETS["accel"]) == configs["wide"]["config"]


def test_the_down_projection_has_no_bias():
    for entry in QWEN2VL["down_proj"]["configs"].values():
        assert not any(entry["bias"])


@pytest.mark.parametrize("layer, name", ENTRIES)
def test_qwen2vl_integers_are_what_the_accelerator_runs(layer, name):
    """Shapes from ``fitting_shape``, ``T`` from the schedule by modality, per-token
    activations at the bits ``T`` carries (each token reaches the largest value, as per-token
    absmax quantization does), weights per channel, and a layer the compiler accepts."""
    config, fixture = PRESETS[name], QWEN2VL[layer]
    entry = fixture["configs"][name]
    steps = fixture["schedule"]["timesteps"]
    assert entry["timesteps"] == [steps[Modality(m).label] for m in fixture["tokens"]["modality"]]
    in_f, out_f = entry["in_features"], entry["out_features"]
    whole_in, whole_out = LAYER_SHAPES[layer]
    assert (in_f, out_f) == fitting_shape(config, chunks=max(1, whole_in // config.lanes),
                                          tiles=min(4, whole_out // config.pes))
    q = torch.tensor(entry["q"])
    assert q.shape == (len(entry["timesteps"]), in_f)
    for row, T in zip(q, entry["timesteps"]):
        Q = (1 << (activation_bits(config, T) - 1)) - 1
        assert int(row.abs().max()) == Q
    w = torch.tensor(entry["weight"])
    assert w.shape == (out_f, in_f) and bool((w.abs().amax(dim=1) == config.weight_max).all())
    program = compile_layer(config, _layer(entry, config))
    assert program.in_features == in_f and program.out_features == out_f


@pytest.mark.parametrize("layer, name", ENTRIES)
def test_qwen2vl_outputs_are_the_golden_models(layer, name):
    """The stored outputs, recomputed by the golden spike layer at each token's ``T`` and
    independently by an integer matmul and the requantizer."""
    config = PRESETS[name]
    entry = QWEN2VL[layer]["configs"][name]
    integers = _layer(entry, config)
    q, T = torch.tensor(entry["q"]), torch.tensor(entry["timesteps"])
    outputs = torch.tensor(entry["outputs"])
    direct = requantize(q @ integers.weight.T, integers.bias, integers.multiplier, integers.shift, config.out_bits)
    assert torch.equal(direct, outputs)
    for t in T.unique().tolist():
        rows = T == t
        if config.coding is Coding.TC_LIF:
            assert torch.equal(run_integer_layer(integers, q[rows], t).out, outputs[rows])
        else:
            acc = spike_linear(encode_count_signed(q[rows], t), integers.weight, coding="count")
            assert torch.equal(requantize(acc, integers.bias, integers.multiplier, integers.shift, config.out_bits),
                               outputs[rows])
    assert 0 < int(outputs.abs().max()) <= config.out_max


@pytest.mark.parametrize("layer, name", ENTRIES)
def test_qwen2vl_integers_track_the_float_layer(layer, name):
    """Dequantized, the integer accumulators (with the per-token and per-channel scales)
    give the float layer's outputs to within the quantization error of 4- and 5-bit
    activations: a check that weights, inputs and bias line up."""
    config = PRESETS[name]
    entry = QWEN2VL[layer]["configs"][name]
    s = entry["scales"]
    q, w = torch.tensor(entry["q"]).double(), torch.tensor(entry["weight"]).double()
    s_tok, s_w = torch.tensor(s["input_per_token"]).double(), torch.tensor(s["weight"]).double()
    bias = torch.tensor(entry["bias"]).double() * s["input_static"] * s_w
    y_hat = (q @ w.T) * s_tok[:, None] * s_w + bias
    y = torch.tensor(entry["float_outputs"]).double()
    error = float((y_hat - y).norm() / y.norm())
    assert error < TRACKING[layer][name], f"relative error {error:.3f}"


TRACKING = {
    "q_proj": {"default": 0.1, "wide": 0.1, "small": 0.3, "count": 0.6},
    "down_proj": {"default": 0.2, "wide": 0.2, "small": 0.3, "count": 0.6},
}
"""Bounds on the relative error of the dequantized integers: 4/5-bit activations and
8-bit weights (default and wide); 4-bit weights over 8 inputs (small); count coding's
3-bit activations (count). The down projection's inputs, ``act(gate) * up``, are
heavy-tailed: per-token absmax quantization to 4/5 bits sets three quarters of its 256
inputs to zero (0.13-0.14 on default and wide, against 0.06 for the query projection)."""


@pytest.mark.parametrize("layer", QWEN2VL_LAYERS)
def test_qwen2vl_fixture_is_up_to_date(layer):
    """The generator gives the committed file from the committed checkpoint (whose
    fingerprint the file records)."""
    from spikemllm.sim.fixtures.make_qwen2vl_fixture import build, render

    stored = QWEN2VL[layer]
    made = json.loads(render(build(COMMITTED_CHECKPOINT, layer=layer)))
    assert made["model"]["checkpoint_sha256"] == stored["model"]["checkpoint_sha256"], (
        f"the fixture was made from another checkpoint than {COMMITTED_CHECKPOINT}; run "
        f"{QWEN2VL_LAYERS[layer].generator}")
    # float outputs are up to 5.8 (median 0.47); one near zero (0.0071) moved by 8e-8 on
    # another CPU, more than 1e-5 of itself: small values get an absolute tolerance
    assert_same(made, stored, layer, rel_tol=1e-5, abs_tol=1e-6)
