"""``make synth``'s whole flow on the ``small`` configuration, so that a broken stage fails
the suite: Verilog, sky130 synthesis with fanout repair and static timing, the traced
Verilator run of the Qwen2-VL layer, activity, energy, the iso-area search, the report and
the full-size projection (the gate-level runs are left to ``test_gatelevel.py``).
What it reports is checked against the exact cycle models and against its own parts."""

import dataclasses
import json
import math

import pytest
from spikemllm.flow import ppa
from spikemllm.golden.timing.core_model import dense_core_cycles
from spikemllm.sim.core.cases import qwen2vl_case

from spikemllm.config import SMALL_CONFIG


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppa")
    # the gate-level simulations would add three netlist builds; tests/flow/test_gatelevel.py
    # simulates a small netlist under its testbench instead
    code = ppa.main(["--config", "small", "--fpga", "none", "--no-gate-level", "--out", str(out / "reports"),
                     "--build", str(out / "build")])
    assert code == 0, "a core was not bit-exact or its RTL cycles differ from the model's"
    return json.loads((out / "reports" / "ppa.json").read_text()), out / "reports"


def test_cycles_and_events_are_the_exact_models(report):
    r, _ = report
    case = qwen2vl_case(SMALL_CONFIG)
    spike = r["cores"]["spike"]
    assert (spike["cycles"], spike["events"], spike["tokens"]) == (case.model.cycles, case.model.events, len(case.q))
    assert spike["utilization"] == case.model.weight_reads / (SMALL_CONFIG.events_per_cycle * case.model.cycles)
    for base in ("int8", "fp16"):
        core = r["cores"][base]
        config = dataclasses.replace(SMALL_CONFIG, dense_inputs=core["dense_inputs"])
        model = dense_core_cycles(config, len(case.q), case.program.in_features, case.program.out_tiles, base)
        assert core["cycles"] == model.cycles <= spike["cycles"]
        assert core["utilization"] == model.weight_reads / (core["dense_inputs"] * model.cycles)
        assert core["bit_exact"] and core["cycle_exact"]


def test_areas_timing_and_energy_add_up(report):
    r, _ = report
    for name, core in r["cores"].items():
        assert core["logic_area_um2"] == pytest.approx(sum(core["area_by_block_um2"].values()), rel=1e-6), name
        assert core["area_um2"] == pytest.approx(core["logic_area_um2"] + core["sram_area_um2"]), name
        timing = core["asic_timing"]
        assert timing["critical_path"]["kind"] == "reg->reg"
        assert core["asic_fmax_mhz"] == pytest.approx(1e3 / timing["critical_path"]["period_ns"], rel=1e-3)
        assert core["energy_per_token_j"] == pytest.approx(core["logic_energy_per_token_j"] + core["sram_energy_per_token_j"])
        assert 0 < core["energy_per_token_j"] < core["energy_per_token_no_clock_gating_j"]
        assert core["tokens_per_s"] == pytest.approx(core["clock_mhz"] * 1e6 * core["tokens"] / core["cycles"])


def test_ratios_are_the_cores_figures(report):
    r, _ = report
    spike = r["cores"]["spike"]
    for base in ("int8", "fp16"):
        core = r["cores"][base]
        ratio = r["ratios"][f"spike_vs_{base}"]
        it = ratio["iso_throughput"]
        tpa = (spike["tokens_per_s"] / spike["area_um2"]) / (core["tokens_per_s"] / core["area_um2"])
        assert it["throughput_per_area_with_sram"] == pytest.approx(tpa)
        assert it["energy_per_token_with_sram"] == pytest.approx(core["energy_per_token_j"] / spike["energy_per_token_j"])
        assert math.isfinite(ratio["throughput_per_area_with_sram"])


def test_report_files(report):
    r, out = report
    md = (out / "ppa.md").read_text()
    for word in ("spike", "INT8", "FP16", "ASIC Fmax"):
        assert word in md
    for plot in ("ppa_area.png", "ppa_energy.png", "ppa_iso_throughput.png"):
        assert (out / plot).stat().st_size > 0
    assert r["checks"]["rtl_cycles_equal_model"]["met"] and r["checks"]["bit_exact"]["met"]
    assert (out / "fullsize.json").exists() and (out / "fullsize.md").exists()
    for core in r["cores"].values():
        assert set(core) <= set(r["figures"]), f"figures without a label: {set(core) - set(r['figures'])}"
