"""The characterizer: its pieces without ngspice (raw-file reader, crossings, sensitizing
assignments, the cut model deck, netlists), and with ngspice (marked slow: CI machines
have no ngspice unless ``make characterize`` installs it) a 2 x 2 characterization of an
inverter against the committed library, the cut deck against the PDK's whole ``.lib tt``
section, and a simulated fan-out-of-4 chain against the FO4 delay the tables give."""

import re
import shutil
import struct

import numpy as np
import pytest
from spikemllm.flow import characterize, liberty, sta
from spikemllm.flow.characterize import FULL_GRID, QUICK_GRID, crossing, read_raw, sensitizations
from spikemllm.flow.synth import LIBERTY

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None,
                                   reason="ngspice is not installed (make characterize installs it)")


def test_raw_reader(tmp_path):
    t = np.linspace(0, 1e-9, 5)
    v = np.array([0.0, 0.5, 1.0, 1.5, 1.8])
    i = -np.arange(5) * 1e-6
    header = ("Title: test\nDate: today\nPlotname: Transient Analysis\nFlags: real\nNo. Variables: 3\n"
              "No. Points: 5\nVariables:\n\t0\ttime\ttime\n\t1\tv(out)\tvoltage\n\t2\ti(vdd)\tcurrent\nBinary:\n")
    data = b"".join(struct.pack("<3d", *row) for row in zip(t, v, i))
    (tmp_path / "x.raw").write_bytes(header.encode() + data)
    w = read_raw(tmp_path / "x.raw")
    np.testing.assert_array_equal(w["time"], t)
    np.testing.assert_array_equal(w["v(out)"], v)
    np.testing.assert_array_equal(w["i(vdd)"], i)
    (tmp_path / "bad.raw").write_bytes(b"Title: x\nValues:\n")
    with pytest.raises(ValueError, match="not a binary ngspice raw file"):
        read_raw(tmp_path / "bad.raw")


def test_crossing_interpolates_and_respects_direction_and_window():
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    v = np.array([0.0, 1.0, 2.0, 1.0, 0.0])
    assert crossing(t, v, 0.5, True) == pytest.approx(0.5)
    assert crossing(t, v, 1.5, False) == pytest.approx(2.5)
    assert np.isnan(crossing(t, v, 0.5, True, after=1.0))  # no later rise
    assert crossing(t, v, 0.5, False, after=1.0, before=4.0) == pytest.approx(3.5)


def test_sensitizations_follow_the_truth_table():
    s = sensitizations("nand2")
    assert s == {"A": [({"B": 1}, False)], "B": [({"A": 1}, False)]}
    xor = sensitizations("xor2")
    assert {positive for _, positive in xor["A"]} == {True, False}
    mux = sensitizations("mux2")  # S matters when A0 != A1, in both senses
    assert sorted((env["A0"], env["A1"], positive) for env, positive in mux["S"]) == [(0, 1, True), (1, 0, False)]
    a21oi = sensitizations("a21oi")  # Y = !((A1 & A2) | B1): B1 matters unless A1 & A2
    assert len(a21oi["B1"]) == 3 and all(not (env["A1"] and env["A2"]) for env, _ in a21oi["B1"])


def test_model_deck_keeps_the_size_bins_of_each_geometry(tmp_path):
    geometries = characterize.cell_geometries("inv", 1)
    assert geometries == {("sky130_fd_pr__nfet_01v8", 0.65, 0.15), ("sky130_fd_pr__pfet_01v8_hvt", 1.0, 0.15)}
    deck = characterize.model_deck(tmp_path, geometries).read_text()
    assert ".subckt sky130_fd_pr__nfet_01v8__w650_l150" in deck
    assert ".subckt sky130_fd_pr__pfet_01v8_hvt__w1000_l150" in deck
    assert "parameters_fet_tt.spice" in deck and "models_global.spice" in deck
    for block in re.split(r"^\.subckt ", deck, flags=re.M)[1:]:
        w = int(re.match(r"\S+__w(\d+)_l", block).group(1)) * 1e-9
        for model in re.findall(r"^\.model.*?(?=^\.model|^\.ends)", block, re.M | re.S):
            wmin, wmax = (float(re.search(rf"{k}\s*=\s*([-+0-9.eE]+)", model).group(1)) for k in ("wmin", "wmax"))
            assert wmin - 1e-12 <= w <= wmax + 1e-12
    # a 1 um pFET sits on the boundary of two width bins: both stay, ngspice picks
    assert len(re.findall(r"^\.model", deck.split(".subckt sky130_fd_pr__pfet_01v8_hvt__w1000_l150")[1], re.M)) == 2
    # the flip-flop's special nFET comes from the corner's own model files
    ff = characterize.model_deck(tmp_path / "ff", characterize.cell_geometries("dfxtp", 1)).read_text()
    assert ".subckt sky130_fd_pr__special_nfet_01v8__w360_l150" in ff
    with pytest.raises(ValueError, match="defines no model"):
        characterize.model_deck(tmp_path / "bad", {("sky130_fd_pr__nfet_99v9", 1.0, 0.15)})


