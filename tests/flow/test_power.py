"""Activity and energy models: toggles of a hand-written VCD counted by hand, the energy
arithmetic, and the operation-count model against the published table."""

import pytest
from spikemllm.flow.power import ENERGY_45NM_PJ, activity_energy, cell_energies, opcount_energy, vcd_toggles

VCD = """$version test $end
$timescale 1ps $end
 $scope module $rootio $end
  $var wire 1 ! clk $end
 $upscope $end
 $scope module core $end
  $var wire 1 ! clk $end
  $var wire 4 " state [3:0] $end
  $scope module pe_array $end
   $var wire 2 # acc [1:0] $end
   $var wire 4 " state_alias [3:0] $end
  $upscope $end
 $upscope $end
$enddefinitions $end
#0
0!
b0000 "
b00 #
#10
1!
b0011 "
b01 #
#20
0!
b1111 "
b10 #
#30
b1110 "
b10 #
"""


def test_toggles_are_counted_per_block_in_the_window(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    everything = vcd_toggles(path, "core")
    # state: 0000->0011 (2) ->1111 (2) ->1110 (1); acc: 00->01 (1) ->10 (2) ->10 (0); clk excluded;
    # the alias in pe_array belongs to the scope that declared it first.
    assert everything == {"top": {"toggles": 5, "bits": 4}, "pe_array": {"toggles": 3, "bits": 2}}
    window = vcd_toggles(path, "core", (15, 30))
    assert window == {"top": {"toggles": 2, "bits": 4}, "pe_array": {"toggles": 2, "bits": 2}}
    with pytest.raises(ValueError, match="no signals of 'other'"):
        vcd_toggles(path, "other")


def test_activity_energy_arithmetic():
    e = cell_energies()
    toggles = {"top": {"toggles": 40, "bits": 4}, "pe_array": {"toggles": 0, "bits": 2}}
    cells = {"top": {"cells": 10, "flip_flops": 2}, "pe_array": {"cells": 5, "flip_flops": 1}}
    r = activity_energy(toggles, cells, cycles=10)
    assert r["top"]["alpha"] == 1.0
    assert r["top"]["logic_j"] == pytest.approx(10 * 10 * e["energy_per_cell_toggle_j"])
    assert r["pe_array"]["logic_j"] == 0
    assert r["pe_array"]["clock_j"] == pytest.approx(10 * e["energy_per_flip_flop_cycle_j"])
    assert r["total"]["total_j"] == pytest.approx(sum(r[b]["total_j"] for b in cells))
    with pytest.raises(ValueError, match="blocks differ"):
        activity_energy(toggles, {"top": cells["top"]}, cycles=10)
    with pytest.raises(ValueError, match="cycles must be positive, not 0"):
        activity_energy(toggles, cells, cycles=0)


def test_opcount_uses_the_published_energies():
    spike = opcount_energy("spike", work=100, pes=8, tiles_run=2, weight_row_bits=64)
    fp16 = opcount_energy("fp16", work=100, pes=8, tiles_run=2, weight_row_bits=128)
    assert spike["arithmetic_j"] == pytest.approx(800 * 0.03e-12)
    assert fp16["arithmetic_j"] == pytest.approx(800 * 1.5e-12)
    assert fp16["arithmetic_j"] / spike["arithmetic_j"] == pytest.approx(50)
    assert spike["weight_reads_j"] == pytest.approx(100 * 64 * 10e-12 / 64)
    assert ENERGY_45NM_PJ["int8_mac"] == 0.23
    with pytest.raises(ValueError, match="kind must be"):
        opcount_energy("bf16", work=1, pes=1, tiles_run=1, weight_row_bits=8)


def test_clock_gating_credit():
    e = cell_energies()
    toggles = {"top": {"toggles": 0, "bits": 4}, "pe_array": {"toggles": 0, "bits": 2}}
    cells = {"top": {"cells": 10, "flip_flops": 40}, "pe_array": {"cells": 5, "flip_flops": 10}}
    # the RTL netlist of top: 20 flip-flops, 8 of them enabled for 25 of 100 cycles, 2 enables
    gating = {"top": {"flip_flops": 20, "clocked_bit_cycles": 12 * 100 + 8 * 25, "enables": 2}}
    r = activity_energy(toggles, cells, cycles=100, gating=gating)
    share = (12 * 100 + 8 * 25) / (20 * 100)
    assert r["top"]["clock_share"] == pytest.approx(share)
    assert r["top"]["clock_j"] == pytest.approx(40 * 100 * e["energy_per_flip_flop_cycle_j"] * share
                                                + 2 * 100 * e["energy_per_clock_gate_cycle_j"])
    assert r["top"]["clock_ungated_j"] == pytest.approx(40 * 100 * e["energy_per_flip_flop_cycle_j"])
    assert r["pe_array"]["clock_j"] == r["pe_array"]["clock_ungated_j"]  # nothing known: no credit
    assert e["clock_gate_capacitance_f"] > e["flip_flop_clock_capacitance_f"] > 0
    with pytest.raises(ValueError, match="do not fit"):
        activity_energy(toggles, cells, cycles=100, gating={"top": {"flip_flops": 1, "clocked_bit_cycles": 101,
                                                                    "enables": 0}})
    with pytest.raises(ValueError, match="gating names blocks"):
        activity_energy(toggles, cells, cycles=100, gating={"mac_array": gating["top"]})
