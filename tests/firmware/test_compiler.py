"""Layer compiler: memory images reproduce the layer; schedules program the timestep table;
everything that does not fit the core is refused by name."""

import json

import pytest
import torch
from spikemllm.firmware.compiler import compile_layer, timestep_table, token_beats
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.layer import IntegerLayer

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def layer(out_features=10, in_features=20, *, weight_bits=8, out_bits=8, bias=5, multiplier=40000, shift=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q = (1 << (weight_bits - 1)) - 1
    return IntegerLayer(
        torch.randint(-Q, Q + 1, (out_features, in_features), generator=g),
        torch.full((out_features,), bias), torch.full((out_features,), multiplier), torch.full((out_features,), shift),
        out_bits=out_bits, weight_bits=weight_bits,
    )


def test_images_reproduce_the_padded_layer():
    original = layer()
    program = compile_layer(DEFAULT_CONFIG, original)
    assert (program.padded_in, program.padded_out, program.in_chunks, program.out_tiles) == (32, 16, 2, 2)
    P = DEFAULT_CONFIG.pes
    rebuilt = torch.zeros(16, 32, dtype=torch.int64)
    for addr, row in program.weight_rows:
        tile, column = divmod(addr, program.padded_in)
        rebuilt[tile * P:(tile + 1) * P, column] = torch.tensor(row)
    assert torch.equal(rebuilt[:10, :20], original.weight) and not rebuilt[10:].any() and not rebuilt[:, 20:].any()
    assert [b for _, bias in program.bias_tiles for b in bias][:10] == [5] * 10
    assert len({addr for addr, _ in program.weight_rows}) == len(program.weight_rows) == 64


@pytest.mark.parametrize("kwargs, message", [
    ({"in_features": 1040}, "exceeds the core's max_fan_in=1024"),
    ({"out_features": 72}, "needs 9 tiles of 8; the core holds 8"),
    ({"in_features": 600, "out_features": 16}, "weight rows exceed the weight memory's 1024"),
    ({"bias": 1 << 23}, "does not fit bias_bits=24"),
    ({"multiplier": 1 << 16}, "does not fit multiplier_bits=16"),
    ({"out_bits": 4}, "the core is built for out_bits=8"),
])
def test_what_does_not_fit_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        compile_layer(DEFAULT_CONFIG, layer(**kwargs))


def test_weights_wider_than_the_core():
    with pytest.raises(ValueError, match="8-bit weights; the core holds 4-bit"):
        compile_layer(SMALL_CONFIG, layer(out_bits=5))


def schedule(layers):
    return Schedule(
        {name: T for name, T in layers.items()},
        {name: ("vision_encoder" if set(T) == {"vision"} else "language_model") for name, T in layers.items()},
    )


def test_schedule_file_programs_the_table(tmp_path):
    s = schedule({"model.visual.blocks.0": {"vision": 3}, "model.language_model.layers.0": {"text": 4, "vision": 3}})
    path = tmp_path / "schedule.json"
    s.save(path)
    loaded = Schedule.load(path)
    table = timestep_table(DEFAULT_CONFIG, loaded)
    assert table[:4] == [0, 3, 4, 3] and not any(table[4:])  # (layer 0: text unused, vision 3), (layer 1: 4, 3)
    assert len(table) == 2 * DEFAULT_CONFIG.layers


def test_schedule_that_does_not_fit_the_table():
    with pytest.raises(ValueError, match="T=9, above the core's t_max=7"):
        timestep_table(DEFAULT_CONFIG, schedule({"model.language_model.layers.0": {"text": 9, "vision": 3}}))
    many = {f"model.language_model.layers.{n}": {"text": 4} for n in range(9)}
    with pytest.raises(ValueError, match="9 layers; the core's timestep table holds 8"):
        timestep_table(DEFAULT_CONFIG, schedule(many))


def test_malformed_schedule_file_is_named(tmp_path):
    path = tmp_path / "bad.json"
    s = schedule({"model.language_model.layers.0": {"text": 4}})
    data = s.to_dict()
    data["layers"][0]["timesteps"] = {"audio": 3}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="audio"):
        Schedule.load(path)


def test_token_beats_check_their_input():
    program = compile_layer(DEFAULT_CONFIG, layer())
    with pytest.raises(ValueError, match=r"shape \(tokens, 20\)"):
        token_beats(program, torch.zeros(2, 21, dtype=torch.int64), torch.zeros(2, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match="does not fit act_bits=8"):
        token_beats(program, torch.full((1, 20), 128), torch.zeros(1, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match="modality tags must be 0"):
        token_beats(program, torch.zeros(1, 20, dtype=torch.int64), torch.tensor([2]), 0)
    beats = token_beats(program, torch.arange(20).view(1, 20), torch.tensor([1]), 2)
    assert len(beats) == 2 and beats[1]["values"][:4] == [16, 17, 18, 19] and beats[1]["values"][4:] == [0] * 12
    assert beats[0]["modality"] == 1 and beats[0]["layer"] == 2
