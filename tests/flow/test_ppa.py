"""The report's arithmetic: throughput matching of the dense baselines (with a stubbed and with
the exact cycle model), iso-area choice, ratios, the decomposition, and the whole report on
small made-up measurements."""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from spikemllm.flow import ppa, sram
from spikemllm.flow.ppa import closest_area, compare, matched_dense_inputs
from spikemllm.golden.timing.core_model import dense_core_cycles
from spikemllm.hw.registers import CoreKind

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG

DOCS = Path(__file__).parents[2] / "docs" / "ppa.md"


def test_dense_inputs_are_the_smallest_power_of_two_that_keeps_up():
    seen = []

    def cycles(config, tokens, in_features, out_tiles, arithmetic):
        seen.append((config.dense_inputs, arithmetic))
        return SimpleNamespace(cycles=1000 // config.dense_inputs + 10)

    shape = {"tokens": 3, "in_features": 32, "out_tiles": 1}
    # D = 1: 1010, 2: 510, 4: 260, 8: 135
    assert matched_dense_inputs(DEFAULT_CONFIG, CoreKind.INT8, 260, cycles=cycles, **shape) == 4
    assert seen == [(1, "int8"), (2, "int8"), (4, "int8")]
    assert matched_dense_inputs(DEFAULT_CONFIG, CoreKind.FP16, 259, cycles=cycles, **shape) == 8
    assert matched_dense_inputs(DEFAULT_CONFIG, CoreKind.FP16, 5000, cycles=cycles, **shape) == 1
    # nothing keeps up: the widest the configuration allows
    assert matched_dense_inputs(DEFAULT_CONFIG, CoreKind.FP16, 1, cycles=cycles, **shape) == DEFAULT_CONFIG.lanes


@pytest.mark.parametrize("kind", [CoreKind.INT8, CoreKind.FP16])
def test_dense_inputs_match_with_the_exact_model(kind):
    shape = {"tokens": 12, "in_features": 384, "out_tiles": 2}

    def cycles(D):
        return dense_core_cycles(dataclasses.replace(DEFAULT_CONFIG, dense_inputs=D), shape["tokens"],
                                 shape["in_features"], shape["out_tiles"], kind.value).cycles

    for D in (1, 2, 4, 8):
        assert matched_dense_inputs(DEFAULT_CONFIG, kind, cycles(D), **shape) == D
        if D > 1:  # one cycle faster than D allows needs the next width
            assert matched_dense_inputs(DEFAULT_CONFIG, kind, cycles(D) - 1, **shape) == 2 * D


def test_iso_area_takes_the_closest_area_and_brackets_first():
    assert closest_area(100.0, {1: 60.0, 2: 95.0, 4: 180.0}) == 2
    assert closest_area(100.0, {1: 50.0, 2: 200.0}) == 1  # a tie in ratio: the smaller D
    with pytest.raises(ValueError, match="no candidate"):
        closest_area(1.0, {})
    # the search widens D until the target lies between two candidates (or a limit is reached)
    assert ppa._next_candidate(100.0, {2: 60.0}, 16) == 4
    assert ppa._next_candidate(100.0, {2: 160.0}, 16) == 1
    assert ppa._next_candidate(100.0, {2: 60.0, 4: 120.0}, 16) is None
    assert ppa._next_candidate(100.0, {1: 160.0}, 16) is None
    assert ppa._next_candidate(100.0, {16: 60.0}, 16) is None


def _metrics(tokens_per_s, logic_area, sram_area, logic_j, sram_j, ungated_j):
    return {"tokens_per_s": tokens_per_s, "logic_area_um2": logic_area, "area_um2": logic_area + sram_area,
            "logic_energy_per_token_j": logic_j, "energy_per_token_j": logic_j + sram_j,
            "logic_energy_per_token_no_clock_gating_j": ungated_j,
            "energy_per_token_no_clock_gating_j": ungated_j + sram_j,
            "energy_per_token_opcount_45nm_j": 1.0, "energy_per_token_opcount_45nm_compute_only_j": 1.0}


def test_ratios_put_the_baseline_over_the_spike_core():
    spike = _metrics(200.0, 10.0, 30.0, 1.0, 1.0, 2.0)
    base = _metrics(100.0, 20.0, 30.0, 4.0, 2.0, 5.0)
    r = compare(spike, base)
    assert r["throughput"] == 2.0
    assert r["area_logic"] == 2.0 and r["area_with_sram"] == 50.0 / 40.0
    assert r["throughput_per_area_logic"] == pytest.approx((200 / 10) / (100 / 20))
    assert r["throughput_per_area_with_sram"] == pytest.approx((200 / 40) / (100 / 50))
    assert r["logic_energy_per_token"] == 4.0 and r["energy_per_token_with_sram"] == 3.0
    assert r["logic_energy_per_token_no_clock_gating"] == 2.5
    assert r["energy_per_token_with_sram_no_clock_gating"] == 7.0 / 3.0


def test_cycle_model_decomposition_takes_one_idea_away_at_a_time():
    from spikemllm.sim.core.cases import minilm_case

    d = ppa.cycle_model_decomposition(SMALL_CONFIG, "minilm")["entries"]
    case = minilm_case(SMALL_CONFIG)
    tiles, padded = case.program.out_tiles, case.program.padded_in
    assert d["spike"]["cycles"] == case.model.cycles and d["spike"]["events"] == case.model.events
    # every (step, input) pair is an event without zero skipping
    assert d["no_zero_skipping"]["events"] == tiles * padded * int(case.timesteps.sum())
    # count coding needs 2^T - 1 steps for the same integers: at least as many events
    assert d["count_coding"]["events"] >= d["spike"]["events"]
    assert d["dense_int8_same_width"]["events"] == case.tokens * tiles * padded
    # the uniform-step variant needs activations requantized to the wider T: MiniLM's alone
    assert d["uniform_steps"]["events"] >= d["spike"]["events"]


def test_without_zero_skipping_a_bundle_reads_every_step_and_input():
    """With bundles the variant without zero skipping is the RTL's (``zero_skipping=False``):
    the same spikes, a weight-row read for every (step, input) pair of every bundle, and the
    plan measures it with the decomposition."""
    from spikemllm.sim.core.cases import minilm_case

    config = dataclasses.replace(SMALL_CONFIG, bundle=2)
    d = ppa.cycle_model_decomposition(config, "minilm")["entries"]
    case = minilm_case(config)
    T = case.timesteps.tolist()
    pairs = case.program.out_tiles * case.program.padded_in * sum(max(T[i:i + 2]) for i in range(0, len(T), 2))
    assert d["no_zero_skipping"]["weight_reads"] == pairs > d["spike"]["weight_reads"]
    assert d["no_zero_skipping"]["events"] == d["spike"]["events"]
    assert d["no_zero_skipping"]["cycles"] > d["spike"]["cycles"]
    variants, _ = ppa.plan(config, decomposition=True, workload="minilm", fpga_cores=())
    assert not variants["no_zero_skipping"].config.zero_skipping and variants["no_zero_skipping"].kind.value == "spike"
    assert "no_zero_skipping" not in ppa.plan(SMALL_CONFIG, decomposition=True, workload="minilm", fpga_cores=())[0]


@pytest.mark.parametrize("workload", ["qwen2vl", "qwen2vl_mlp"])
def test_cycle_model_decomposition_of_the_qwen2vl_workloads(workload):
    from spikemllm.sim.core.cases import workload_case

    d = ppa.cycle_model_decomposition(SMALL_CONFIG, workload)["entries"]
    case = workload_case(SMALL_CONFIG, workload)
    assert d["spike"]["cycles"] == case.model.cycles
    assert "uniform_steps" not in d  # the fixture holds the integers of its own schedule only
    assert d["dense_int8_same_width"]["events"] == case.tokens * case.program.out_tiles * case.program.padded_in


def test_plan_measures_schedule_variants_on_minilm_alone():
    variants, info = ppa.plan(SMALL_CONFIG, decomposition=True, workload="minilm")
    assert {"spike", "int8", "fp16", "count_coding", "uniform_steps"} <= set(variants)
    for workload in ("qwen2vl", "qwen2vl_mlp"):
        variants, info = ppa.plan(SMALL_CONFIG, decomposition=True, workload=workload)
        assert "count_coding" not in variants and "uniform_steps" not in variants
        assert info["spike_model_cycles"] > 0 and set(info["matched_dense_inputs"]) == {"int8", "fp16"}


def test_plan_places_the_chosen_cores_on_the_fpgas():
    variants, _ = ppa.plan(SMALL_CONFIG, decomposition=False)
    assert {k for k, v in variants.items() if v.fpga} == set(ppa.DEFAULT_FPGA_CORES) == {"spike", "int8"}
    variants, _ = ppa.plan(SMALL_CONFIG, decomposition=False, fpga_cores=("fp16",))
    assert {k for k, v in variants.items() if v.fpga} == {"fp16"}


# -- the report on small made-up measurements ------------------------------------------------------

BLOCKS = {"spike": ("top", "compactor", "pe_array", "requantizer"), "int8": ("top", "mac_array", "requantizer"),
          "fp16": ("top", "mac_array", "requantizer")}


def _timing(fmax_mhz):
    stage = {"instance": "ff1", "cell": "sky130_fd_sc_hd__dfxtp_1", "pin": "CLK", "net": "q", "edge": "rise",
             "delay_ns": 0.3, "arrival_ns": 0.3, "transition_ns": 0.05, "load_pf": 0.003}
    path = {"kind": "reg->reg", "period_ns": 1e3 / fmax_mhz, "setup_ns": 0.1, "startpoint": "ff1", "endpoint": "ff2/D",
            "cells": 0, "stages": [stage]}
    return {"fmax_mhz": fmax_mhz, "critical_path": path, "paths": {"reg->reg": path}}


def _raw_core(kind, *, cycles, events, area, dense_inputs=None, schedule=None, fmax_mhz=None, weight_reads=None):
    blocks = BLOCKS["spike" if kind == "spike" else kind]
    memories = {"weight_memory": {"name": "weight_memory", "module": "x", "width": 16, "depth": 16, "reads": events,
                                  "writes": 0, "read_ports": 1, "write_ports": 1, "ports": 1},
                "activation_memory": {"name": "activation_memory", "module": "x", "width": 40, "depth": 4, "reads": 24,
                                      "writes": 12, "read_ports": 1, "write_ports": 1, "ports": 2}}
    return {
        "kind": kind, "block": {"spike": "core", "int8": "int8_core", "fp16": "fp16_core"}[kind],
        "config": {**SMALL_CONFIG.to_dict()["parameters"], "dense_inputs": dense_inputs or 1},
        "dense_inputs": dense_inputs, "schedule": schedule, "reuse_build": None,
        "run": {"tokens": 12, "rtl_cycles": cycles, "model_cycles": cycles, "out_features": 8, "in_features": 8,
                "events": events, "weight_reads": weight_reads or events, "active_cycles": cycles // 2, "bit_exact": True, "stalled_run": {"bit_exact": True},
                "layer": "test layer", "timesteps": {"vision": 3, "text": 4}},
        "activity": {
            "cycles": cycles, "banks_not_evaluated": {},
            "toggles": {b: {"toggles": 100 * (n + 1), "bits": 50} for n, b in enumerate(blocks)},
            "memories": memories,
            "enable_banks": {b: {"flip_flops": 20, "enabled_flip_flops": 10, "clocked_bit_cycles": 15 * cycles,
                                 "enables": 2, "not_evaluated": 0} for b in blocks},
        },
        "asic": {
            "sky130": {"blocks": {b: {"area_um2": area / len(blocks), "cells": 100, "flip_flops": 20} for b in blocks},
                       "total": {"area_um2": area, "cells": 100 * len(blocks), "flip_flops": 20 * len(blocks)},
                       "flip_flop_area_um2": 20.0, **({"timing": _timing(fmax_mhz)} if fmax_mhz else {})},
            "generic": {"blocks": {b: {"cells": 90, "transistors": 900} for b in blocks},
                        "total": {"cells": 90 * len(blocks), "transistors": 900 * len(blocks)}},
            "memories": [{"name": m["name"], "width": m["width"], "depth": m["depth"], "bits": m["width"] * m["depth"]}
                         for m in memories.values()],
            "seconds": 1.0,
        },
    }


def _gate_level(kind, *, cycles, scale):
    """A made-up gate-level result: every block 1 nJ of switching times ``scale`` and 0.5 nJ
    of ungated clock, 1 uW of leakage."""
    blocks = BLOCKS["spike" if kind == "spike" else kind]
    energy = {b: {"switching_j": 1e-9 * scale, "boundary_switching_j": 0.0, "internal_j": 0.0, "flip_flop_j": 0.0,
                  "clock_j": 0.4e-9, "clock_ungated_j": 0.5e-9, "leakage_w": 1e-6, "cells": 10, "flip_flops": 2,
                  "toggles": 100, "clock_share": 0.8, "clock_gates": 1} for b in blocks}
    run = {"bit_exact": True, "stalled_run": None, "rtl_cycles": cycles, "model_cycles": cycles}
    return {"run": run, "energy": energy, "cycles": cycles, "untraced_nets": 0, "driven_nets": 50, "cells": 40,
            "buffers": 3, "vcd_mb": 1.0, "seconds": {"build": 1, "simulation": 1, "toggles": 1, "energy": 1, "total": 4},
            "internal_j_by_input_transition_ns": {"0.05": 0.0, "0.1": 0.0, "0.3": 0.0}}


def test_report_on_small_inputs(tmp_path):
    raw = {
        "info": {"tokens": 12, "in_features": 8, "out_tiles": 2, "spike_model_cycles": 400,
                 "matched_dense_inputs": {"int8": 1, "fp16": 1}, "msts": [3, 4]},
        "variants": {
            "spike": _raw_core("spike", cycles=400, events=300, area=1000.0, fmax_mhz=400.0, weight_reads=240),
            "int8": _raw_core("int8", cycles=390, events=192, area=1200.0, dense_inputs=1, fmax_mhz=300.0),
            "fp16": _raw_core("fp16", cycles=395, events=192, area=3000.0, dense_inputs=1, fmax_mhz=150.0),
            "uniform_steps": _raw_core("spike", cycles=480, events=380, area=1000.0, schedule=[4, 4]),
        },
        "iso_area_candidates": {"int8": {}, "fp16": {}},
    }
    for kind, cycles, scale in (("spike", 400, 1.0), ("int8", 390, 2.0), ("fp16", 395, 3.0)):
        raw["variants"][kind]["gate_level"] = _gate_level(kind, cycles=cycles, scale=scale)
    report = ppa.summarize(SMALL_CONFIG, raw, clock_hz=100e6)
    # gate level: per block switching + gated clock + leakage (1 uW over cycles / 100 MHz), per token
    g = report["cores"]["spike"]["gate_level"]
    blocks = len(BLOCKS["spike"])
    leak = 1e-6 * 400 / 100e6
    assert g["measured"] and g["bit_exact"] and g["cycle_exact"]
    assert g["logic_energy_per_token_j"] == pytest.approx(blocks * (1e-9 + 0.4e-9 + leak) / 12)
    assert g["logic_energy_per_token_no_clock_gating_j"] == pytest.approx(blocks * (1e-9 + 0.5e-9 + leak) / 12)
    rtl_top = report["cores"]["spike"]["energy_by_block"]["top"]
    assert g["comparison"]["top"]["difference"] == pytest.approx(
        (1e-9 + 0.4e-9 + leak) / (rtl_top["logic_j"] + rtl_top["clock_j"]) - 1)
    gi = report["cores"]["int8"]["gate_level"]
    assert report["ratios"]["spike_vs_int8"]["gate_level"]["logic_energy_per_token"] == pytest.approx(
        gi["logic_energy_per_token_j"] / g["logic_energy_per_token_j"])
    assert report["checks"]["gate_level_bit_and_cycle_exact"]["met"]
    assert g["fanout_buffers"] == 3 and "40 cells, of which 3 fanout-repair buffers" in ppa.markdown(
        {**report, "workload": {"name": "qwen2vl", "layer": "l", "tokens": 12, "tv": 3, "tt": 4, "shape": "8 -> 8"}})
    spike, fp16 = report["cores"]["spike"], report["cores"]["fp16"]
    # bundles: the slots are filled by weight-row reads (240), each serving several tokens' events (300)
    assert spike["utilization"] == 240 / (SMALL_CONFIG.events_per_cycle * 400)
    assert fp16["utilization"] == 192 / (1 * 395)
    # SRAM: the 2-access activation memory is costed as the dual-port macro
    assert spike["sram_area_um2"] == pytest.approx(16 * 16 * sram.SINGLE_PORT.area_per_bit_um2
                                                    + 40 * 4 * sram.DUAL_PORT.area_per_bit_um2)
    # clock gating: 15 of 20 flip-flop clock charges kept in every block, plus two clock gates each
    blocks = spike["energy_by_block"]
    assert blocks["top"]["clock_share"] == 0.75 and blocks["top"]["clock_gates"] == 2
    assert spike["energy_per_token_j"] == pytest.approx(
        (blocks["total"]["logic_j"] + blocks["total"]["clock_j"]) / 12 + spike["sram_energy_per_token_j"])
    r = report["ratios"]["spike_vs_fp16"]
    assert r["iso_throughput"]["area_logic"] == pytest.approx(3.0)
    assert r["iso_area"]["logic"]["dense_inputs"] == 1  # the only candidate
    assert r["throughput_per_area_with_sram"] <= r["throughput_per_area_with_sram_favourable"]
    assert set(r["targets"]) == set(ppa.TARGETS["fp16"])
    assert r["targets"]["logic_energy_per_token"]["value"] == r["iso_throughput"]["logic_energy_per_token"]
    assert report["checks"]["rtl_cycles_equal_model"]["met"]
    assert not report["checks"]["event_slot_utilization"]["met"]
    d = report["decomposition"]["measured"]
    assert d["msts"]["measured"] and d["msts"]["cycles_over_spike"] == 480 / 400
    assert not d["zero_skipping"]["measured"] and "needs bundle > 1" in d["zero_skipping"]["note"]
    assert fp16["dense_inputs"] == 1
    # every figure of every core is labelled, and its source section exists in the docs
    for core in report["cores"].values():
        assert set(core) <= set(report["figures"]), set(core) - set(report["figures"])
    headings = {line[3:].split(" (")[0].strip() for line in DOCS.read_text().splitlines() if line.startswith("## ")}
    for key, label in report["figures"].items():
        assert label["kind"] in ("measured", "estimated", "exact model", "setting"), key
        assert label["source"].split("'")[1] in headings, (key, label)
    # each core at its own ASIC Fmax: 12 tokens in cycles / Fmax
    assert spike["tokens_per_s_at_asic_fmax"] == pytest.approx(12 / (400 / 400e6))
    assert r["iso_throughput"]["throughput_at_asic_fmax"] == pytest.approx((12 / (400 / 400e6)) / (12 / (395 / 150e6)))
    assert spike["power_at_asic_fmax_w"] == pytest.approx(spike["energy_per_token_j"] * spike["tokens_per_s_at_asic_fmax"])
    report["workload"] = {"layer": "test layer", "tokens": 12, "tv": 3, "tt": 4, "shape": "8 -> 8"}
    text = ppa.markdown(report)
    assert "iso-throughput" in text and "not measured" in text and "energy/token: logic + clock + SRAM" in text
    assert "ASIC Fmax" in text and "| spike | 400.0 | 2.500 |" in text
    assert "Gate-level power: measured (gate-level simulation, pre-layout, characterized tt library)" in text
    json.dumps(report)
    written = ppa._plots(report, tmp_path)
    assert {p.name for p in written} == {"ppa_area.png", "ppa_energy.png", "ppa_iso_throughput.png",
                                         "ppa_decomposition.png"}
    # a gate-level run that failed its checks fails the report's check and shows the message
    raw["variants"]["fp16"]["gate_level"] = {"failed": "1 of 1 cocotb tests failed", "seconds": {"total": 3}}
    failed = ppa.summarize(SMALL_CONFIG, raw, clock_hz=100e6)
    assert not failed["checks"]["gate_level_bit_and_cycle_exact"]["met"]
    assert "gate_level" not in failed["ratios"]["spike_vs_fp16"] and "gate_level" in failed["ratios"]["spike_vs_int8"]
    failed["workload"] = report["workload"]
    assert "fp16: the gate-level run FAILED" in ppa.markdown(failed)
    # measurements that disagree with synthesis on the memories are refused
    raw["variants"]["spike"]["asic"]["memories"][0]["bits"] += 1
    with pytest.raises(ValueError, match="memory bits"):
        ppa.summarize(SMALL_CONFIG, raw, clock_hz=100e6)


@pytest.mark.parametrize("families", ["bogus", "ice40,xc7", ""])
def test_bad_fpga_families_are_refused_by_name(families, capsys):
    with pytest.raises(SystemExit):
        ppa.main(["--fpga", families])
    assert f"not {families!r}" in capsys.readouterr().err


@pytest.mark.parametrize("args, named", [(["--fpga-cores", "spike,bf16"], "'spike,bf16'"), (["--fpga-cores", ","], "','"),
                                         (["--place-timeout", "0"], "0.0")])
def test_bad_fpga_cores_and_budget_are_refused_by_name(args, named, capsys):
    with pytest.raises(SystemExit):
        ppa.main(args)
    assert f"not {named}" in capsys.readouterr().err


def test_from_raw_refuses_a_missing_or_stale_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ppa.main(["--config", "small", "--from-raw", "--build", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "does not exist" in capsys.readouterr().err
    # every workload has raw measurements of its own
    with pytest.raises(SystemExit):
        ppa.main(["--config", "small", "--workload", "qwen2vl_mlp", "--from-raw", "--build", str(tmp_path),
                  "--out", str(tmp_path / "out")])
    assert "raw_small_qwen2vl_mlp.json does not exist" in capsys.readouterr().err
    raw = {"variants": {"spike": {"run": {"events": 3}, "gate_level": {"cycles": 4}}}}
    (tmp_path / "raw_small_qwen2vl.json").write_text(json.dumps(raw))
    with pytest.raises(SystemExit):
        ppa.main(["--config", "small", "--from-raw", "--build", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "run.weight_reads" in err and "gate_level.buffers" in err