def test_cell_netlist_binds_every_transistor_to_its_geometry(tmp_path):
    path = characterize.cell_subcircuit("nand2", 2, tmp_path)
    text = path.read_text()
    devices = re.findall(r"^X\S+\s+(?:\S+\s+){4}(\S+)", text, re.M)
    assert devices and all(re.fullmatch(r"sky130_fd_pr__\w+__w\d+_l\d+", d) for d in devices)
    net = characterize.cell_netlist("nand2", 2)
    assert net.inputs == ("A", "B") and net.output == "Y" and set(net.ports) >= {"A", "B", "Y", "VPWR", "VGND"}
    with pytest.raises(ValueError, match="no net for ports"):
        net.instance("0", {"A": "a"})


def test_grid_and_cell_list():
    assert FULL_GRID.slews_ns[0] == 0.01 and FULL_GRID.slews_ns[-1] == 1.5 and len(FULL_GRID.slews_ns) == 7
    assert FULL_GRID.loads(4)[-1] == pytest.approx(0.4)
    assert set(QUICK_GRID.slews_ns) <= set(FULL_GRID.slews_ns) and set(QUICK_GRID.loads_pf) <= set(FULL_GRID.loads_pf)
    assert characterize._cell_list("inv,nand2_2, dfxtp") == (("inv", 1), ("nand2", 2), ("dfxtp", 1))
    with pytest.raises(ValueError, match="not 'nand7'"):
        characterize._cell_list("nand7")
    with pytest.raises(ValueError, match="not 3"):
        characterize._cell_list("inv_3")


def test_command_line_refuses_unknown_cells(capsys):
    with pytest.raises(SystemExit):
        characterize.main(["--cells", "inv,bogus"])
    assert "not 'bogus'" in capsys.readouterr().err


# -- with ngspice ----------------------------------------------------------------------------------------------


@needs_ngspice
@pytest.mark.slow
def test_quick_characterization_agrees_with_the_committed_library(tmp_path):
    library = characterize.characterize((("inv", 1),), QUICK_GRID, tmp_path, log=lambda m: None)
    cell, = library["cells"]
    committed = liberty.read_library(LIBERTY).cells["sky130_fd_sc_hd__inv_1"]
    arc = committed.arcs[0]
    for kind in ("cell_rise", "cell_fall", "rise_transition", "fall_transition"):
        for i, s in enumerate(QUICK_GRID.slews_ns):
            for j, c in enumerate(QUICK_GRID.loads_pf):
                ours = cell["timing"][0][kind][i, j]
                assert ours == pytest.approx(liberty.lookup(arc.tables[kind], s, c), rel=0.03, abs=1e-3), (kind, s, c)
    assert cell["inputs"]["A"]["capacitance"] == pytest.approx(committed.inputs["A"], rel=0.03)
    # the written liberty reads back
    text = liberty.write_liberty(library)
    assert "sky130_fd_sc_hd__inv_1" in liberty.read_library(text).cells


def _inverter_bench(models: str, folder, name):
    net = characterize.cell_netlist("inv", 1)
    lines = ["* inverter", models, f".include {characterize.cell_subcircuit('inv', 1, folder).name}",
             f".temp {characterize.TEMPERATURE_C}", "VDD vdd 0 1.8",
             "VIN a 0 PWL(0 0 0.2n 0 0.3n 1.8 2n 1.8 2.1n 0)",
             net.instance("1", {"A": "a", "Y": "y", "VPWR": "vdd", "VPB": "vdd", "VGND": "0", "VNB": "0"}),
             "CL y 0 5f", f".option {characterize.SPICE_OPTIONS}", ".tran 5p 4n 0 20p", ".save time v(a) v(y)", ".end"]
    return characterize.run_ngspice("\n".join(lines) + "\n", folder, name)


