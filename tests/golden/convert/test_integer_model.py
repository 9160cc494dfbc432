"""The hardware-exact integer path: each layer is a compiled core program, spikes equal the dense form."""

from __future__ import annotations

import pytest
import torch
from spikemllm.firmware.compiler import compile_layer, expected_outputs, timestep_table, token_timesteps
from spikemllm.golden.convert.integer_model import IntegerLinear, convert_integer, integer_layers, set_spikes
from spikemllm.golden.convert.model import discover_layers, set_schedule
from spikemllm.golden.convert.schedule import uniform_schedule
from spikemllm.golden.quantize import qmax
from torch import nn

from spikemllm.config import WIDE_CONFIG
from spikemllm.modality import Modality

LAYER = "model.language_model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def integer_qwen2vl(qwen2vl, qwen2vl_batch):
    schedule = uniform_schedule(discover_layers(qwen2vl), vision=3, text=4)
    return convert_integer(qwen2vl, [qwen2vl_batch], schedule, config=WIDE_CONFIG)


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def test_every_linear_layer_is_integer_and_spikes_equal_the_dense_product(integer_qwen2vl, qwen2vl_batch):
    left = [n for n, m in integer_qwen2vl.named_modules() if isinstance(m, (nn.Linear, nn.Conv3d))]
    assert left == []
    layers = integer_layers(integer_qwen2vl)
    specs = integer_qwen2vl.spike_conversion.layers
    assert len(layers) == sum(len(s.linears) for s in specs)
    dense = _logits(integer_qwen2vl, qwen2vl_batch)
    set_spikes(integer_qwen2vl, True)
    try:
        spikes = _logits(integer_qwen2vl, qwen2vl_batch)
    finally:
        set_spikes(integer_qwen2vl, False)
    assert torch.equal(dense, spikes)
    # a language-model layer has one program per modality, sharing the integer weights
    q_proj = layers[LAYER]
    vision, text = q_proj.program(int(Modality.VISION), 3), q_proj.program(int(Modality.TEXT), 4)
    assert torch.equal(vision.layer.weight, text.layer.weight)
    assert vision.in_scale != text.in_scale


def test_layer_output_is_the_compiled_program_on_the_golden_core(integer_qwen2vl, qwen2vl_batch):
    """One layer: the host's static quantization, the compiler's padded program with ``T``
    from the timestep table built from the schedule, the golden core's output beats, and
    the host's dequantization give exactly what the integer model's layer returned."""
    layer = integer_layers(integer_qwen2vl)[LAYER]
    seen = {}

    def keep(_module, args, output):
        seen["x"], seen["y"] = args[0].detach().reshape(-1, layer.in_features), output.detach()

    handle = layer.register_forward_hook(keep)
    try:
        _logits(integer_qwen2vl, qwen2vl_batch)
    finally:
        handle.remove()
    x, y = seen["x"], seen["y"].reshape(-1, layer.out_features)
    modality = qwen2vl_batch["mm_token_type_ids"].reshape(-1)
    schedule = integer_qwen2vl.spike_conversion.schedule
    unit = schedule.layers.index("model.language_model.layers.0")
    steps = token_timesteps(timestep_table(WIDE_CONFIG, schedule), modality, unit)
    assert set(steps[modality == 1].tolist()) == {3} and set(steps[modality == 0].tolist()) == {4}
    for m in (Modality.VISION, Modality.TEXT):
        rows = modality == int(m)
        T = int(steps[rows][0])
        prog = layer.program(int(m), T)
        q = prog.quantize(x[rows].double())
        assert int(q.abs().max()) <= qmax(T + 1)
        program = compile_layer(WIDE_CONFIG, prog.layer)
        beats = expected_outputs(program, q, steps[rows])
        tiles = program.out_tiles
        core = torch.tensor([v for b in beats for v in b["values"]]).reshape(-1, tiles * WIDE_CONFIG.pes)
        core = core[:, : layer.out_features]
        assert torch.equal(core, prog.integers(q))
        assert torch.equal(y[rows], (core.double() * prog.out_scale).to(y.dtype))


