"""Full-size energy projection: its arithmetic against hand calculations on a small made-up
ppa.json, consistency, the paper's ratios, and refused input."""

from __future__ import annotations

import copy
import json

import pytest

from spikemllm.flow import fullsize
from spikemllm.golden.timing.projection import ProjectionSetup

PJ = 1e-12


def _core(kind: str, *, datapath_j: float, front_j: float, requantizer_j: float, top_j: float, events: int,
          cycles: int, weight_width: int) -> dict:
    blocks = {"top": {"total_j": top_j}, "requantizer": {"total_j": requantizer_j}}
    blocks["pe_array" if kind == "spike" else "mac_array"] = {"total_j": datapath_j}
    if kind == "spike":
        blocks["compactor"] = {"total_j": front_j}
    blocks["total"] = {"total_j": sum(b["total_j"] for b in blocks.values())}
    memories = {"activation_memory": {"width": 64}, "params_memory": {"width": 40}, "bias_memory": {"width": 56}}
    if kind == "spike":
        memories["weight_memory"] = {"width": weight_width}
    else:
        memories.update({"weight_memory_0": {"width": weight_width}, "weight_memory_1": {"width": weight_width}})
    return {"kind": kind, "dense_inputs": None if kind == "spike" else 2, "work_per_cycle": 2, "events": events,
            "cycles": cycles, "tokens": 10, "tiles_run": 20, "energy_by_block": blocks, "memories": memories,
            "energy_per_token_j": 1e-9}


def make_ppa() -> dict:
    """4 PEs, 8 lanes; round numbers so that every unit energy is easy to state by hand."""
    return {
        "config": {"name": "tiny", "lanes": 8, "pes": 4, "events_per_cycle": 2, "weight_bits": 8},
        "sram_model": {"read_pj_per_bit": 0.2, "write_pj_per_bit": 0.3},
        "workload": {"layer": "made-up layer"},
        "cores": {
            # spike: 400 accumulates (100 events x 4 PEs) take 8 nJ -> 20 pJ each; compactor 50 pJ per event;
            # 80 outputs (20 tiles x 4 PEs) take 1.6 nJ -> 20 pJ each; shell 2 nJ over 200 cycles -> 10 pJ
            "spike": _core("spike", datapath_j=8e-9, front_j=5e-9, requantizer_j=1.6e-9, top_j=2e-9, events=100,
                           cycles=200, weight_width=32),
            # int8: 80 inputs x 4 PEs = 320 MACs, 16 nJ -> 50 pJ; shell 3 nJ over 150 cycles -> 20 pJ
            "int8": _core("int8", datapath_j=16e-9, front_j=0, requantizer_j=1.6e-9, top_j=3e-9, events=80,
                          cycles=150, weight_width=32),
            # fp16: 320 MACs take 32 nJ -> 100 pJ; 16-bit weights (64-bit rows of 4 PEs)
            "fp16": _core("fp16", datapath_j=32e-9, front_j=0, requantizer_j=1.6e-9, top_j=3e-9, events=80,
                          cycles=150, weight_width=64),
        },
    }


def test_unit_energies_by_hand():
    u = fullsize.unit_energies(make_ppa())
    s, i, f = u["spike"], u["int8"], u["fp16"]
    assert s["operation_j"] == pytest.approx(20 * PJ)
    assert s["event_j"] == pytest.approx(50 * PJ)
    assert s["output_j"] == pytest.approx(20 * PJ)
    assert s["cycle_j"] == pytest.approx(10 * PJ) and s["cycle_blocks"] == ["top"]
    assert i["operation_j"] == pytest.approx(50 * PJ) and i["event_j"] == 0
    assert i["cycle_j"] == pytest.approx(20 * PJ)
    assert f["operation_j"] == pytest.approx(100 * PJ)
    # widths over PEs and lanes: 32 / 4, 64 / 4 bits per weight; 64 / 8 bits per lane; (40 + 56) / 4 per output
    assert (s["weight_bits"], i["weight_bits"], f["weight_bits"]) == (8, 8, 16)
    assert s["activation_bits_per_lane"] == 8 and s["parameter_bits_per_output"] == 24
    assert s["sram_read_j_per_bit"] == pytest.approx(0.2 * PJ) and s["sram_write_j_per_bit"] == pytest.approx(0.3 * PJ)
    assert s["leakage_w"] is None


WORK = {"tokens": 2, "cycles": 1000, "work": 300, "operations": 300 * 16, "weight_row_reads": 300,
        "activation_row_reads": 50, "activation_row_writes": 10, "outputs": 64, "tiles": 4, "weight_bits": 8e6}
SETUP = ProjectionSetup(lanes=8, pes=16, events_per_cycle=2, cores=2, clock_hz=1e6, bandwidth_bytes_per_s=1e6)


