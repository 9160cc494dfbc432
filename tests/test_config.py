"""AcceleratorConfig: validation that names the bad value, derived widths, description round trip."""

import dataclasses
import json

import pytest

from spikemllm.config import COUNT_CONFIG, DEFAULT_CONFIG, PRESETS, SMALL_CONFIG, AcceleratorConfig


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lanes": 12}, "lanes must be a power of two, not 12"),
        ({"lanes": 1}, "lanes must be at least 2, not 1"),
        ({"pes": 0}, "pes must be in"),
        ({"t_max": 8}, "t_max=8 is more than tc_lif coding of 8-bit activations needs"),
        ({"act_bits": 4, "t_max": 4}, "t_max=4 is more than"),
        ({"coding": "count", "act_bits": 4, "t_max": 8}, "at most 2^(act_bits-1) - 1 = 7"),
        ({"weight_bits": 9}, "weight_bits must be in [2, 8], not 9"),
        ({"weight_bits": 1}, "weight_bits must be in [2, 8], not 1"),
        ({"coding": "rate"}, "coding must be one of"),
        ({"events_per_cycle": 17}, "events_per_cycle must be in [1, 16], not 17"),
        ({"max_fan_in": 24}, "max_fan_in must be a multiple of lanes=16, not 24"),
        ({"max_fan_in": 8}, "max_fan_in must be in"),
        ({"shift_bits": 7}, "shift_bits must be in [1, 6], not 7"),
        ({"multiplier_bits": 31, "bias_bits": 40}, "requantizer product"),
        ({"name": "bad name"}, "name must be a non-empty identifier"),
    ],
)
def test_bad_values_are_named(change, message):
    with pytest.raises(ValueError) as info:
        dataclasses.replace(DEFAULT_CONFIG, **change)
    assert message in str(info.value)


@pytest.mark.parametrize("field", ["lanes", "pes", "t_max", "act_bits"])
@pytest.mark.parametrize("value", [8.0, True, "8"])
def test_wrong_types_raise_type_error(field, value):
    with pytest.raises(TypeError, match=field):
        dataclasses.replace(DEFAULT_CONFIG, **{field: value})


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        AcceleratorConfig("x", 16)  # noqa
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_CONFIG.lanes = 32


@pytest.mark.parametrize("config", list(PRESETS.values()), ids=list(PRESETS))
def test_acc_width_is_the_smallest_that_holds_the_bound(config):
    bound = config.act_max * config.max_fan_in * config.weight_max + (1 << (config.bias_bits - 1))
    assert config.acc_bound == bound
    assert bound <= (1 << (config.acc_width - 1)) - 1
    assert bound > (1 << (config.acc_width - 2)) - 1


def test_widths_follow_the_parameters():
    c = DEFAULT_CONFIG
    assert c.index_width == 10 and (1 << c.index_width) == c.max_fan_in
    assert c.lane_index_width == 4
    assert c.act_max == (1 << c.t_max) - 1
    assert COUNT_CONFIG.act_max == COUNT_CONFIG.t_max
    assert SMALL_CONFIG.max_shift == (1 << SMALL_CONFIG.shift_bits) - 1
    assert c.max_shift == 62
    wide = dataclasses.replace(c, max_fan_in=4096)
    assert wide.acc_width >= c.acc_width + 2


@pytest.mark.parametrize("config", list(PRESETS.values()), ids=list(PRESETS))
def test_json_round_trip(config):
    assert AcceleratorConfig.from_json(config.to_json()) == config
    assert config.to_json() == config.to_json()


def test_stale_description_is_rejected():
    description = json.loads(DEFAULT_CONFIG.to_json())
    description["derived"]["acc_width"] += 1
    with pytest.raises(ValueError, match="acc_width"):
        AcceleratorConfig.from_dict(description)
    with pytest.raises(ValueError, match="parameters"):
        AcceleratorConfig.from_dict({"derived": {}})


def test_entry_points_take_a_preset_a_file_and_overrides(tmp_path):
    from spikemllm.hw.generate import generate

    from spikemllm.config import load_config

    assert load_config("small") is SMALL_CONFIG
    generate(SMALL_CONFIG, tmp_path, blocks=["compactor"])
    assert load_config(tmp_path / "config.json") == SMALL_CONFIG
    wide = load_config(tmp_path / "config.json", ["lanes=16", "max_fan_in=32", "name=wide"])
    assert (wide.lanes, wide.max_fan_in, wide.name, wide.pes) == (16, 32, "wide", SMALL_CONFIG.pes)
    assert load_config("default", ["coding=count", "t_max=7", "act_bits=4"]).coding == "count"


@pytest.mark.parametrize("source, overrides, message", [
    ("tiny", [], "unknown configuration 'tiny'"),
    ("missing.json", [], "does not exist"),
    ("default", ["lanes"], "field=value"),
    ("default", ["width=3"], "unknown configuration field 'width'"),
    ("default", ["pes=four"], "pes must be an integer, not 'four'"),
    ("default", ["lanes=12"], "lanes must be a power of two, not 12"),
])
def test_bad_configuration_sources_are_refused_by_name(source, overrides, message):
    from spikemllm.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(source, overrides)


def test_malformed_configuration_files_are_refused(tmp_path):
    from spikemllm.config import load_config

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(bad)
    bad.write_text('{"parameters": {"lanes": 8, "colour": 3}}')
    with pytest.raises(ValueError, match="colour"):
        load_config(bad)


def test_describe_config_names_the_overrides():
    from spikemllm.config import describe_config, load_config

    assert describe_config(DEFAULT_CONFIG) == "default"
    assert describe_config(load_config("default", ["events_per_cycle=4", "lanes=64"])) == "default (lanes=64, events_per_cycle=4)"
    assert describe_config(load_config("small", ["name=mine", "pes=8"])) == "mine"
