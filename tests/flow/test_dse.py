"""The design-space sweep (:mod:`spikemllm.flow.dse`): the sweep file and its errors, the
estimator and the Pareto front on known data, and a sweep of three small points on a local Ray
(a spike point, its matched INT8 baseline and a point that fails), run twice: the second run
comes from the cache."""

import dataclasses

import pytest

from spikemllm.config import PRESETS, AcceleratorConfig
from spikemllm.flow import dse
from spikemllm.golden.timing.core_model import dense_core_cycles
from spikemllm.sim.core.cases import workload_case


def test_default_sweep_expands_its_grids():
    sweep = dse.load_sweep()
    small = PRESETS["small"]
    measured = {(p.config.events_per_cycle, p.config.requantizers) for p in sweep.points}
    assert measured == {(1, 1), (2, 1), (4, 1), (2, 4)}
    assert all(p.kind == "spike" and dataclasses.replace(p.config, events_per_cycle=small.events_per_cycle,
                                                         requantizers=small.requantizers) == small for p in sweep.points)
    assert len(sweep.estimate) == 4 * 3
    assert sweep.workload == "qwen2vl" and sweep.stages == dse.STAGES and sweep.baselines == ("int8", "fp16")


@pytest.mark.parametrize("text, named", [
    ("colour = 1\n[[points]]\nconfig = 'small'", "colour"),
    ("[[points]]\nconfig = 'small'\nlane = 8", "lane"),
    ("[[points]]\nconfig = 'small'\nlanes = [8, 3]", "lanes=3"),
    ("[[points]]\nconfig = 'small'\nevents_per_cycle = 9", "events_per_cycle"),
    ("[[points]]\nconfig = 'small'\n[[estimate]]\nconfig = 'small'\npes = 'four'", "pes"),
    ("[[points]]\nconfig = 'tiny'", "tiny"),
    ("stages = ['check', 'place']\n[[points]]\nconfig = 'small'", "place"),
    ("fpga = ['ice41']\n[[points]]\nconfig = 'small'", "ice41"),
    ("workload = 'llama'\n[[points]]\nconfig = 'small'", "llama"),
    ("tokens = 0\n[[points]]\nconfig = 'small'", "tokens"),
    ("stages = ['energy']\n[[points]]\nconfig = 'small'", "energy"),
    ("workload = 'qwen2vl'", "no [[points]]"),
    ("[[points]\nconfig = 'small'", "not valid TOML"),
])
def test_malformed_sweeps_are_refused_by_name(text, named):
    with pytest.raises(dse.SweepError) as info:
        dse.parse_sweep(text, source="bad.toml")
    assert named in str(info.value) and "bad.toml" in str(info.value)


def test_missing_sweep_file_is_named(tmp_path):
    with pytest.raises(dse.SweepError, match="nowhere.toml"):
        dse.load_sweep(tmp_path / "nowhere.toml")


def test_pareto_front():
    points = [(1.0, 5.0), (2.0, 4.0), (2.0, 9.0), (3.0, 9.0), (0.5, 1.0), (4.0, 10.0)]
    # (2, 4) is beaten by (1, 5); (3, 9) by (2, 9)
    assert dse.pareto_front(points) == [4, 0, 2, 5]


def _row(config, kind, area, sram, energy, cycles, work, tokens=10):
    return {"label": f"{kind} {config.events_per_cycle} {config.dense_inputs} {config.requantizers}", "kind": kind,
            "status": "ok", "config": config.to_dict()["parameters"], "area_by_block_um2": area,
            "logic_area_um2": sum(area.values()), "sram_area_um2": sram, "area_um2": sum(area.values()) + sram,
            "energy_per_token_j": energy, "cycles": cycles, "work": work, "tokens": tokens}


