"""Fanout repair: every sink keeps its logical driver through a balanced chain of buffers,
no net drives more than the limit, the buffer count is the tree's, and the repaired
register drives its sinks sooner in the static timing."""

import math

import pytest
from spikemllm.flow import sta
from spikemllm.flow.buffering import BUFFER, _block, repair_fanout, repair_hierarchy
from spikemllm.flow.hierarchy import flatten
from spikemllm.flow.liberty import read_library
from spikemllm.flow.synth import LIBERTY

DFF, INV = "sky130_fd_sc_hd__dfxtp_1", "sky130_fd_sc_hd__inv_1"


@pytest.fixture(scope="module")
def lib():
    return read_library(LIBERTY)


def fanout_netlist(n: int) -> dict:
    """The register ``src`` (output bit 10) drives ``n`` inverters, each captured by a register."""
    cells = {"pe.src": {"type": DFF, "connections": {"CLK": [2], "D": [3], "Q": [10]}}}
    for k in range(n):
        cells[f"pe.u{k}"] = {"type": INV, "connections": {"A": [10], "Y": [100 + 2 * k]}}
        cells[f"pe.r{k}"] = {"type": DFF, "connections": {"CLK": [2], "D": [100 + 2 * k], "Q": [101 + 2 * k]}}
    return {"modules": {"top": {"ports": {"clk": {"direction": "input", "bits": [2]},
                                          "d": {"direction": "input", "bits": [3]}},
                                "cells": cells, "netnames": {"src": {"bits": [10], "hide_name": 0}}}}}


def tree_buffers(n: int, f: int) -> int:
    """Buffers of a balanced tree with at most ``f`` pins per net over ``n`` sinks."""
    total = 0
    while n > f:
        n = math.ceil(n / f)
        total += n
    return total


def driver_chain(module: dict, inst: str, pin: str) -> list[str]:
    """The cells between the sink pin and its driving register, and the register."""
    drivers = {bits[0]: name for name, c in module["cells"].items() for p, bits in c["connections"].items()
               if p in ("Q", "X", "Y")}
    chain = []
    bit = module["cells"][inst]["connections"][pin][0]
    while True:
        name = drivers[bit]
        chain.append(module["cells"][name]["type"])
        if module["cells"][name]["type"] != BUFFER:
            return chain
        bit = module["cells"][name]["connections"]["A"][0]


@pytest.mark.parametrize("n,f", [(10, 16), (17, 16), (40, 16), (300, 16), (300, 4)])
def test_tree_is_balanced_and_bounded(lib, n, f):
    netlist = fanout_netlist(n)
    module = netlist["modules"]["top"]
    repair = repair_fanout(module, lib, max_fanout=f)
    assert repair.buffers == tree_buffers(n, f)
    assert repair.nets == (1 if n > f else 0)
    assert repair.area_um2 == pytest.approx(repair.buffers * lib.cells[BUFFER].area)
    assert dict(repair.blocks) == ({"pe": {"buffers": repair.buffers, "area_um2": repair.area_um2}} if n > f else {})
    fanout = {}
    for c in module["cells"].values():
        for p, bits in c["connections"].items():
            if p not in ("Q", "X", "Y"):
                fanout[bits[0]] = fanout.get(bits[0], 0) + 1
    assert max(v for b, v in fanout.items() if b != 2) <= f
    depths = set()
    for k in range(n):
        chain = driver_chain(module, f"pe.u{k}", "A")
        assert chain[-1] == DFF and set(chain[:-1]) <= {BUFFER}
        depths.add(len(chain) - 1)
    assert depths == {math.ceil(math.log(n, f)) - 1 if n > f else 0}


def test_repair_shortens_the_high_fanout_path(lib):
    before = sta.analyze(fanout_netlist(300), lib, top="top")
    netlist = fanout_netlist(300)
    repair_fanout(netlist["modules"]["top"], lib)
    after = sta.analyze(netlist, lib, top="top")
    assert after.cells == before.cells + tree_buffers(300, 16)
    assert after.critical.required_ns < before.critical.required_ns / 2


def test_bad_arguments_are_refused(lib):
    with pytest.raises(ValueError, match="max_fanout must be at least 2, not 1"):
        repair_fanout(fanout_netlist(3)["modules"]["top"], lib, max_fanout=1)
    with pytest.raises(ValueError, match="no buffer cell 'BUFX9'"):
        repair_fanout(fanout_netlist(3)["modules"]["top"], lib, buffer="BUFX9")


@pytest.mark.parametrize("instance, block", [
    ("$flatten\\pe_array.$abc$1$new_n5", "pe_array"), ("$auto$ff.cc:266:slice$1", "top"), ("pe_array.acc_6", "pe_array"),
    ("busy", "top"), ("$flatten\\a.b.$auto$ff.cc:3", "a"), ("pe_array.pe_3.acc_0", "pe_array"), ("\\x", "top")])
def test_the_block_of_a_flattened_cell(instance, block):
    assert _block(instance) == block


@pytest.mark.parametrize("instances,inside", [(8, 6), (3, 40), (20, 1)])
def test_a_pin_of_a_kept_module_counts_its_pins_inside(lib, instances, inside):
    """A register driving ``instances`` copies of a module whose input drives ``inside``
    inverters: each copy is repaired once on its own, and at the top a pin counts as the pins
    its net drives inside (at most the limit, after the copy's own tree), so no net drives
    more than the limit once flattened and the buffers are the hierarchical tree's."""
    sub = {"ports": {"clk": {"direction": "input", "bits": [2]}, "a": {"direction": "input", "bits": [3]}},
           "cells": {}, "netnames": {}}
    for k in range(inside):
        sub["cells"][f"u{k}"] = {"type": INV, "connections": {"A": [3], "Y": [100 + 2 * k]}}
        sub["cells"][f"r{k}"] = {"type": DFF, "connections": {"CLK": [2], "D": [100 + 2 * k], "Q": [101 + 2 * k]}}
    cells = {"src": {"type": DFF, "connections": {"CLK": [2], "D": [3], "Q": [10]}}}
    for k in range(instances):
        cells[f"pe.m{k}"] = {"type": "m", "port_directions": {"clk": "input", "a": "input"},
                             "connections": {"clk": [2], "a": [10]}}
    netlist = {"modules": {"top": {"ports": {"clk": {"direction": "input", "bits": [2]},
                                             "d": {"direction": "input", "bits": [3]}},
                                   "cells": cells, "netnames": {}}, "m": sub}}
    repair = repair_hierarchy(netlist, "top", lib)
    per_pin = inside if inside <= 16 else math.ceil(inside / 16)  # the pins the port net drives inside
    inner = tree_buffers(inside, 16)
    # greedy runs of whole pins, each at most 16 pins' worth
    runs, level = 0, [per_pin] * instances
    while sum(level) > 16:
        groups, total = [], 0
        for w in level:
            if groups and total + w > 16:
                total = 0
            if total == 0:
                groups.append(0)
            groups[-1] += 1
            total += w
        runs += len(groups)
        level = [1] * len(groups)
    assert repair.buffers == instances * inner + runs
    assert repair.blocks["pe"]["buffers"] == instances * inner
    flat = flatten(netlist, "top")["modules"]["top"]
    fanout = {}
    for c in flat["cells"].values():
        for pin, bits in c["connections"].items():
            if pin in ("A", "D"):
                fanout[bits[0]] = fanout.get(bits[0], 0) + 1
    assert max(fanout.values()) <= 16
