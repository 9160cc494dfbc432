"""The design hierarchy of a mapped netlist: which modules repeat, and flattening that keeps them.

A core's PE array holds ``P`` instances of one PE module (:func:`spikemllm.hw.generate.merge_identical_modules`
writes it once). Synthesis maps that module once; the fanout repair and the static timing
can also treat it once (:func:`spikemllm.flow.buffering.repair_hierarchy`,
:func:`spikemllm.flow.sta.analyze_hierarchical`) if the netlist is flattened around it:
:func:`flatten` merges every other submodule into its parent and leaves the instances of
the modules it is told to keep as cells of the parent, each kept module flattened on its
own. :func:`repeated_modules` picks the modules to keep: those instantiated more than once,
outermost first. With nothing kept, :func:`flatten` gives the whole design as one module,
with the names Yosys's ``flatten`` gives: a submodule's cell or net ``n`` in instance path
``a.b`` becomes ``a.b.n`` with the attribute ``hdlname`` ``"a b n"``.

Netlists are Yosys JSON (``write_json``) of a design whose names are all public (the flow
runs ``rename -enumerate`` before writing it).
"""

from __future__ import annotations

from collections import Counter

__all__ = ["instance_counts", "repeated_modules", "flatten"]


def _submodules(modules: dict, name: str) -> Counter:
    return Counter(c["type"] for c in modules[name].get("cells", {}).values() if c["type"] in modules)


def instance_counts(netlist: dict, top: str) -> dict[str, int]:
    """How many times each module of ``netlist`` is instantiated in the design below ``top``
    (1 for ``top``, 0 for a module outside it)."""
    modules = netlist["modules"]
    if top not in modules:
        raise ValueError(f"the netlist has no module {top!r}; it has {sorted(modules)}")
    count = Counter({top: 1})
    order, seen = [], set()

    def visit(name):  # children after their parents: reverse post-order
        if name in seen:
            return
        seen.add(name)
        for child in _submodules(modules, name):
            visit(child)
        order.append(name)

    visit(top)
    for name in reversed(order):
        for child, n in _submodules(modules, name).items():
            count[child] += count[name] * n
    return {name: count.get(name, 0) for name in modules}


def repeated_modules(netlist: dict, top: str) -> set[str]:
    """The modules instantiated more than once below ``top`` that are not inside another
    such module (so that no kept module holds another)."""
    modules = netlist["modules"]
    counts = instance_counts(netlist, top)
    repeated = {m for m, n in counts.items() if n > 1}

    def below(name, found):
        for child in _submodules(modules, name):
            if child not in found:
                found.add(child)
                below(child, found)
        return found

    inside = set()
    for m in repeated:
        below(m, inside)
    return repeated - inside


def _max_bit(body: dict) -> int:
    bits = [b for c in body.get("cells", {}).values() for v in c.get("connections", {}).values() for b in v]
    bits += [b for p in body.get("ports", {}).values() for b in p["bits"]]
    bits += [b for n in body.get("netnames", {}).values() for b in n["bits"]]
    return max((b for b in bits if isinstance(b, int)), default=1)


def _hdlname(path: str, name: str, attributes: dict) -> str:
    inner = attributes.get("hdlname") or name
    return " ".join(path.split(".") + [inner])


def flatten(netlist: dict, top: str, keep=frozenset()) -> dict:
    """``netlist`` (Yosys JSON) flattened below ``top`` except for the instances of the
    modules in ``keep``: ``{"modules": {top: ..., kept module: ...}}``, each flattened in
    the same way. Attributes of flattened cells are kept; a fanout-repair buffer's
    :data:`spikemllm.flow.buffering.CARRIES` bit is renumbered with its net. Raises
    ``ValueError`` for a module of ``keep`` that the netlist does not have."""
    from .buffering import CARRIES

    modules = netlist["modules"]
    missing = set(keep) - set(modules)
    if missing:
        raise ValueError(f"cannot keep {sorted(missing)}: the netlist has no such module")
    done: dict[str, dict] = {}

    def flat(name: str) -> dict:
        if name in done:
            return done[name]
        body = modules[name]
        cells = {}
        netnames = {k: dict(v) for k, v in body.get("netnames", {}).items()}
        next_bit = _max_bit(body) + 1
        alias: dict = {}  # a parent bit that a child joins to another (a port fed straight through)

        def root(b):
            while isinstance(b, int) and b in alias:
                b = alias[b]
            return b

        for inst, c in body.get("cells", {}).items():
            if c["type"] not in modules or c["type"] in keep:
                cells[inst] = dict(c)
                continue
            child = flat(c["type"])
            bitmap: dict = {}
            for port, p in child.get("ports", {}).items():
                for b, outer in zip(p["bits"], c["connections"].get(port, [])):
                    if not isinstance(b, int):
                        continue
                    if b in bitmap and root(bitmap[b]) != root(outer):
                        first, other = root(bitmap[b]), root(outer)
                        if isinstance(other, int):
                            alias[other] = first
                        elif isinstance(first, int):
                            alias[first] = other
                    bitmap.setdefault(b, outer)

            def mapped(b):
                nonlocal next_bit
                if not isinstance(b, int):
                    return b
                if b not in bitmap:
                    bitmap[b] = next_bit
                    next_bit += 1
                return bitmap[b]

            for n, cc in child.get("cells", {}).items():
                n = n.lstrip("\\")
                attributes = {**cc.get("attributes", {}), "hdlname": _hdlname(inst, n, cc.get("attributes", {}))}
                if CARRIES in attributes:
                    attributes[CARRIES] = str(mapped(int(attributes[CARRIES])))
                cells[f"{inst}.{n}"] = {**cc, "attributes": attributes,
                                       "connections": {pin: [mapped(b) for b in bits]
                                                       for pin, bits in cc.get("connections", {}).items()}}
            for n, net in child.get("netnames", {}).items():
                n = n.lstrip("\\")
                attributes = {**net.get("attributes", {}), "hdlname": _hdlname(inst, n, net.get("attributes", {}))}
                netnames[f"{inst}.{n}"] = {**net, "attributes": attributes, "bits": [mapped(b) for b in net["bits"]]}
        if alias:
            for c in cells.values():
                c["connections"] = {pin: [root(b) for b in bits] for pin, bits in c.get("connections", {}).items()}
            for net in netnames.values():
                net["bits"] = [root(b) for b in net["bits"]]
        ports = {k: {**p, "bits": [root(b) for b in p["bits"]]} for k, p in body.get("ports", {}).items()}
        done[name] = {**{k: v for k, v in body.items() if k not in ("cells", "netnames", "ports")},
                      "ports": ports, "cells": cells, "netnames": netnames}
        return done[name]

    out = {top: flat(top)}
    for name in sorted(keep):
        out[name] = flat(name)
    return {"modules": out}
