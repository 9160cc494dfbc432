"""The real workloads of the core testbenches (:mod:`spikemllm.sim.core.cases`): the
Qwen2-VL layer from its fixture, the dispatch by name, the errors, and the Qwen2-VL layer
on the SpikeCore in amaranth.sim and under Verilator and Icarus, bit- and cycle-exact."""

import dataclasses
import json

import pytest
import torch
from spikemllm.flow.runner import build_block, run_block
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.sim.backends.amaranth_sim import run_with_driver
from spikemllm.sim.core.cases import (
    QWEN2VL_LAYER,
    WORKLOADS,
    case_schedule,
    qwen2vl_case,
    qwen2vl_fixture,
    qwen2vl_schedule,
    spikes_by_modality,
    workload_case,
)
from spikemllm.sim.patterns import late_start, pattern

from spikemllm.config import PRESETS, Coding
from spikemllm.modality import Modality

FIXTURE = qwen2vl_fixture()


@pytest.mark.parametrize("name", ["small", "default", "count", "wide"])
def test_qwen2vl_case_is_the_fixture(name):
    config = PRESETS[name]
    entry = FIXTURE["configs"][name]
    case = workload_case(config, "qwen2vl")
    assert case.workload == "qwen2vl" and case.layer_name == QWEN2VL_LAYER
    assert case.q.tolist() == entry["q"] and case.timesteps.tolist() == entry["timesteps"]
    assert case.modality.tolist() == FIXTURE["tokens"]["modality"]
    tiles = case.program.out_tiles
    assert [b["values"] for b in case.expected] == [
        row[j * config.pes:(j + 1) * config.pes] for row in entry["outputs"] for j in range(tiles)
    ]
    # the table holds the whole model's schedule; the layer sits at its unit's place
    assert case.schedule.layers == [u["name"] for u in FIXTURE["units"]]
    assert case.schedule.layers[case.layer_index] == FIXTURE["unit"]
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


def test_workload_dispatch():
    assert WORKLOADS == ("qwen2vl", "minilm")
    assert workload_case(PRESETS["small"], "minilm", tokens=4).workload == "minilm"
    with pytest.raises(ValueError, match="workload must be one of .* not 'bert'"):
        workload_case(PRESETS["small"], "bert")
    with pytest.raises(TypeError, match="in_features"):
        workload_case(PRESETS["small"], "qwen2vl", in_features=8)


@pytest.mark.parametrize("bundle", [1, 2, 4])
def test_qwen2vl_layer_on_the_core_in_amaranth_sim(bundle):
    """Bit-exact and cycle-exact in amaranth.sim, ideal and stalled, with CYCLES equal to
    the testbench's count of the run (cycle after START to the last output beat); on the
    ``small`` preset alone and in bundles of ``B`` tokens (weight-row reads as the model
    predicts, fewer than the events)."""
    config = dataclasses.replace(PRESETS["small"], bundle=bundle)
    case = qwen2vl_case(config, tokens=14)  # <bos> <vision_start>, 9 image tokens, <vision_end>, 2 words

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
