"""The real workloads of the core testbenches (:mod:`spikemllm.sim.core.cases`): the
Qwen2-VL layers from their fixtures, the dispatch by name, the errors, and the Qwen2-VL
layers on the SpikeCore in amaranth.sim and under Verilator and Icarus, bit- and cycle-exact."""

import dataclasses
import json

import pytest
import torch
from spikemllm.flow.runner import build_block, run_block
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.sim.backends.amaranth_sim import run_with_driver
from spikemllm.sim.core.cases import (
    QWEN2VL_LAYER,
    QWEN2VL_LAYERS,
    WORKLOADS,
    case_schedule,
    qwen2vl_case,
    qwen2vl_fixture,
    qwen2vl_mlp_case,
    qwen2vl_schedule,
    spikes_by_modality,
    workload_case,
)
from spikemllm.sim.patterns import late_start, pattern

from spikemllm.config import PRESETS, Coding
from spikemllm.modality import Modality

FIXTURE = qwen2vl_fixture()


@pytest.mark.parametrize("layer", QWEN2VL_LAYERS)
@pytest.mark.parametrize("name", ["small", "default", "count", "wide"])
def test_qwen2vl_case_is_the_fixture(name, layer):
    config, spec = PRESETS[name], QWEN2VL_LAYERS[layer]
    fixture = qwen2vl_fixture(layer)
    entry = fixture["configs"][name]
    case = workload_case(config, spec.workload)
    assert case.workload == spec.workload and case.layer_name == spec.path == fixture["layer"]
    assert case.q.tolist() == entry["q"] and case.timesteps.tolist() == entry["timesteps"]
    assert case.modality.tolist() == fixture["tokens"]["modality"]
    assert case.program.in_features == entry["in_features"] and case.program.out_features == entry["out_features"]
    tiles = case.program.out_tiles
    assert [b["values"] for b in case.expected] == [
        row[j * config.pes:(j + 1) * config.pes] for row in entry["outputs"] for j in range(tiles)
    ]
    # the table holds the whole model's schedule; the layer sits at its unit's place
    assert case.schedule.layers == [u["name"] for u in fixture["units"]]
    assert case.schedule.layers[case.layer_index] == fixture["unit"]
    assert {int(m) for m in case.modality} == {int(Modality.TEXT), int(Modality.VISION)}
    assert [b["layer"] for b in case.beats] == [case.layer_index] * len(case.beats)


@pytest.mark.parametrize("name", ["default", "count"])
def test_spikes_by_modality(name):
    """TC-LIF fires one spike per binary digit of |q|, count coding |q| spikes: counted
    here from the integers, without the encoders."""
    config = PRESETS[name]
    case = qwen2vl_case(config)
    profile = spikes_by_modality(case)
    assert set(profile) == {"text", "vision"}
    total = 0
    for m in Modality:
        q = case.q[case.modality == m].abs()
        spikes = sum(bin(v).count("1") for v in q.flatten().tolist()) if config.coding is Coding.TC_LIF else int(q.sum())
        entry = profile[m.label]
        assert entry["tokens"] == q.shape[0] and entry["timesteps"] == FIXTURE["schedule"]["timesteps"][m.label]
        assert entry["spikes_per_token"] == pytest.approx(spikes / q.shape[0])
        assert entry["firing_rate"] == pytest.approx(spikes / (q.shape[0] * entry["timesteps"] * q.shape[1]))
        total += spikes
    assert total * case.program.out_tiles == case.model.events


def test_qwen2vl_case_options_and_errors(tmp_path):
    config = PRESETS["small"]
    assert qwen2vl_case(config, tokens=5).tokens == 5
    for bad in (0, 40, 2.5, True):
        with pytest.raises(ValueError, match="tokens must be"):
            qwen2vl_case(config, tokens=bad)
    # a schedule file of the model at the fixture's T is accepted; other T are refused by name
    path = tmp_path / "schedule.json"
    qwen2vl_schedule().save(path)
    assert qwen2vl_case(config, schedule=Schedule.load(path)).q.tolist() == FIXTURE["configs"]["small"]["q"]
    other = qwen2vl_schedule().replace(FIXTURE["unit"], "text", 2)
    with pytest.raises(ValueError, match="text T=2.*make_qwen2vl_fixture --schedule"):
        qwen2vl_case(config, schedule=other)
    with pytest.raises(ValueError, match="no entry for 'model.language_model.layers.0'"):
        qwen2vl_case(config, schedule=case_schedule(0, 3, 4))
    with pytest.raises(ValueError, match="no slice for configuration 'other'.*--config"):
        qwen2vl_case(dataclasses.replace(config, name="other", lanes=16, max_fan_in=32))
    # parameters the integers do not depend on do not matter
    assert qwen2vl_case(dataclasses.replace(PRESETS["default"], name="e4", events_per_cycle=4)).tokens == 39