def test_estimator_recovers_a_linear_truth():
    """Areas and energies made from known coefficients on the features: the fit predicts a
    held-out point exactly, and a point off the truth shows up in the held-out error."""
    rows = []
    for E, R in [(1, 1), (2, 1), (4, 1), (2, 2), (4, 4), (8, 2)]:
        c = dataclasses.replace(PRESETS["small"], events_per_cycle=E, requantizers=R)
        f = dse.features(c, "spike")
        area = {"pe_array": 100 + 3 * f["pes*events*weight_bits"],
                "requantizer": 50 + 0.5 * f["requantizers*multiplier_bits*acc_width"]}
        cycles, work = 1000 // E + 7 * R, 900
        logic = sum(area.values())
        energy = 2e-15 * logic * cycles / 10 + 1e-13 * work / 10 * c.pes * c.weight_bits
        rows.append(_row(c, "spike", area, 1234.0, energy, cycles, work))
    held = dse.held_out_error(rows)
    assert held["summary"]["area_rel_error"]["points"] == len(rows)
    assert held["summary"]["area_rel_error"]["max_abs"] < 1e-9
    assert held["summary"]["energy_rel_error"]["max_abs"] < 1e-9
    off = rows[0]
    off["area_by_block_um2"]["pe_array"] *= 3
    off["logic_area_um2"] = sum(off["area_by_block_um2"].values())
    off["area_um2"] = off["logic_area_um2"] + off["sram_area_um2"]
    assert dse.held_out_error(rows)["points"][off["label"]]["area_rel_error"] < -0.1


SWEEP = """
workload = "qwen2vl"
tokens = 4
stages = ["check", "synth"]
baselines = ["int8"]

[[points]]
config = "small"

# The Qwen2-VL fixture has no slice for this configuration: the point fails in its task.
[[points]]
config = "small"
max_out_tiles = 4
"""


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_sweep_on_local_ray_caches_and_reports_failures(local_ray, tmp_path):
    sweep = dse.parse_sweep(SWEEP)
    first = dse.run_sweep(sweep, tmp_path / "build", progress=False)
    rows = {r["label"]: r for r in first["rows"]}
    spike, failing = rows["small"], rows["small (max_out_tiles=4)"]
    assert spike["status"] == "ok" and spike["check"]["bit_exact"] and spike["check"]["cycle_exact"]
    assert failing["status"] == "failed" and "no slice" in failing["error"] and "max_out_tiles" not in rows
    (base_label,) = [label for label, r in rows.items() if r["kind"] == "int8"]
    base = rows[base_label]
    assert base["status"] == "ok" and base["matched_to"] == ["small"]

    # the baseline's D: the smallest power of two whose exact dense cycles reach the spike core's
    config = PRESETS["small"]
    case = workload_case(config, "qwen2vl", tokens=4)
    assert spike["cycles"] == case.model.cycles and spike["tokens"] == 4
    shape = (4, case.program.padded_in, case.program.out_tiles)
    D = base["dense_inputs"]
    assert dense_core_cycles(dataclasses.replace(config, dense_inputs=D), *shape, "int8").cycles <= spike["cycles"]
    if D > 1:
        assert dense_core_cycles(dataclasses.replace(config, dense_inputs=D // 2), *shape, "int8").cycles > spike["cycles"]
    for r in (spike, base):
        assert r["area_um2"] == pytest.approx(sum(r["area_by_block_um2"].values()) + r["sram_area_um2"])
        assert r["throughput_per_mm2"] == pytest.approx(r["tokens"] / (r["cycles"] / 500e6) / (r["area_um2"] * 1e-6))
    table = dse.table_row(spike)
    assert set(table) == set(dse.COLUMNS) and table["bit_exact"] is True and table["pes"] == config.pes

    second = dse.run_sweep(sweep, tmp_path / "build", progress=False)
    assert second["computed"] == [] and sorted(second["cached"]) == sorted(rows)
    assert {r["label"]: {k: v for k, v in r.items() if k != "cached"} for r in second["rows"]} == \
        {label: {k: v for k, v in r.items() if k != "cached"} for label, r in rows.items()}


def test_command_line_refuses_a_malformed_sweep_before_running(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[points]]\nconfig = 'small'\nrequantizers = 3\n")
    with pytest.raises(SystemExit) as info:
        dse.main(["--sweep", str(bad), "--out", str(tmp_path / "out"), "--build", str(tmp_path / "build")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "points[0] (requantizers=3)" in err and "requantizers must divide pes=4, not 3" in err
    assert not (tmp_path / "build").exists() and not (tmp_path / "out").exists()