def test_phase_energy_by_hand():
    unit = fullsize.unit_energies(make_ppa())["spike"]
    dram = fullsize.DramSpec("test DRAM", 4.0, "made up")
    e = fullsize.energy_of(WORK, unit, SETUP, dram)
    parts = e["parts_j"]
    assert parts["datapath"] == pytest.approx(4800 * 20 * PJ)
    assert parts["compactor"] == pytest.approx(300 * 50 * PJ)
    assert parts["requantizer"] == pytest.approx(64 * 20 * PJ)
    assert parts["shell"] == pytest.approx(1000 * 2 * 10 * PJ)  # cycles per core x 2 cores
    assert parts["sram_weights"] == pytest.approx(300 * 16 * 8 * 0.2 * PJ)  # rows of 16 PEs x 8 bits
    assert parts["sram_activations"] == pytest.approx(50 * 8 * 8 * 0.2 * PJ + 10 * 8 * 8 * 0.3 * PJ)
    assert parts["sram_parameters"] == pytest.approx(4 * 16 * 24 * 0.2 * PJ)
    assert parts["leakage"] == 0 and not e["leakage_included"]
    # the DRAM term is the bits times the energy per bit; each bit is written to SRAM once
    assert parts["dram"] == pytest.approx(8e6 * 4.0 * PJ)
    assert parts["sram_weight_writes"] == pytest.approx(8e6 * 0.3 * PJ)
    core = 4800 * 20 + 300 * 50 + 64 * 20 + 20000 + 300 * 16 * 8 * 0.2 + 50 * 64 * 0.2 + 10 * 64 * 0.3 + 4 * 16 * 24 * 0.2
    assert e["energy_per_token_j"]["without_dram"] == pytest.approx(core * PJ / 2)
    assert e["energy_per_token_j"]["with_dram"] == pytest.approx((core + 8e6 * 4.3) * PJ / 2)
    # 1 MB of weights at 1 MB/s takes 1 s, 1000 cycles at 1 MHz 1 ms: bandwidth bound
    assert e["bound"] == "bandwidth" and e["time_s"] == pytest.approx(1.0) and e["tokens_per_s"] == pytest.approx(2.0)
    assert e["power_w"]["with_dram"] == pytest.approx((core + 8e6 * 4.3) * PJ / 1.0)


def test_leakage_is_charged_over_the_phase_time_when_given():
    ppa = make_ppa()
    ppa["cores"]["spike"]["leakage_w"] = 0.5
    unit = fullsize.unit_energies(ppa)["spike"]
    e = fullsize.energy_of(WORK, unit, SETUP, fullsize.DRAM["hbm2"])
    assert e["leakage_included"] and e["parts_j"]["leakage"] == pytest.approx(0.5 * 2 * 1.0)  # 2 cores, 1 s


def test_consistency_across_cores_and_phases():
    units = fullsize.unit_energies(make_ppa())
    dram = fullsize.DRAM["hbm2"]
    prefill = {**WORK, "tokens": 100, "weight_bits": 8e6}
    decode = {**WORK, "tokens": 1, "weight_bits": 7e6}
    work = {k: {"prefill": prefill, "decode": decode} for k in units}
    p = fullsize.project_energy("Qwen2-VL-7B", units, SETUP, dram, work=work)
    for kind, c in p.items():
        for phase in ("prefill", "decode"):
            e = c[phase]["energy_per_token_j"]
            assert e["with_dram"] > e["without_dram"] > 0
        # a decoded token streams the weights alone; prefill shares them over its tokens
        dram_share = {ph: c[ph]["parts_j"]["dram"] / c[ph]["tokens"] for ph in ("prefill", "decode")}
        assert dram_share["decode"] >= dram_share["prefill"]
    # the FP16 core's setup streams 16-bit weights, the others 8-bit
    assert p["fp16"]["setup"]["weight_bits"] == 16 and p["spike"]["setup"]["weight_bits"] == 8
    assert p["int8"]["dense_inputs"] == SETUP.events_per_cycle and p["spike"]["dense_inputs"] is None
    # same work, more expensive MACs: FP16 > INT8 without DRAM
    assert (p["fp16"]["decode"]["energy_per_token_j"]["without_dram"]
            > p["int8"]["decode"]["energy_per_token_j"]["without_dram"])
    p4 = fullsize.project_energy("Qwen2-VL-7B", units, SETUP, dram, work=work, weight_bits=4)
    assert p4["spike"]["setup"]["weight_bits"] == 4 and p4["fp16"]["setup"]["weight_bits"] == 16
    with pytest.raises(ValueError, match="weight_bits"):
        fullsize.project_energy("Qwen2-VL-7B", units, SETUP, dram, work=work, weight_bits=0)


