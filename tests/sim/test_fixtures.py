"""The checked-in real-data fixtures: each is what its checked-in generator makes, and its
integers are consistent with the golden model and with the model they were captured from.

* MiniLM (``minilm_layer0_ffn.json``): regenerated from the packaged pretrained model.
* Qwen2-VL (``qwen2vl_lm0_q_proj.json``): checked on its own (tokens, modality tags and
  schedule recomputed from the data generator and the model configuration; outputs
  recomputed by the golden model; the integers against the float layer's outputs) and
  regenerated from the committed checkpoint it was made from.
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
    activation_bits,
    fitting_shape,
    fixture_parameters,
    qwen2vl_fixture,
)

from spikemllm.config import PRESETS, Coding
from spikemllm.modality import Modality

FIXTURES = resources.files("spikemllm.sim") / "fixtures"
SCRIPT = FIXTURES / "make_minilm_fixture.py"
QWEN2VL = qwen2vl_fixture()
QWEN2VL_CONFIGS = sorted(QWEN2VL["configs"])


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

    s = QWEN2VL["samples"]
    assert s["seed"] == HELDOUT_SEED and s["split"] == "held-out"
    samples = generate(s["count"], HELDOUT_SEED)
    assert s["questions"] == [" ".join(x.question) for x in samples] and s["answers"] == [x.answer for x in samples]
    inputs = collate(samples)["inputs"]
    real = inputs["attention_mask"].bool()
    tokens = QWEN2VL["tokens"]
    assert tokens["ids"] == inputs["input_ids"][real].tolist()
    assert tokens["words"] == VOCAB.decode(tokens["ids"])
    assert tokens["sample"] == torch.arange(len(samples)).unsqueeze(1).expand_as(real)[real].tolist()
    image = model_config("small").image_token_id
    assert tokens["modality"] == [int(Modality.VISION if i == image else Modality.TEXT) for i in tokens["ids"]]
    assert 0 < sum(tokens["modality"]) < len(tokens["modality"])  # both modalities pass the layer
    assert QWEN2VL["layer"] == QWEN2VL_LAYER and QWEN2VL_LAYER.startswith(QWEN2VL["unit"] + ".")


def test_qwen2vl_fixture_covers_the_presets_tests_use():
    for name in ("small", "default", "count"):
        assert QWEN2VL["configs"][name]["config"] == fixture_parameters(PRESETS[name])


@pytest.mark.parametrize("name", QWEN2VL_CONFIGS)
def test_qwen2vl_integers_are_what_the_accelerator_runs(name):
    """Shapes from ``fitting_shape``, ``T`` from the schedule by modality, per-token
    activations at the bits ``T`` carries (each token reaches the largest value, as per-token
    absmax quantization does), weights per channel, and a layer the compiler accepts."""
    config = PRESETS[name]
    entry = QWEN2VL["configs"][name]
    steps = QWEN2VL["schedule"]["timesteps"]
    assert entry["timesteps"] == [steps[Modality(m).label] for m in QWEN2VL["tokens"]["modality"]]
    in_f, out_f = entry["in_features"], entry["out_features"]
    assert (in_f, out_f) == fitting_shape(config, chunks=max(1, 96 // config.lanes), tiles=min(4, 96 // config.pes))
    q = torch.tensor(entry["q"])
    assert q.shape == (len(entry["timesteps"]), in_f)
    for row, T in zip(q, entry["timesteps"]):
        Q = (1 << (activation_bits(config, T) - 1)) - 1
        assert int(row.abs().max()) == Q
    w = torch.tensor(entry["weight"])
    assert w.shape == (out_f, in_f) and bool((w.abs().amax(dim=1) == config.weight_max).all())
    program = compile_layer(config, _layer(entry, config))
    assert program.in_features == in_f and program.out_features == out_f


@pytest.mark.parametrize("name", QWEN2VL_CONFIGS)
def test_qwen2vl_outputs_are_the_golden_models(name):
    """The stored outputs, recomputed by the golden spike layer at each token's ``T`` and
    independently by an integer matmul and the requantizer."""
    config = PRESETS[name]
    entry = QWEN2VL["configs"][name]
    layer = _layer(entry, config)
    q, T = torch.tensor(entry["q"]), torch.tensor(entry["timesteps"])
    outputs = torch.tensor(entry["outputs"])
    direct = requantize(q @ layer.weight.T, layer.bias, layer.multiplier, layer.shift, config.out_bits)
    assert torch.equal(direct, outputs)
    for t in T.unique().tolist():
        rows = T == t
        if config.coding is Coding.TC_LIF:
            assert torch.equal(run_integer_layer(layer, q[rows], t).out, outputs[rows])
        else:
            acc = spike_linear(encode_count_signed(q[rows], t), layer.weight, coding="count")
            assert torch.equal(requantize(acc, layer.bias, layer.multiplier, layer.shift, config.out_bits), outputs[rows])
    assert 0 < int(outputs.abs().max()) <= config.out_max


@pytest.mark.parametrize("name", QWEN2VL_CONFIGS)
def test_qwen2vl_integers_track_the_float_layer(name):
    """Dequantized, the integer accumulators (with the per-token and per-channel scales)
    give the float layer's outputs to within the quantization error of 4- and 5-bit
    activations: a check that weights, inputs and bias line up."""
    config = PRESETS[name]
    entry = QWEN2VL["configs"][name]
    s = entry["scales"]
    q, w = torch.tensor(entry["q"]).double(), torch.tensor(entry["weight"]).double()
    s_tok, s_w = torch.tensor(s["input_per_token"]).double(), torch.tensor(s["weight"]).double()
    bias = torch.tensor(entry["bias"]).double() * s["input_static"] * s_w
    y_hat = (q @ w.T) * s_tok[:, None] * s_w + bias
    y = torch.tensor(entry["float_outputs"]).double()
    error = float((y_hat - y).norm() / y.norm())
    assert error < TRACKING[name], f"relative error {error:.3f}"


TRACKING = {"default": 0.1, "wide": 0.1, "small": 0.3, "count": 0.6}
"""Bounds on the relative error of the dequantized integers: 4/5-bit activations and
8-bit weights (default and wide); 4-bit weights over 8 inputs (small); count coding's
3-bit activations (count)."""


def test_qwen2vl_fixture_is_up_to_date():
    """The generator gives the committed file from the committed checkpoint (whose
    fingerprint the file records)."""
    from spikemllm.sim.fixtures.make_qwen2vl_fixture import build, render

    made = json.loads(render(build(COMMITTED_CHECKPOINT)))
    assert made["model"]["checkpoint_sha256"] == QWEN2VL["model"]["checkpoint_sha256"], (
        f"the fixture was made from another checkpoint than {COMMITTED_CHECKPOINT}; run "
        "python -m spikemllm.sim.fixtures.make_qwen2vl_fixture")
    # float outputs are up to 5.8 (median 0.47); one near zero (0.0071) moved by 8e-8 on
    # another CPU, more than 1e-5 of itself: small values get an absolute tolerance
    assert_same(made, QWEN2VL, "qwen2vl", rel_tol=1e-5, abs_tol=1e-6)
