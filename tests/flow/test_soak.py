"""The soak flow (``make soak``): seeded random layers on the core's RTL under Verilator."""

import dataclasses

import pytest
from spikemllm.flow.soak import soak
from spikemllm.sim.core.cases import core_expectation
from spikemllm.sim.core.soak import soak_case

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def _expected_counts(config, layers, seed, max_chunks):
    cases = [soak_case(config, seed + n, max_chunks=max_chunks) for n in range(layers)]
    return {
        "tokens": 2 * sum(c.tokens for c in cases),
        "input_beats": 2 * sum(len(c.beats) for c in cases),
        "output_beats": 2 * sum(len(core_expectation(c, "core")[0]) for c in cases),
        "weight_rows": sum(len(c.program.weight_rows) for c in cases),
    }


@pytest.mark.parametrize("config", [SMALL_CONFIG, DEFAULT_CONFIG], ids=["small", "default"])
def test_soak_cases_fit_and_reach_the_edges(config):
    cases = {n: soak_case(config, n) for n in range(64)}
    rows = {n: c.program.padded_in * c.program.out_tiles for n, c in cases.items()}
    assert max(rows.values()) <= config.max_fan_in
    # every 16th seed fills the weight memory but for less than a chunk per tile
    assert all(rows[n] > config.max_fan_in - cases[n].program.out_tiles * config.lanes for n in (15, 31, 47, 63))
    assert {c.program.out_tiles for c in cases.values()} == set(range(1, min(config.max_out_tiles, config.in_chunks_max) + 1))
    assert {int(t) for c in cases.values() for t in c.timesteps} == set(range(1, config.t_max + 1))
    assert {c.layer_index for c in cases.values()} == set(range(config.layers))


def test_short_soak_counts_what_it_checked(tmp_path):
    r = soak(DEFAULT_CONFIG, out=tmp_path, layers=4, seed=40, abort_every=2, max_chunks=4)
    assert (r["layers"], r["runs"], r["aborted_runs"], r["mismatches"]) == (4, 8, 2, 0)
    assert {k: r[k] for k in ("tokens", "input_beats", "output_beats", "weight_rows")} == _expected_counts(
        DEFAULT_CONFIG, 4, 40, 4)
    assert (tmp_path / "soak.json").is_file()


def test_short_soak_with_bundles(tmp_path):
    """Random layers in bundles of two tokens on the RTL under Verilator, ideal, stalled and
    aborted: outputs, CYCLES, EVENTS, ACTIVE_CYCLES and WEIGHT_READS as the models give them."""
    config = dataclasses.replace(SMALL_CONFIG, name="small_b2", bundle=2)
    r = soak(config, out=tmp_path, layers=3, seed=60, abort_every=2)
    assert (r["layers"], r["runs"], r["aborted_runs"], r["mismatches"]) == (3, 6, 1, 0)
    assert {k: r[k] for k in ("tokens", "input_beats", "output_beats", "weight_rows")} == _expected_counts(
        config, 3, 60, 8)


@pytest.mark.parametrize("settings, message", [
    ({"layers": 0}, "layers must be a positive integer, not 0"),
    ({"abort_every": -1}, "abort_every must be a non-negative integer, not -1"),
    ({"loops": 3}, "unknown soak settings"),
])
def test_soak_refuses_bad_settings(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        soak(SMALL_CONFIG, out=tmp_path, **settings)
    assert not (tmp_path / "soak.json").exists()


@pytest.mark.slow
def test_soak_thousand_layers(tmp_path):
    r = soak(DEFAULT_CONFIG, out=tmp_path, layers=1000)
    assert r["layers"] == 1000 and r["mismatches"] == 0 and r["aborted_runs"] == 125
