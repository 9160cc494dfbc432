"""The SRAM cost model against the published OpenRAM sky130 macro figures."""

import pytest
from spikemllm.flow import sram


def test_a_macro_shaped_memory_costs_the_macro():
    # 512 words of 32 bits with one port is sky130_sram_2kbyte_1rw_32x512_8: LEF 483.86 x 326.1 um
    c = sram.memory_cost(width=32, depth=512, ports=1)
    assert c["macro"] == "sky130_sram_2kbyte_1rw_32x512_8"
    assert c["area_um2"] == pytest.approx(483.86 * 326.1)
    assert c["macros"] == 1 and c["area_whole_macros_um2"] == pytest.approx(483.86 * 326.1)
    assert 9.6 < sram.SINGLE_PORT.area_per_bit_um2 < 9.7  # against 20 um^2 for a dfxtp_1 flip-flop
    # two accesses in a cycle: the 1rw1r macro, LEF 659.98 x 398.18 um
    dual = sram.memory_cost(width=32, depth=512, ports=2)
    assert dual["macro"] == "sky130_sram_2kbyte_1rw1r_32x512_8"
    assert dual["area_um2"] == pytest.approx(659.98 * 398.18)


def test_access_energy_is_the_characterized_energy_per_word():
    # datasheet of the 1rw1r macro: 2.707 + 2.420 pJ per 32-bit read, 2.554 + 2.793 pJ per write
    c = sram.memory_cost(width=32, depth=512, ports=1, reads=10, writes=3)
    assert c["read_j"] == pytest.approx(10 * 5.127e-12)
    assert c["write_j"] == pytest.approx(3 * 5.347e-12)
    assert sram.READ_J_PER_BIT * 1e12 == pytest.approx(0.160, abs=1e-3)
    # per bit of the port: a 128-bit row costs four 32-bit words
    wide = sram.memory_cost(width=128, depth=24, ports=1, reads=1)
    assert wide["read_j"] == pytest.approx(4 * 5.127e-12)


def test_per_bit_and_whole_macro_areas_differ_for_small_memories():
    small = sram.memory_cost(width=128, depth=24, ports=2)
    assert small["area_um2"] == pytest.approx(128 * 24 * sram.DUAL_PORT.area_per_bit_um2)
    assert small["macros"] == 4  # four 32-bit columns, one 512-word row of macros
    assert small["area_whole_macros_um2"] > 10 * small["area_um2"]


def test_more_than_two_accesses_a_cycle_take_copies():
    macro, copies = sram.macro_for(4)
    assert macro is sram.DUAL_PORT and copies == 2
    c = sram.memory_cost(width=64, depth=1024, ports=3, reads=5, writes=2)
    assert c["copies"] == 2
    assert c["area_um2"] == pytest.approx(2 * 64 * 1024 * sram.DUAL_PORT.area_per_bit_um2)
    assert c["write_j"] == pytest.approx(2 * 2 * 64 * sram.WRITE_J_PER_BIT)  # a write goes to both copies
    assert sram.macro_for(0) == (sram.SINGLE_PORT, 1)


def test_totals_and_bad_values():
    costs = sram.memory_costs([
        {"name": "a", "width": 32, "depth": 512, "ports": 1, "reads": 2, "writes": 0},
        {"name": "b", "width": 16, "depth": 64, "ports": 2, "reads": 0, "writes": 4},
    ])
    assert costs["total"]["bits"] == 32 * 512 + 16 * 64
    assert costs["total"]["energy_j"] == pytest.approx(costs["memories"]["a"]["energy_j"] + costs["memories"]["b"]["energy_j"])
    with pytest.raises(ValueError, match="width must be a positive int, not 0"):
        sram.memory_cost(width=0, depth=4, ports=1)
    with pytest.raises(ValueError, match="reads must be a non-negative int, not -1"):
        sram.memory_cost(width=8, depth=4, ports=1, reads=-1)
    with pytest.raises(ValueError, match="ports must be a non-negative int"):
        sram.macro_for(-2)