@needs_ngspice
@pytest.mark.slow
def test_cut_model_deck_matches_the_whole_corner(tmp_path):
    deck = characterize.model_deck(tmp_path, characterize.cell_geometries("inv", 1))
    cut = _inverter_bench(f".include {deck.name}", tmp_path, "cut")
    root = characterize._pdk_models() / "combined_models" / "sky130.lib.spice"
    # the whole section binds the PDK's own device names: give the cell its original netlist
    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    net = characterize.cell_netlist("inv", 1)
    lines = ["* inverter", f".lib {root} tt", f".include {net.path}", f".temp {characterize.TEMPERATURE_C}",
             "VDD vdd 0 1.8", "VIN a 0 PWL(0 0 0.2n 0 0.3n 1.8 2n 1.8 2.1n 0)",
             net.instance("1", {"A": "a", "Y": "y", "VPWR": "vdd", "VPB": "vdd", "VGND": "0", "VNB": "0"}),
             "CL y 0 5f", f".option {characterize.SPICE_OPTIONS}", ".tran 5p 4n 0 20p", ".save time v(a) v(y)", ".end"]
    whole = characterize.run_ngspice("\n".join(lines) + "\n", whole_dir, "whole")
    for w in (cut, whole):
        w["fall"] = crossing(w["time"], w["v(y)"], 0.9, False) - crossing(w["time"], w["v(a)"], 0.9, True)
        w["rise"] = crossing(w["time"], w["v(y)"], 0.9, True, 1.5e-9) - crossing(w["time"], w["v(a)"], 0.9, False, 1.5e-9)
    assert cut["fall"] == pytest.approx(whole["fall"], abs=0.2e-12)
    assert cut["rise"] == pytest.approx(whole["rise"], abs=0.2e-12)


@needs_ngspice
@pytest.mark.slow
def test_simulated_fo4_chain_agrees_with_the_tables(tmp_path):
    """Five inverters in a chain, each loaded by three more inverters besides the next
    stage (fan-out 4 of identical inverters): the middle stage's delay against
    :func:`spikemllm.flow.sta.fo4_delay`."""
    net = characterize.cell_netlist("inv", 1)
    deck = characterize.model_deck(tmp_path, characterize.cell_geometries("inv", 1))
    lines = ["* FO4 chain", f".include {deck.name}", f".include {characterize.cell_subcircuit('inv', 1, tmp_path).name}",
             f".temp {characterize.TEMPERATURE_C}", "VDD vdd 0 1.8", "VIN n0 0 PWL(0 0 0.5n 0 0.6n 1.8 3n 1.8 3.1n 0)"]
    supply = {"VPWR": "vdd", "VPB": "vdd", "VGND": "0", "VNB": "0"}
    for k in range(5):
        lines.append(net.instance(f"S{k}", {"A": f"n{k}", "Y": f"n{k + 1}", **supply}))
        for f in range(3):
            lines.append(net.instance(f"L{k}_{f}", {"A": f"n{k + 1}", "Y": f"x{k}_{f}", **supply}))
    lines += [f".option {characterize.SPICE_OPTIONS}", ".tran 5p 6n 0 20p", ".save time v(n2) v(n3) v(n4)", ".end"]
    w = characterize.run_ngspice("\n".join(lines) + "\n", tmp_path, "fo4")
    t = w["time"]
    delays = []
    for start in (0.5e-9, 3e-9):  # both edges through stage 3 (n3 -> n4)
        rising_in = crossing(t, w["v(n3)"], 0.9, True, start, start + 2e-9)
        falling_in = crossing(t, w["v(n3)"], 0.9, False, start, start + 2e-9)
        t_in, out_rising = (rising_in, False) if np.isfinite(rising_in) else (falling_in, True)
        delays.append(crossing(t, w["v(n4)"], 0.9, out_rising, t_in) - t_in)
    simulated = np.mean(delays) * 1e9
    tables = sta.fo4_delay(liberty.read_library(LIBERTY))["fo4_ns"]
    assert simulated == pytest.approx(tables, rel=0.10)