def test_qwen2vl_mlp_case_options_and_errors():
    """The down projection's workload takes the query projection's options; the errors name
    its own fixture and the generator's ``--layer``."""
    config = PRESETS["small"]
    fixture = qwen2vl_fixture("down_proj")
    assert qwen2vl_mlp_case(config, tokens=5).q.tolist() == fixture["configs"]["small"]["q"][:5]
    # the case for accel is wide's slice (the bundle does not change the integers)
    accel = qwen2vl_mlp_case(PRESETS["accel"])
    assert accel.q.tolist() == fixture["configs"]["wide"]["q"]
    assert (accel.program.in_features, accel.program.out_features) == (256, 64) and accel.program.padded_in // 64 == 4
    with pytest.raises(ValueError, match=r"qwen2vl_lm0_mlp_down_proj\.json \(model\.language_model\.layers\.0\.mlp\."
                                         r"down_proj\) has no slice for configuration 'other'.*--layer down_proj --config"):
        qwen2vl_mlp_case(dataclasses.replace(config, name="other", lanes=16, max_fan_in=32))
    with pytest.raises(ValueError, match="no slice for configuration 'board_ice40'"):
        workload_case(PRESETS["board_ice40"], "qwen2vl_mlp")
    other = qwen2vl_schedule().replace(fixture["unit"], "text", 2)
    with pytest.raises(ValueError, match="text T=2.*make_qwen2vl_fixture --layer down_proj --schedule"):
        qwen2vl_mlp_case(config, schedule=other)
    with pytest.raises(ValueError, match="layer must be one of .* not 'o_proj'"):
        qwen2vl_case(config, layer="o_proj")
    with pytest.raises(ValueError, match="layer must be one of"):
        qwen2vl_fixture("o_proj")


def test_workload_dispatch():
    assert WORKLOADS == ("qwen2vl", "qwen2vl_mlp", "minilm")
    assert workload_case(PRESETS["small"], "minilm", tokens=4).workload == "minilm"
    assert workload_case(PRESETS["small"], "qwen2vl_mlp", tokens=4).workload == "qwen2vl_mlp"
    with pytest.raises(ValueError, match="workload must be one of .* not 'bert'"):
        workload_case(PRESETS["small"], "bert")
    with pytest.raises(TypeError, match="in_features"):
        workload_case(PRESETS["small"], "qwen2vl", in_features=8)
    with pytest.raises(TypeError, match="layer"):  # the workload is the layer
        workload_case(PRESETS["small"], "qwen2vl_mlp", layer="q_proj")


@pytest.mark.parametrize("workload, bundle", [("qwen2vl", 1), ("qwen2vl", 2), ("qwen2vl", 4),
                                              ("qwen2vl_mlp", 1), ("qwen2vl_mlp", 4)])
def test_qwen2vl_layer_on_the_core_in_amaranth_sim(workload, bundle):
    """Bit-exact and cycle-exact in amaranth.sim, ideal and stalled, with CYCLES equal to
    the testbench's count of the run (cycle after START to the last output beat); on the
    ``small`` preset alone and in bundles of ``B`` tokens (weight-row reads as the model
    predicts, fewer than the events); the query and the MLP down projection."""
    config = dataclasses.replace(PRESETS["small"], bundle=bundle)
    case = workload_case(config, workload, tokens=14)  # <bos> <vision_start>, 9 image tokens, <vision_end>, 2 words

    async def body(driver):
        await driver.identify()
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        ideal = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)
        stalled = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles,
                                   in_pattern=late_start(pattern("random30", seed=3)),
                                   out_pattern=pattern("random70", seed=4))
        return ideal, stalled

    ideal, stalled = run_with_driver(config, body)
    assert ideal.outputs == case.expected and stalled.outputs == case.expected
    assert ideal.counters["CYCLES"] == case.model.cycles == ideal.transfer_cycles
    assert ideal.counters["EVENTS"] == case.model.events
    assert ideal.counters["WEIGHT_READS"] == stalled.counters["WEIGHT_READS"] == case.model.weight_reads
    assert (case.model.weight_reads < case.model.events) == (bundle > 1)
    assert stalled.counters["CYCLES"] == stalled.transfer_cycles > ideal.counters["CYCLES"]


@pytest.mark.parametrize("simulator", ["verilator", "icarus"], indirect=True)
def test_qwen2vl_layer_in_cocotb(simulator, tmp_path):
    """The core testbench on the Qwen2-VL workload (default configuration, 39 real tokens
    of two held-out questions): bit-exact, CYCLES equal to the model and to the
    testbench's own count of clock edges, ideal and stalled."""
    build = build_block(PRESETS["default"], "core", simulator=simulator)
    results = tmp_path / "core.json"
    run_block(build, results=results, case={"workload": "qwen2vl"})
    r = json.loads(results.read_text())
    case = qwen2vl_case(PRESETS["default"])
    assert r["workload"] == "qwen2vl" and r["layer_name"] == QWEN2VL_LAYER
    assert r["bit_exact"] and r["stalled_run"]["bit_exact"]
    assert r["rtl_cycles"] == r["model_cycles"] == r["testbench_cycles"] == case.model.cycles
    assert r["stalled_run"]["cycles"] == r["stalled_run"]["testbench_cycles"] > r["rtl_cycles"]
    assert r["events"] == case.model.events
    assert r["tokens"] == 39 and r["tokens_by_modality"] == {"text": 21, "vision": 18}
    assert r["timesteps"] == {"text": 4, "vision": 3}
    assert torch.isclose(torch.tensor(r["event_slot_utilization"]),
                         torch.tensor(case.model.events / (2 * case.model.cycles)))
