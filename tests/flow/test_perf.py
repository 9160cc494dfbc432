"""``make perf`` (:mod:`spikemllm.flow.perf`): what it refuses before building anything, the
default schedules it programs, and its report page."""

import json

import pytest
from spikemllm.flow import perf
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.sim.core.cases import LAYER, qwen2vl_fixture, qwen2vl_schedule


def test_default_schedules():
    fixture = qwen2vl_fixture()
    schedule = perf.default_schedule("qwen2vl")
    assert schedule.layers == [u["name"] for u in fixture["units"]]
    assert schedule.T(fixture["unit"], "vision") == 3 and schedule.T(fixture["unit"], "text") == 4
    assert perf.default_schedule("qwen2vl_mlp").to_dict() == schedule.to_dict()  # the same model and unit
    minilm = perf.default_schedule("minilm")
    assert minilm.layers == [LAYER] and minilm.table() == [[4, 3]]


@pytest.mark.parametrize("argv, message", [
    (["--workload", "bert"], "invalid choice: 'bert'"),
    (["--schedule", "{schedule}"], "--schedule applies to one workload"),
    (["--workload", "qwen2vl", "--schedule", "{other}"], "text T=5"),
    (["--workload", "qwen2vl", "--schedule", "{missing}"], "No such file"),
    (["--workload", "qwen2vl", "--set", "lanes=32"], "no slice for configuration"),
    (["--workload", "qwen2vl_mlp", "--set", "lanes=32"], "qwen2vl_lm0_mlp_down_proj.json"),
    (["--workload", "qwen2vl_mlp", "--schedule", "{other}"], "text T=5"),
])
def test_refusals_before_building(argv, message, tmp_path, capsys):
    files = {"schedule": tmp_path / "s.json", "other": tmp_path / "o.json", "missing": tmp_path / "none.json"}
    qwen2vl_schedule().save(files["schedule"])
    qwen2vl_schedule().replace(qwen2vl_fixture()["unit"], "text", 5).save(files["other"])
    argv = [a.format(**files) for a in argv] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        perf.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_markdown_reports_every_workload():
    run = {
        "config": "default", "workload": "qwen2vl", "layer": "a layer", "schedule_file": "/x/s.json",
        "in_features": 96, "out_features": 32, "tokens": 39, "tokens_by_modality": {"text": 21, "vision": 18},
        "timesteps": {"text": 4, "vision": 3}, "rtl_cycles": 100, "model_cycles": 100, "testbench_cycles": 100,
        "bit_exact": True, "events": 150, "weight_reads": 120, "weight_reads_per_token": 120 / 39, "bundle": 2,
        "event_slot_utilization": 0.75, "pe_utilization": 0.9,
        "stalled_run": {"cycles": 120, "bit_exact": True},
        "by_modality": {"text": {"tokens": 21, "timesteps": 4, "spikes_per_token": 50.0, "firing_rate": 0.13}},
        "cycle_breakdown": {"accumulate": 90, "tile_overhead": 10},
    }
    report = {"rtl": run, "workloads": {"qwen2vl": run, "minilm": {**run, "workload": "minilm"}},
              "projection_setup": {"cores": 8, "pes": 256, "lanes": 64, "events_per_cycle": 8, "clock_hz": 5e8,
                                   "bandwidth_bytes_per_s": 1e12, "weight_bits": 8, "text_tokens": 64},
              "projections": []}
    page = perf.markdown(json.loads(json.dumps(report)))
    assert page.count("| testbench's own count of the run's clock cycles | 100 |") == 2
    assert "### Qwen2-VL" in page and "### MiniLM" in page
    assert "| text | 21 | 4 | 50.0 | 0.130 |" in page
    assert page.count("| weight-row reads (WEIGHT_READS), per token; tokens per bundle | 120, 3.1; B = 2 |") == 2