def test_paper_ratios_from_the_stated_figures():
    paper = fullsize._paper_figures()
    assert paper["throughput_ratio"] == pytest.approx(393.7 / 43.5) and round(paper["throughput_ratio"], 2) == 9.05
    assert round(paper["power_ratio"], 1) == 25.8
    assert paper["accelerator_energy_per_token_j"] == pytest.approx(0.01811, abs=1e-5)  # about 18 mJ
    assert paper["gpu_energy_per_token_j"] == pytest.approx(4.23, abs=0.01)
    ours = {"tokens_per_s": 87.0, "power_w": {"without_dram": 92.0, "with_dram": 184.0},
            "energy_per_token_j": {"without_dram": 92.0 / 87.0, "with_dram": 184.0 / 87.0}}
    r = fullsize.paper_ratios(ours)
    assert r["gpu"]["tokens_per_s"] == pytest.approx(2.0)
    assert r["gpu"]["power_without_dram"] == pytest.approx(2.0) and r["gpu"]["power_with_dram"] == pytest.approx(1.0)
    assert r["gpu"]["energy_per_token_with_dram"] == pytest.approx((184 / 43.5) / (184 / 87))
    assert r["accelerator"]["tokens_per_s"] == pytest.approx(87 / 393.7)
    assert r["accelerator"]["power_without_dram"] == pytest.approx(7.13 / 92)


def _fake_phase_work(model, setup, *, tv, tt, core, dense_inputs):
    scale = {"spike": 1, "int8": 2, "fp16": 2}[core] * (tv + tt)
    bits = 8e6 * setup.weight_bits / 8
    return {"prefill": {**WORK, "tokens": 100, "cycles": 1000 * scale, "weight_bits": bits * 1.2},
            "decode": {**WORK, "tokens": 1, "cycles": 10 * scale, "weight_bits": bits}}


def test_write_makes_the_report_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fullsize, "phase_work", _fake_phase_work)
    ppa_file = tmp_path / "ppa.json"
    ppa_file.write_text(json.dumps(make_ppa()))
    r = fullsize.write(ppa_file, tmp_path / "out", setup=SETUP, models=("Qwen2-VL-7B", "InternVL2-8B"), log=lambda m: None)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"fullsize.json", "fullsize.md", "fullsize_energy.png"}
    assert json.loads((tmp_path / "out" / "fullsize.json").read_text())["dram"]["pj_per_bit"] == 3.9
    assert len(r["projections"]) == 2 * len(fullsize.READINGS)
    entry = r["projections"][0]
    ratio = entry["spike_vs_dense"]["fp16"]["decode"]
    assert ratio["energy_per_token_with_dram"] == pytest.approx(
        entry["cores"]["fp16"]["decode"]["energy_per_token_j"]["with_dram"]
        / entry["cores"]["spike"]["decode"]["energy_per_token_j"]["with_dram"])
    assert entry["at_paper_rate"]["bandwidth_bytes_per_s"] == pytest.approx(1e6 * 393.7)
    text = (tmp_path / "out" / "fullsize.md").read_text()
    assert "estimate" in text and "393.7" in text and "O'Connor" in text and "not in ppa.json" in text


def test_bad_input_is_refused_by_name(tmp_path, capsys):
    ppa = make_ppa()
    del ppa["cores"]["spike"]["tiles_run"]
    with pytest.raises(KeyError, match="cores.spike.'tiles_run'"):
        fullsize.unit_energies(ppa)
    ppa = make_ppa()
    del ppa["cores"]["int8"]["energy_by_block"]["mac_array"]
    with pytest.raises(KeyError, match="mac_array"):
        fullsize.unit_energies(ppa)
    ppa = make_ppa()
    del ppa["cores"]["fp16"]["memories"]["bias_memory"]
    with pytest.raises(KeyError, match="bias_memory"):
        fullsize.unit_energies(ppa)
    ppa = copy.deepcopy(make_ppa())
    ppa["cores"]["spike"]["events"] = 0
    with pytest.raises(ValueError, match="events"):
        fullsize.unit_energies(ppa)
    with pytest.raises(ValueError, match="unknown model 'GPT-5'"):
        fullsize.report(make_ppa(), SETUP, fullsize.DRAM["hbm2"], models=("GPT-5",))
    missing = tmp_path / "nowhere" / "ppa.json"
    with pytest.raises(FileNotFoundError, match="nowhere/ppa.json does not exist: run make synth"):
        fullsize.write(missing, tmp_path)
    ppa_file = tmp_path / "ppa.json"
    ppa_file.write_text(json.dumps(make_ppa()))
    with pytest.raises(ValueError, match="unknown DRAM 'sram'"):
        fullsize.write(ppa_file, tmp_path, dram="sram")
    ppa_file.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        fullsize.write(ppa_file, tmp_path)
    with pytest.raises(SystemExit):
        fullsize.main(["--ppa", str(missing)])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fullsize.main(["--ppa", str(ppa_file), "--cores", "0"])
    assert "cores must be at least 1" in capsys.readouterr().err
