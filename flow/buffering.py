"""Fanout repair of a mapped netlist: a balanced tree of buffers for every net that drives
more pins than one cell should.

ABC maps and buffers each module's combinational logic, from the module's inputs to its
outputs; the inputs of that network -- flip-flop outputs, memory read data, the module's
ports -- are never buffered, so a register whose value reaches hundreds of pins drives
them all from one ``dfxtp_1``. :func:`repair_fanout` does what a placement tool's design
repair does first, without placement: every net with more than ``max_fanout`` sink pins
gets a tree of ``buffer`` cells, each driving at most ``max_fanout`` pins, levels added
until the original driver drives at most ``max_fanout`` buffers. The tree is balanced
(every sink is the same number of buffers away from the driver) and sinks are grouped in
netlist order, as nothing is known of their positions. Clock nets are left alone: the
timing model's clock is ideal (a clock tree is a layout tool's).

The netlist is a flattened Yosys JSON module of library cells (what
:func:`spikemllm.flow.sta.analyze` reads); the repair adds cells and nets to it in place
and returns what it added, by the block of each repaired net's driver, so that area
reports can include the buffers. A buffer is named as Yosys's ``flatten`` names the cells
it makes in a submodule (``$flatten\\<block>.$fanout$<net>$<n>``), so that it belongs to
the block of the net's driver wherever a flattened cell's block is read from its name.
Buffers do not change a net's logic value: under a simulation without delays every net
of a tree switches exactly when the net it buffers does (:attr:`Repair.carries`; each
buffer's attribute :data:`CARRIES` names that net bit, so the netlist written out says it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .liberty import Library

__all__ = ["MAX_FANOUT", "BUFFER", "CARRIES", "Repair", "repair_fanout", "repair_hierarchy"]

MAX_FANOUT = 16
"""Sink pins a net may drive before it gets a buffer tree."""
BUFFER = "sky130_fd_sc_hd__buf_4"
"""The buffer cell of the trees: 16 inputs of about 2 fF and their wires are a load it
drives in about the time of a few FO4 stages, and it is a quarter of ``buf_8``'s input
capacitance for the net above it."""

CARRIES = "fanout_repair_of"
"""The attribute of a buffer cell that holds (as a decimal string) the net bit whose value
its output carries."""


@dataclass
class Repair:
    """What :func:`repair_fanout` added."""

    nets: int = 0
    """nets that got a buffer tree"""
    buffers: int = 0
    area_um2: float = 0.0
    blocks: dict = field(default_factory=lambda: defaultdict(lambda: {"buffers": 0, "area_um2": 0.0}))
    """per block (the first component of the driver's hierarchical name, ``top`` for the
    top module's own cells and ports): ``buffers`` and ``area_um2``"""
    carries: dict = field(default_factory=dict)
    """net bit of a buffer's output -> the repaired net bit whose value it carries"""

    def summary(self) -> dict:
        return {"nets": self.nets, "buffers": self.buffers, "area_um2": round(self.area_um2, 4),
                "blocks": {k: {"buffers": v["buffers"], "area_um2": round(v["area_um2"], 4)}
                           for k, v in sorted(self.blocks.items())}}


def _block(instance: str) -> str:
    """The block (the first instance below the top) of a cell of a flattened netlist: Yosys's
    ``flatten`` names a submodule's cells ``path.name`` and its auto-named ones
    ``$flatten\\path.$name``; an auto-named cell of the top has a ``$`` name of its own."""
    name = instance.removeprefix("$flatten").lstrip("\\")
    if name.startswith("$"):
        return "top"
    path = name.split(".$", 1)[0] if ".$" in name else name.rsplit(".", 1)[0] if "." in name else "top"
    return path.split(".", 1)[0]


def _cell_pins(cells: dict, library: Library) -> tuple[dict, dict, set]:
    """Of a module's ``cells``: per net bit its driving cell, its sink pins
    ``[(instance, pin, index)]``, and the bits that reach a flip-flop's clock pin."""
    drivers: dict = {}
    sinks: dict = defaultdict(list)
    clocks = set()
    for inst, c in cells.items():
        kind = c["type"]
        lib = library.cells.get(kind)
        clock_pin = lib.flip_flop["clock"] if lib and lib.flip_flop else None
        for pin, bits in c.get("connections", {}).items():
            direction = c.get("port_directions", {}).get(pin) or ("output" if lib and pin == lib.output else "input")
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                if direction == "output":
                    drivers[b] = inst
                else:
                    sinks[b].append((inst, pin, i))
                    if pin == clock_pin:
                        clocks.add(b)
    return drivers, sinks, clocks


def repair_fanout(module: dict, library: Library, *, max_fanout: int = MAX_FANOUT, buffer: str = BUFFER,
                  pin_weights: dict | None = None) -> Repair:
    """Insert buffer trees into ``module`` (a flattened Yosys JSON module of ``library``'s
    cells) for every net with more than ``max_fanout`` sink pins; see the module docstring.
    ``pin_weights``: ``{(cell type, pin): {bit index: pins}}``, the pins a pin of a cell that
    is a module stands for (those its net drives inside); every other pin counts one."""
    if max_fanout < 2:
        raise ValueError(f"max_fanout must be at least 2, not {max_fanout}")
    if buffer not in library.cells:
        raise ValueError(f"the library has no buffer cell {buffer!r}")
    buf = library.cells[buffer]
    (in_pin,) = buf.inputs
    out_pin = buf.output
    cells = module.setdefault("cells", {})

    drivers, sinks, clocks = _cell_pins(cells, library)
    outputs = set()
    for port, p in module.get("ports", {}).items():
        for b in p["bits"]:
            if not isinstance(b, int):
                continue
            if p["direction"] == "input":
                drivers[b] = port
            else:
                outputs.add(b)

    next_bit = 1 + max((b for c in cells.values() for bits in c.get("connections", {}).values() for b in bits
                        if isinstance(b, int)), default=1)
    next_bit = max(next_bit, 1 + max((b for p in module.get("ports", {}).values() for b in p["bits"]
                                      if isinstance(b, int)), default=1))
    netnames = module.setdefault("netnames", {})
    repair = Repair()
    def weight(sink) -> int:
        inst, pin, i = sink
        return pin_weights.get((cells[inst]["type"], pin), {}).get(i, 1) if pin_weights else 1

    def groups(level):
        """``level`` in netlist order, cut into runs of at most ``max_fanout`` pins."""
        run, total = [], 0
        for sink in level:
            w = weight(sink)
            if run and total + w > max_fanout:
                yield run
                run, total = [], 0
            run.append(sink)
            total += w
        if run:
            yield run

    for bit, pins in sorted(sinks.items()):
        if sum(map(weight, pins)) <= max_fanout or bit not in drivers or bit in clocks:
            continue
        block = _block(drivers[bit])
        level = pins
        while sum(map(weight, level)) > max_fanout:
            parents = []
            for run in groups(level):
                net = next_bit
                next_bit += 1
                name = f"$fanout${bit}${repair.buffers}"
                if block != "top":
                    name = f"$flatten\\{block}.{name}"
                cells[name] = {"type": buffer, "connections": {in_pin: [bit], out_pin: [net]},
                               "port_directions": {in_pin: "input", out_pin: "output"},
                               "attributes": {CARRIES: str(bit)}}
                netnames[name] = {"hide_name": 1, "bits": [net]}
                repair.carries[net] = bit
                for inst, pin, i in run:
                    cells[inst]["connections"][pin][i] = net
                parents.append((name, in_pin, 0))
                repair.buffers += 1
                repair.blocks[block]["buffers"] += 1
                repair.blocks[block]["area_um2"] += buf.area
                repair.area_um2 += buf.area
            level = parents
        repair.nets += 1
    return repair


def repair_hierarchy(netlist: dict, top: str, library: Library, *, max_fanout: int = MAX_FANOUT,
                     buffer: str = BUFFER) -> Repair:
    """:func:`repair_fanout` of a netlist that keeps repeated modules as cells of ``top``
    (:func:`spikemllm.flow.hierarchy.flatten`): each kept module is repaired once, on its
    own (a port net with more than ``max_fanout`` pins inside gets its tree inside), then the
    top, where an instance's input pin counts as the pins its net drives inside, so that a
    net reaching many instances gets the tree the flat netlist would give it. The result
    counts a module's buffers once per instance, in the block of the instance; its
    ``carries`` are the top's."""
    modules = netlist["modules"]
    inside = {k: repair_fanout(modules[k], library, max_fanout=max_fanout, buffer=buffer)
              for k in modules if k != top}
    # an instance's input pin stands for the pins its net drives inside (after that repair)
    weights = {}
    for k in inside:
        _, sinks, _ = _cell_pins(modules[k].get("cells", {}), library)
        for port, p in modules[k].get("ports", {}).items():
            if p["direction"] == "input":
                weights[(k, port)] = {i: max(1, len(sinks.get(b, ()))) for i, b in enumerate(p["bits"])
                                      if isinstance(b, int)}
    repair = repair_fanout(modules[top], library, max_fanout=max_fanout, buffer=buffer, pin_weights=weights)
    for inst, c in modules[top].get("cells", {}).items():
        r = inside.get(c["type"])
        if r is None or not r.buffers:
            continue
        block = inst.split(".", 1)[0]  # the instance path's first component
        repair.nets += r.nets
        repair.buffers += r.buffers
        repair.area_um2 += r.area_um2
        repair.blocks[block]["buffers"] += r.buffers
        repair.blocks[block]["area_um2"] += r.area_um2
    return repair