def test_more_steps_bring_the_integer_path_closer_to_float(qwen2vl, qwen2vl_batch, integer_qwen2vl):
    ref = _logits(qwen2vl, qwen2vl_batch)
    layers = discover_layers(qwen2vl)
    errors = {}
    try:
        for T in (2, 7):
            set_schedule(integer_qwen2vl, uniform_schedule(layers, vision=T, text=T))
            errors[T] = float((_logits(integer_qwen2vl, qwen2vl_batch) - ref).abs().mean())
    finally:
        set_schedule(integer_qwen2vl, uniform_schedule(layers, vision=3, text=4))
    assert errors[7] < errors[2] / 2


def test_errors_name_the_problem(qwen2vl, qwen2vl_batch, integer_qwen2vl):
    layer = integer_layers(integer_qwen2vl)["model.visual.blocks.0.attn.qkv"]
    with pytest.raises(ValueError, match="saw no text tokens"):
        layer.program(int(Modality.TEXT), 3)
    with pytest.raises(ValueError, match="T=8"):
        layer.program(int(Modality.VISION), 8)
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        convert_integer(qwen2vl, [qwen2vl_batch], config="wide")
    with pytest.raises(TypeError, match="nn.Linear"):
        IntegerLinear(nn.Conv1d(2, 2, 1))


@pytest.mark.parametrize("transform", ["smoothquant", "hadamard"])
def test_transforms_fold_into_the_weights_without_changing_the_float_product(qwen2vl, qwen2vl_batch, transform):
    model = convert_integer(qwen2vl, [qwen2vl_batch], config=WIDE_CONFIG, transform=transform)
    for layer in integer_layers(model).values():
        assert layer.transform == transform and layer.input_map is not None
        x = torch.randn(5, layer.in_features, dtype=torch.float64)
        assert torch.allclose(layer.map_input(x) @ layer.folded_weight.T, x @ layer.float_weight.T, atol=1e-9)
    ref, plain = _logits(qwen2vl, qwen2vl_batch), _logits(model, qwen2vl_batch)
    assert float((plain - ref).abs().mean()) < float(ref.abs().mean())


def test_block_hadamard_is_orthonormal_for_widths_that_are_not_powers_of_two():
    from spikemllm.golden.quantize import block_hadamard

    h = block_hadamard(96)
    assert torch.allclose(h @ h.T, torch.eye(96, dtype=torch.float64), atol=1e-12)
    assert int((h != 0).sum(dim=1)[0]) == 32
    with pytest.raises(ValueError, match="transform"):
        convert_integer(nn.Linear(2, 2), [], transform="gptq")


def test_an_installed_core_computes_every_layers_integers(integer_qwen2vl, qwen2vl_batch):
    """``set_core``: every layer call hands its quantized integers to the core, per modality,
    and continues from what the core returns; ``None`` restores the golden model."""
    from spikemllm.golden.convert.integer_model import set_core

    calls = []

    def golden(layer, modality, program, q, tokens):
        calls.append((layer.layer_name, modality, program.timesteps, tuple(q.shape), len(tokens)))
        return program.integers(q)

    reference = _logits(integer_qwen2vl, qwen2vl_batch)
    set_core(integer_qwen2vl, golden)
    try:
        assert torch.equal(_logits(integer_qwen2vl, qwen2vl_batch), reference)
        assert {c[0] for c in calls} == {s.name for s in integer_qwen2vl.spike_conversion.layers}
        assert all(shape[0] == n for *_, shape, n in calls)
        assert {(m, T) for _, m, T, _, _ in calls} == {(int(Modality.VISION), 3), (int(Modality.TEXT), 4)}
        set_core(integer_qwen2vl, lambda layer, modality, program, q, tokens: torch.zeros_like(program.integers(q)))
        assert not torch.equal(_logits(integer_qwen2vl, qwen2vl_batch), reference)
    finally:
        set_core(integer_qwen2vl, None)
    assert torch.equal(_logits(integer_qwen2vl, qwen2vl_batch), reference)
