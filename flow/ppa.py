"""``make synth``: area, timing and activity-based energy of the spike core and the dense
INT8 and FP16 baselines, built, simulated and measured the same way, compared at matched
throughput and at matched area.

``python -m spikemllm.flow.ppa [--config default] [--out build/reports] [--decomposition]``
writes ``ppa.json``, ``ppa.md`` and plots. For every core:

* Verilog from :mod:`spikemllm.hw.generate`;
* :func:`spikemllm.flow.synth.synth_asic`: generic cells and Yosys's transistor estimate,
  sky130_fd_sc_hd standard-cell area per block;
* :func:`spikemllm.flow.synth.synth_fpga`: iCE40 and ECP5 resources, nextpnr Fmax;
* the real converted layer on the core under Verilator with VCD tracing (the cocotb
  testbench of ``make perf``, which checks it bit- and cycle-exact), read by
  :func:`spikemllm.flow.activity.measure_run`: toggles per block, every memory port's
  accesses and every enable flip-flop's enable activity over the run's cycles;
* the energy models of :mod:`.power` (logic and clock, with the clock-gating credit) and
  the SRAM model of :mod:`.sram` (area per bit and energy per access).

**Matching** (:func:`matched_dense_inputs`, :func:`closest_area`). Each dense baseline is
built with the number of inputs per cycle ``D`` that matches the spike core's throughput
on the workload: the smallest power of two whose exact cycle count
(:func:`spikemllm.golden.timing.core_model.dense_core_cycles`) is at most the spike core's.
For the iso-area comparison the flow also synthesizes neighbouring ``D`` until the
baseline's area brackets the spike core's and takes the ``D`` whose area is closest (logic
only and with SRAM separately). No ratio between cores of unmatched width is reported.

**Decomposition** (:func:`cycle_model_decomposition` always; measured variants with
``--decomposition``): the same flow on variants that each take one idea away.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from spikemllm.hw.blocks import BLOCKS, CORES, CoreKind
from spikemllm.hw.generate import generate

from spikemllm.config import AcceleratorConfig, Coding, add_config_arguments, config_from_args, describe_config

from . import gatelevel, sky130, sram
from .activity import activity_netlist, measure_run
from .power import ENERGY_45NM_PJ, activity_energy, cell_energies, opcount_energy
from .runner import _BUILD_ARGS, CXX_UNOPTIMIZED, build_block, run_block
from .synth import asic_results, synth_asic, synth_fpga

__all__ = ["TARGETS", "UTILIZATION_TARGET", "FIGURES", "figure_labels", "matched_dense_inputs", "closest_area", "compare",
           "cycle_model_decomposition", "measure", "summarize", "markdown", "main"]

TARGETS = {
    "fp16": {"throughput_per_area_with_sram": 9.06, "logic_energy_per_token": 25.8, "energy_per_token_with_sram": 5.0},
    "int8": {"throughput_per_area_with_sram": 3.4, "energy_per_token_with_sram": 1.87},
}
"""Targets of the spike core against each baseline (ratios, baseline over spike): the paper's
9.06x throughput and 25.8x power against an FP16 GPU, and SpikingBrain's published 70.6%
area and 46.5% power reduction against an INT8 design."""

UTILIZATION_TARGET = 0.95
"""Event-slot utilization (filled event slots, i.e. weight-row reads, over ``E x cycles``;
events / (E x cycles) without bundles) the spike core aims for."""

BASELINES = (CoreKind.INT8, CoreKind.FP16)


# -- matching -----------------------------------------------------------------------------------


def matched_dense_inputs(config: AcceleratorConfig, kind: CoreKind, spike_cycles: int, *, tokens: int,
                         in_features: int, out_tiles: int, cycles=None) -> int:
    """Smallest power of two ``D <= lanes`` whose dense core of ``kind`` takes at most
    ``spike_cycles`` on the workload (``lanes`` if none does).

    ``cycles(config, tokens, in_features, out_tiles, arithmetic)`` gives a core's cycle
    count (``.cycles``); by default the exact model
    :func:`~spikemllm.golden.timing.core_model.dense_core_cycles`. Each trial is
    ``dataclasses.replace(config, dense_inputs=D)``.
    """
    if cycles is None:
        from spikemllm.golden.timing.core_model import dense_core_cycles as cycles
    D = 1
    while D < config.lanes:
        trial = dataclasses.replace(config, dense_inputs=D)
        if cycles(trial, tokens, in_features, out_tiles, kind.value).cycles <= spike_cycles:
            break
        D *= 2
    return D


def closest_area(target: float, areas: dict[int, float]) -> int:
    """The ``D`` of ``areas`` (``D -> area``) closest to ``target`` in relative terms (the
    smaller ``D`` on a tie). Raises ``ValueError`` for no candidates or a non-positive target."""
    if not areas:
        raise ValueError("no candidate areas")
    if not target > 0:
        raise ValueError(f"target area must be positive, not {target!r}")
    return min(sorted(areas), key=lambda D: abs(math.log(areas[D] / target)))


def _bracketed(target: float, areas: dict[int, float], lanes: int) -> bool:
    below = any(a <= target for a in areas.values()) or 1 in areas
    above = any(a >= target for a in areas.values()) or lanes in areas
    return below and above


def _next_candidate(target: float, areas: dict[int, float], lanes: int) -> int | None:
    """The next ``D`` to synthesize to bracket ``target``, or ``None`` when bracketed."""
    if _bracketed(target, areas, lanes):
        return None
    if all(a < target for a in areas.values()):
        return min(max(areas) * 2, lanes)
    return max(min(areas) // 2, 1)


# -- the workload and its variants --------------------------------------------------------------


@dataclasses.dataclass
class Variant:
    """One hardware instance (and workload) the flow measures."""

    label: str
    kind: CoreKind
    config: AcceleratorConfig
    fpga: bool = False
    simulate: bool = True
    schedule: tuple[int, int] | None = None
    """``(vision T, text T)`` of the workload's schedule file; ``None`` for the case's default"""
    reuse_build: str | None = None
    """label of a variant whose hardware this one reuses (same Verilog): no new synthesis"""

    @property
    def block(self) -> str:
        return CORES[self.kind]


DEFAULT_WORKLOAD = "qwen2vl"
"""The workload of the report: the trained Qwen2-VL's layer on real image and question tokens."""

PLACE_TIMEOUT_S = 420.0
"""Time budget of one nextpnr run, so that ``make synth`` stays within minutes; a run past
it reports no Fmax."""

FPGA_CORES = ("spike", "int8", "fp16")
DEFAULT_FPGA_CORES = ("spike", "int8")
"""The cores ``make synth`` places on the FPGAs by default. The FP16 core's ECP5 routing
takes longer than :data:`PLACE_TIMEOUT_S` on its own (``--fpga-cores spike,int8,fp16``
with ``--place-timeout`` places it too; ``docs/ppa.md`` gives its time)."""


def _workload(config: AcceleratorConfig, workload: str):
    from spikemllm.sim.core.cases import workload_case

    return workload_case(config, workload)


def _shape(case) -> dict:
    return {"tokens": case.tokens, "in_features": case.program.padded_in, "out_tiles": case.program.out_tiles}


def count_config(config: AcceleratorConfig, tv: int, tt: int) -> AcceleratorConfig:
    """The count-coded spike core that carries the same integers as TC-LIF at ``tv``/``tt``
    steps: ``2^T - 1`` steps each."""
    steps = max((1 << tv) - 1, (1 << tt) - 1)
    return dataclasses.replace(config, name=f"{config.name}_count", coding=Coding.COUNT, t_max=steps)


def no_zero_skipping_config(config: AcceleratorConfig) -> AcceleratorConfig:
    """The spike core that issues every (step, input) pair (``zero_skipping=False``; it
    needs ``bundle > 1``, whose events carry fire bits)."""
    return dataclasses.replace(config, name=f"{config.name}_noskip", zero_skipping=False)


def plan(config: AcceleratorConfig, *, decomposition: bool, workload: str = DEFAULT_WORKLOAD,
         fpga_cores=DEFAULT_FPGA_CORES) -> tuple[dict[str, Variant], dict]:
    """The variants to measure: the spike core, each baseline at its throughput-matched ``D``,
    and with ``decomposition`` the variants of :func:`measured_decomposition`; the cores
    named in ``fpga_cores`` are also placed on the FPGAs.

    The count-coded and uniform-step variants program other timesteps from a schedule
    file, which only the MiniLM workload can take (each Qwen2-VL fixture holds the integers
    of its own schedule): on the Qwen2-VL workloads they come from the cycle model alone."""
    case = _workload(config, workload)
    shape = _shape(case)
    tv, tt = (int(t) for t in (case.timesteps.min(), case.timesteps.max()))
    variants = {"spike": Variant("spike", CoreKind.SPIKE, config, fpga="spike" in fpga_cores)}
    matched = {}
    for kind in BASELINES:
        D = matched_dense_inputs(config, kind, case.model.cycles, **shape)
        matched[kind.value] = D
        variants[kind.value] = Variant(kind.value, kind, dataclasses.replace(config, dense_inputs=D),
                                       fpga=kind.value in fpga_cores)
    if decomposition:
        E = min(config.events_per_cycle, config.lanes)
        if matched["int8"] != E:
            variants["int8_same_width"] = Variant("int8_same_width", CoreKind.INT8,
                                                  dataclasses.replace(config, dense_inputs=E))
        if config.bundle > 1 and config.zero_skipping:
            variants["no_zero_skipping"] = Variant("no_zero_skipping", CoreKind.SPIKE, no_zero_skipping_config(config))
        if config.coding is Coding.TC_LIF and workload == "minilm":
            count = count_config(config, tv, tt)
            variants["count_coding"] = Variant("count_coding", CoreKind.SPIKE, count,
                                               schedule=((1 << tv) - 1, (1 << tt) - 1))
        if tv != tt and workload == "minilm":
            variants["uniform_steps"] = Variant("uniform_steps", CoreKind.SPIKE, config, schedule=(tt, tt),
                                                reuse_build="spike")
    info = {"spike_model_cycles": case.model.cycles, "matched_dense_inputs": matched, "msts": [tv, tt], **shape}
    return variants, info


# -- running the tools ------------------------------------------------------------------------------


class _PriorityPool:
    """``workers`` threads running submitted calls, lowest priority number first (FIFO among equals)."""

    def __init__(self, workers: int):
        self._heap: list = []
        self._count = 0
        self._cv = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def submit(self, priority: int, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the pool is closed")
            heapq.heappush(self._heap, (priority, self._count, future, fn, args, kwargs))
            self._count += 1
            self._cv.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if not self._heap:
                    return
                _, _, future, fn, args, kwargs = heapq.heappop(self._heap)
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 -- handed to the caller through the future
                    future.set_exception(exc)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()


def _rtl(config: AcceleratorConfig, block: str, folder: Path) -> tuple[Path, dict]:
    module = BLOCKS[block].module
    rtl = folder / "rtl"
    generate(config, rtl, blocks=[block])
    ports = json.loads((rtl / "config.json").read_text())["blocks"][block]["ports"]
    return rtl / f"{module}.v", ports


def _write_schedule(folder: Path, tv: int, tt: int) -> Path:
    from spikemllm.sim.core.cases import LAYER, case_schedule

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"schedule_{tv}_{tt}.json"
    case_schedule(0, tv, tt, name=LAYER).save(path)
    return path


TRACED_BUILD_ARGS = [*_BUILD_ARGS["verilator"], *CXX_UNOPTIMIZED]
"""Verilator options of the traced RTL builds: the simulator's defaults, compiled without
C++ optimization (:data:`~spikemllm.flow.runner.CXX_UNOPTIMIZED`). The ``accel`` preset's
FP16 core is 380 MB of C++; it builds in 11 minutes where ``-Os`` took about an hour, and
its run takes under a minute either way. The C++ optimization level changes neither what
is traced nor a value."""


def _simulate(v: Variant, out: Path, workload: str, options: dict | None = None, rtl: Path | None = None) -> dict:
    """Traced simulation of a variant's workload and what :func:`measure_run` reads from it;
    ``options`` go to the workload's case function (e.g. ``{"tokens": 8}``); ``rtl`` the
    variant's Verilog folder if it is already generated (:func:`_rtl`)."""
    root = out / "power" / (v.reuse_build or v.label)
    build = build_block(v.config, v.block, waves=True, root=root, rtl=rtl,
                        build_args=TRACED_BUILD_ARGS)
    results = build.build_dir / f"run_results_{v.label}.json"
    schedule = _write_schedule(out / "schedules", *v.schedule) if v.schedule else None
    run_block(build, results=results, waves=True, schedule=schedule, case={"workload": workload, **(options or {})})
    run = json.loads(results.read_text())
    module = BLOCKS[v.block].module
    netlist = activity_netlist(build.description.parent / f"{module}.v", module, build.build_dir / "activity")
    activity = measure_run(build.build_dir / "run" / "dump.vcd", netlist, module, tuple(run["run_window_ps"]))
    if activity["cycles"] != run["rtl_cycles"]:
        raise RuntimeError(f"{v.label}: the VCD shows {activity['cycles']} busy cycles, CYCLES read "
                           f"{run['rtl_cycles']}")
    return {"run": run, "activity": activity}


GATE_LEVEL_CORES = ("spike", "int8", "fp16")
"""The variants whose mapped netlists are simulated at gate level: the three matched cores."""


def _gate_level(v: Variant, netlist: Path, out: Path, workload: str, gating: dict, log) -> dict:
    """Gate-level simulation and energy of a variant's netlist (:func:`gatelevel.simulate`);
    a run that is not bit- and cycle-exact is recorded with the testbench's message."""
    start = time.monotonic()
    try:
        result = gatelevel.simulate(v.config, v.block, netlist, out / "gatelevel" / v.label, workload=workload,
                                    gating=gating, log=lambda m: log(f"{v.label}: {m}"))
    except AssertionError as exc:
        log(f"{v.label}: the gate-level run FAILED")
        return {"failed": str(exc)[-3000:], "seconds": {"total": round(time.monotonic() - start, 1)}}
    result["seconds"]["total"] = round(time.monotonic() - start, 1)
    return result


FPGA_FAMILIES = ("ice40", "ecp5")
DEFAULT_FPGA = ("ecp5",)
"""FPGA families ``make synth`` places by default: the default configuration does not fit
the iCE40 UP5K (``--fpga ice40,ecp5`` places it there too)."""


def _simulation_order(v: Variant) -> int:
    """The traced runs go spike core first, then the FP16 core (the longest run; its
    iso-area search waits for it), then the rest."""
    return {"spike": 0, "fp16": 1}.get(v.label, 2)


def measure(config: AcceleratorConfig, out: Path, *, workload: str = DEFAULT_WORKLOAD, families=DEFAULT_FPGA,
            fpga_cores=DEFAULT_FPGA_CORES, jobs: int = 2, decomposition: bool = False,
            place_timeout: float | None = PLACE_TIMEOUT_S, gate_level: bool = True, log=print) -> dict:
    """Synthesize, place and simulate every variant; return the raw measurements.

    Synthesis and place-and-route go to ``jobs`` workers (ASIC runs first, then the
    iso-area candidates, then FPGA runs) while the traced simulations run alongside
    (:func:`_simulation_order`). The search for a baseline's iso-area candidates starts as
    soon as the spike core and that baseline have run (it needs the cores' ASIC areas and
    measured memory ports); once all have run, (``gate_level``) the gate-level simulations
    of the three cores' mapped netlists run (:func:`spikemllm.flow.gatelevel.simulate`).
    """
    variants, info = plan(config, decomposition=decomposition, workload=workload, fpga_cores=fpga_cores)
    for kind, D in info["matched_dense_inputs"].items():
        log(f"{kind}: D = {D} inputs per cycle matches the spike core's {info['spike_model_cycles']} model cycles")
    synth_root = out / "synth" / config.name
    pool = _PriorityPool(jobs)
    pending: dict[str, dict[str, Future]] = {}
    try:
        for v in variants.values():
            if v.reuse_build:
                continue
            source, ports = _rtl(v.config, v.block, synth_root / v.label)
            module = BLOCKS[v.block].module
            pending[v.label] = {"asic": pool.submit(0, synth_asic, source, module, synth_root / v.label / "asic")}
            if v.fpga:
                for family in families:
                    pending[v.label][family] = pool.submit(2, synth_fpga, source, module, family,
                                                           synth_root / v.label / family, ports=ports,
                                                           place_timeout=place_timeout)
        raw = {"info": info, "variants": {}, "iso_area_candidates": {}}
        searches = ThreadPoolExecutor(max_workers=len(BASELINES), thread_name_prefix="iso-area")
        found = {}
        for v in sorted(variants.values(), key=_simulation_order):
            start = time.monotonic()
            entry = {"kind": v.kind.value, "block": v.block, "config": v.config.to_dict()["parameters"],
                     "dense_inputs": v.config.dense_inputs if v.kind is not CoreKind.SPIKE else None,
                     "schedule": list(v.schedule) if v.schedule else None, "reuse_build": v.reuse_build}
            entry.update(_simulate(v, out, workload, rtl=synth_root / (v.reuse_build or v.label) / "rtl"))
            raw["variants"][v.label] = entry
            log(f"{v.label}: traced simulation and activity done in {time.monotonic() - start:.0f} s")
            for kind in BASELINES:  # a search starts once the spike core and its baseline have run
                if kind not in found and {"spike", kind.value} <= raw["variants"].keys():
                    found[kind] = searches.submit(_iso_area_candidates, config, kind, raw, pending, synth_root, pool,
                                                  log)
        searches.shutdown(wait=False)
        raw["variants"] = {label: raw["variants"][label] for label in variants}  # the plan's order
        if gate_level:
            for label in GATE_LEVEL_CORES:
                v = variants[label]
                pending[label]["asic"].result()  # the mapped netlist
                netlist = synth_root / label / "asic" / "sky130_netlist.v"
                raw["variants"][label]["gate_level"] = _gate_level(
                    v, netlist, out, workload, raw["variants"][label]["activity"]["enable_banks"], log)
        for label, jobs_of in pending.items():
            for flow, job in jobs_of.items():
                raw["variants"][label][flow] = job.result()
            log(f"{label}: synthesis done (sky130 {raw['variants'][label]['asic']['seconds']:.0f} s)")
        for v in variants.values():
            if v.reuse_build:
                raw["variants"][v.label]["asic"] = raw["variants"][v.reuse_build]["asic"]
        for kind, job in found.items():
            raw["iso_area_candidates"][kind.value] = job.result()
    finally:
        pool.close()
    return raw


def _iso_area_candidates(config: AcceleratorConfig, kind: CoreKind, raw: dict, pending: dict, synth_root: Path,
                         pool: _PriorityPool, log) -> dict:
    """ASIC synthesis of the baseline ``kind`` at neighbouring ``D`` until its area (logic,
    and with SRAM) brackets the spike core's; returns ``{str(D): asic result}`` of the
    candidates. Waits for the two cores' ASIC runs in ``pending``; needs their traced
    simulations in ``raw`` (measured memory ports)."""
    spike, base = raw["variants"]["spike"], raw["variants"][kind.value]
    spike_asic = pending["spike"]["asic"].result()
    targets = {"logic": _logic_area(spike_asic), "with_sram": _logic_area(spike_asic) + _sram(spike)["total"]["area_um2"]}
    D0 = base["dense_inputs"]
    found = {D0: pending[kind.value]["asic"].result()}
    while True:
        wanted = set()
        for measure_, target in targets.items():
            areas = {D: _candidate_area(a, base, measure_) for D, a in found.items()}
            nxt = _next_candidate(target, areas, config.lanes)
            if nxt is not None and nxt not in found:
                wanted.add(nxt)
        if not wanted:
            break
        jobs = {}
        for D in sorted(wanted):
            c = dataclasses.replace(config, dense_inputs=D)
            label = f"{kind.value}_d{D}"
            source, _ = _rtl(c, CORES[kind], synth_root / label)
            # an area is all a candidate gives: no static timing
            jobs[D] = pool.submit(1, synth_asic, source, BLOCKS[CORES[kind]].module, synth_root / label / "asic",
                                  timing=False)
        for D, job in jobs.items():
            found[D] = job.result()
            log(f"{kind.value}: iso-area candidate D = {D} synthesized ({found[D]['seconds']:.0f} s)")
    return {str(D): a for D, a in found.items() if D != D0}


# -- summary ------------------------------------------------------------------------------------------


def _logic_area(asic: dict) -> float:
    return asic["sky130"]["total"]["area_um2"]


def _sram(r: dict) -> dict:
    return sram.memory_costs(list(r["activity"]["memories"].values()))


def _candidate_area(asic: dict, sibling: dict, measure_: str) -> float:
    """Area of an iso-area candidate: its logic, plus (``with_sram``) its memories costed
    with the port counts measured on the simulated core of the same kind."""
    area = _logic_area(asic)
    if measure_ == "with_sram":
        area += _candidate_sram(asic, sibling)["total"]["area_um2"]
    return area


def _candidate_sram(asic: dict, sibling: dict) -> dict:
    measured = sibling["activity"]["memories"]
    ports = {}
    for m in measured.values():
        family = m["name"].rstrip("0123456789").rstrip("_")
        ports[family] = max(ports.get(family, 0), m["ports"])
    memories = []
    for m in asic["memories"]:
        family = m["name"].rstrip("0123456789").rstrip("_")
        memories.append({"name": m["name"], "width": m["width"], "depth": m["depth"], "ports": ports.get(family, 1),
                         "reads": 0, "writes": 0})
    return sram.memory_costs(memories)


_S = {"flows": "Flows", "sta": "ASIC timing", "sram": "Memories as SRAM",
      "act": "Activity", "energy": "Energy", "gate": "Gate-level power", "match": "Matched baselines and ratios",
      "results": "Results"}
FIGURES = {
    "kind": ("setting", "flows"), "dense_inputs": ("setting", "match"), "work_per_cycle": ("setting", "match"),
    "schedule": ("setting", "results"), "coding": ("setting", "results"), "clock_mhz": ("setting", "results"),
    "utilization_definition": ("setting", "results"), "fmax_flow": ("setting", "flows"),
    "logic_area_um2": ("measured", "flows"), "area_by_block_um2": ("measured", "flows"),
    "sky130_cells": ("measured", "flows"), "flip_flops": ("measured", "flows"),
    "transistors": ("measured", "flows"), "transistors_by_block": ("measured", "flows"),
    "generic_cells": ("measured", "flows"), "memory_bits": ("measured", "sram"),
    "sram_area_um2": ("estimated", "sram"), "sram_area_whole_macros_um2": ("estimated", "sram"),
    "area_um2": ("estimated", "sram"), "memory_area_flip_flop_estimate_um2": ("estimated", "sram"),
    "memories": ("estimated", "sram"),
    "flip_flops_rtl": ("measured", "act"), "enabled_flip_flops_rtl": ("measured", "act"),
    "clock_gates": ("measured", "act"), "banks_not_evaluated": ("measured", "act"), "activity": ("measured", "act"),
    "activity_cycles": ("measured", "act"),
    "fmax_mhz": ("measured", "flows"), "fpga": ("measured", "flows"), "tokens_per_s_at_fmax": ("measured", "results"),
    "cycles": ("measured", "results"), "model_cycles": ("exact model", "results"), "tokens": ("setting", "results"),
    "tiles_run": ("setting", "results"), "in_features": ("setting", "results"), "out_features": ("setting", "results"),
    "events": ("measured", "results"), "weight_reads": ("measured", "results"), "utilization": ("measured", "results"),
    "busy_cycle_fraction": ("measured", "results"), "tokens_per_s": ("measured", "results"),
    "bit_exact": ("measured", "results"), "cycle_exact": ("measured", "results"),
    "asic_fmax_mhz": ("estimated", "sta"), "asic_timing": ("estimated", "sta"),
    "tokens_per_s_at_asic_fmax": ("estimated", "sta"), "power_at_asic_fmax_w": ("estimated", "sta"),
    "logic_energy_per_token_j": ("estimated", "energy"), "logic_energy_per_token_no_clock_gating_j": ("estimated", "energy"),
    "sram_energy_per_token_j": ("estimated", "sram"), "energy_per_token_j": ("estimated", "energy"),
    "energy_per_token_no_clock_gating_j": ("estimated", "energy"), "power_w": ("estimated", "energy"),
    "energy_by_block": ("estimated", "energy"), "energy_per_token_opcount_45nm_j": ("estimated", "energy"),
    "energy_per_token_opcount_45nm_compute_only_j": ("estimated", "energy"), "opcount_45nm": ("estimated", "energy"),
    "gate_level": ("measured", "gate"),
}
"""Every figure of a core in ``ppa.json``: ``measured`` (read from a tool's output or the
RTL's run: synthesis, place-and-route, the traced simulation), ``estimated`` (a model
applied to measurements: SRAM figures, energies, the static timing), ``exact model`` (the
cycle model's prediction) or ``setting`` (an input of the run), and the section of
``docs/ppa.md`` that gives its source. :func:`figure_labels` writes it into the report;
the tests check that no core figure is missing from it."""


def figure_labels() -> dict:
    """:data:`FIGURES` as the report's ``figures`` entry."""
    return {key: {"kind": kind, "source": f"docs/ppa.md, section '{_S[section]}'"}
            for key, (kind, section) in FIGURES.items()}


def core_metrics(name: str, r: dict, config: AcceleratorConfig, *, clock_hz: float) -> dict:
    """Area, throughput and energy of one measured variant (``r`` from :func:`measure`)."""
    run, act, asic = r["run"], r["activity"], r["asic"]
    tokens, cycles = run["tokens"], run["rtl_cycles"]
    sky = asic["sky130"]
    logic_area = _logic_area(asic)
    memory = _sram(r)
    bits_synth = sum(m["bits"] for m in asic["memories"])
    if memory["total"]["bits"] != bits_synth:
        raise ValueError(f"{name}: the activity netlist has {memory['total']['bits']} memory bits, synthesis {bits_synth}")
    energy = activity_energy(act["toggles"], sky["blocks"], cycles, gating=act["enable_banks"])
    logic_j = energy["total"]["logic_j"] + energy["total"]["clock_j"]
    ungated_j = energy["total"]["logic_j"] + energy["total"]["clock_ungated_j"]
    sram_j = memory["total"]["energy_j"]
    seconds = cycles / clock_hz
    kind = CoreKind(r["kind"])
    slots = config.events_per_cycle if kind is CoreKind.SPIKE else r["dense_inputs"]
    ecp5 = r.get("ecp5", {})
    fmax = ecp5.get("fmax_mhz")
    timing = sky.get("timing") or {}
    asic_fmax = timing.get("fmax_mhz")
    tiles_run = tokens * (run["out_features"] // config.pes)
    ops = opcount_energy(kind.value, work=run["events"], pes=config.pes, tiles_run=tiles_run,
                         weight_row_bits=config.pes * (16 if kind is CoreKind.FP16 else config.weight_bits))
    gating = act["enable_banks"]
    flops_rtl = sum(b["flip_flops"] for b in gating.values())
    metrics = {
        "kind": kind.value,
        "dense_inputs": r["dense_inputs"],
        "work_per_cycle": slots,
        "schedule": r.get("schedule"),
        "coding": r["config"]["coding"],
        "logic_area_um2": logic_area,
        "sram_area_um2": memory["total"]["area_um2"],
        "sram_area_whole_macros_um2": memory["total"]["area_whole_macros_um2"],
        "area_um2": logic_area + memory["total"]["area_um2"],
        "memory_area_flip_flop_estimate_um2": bits_synth * sky["flip_flop_area_um2"],
        "memory_bits": bits_synth,
        "memories": memory["memories"],
        "transistors": asic["generic"]["total"]["transistors"],
        "generic_cells": asic["generic"]["total"]["cells"],
        "sky130_cells": sky["total"]["cells"],
        "flip_flops": sky["total"]["flip_flops"],
        "flip_flops_rtl": flops_rtl,
        "enabled_flip_flops_rtl": sum(b["enabled_flip_flops"] for b in gating.values()),
        "clock_gates": sum(b["enables"] for b in gating.values()),
        "banks_not_evaluated": act["banks_not_evaluated"],
        "fmax_mhz": fmax,
        "fmax_flow": ecp5.get("flow"),
        "fpga": {family: r[family] for family in ("ice40", "ecp5") if family in r},
        "cycles": cycles,
        "model_cycles": run["model_cycles"],
        "activity_cycles": act["cycles"],
        "tokens": tokens,
        "clock_mhz": clock_hz / 1e6,
        "tokens_per_s": tokens / seconds,
        "tokens_per_s_at_fmax": tokens / (cycles / (fmax * 1e6)) if fmax else None,
        "asic_fmax_mhz": asic_fmax,
        "asic_timing": timing or None,
        "tokens_per_s_at_asic_fmax": tokens / (cycles / (asic_fmax * 1e6)) if asic_fmax else None,
        "power_at_asic_fmax_w": (logic_j + sram_j) / (cycles / (asic_fmax * 1e6)) if asic_fmax else None,
        "events": run["events"],
        "tiles_run": tiles_run,
        "in_features": run["in_features"],
        "out_features": run["out_features"],
        "weight_reads": run["weight_reads"],
        "utilization": run["weight_reads"] / (slots * cycles),
        "utilization_definition": ("weight-row reads / (E x cycles): events / (E x cycles) without bundles"
                                   if kind is CoreKind.SPIKE else
                                   "weight-row reads / (D x cycles): inputs / (D x cycles) without bundles"),
        "busy_cycle_fraction": run["active_cycles"] / cycles,
        "logic_energy_per_token_j": logic_j / tokens,
        "logic_energy_per_token_no_clock_gating_j": ungated_j / tokens,
        "sram_energy_per_token_j": sram_j / tokens,
        "energy_per_token_j": (logic_j + sram_j) / tokens,
        "energy_per_token_no_clock_gating_j": (ungated_j + sram_j) / tokens,
        "power_w": (logic_j + sram_j) / seconds,
        "energy_by_block": energy,
        "area_by_block_um2": {b: v["area_um2"] for b, v in sky["blocks"].items()},
        "transistors_by_block": {b: v["transistors"] for b, v in asic["generic"]["blocks"].items()},
        "energy_per_token_opcount_45nm_j": ops["total_j"] / tokens,
        "energy_per_token_opcount_45nm_compute_only_j": ops["compute_only_j"] / tokens,
        "opcount_45nm": ops,
        "bit_exact": run["bit_exact"] and run["stalled_run"]["bit_exact"],
        "cycle_exact": run["rtl_cycles"] == run["model_cycles"],
        "activity": act["toggles"],
    }
    if r.get("gate_level"):
        metrics["gate_level"] = gate_level_metrics(r["gate_level"], energy, tokens=tokens, cycles=cycles,
                                                   clock_hz=clock_hz, sram_j=sram_j)
    return metrics


def gate_level_metrics(gl: dict, rtl_energy: dict, *, tokens: int, cycles: int, clock_hz: float, sram_j: float) -> dict:
    """The gate-level energy of one core (``gl`` from :func:`_gate_level`) per token and
    block, beside the RTL-activity estimate (``rtl_energy``, :func:`~.power.activity_energy`):
    ``difference`` is gate-level over estimate, minus 1."""
    if "failed" in gl:
        return {"label": gatelevel.LABEL, "measured": False, "bit_exact": False, "cycle_exact": False,
                "error": gl["failed"], "seconds": gl["seconds"]}
    e = gatelevel.at_clock(gl["energy"], gl["cycles"], clock_hz)
    comparison = {}
    for block in e:
        rtl = rtl_energy[block]["logic_j"] + rtl_energy[block]["clock_j"]
        comparison[block] = {"rtl_estimate_j": rtl / tokens, "gate_level_j": e[block]["total_j"] / tokens,
                             "difference": e[block]["total_j"] / rtl - 1 if rtl else None}
    run = gl["run"]
    logic = e["total"]["total_j"]
    return {
        "label": gatelevel.LABEL, "measured": True,
        "bit_exact": run["bit_exact"] and (run["stalled_run"] or {"bit_exact": True})["bit_exact"],
        "stalled_run_simulated": run["stalled_run"] is not None,
        "cycle_exact": run["rtl_cycles"] == run["model_cycles"] == cycles and gl["cycles"] == cycles,
        "cycles": gl["cycles"],
        "logic_energy_per_token_j": logic / tokens,
        "logic_energy_per_token_no_clock_gating_j": e["total"]["total_ungated_j"] / tokens,
        "energy_per_token_j": (logic + sram_j) / tokens,
        "power_w": (logic + sram_j) / (cycles / clock_hz),
        "leakage_w": e["total"]["leakage_w"],
        "energy_by_block": e, "comparison": comparison,
        "cells": gl["cells"], "driven_nets": gl["driven_nets"], "untraced_nets": gl["untraced_nets"],
        "fanout_buffers": gl["buffers"], "vcd_mb": gl["vcd_mb"], "seconds": gl["seconds"],
        "input_transition_ns": gatelevel.INPUT_TRANSITION_NS,
        "internal_per_token_j_by_input_transition_ns": {s: v / tokens for s, v in
                                                        gl.get("internal_j_by_input_transition_ns", {}).items()},
    }


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("inf")


def compare(spike: dict, base: dict) -> dict:
    """Ratios of the spike core against one baseline core (metrics of :func:`core_metrics`):
    areas and energies baseline over spike, throughputs spike over baseline."""
    out = {"throughput": _ratio(spike["tokens_per_s"], base["tokens_per_s"])}
    if spike.get("tokens_per_s_at_asic_fmax") and base.get("tokens_per_s_at_asic_fmax"):
        out["throughput_at_asic_fmax"] = _ratio(spike["tokens_per_s_at_asic_fmax"], base["tokens_per_s_at_asic_fmax"])
    for key, label in (("logic_area_um2", "logic"), ("area_um2", "with_sram")):
        out[f"area_{label}"] = _ratio(base[key], spike[key])
        out[f"throughput_per_area_{label}"] = _ratio(spike["tokens_per_s"] / spike[key], base["tokens_per_s"] / base[key])
    for key, label in (("logic_energy_per_token_j", "logic_energy_per_token"),
                       ("energy_per_token_j", "energy_per_token_with_sram"),
                       ("logic_energy_per_token_no_clock_gating_j", "logic_energy_per_token_no_clock_gating"),
                       ("energy_per_token_no_clock_gating_j", "energy_per_token_with_sram_no_clock_gating"),
                       ("energy_per_token_opcount_45nm_j", "energy_per_token_opcount_45nm"),
                       ("energy_per_token_opcount_45nm_compute_only_j", "energy_per_token_opcount_45nm_compute_only")):
        out[label] = _ratio(base[key], spike[key])
    return out


def _iso_area(config: AcceleratorConfig, kind: CoreKind, spike: dict, base: dict, candidates: dict, raw_base: dict,
              shape: dict, clock_hz: float) -> dict:
    """The baseline ``D`` whose area is closest to the spike core's (logic only and with
    SRAM), its throughput (exact cycle model) and the ratios there."""
    from spikemllm.golden.timing.core_model import dense_core_cycles

    D0 = base["dense_inputs"]
    logic = {D0: base["logic_area_um2"]}
    with_sram = {D0: base["area_um2"]}
    for D, asic in candidates.items():
        D = int(D)
        logic[D] = _logic_area(asic)
        with_sram[D] = logic[D] + _candidate_sram(asic, raw_base)["total"]["area_um2"]
    out = {"candidates": {str(D): {"logic_area_um2": logic[D], "area_um2": with_sram[D]} for D in sorted(logic)}}
    for label, areas, key in (("logic", logic, "logic_area_um2"), ("with_sram", with_sram, "area_um2")):
        D = closest_area(spike[key], areas)
        c = dataclasses.replace(config, dense_inputs=D)
        cycles = dense_core_cycles(c, shape["tokens"], shape["in_features"], shape["out_tiles"], kind.value).cycles
        tps = shape["tokens"] / (cycles / clock_hz)
        out[label] = {
            "dense_inputs": D, "area_um2": areas[D], "area_over_spike": areas[D] / spike[key],
            "cycles": cycles, "cycles_source": "RTL (measured)" if D == D0 else "exact cycle model",
            "tokens_per_s": tps, "throughput": spike["tokens_per_s"] / tps,
            "throughput_per_area": (spike["tokens_per_s"] / spike[key]) / (tps / areas[D]),
        }
    return out


def summarize(config: AcceleratorConfig, raw: dict, *, clock_hz: float, workload: str = DEFAULT_WORKLOAD) -> dict:
    """Per-core metrics, matched ratios, targets and the decomposition from :func:`measure`'s results."""
    variants = {label: core_metrics(label, r, config, clock_hz=clock_hz) for label, r in raw["variants"].items()}
    cores = {label: variants[label] for label in ("spike", "int8", "fp16")}
    spike = cores["spike"]
    shape = {k: raw["info"][k] for k in ("tokens", "in_features", "out_tiles")}
    ratios = {}
    for kind in BASELINES:
        b = cores[kind.value]
        matched = compare(spike, b)
        iso_area = _iso_area(config, kind, spike, b, raw.get("iso_area_candidates", {}).get(kind.value, {}),
                             raw["variants"][kind.value], shape, clock_hz)
        tpa = [matched["throughput_per_area_with_sram"], iso_area["with_sram"]["throughput_per_area"]]
        tpa_logic = [matched["throughput_per_area_logic"], iso_area["logic"]["throughput_per_area"]]
        entry = {
            "dense_inputs": b["dense_inputs"],
            "throughput_matched": b["cycles"] <= spike["cycles"],
            "iso_throughput": matched,
            "iso_area": iso_area,
            # strict: the less favourable of the two matched readings; the other beside it
            "throughput_per_area_with_sram": min(tpa),
            "throughput_per_area_with_sram_favourable": max(tpa),
            "throughput_per_area_logic": min(tpa_logic),
            "throughput_per_area_logic_favourable": max(tpa_logic),
            "logic_energy_per_token": matched["logic_energy_per_token"],
            "energy_per_token_with_sram": matched["energy_per_token_with_sram"],
        }
        entry["targets"] = {metric: {"target": target, "value": entry[metric], "met": entry[metric] >= target}
                            for metric, target in TARGETS[kind.value].items()}
        gs, gb = spike.get("gate_level", {}), b.get("gate_level", {})
        if gs.get("measured") and gb.get("measured"):
            entry["gate_level"] = {
                "label": gatelevel.LABEL,
                "logic_energy_per_token": _ratio(gb["logic_energy_per_token_j"], gs["logic_energy_per_token_j"]),
                "energy_per_token_with_sram": _ratio(gb["energy_per_token_j"], gs["energy_per_token_j"]),
                "logic_energy_per_token_no_clock_gating": _ratio(gb["logic_energy_per_token_no_clock_gating_j"],
                                                                 gs["logic_energy_per_token_no_clock_gating_j"]),
            }
        ratios[f"spike_vs_{kind.value}"] = entry
    checks = {
        "event_slot_utilization": {"target": UTILIZATION_TARGET, "value": spike["utilization"],
                                   "met": spike["utilization"] >= UTILIZATION_TARGET},
        "rtl_cycles_equal_model": {"met": all(c["cycle_exact"] for c in variants.values()),
                                   "values": {k: [c["cycles"], c["model_cycles"]] for k, c in variants.items()}},
        "bit_exact": {"met": all(c["bit_exact"] for c in variants.values())},
    }
    gate = {k: c["gate_level"] for k, c in variants.items() if "gate_level" in c}
    if gate:
        checks["gate_level_bit_and_cycle_exact"] = {"met": all(g["bit_exact"] and g["cycle_exact"] for g in gate.values()),
                                                    "values": {k: g["bit_exact"] and g["cycle_exact"]
                                                               for k, g in gate.items()}}
    return {
        "config": config.to_dict()["parameters"], "config_label": describe_config(config), "cores": cores,
        "variants": {k: v for k, v in variants.items() if k not in cores},
        "ratios": ratios, "checks": checks, "figures": figure_labels(),
        "decomposition": {"cycle_model": cycle_model_decomposition(config, workload),
                          "measured": measured_decomposition(variants, workload, config.bundle)},
        "energy_model": {**cell_energies(), "opcount_45nm_pj": ENERGY_45NM_PJ},
        "sram_model": {"source": sram.SOURCE, "read_pj_per_bit": sram.READ_J_PER_BIT * 1e12,
                       "write_pj_per_bit": sram.WRITE_J_PER_BIT * 1e12,
                       "macros": {m.name: {"words": m.words, "width": m.width, "ports": m.ports, "width_um": m.width_um,
                                           "height_um": m.height_um, "area_per_bit_um2": m.area_per_bit_um2}
                                  for m in (sram.SINGLE_PORT, sram.DUAL_PORT)}},
        "library": {"cells": len(sky130.CELLS) + 1, "flip_flop": sky130.FLIP_FLOP,
                    "flip_flop_area_um2": sky130.cell_area(sky130.FLIP_FLOP)},
        "timing_model": timing_model(),
    }


def timing_model() -> dict:
    """How the ASIC timing figures are made, and the characterized library's own figures
    (FO4, flip-flop), read from the committed liberty."""
    from . import sta
    from .liberty import read_library
    from .synth import ABC_DELAY_TARGET_PS, ABC_TIMING, LIBERTY

    lib = read_library(LIBERTY)
    return {
        "label": "estimate: static timing of the mapped netlist with NLDM tables characterized with ngspice "
                 "(sky130 tt, 25 C, 1.8 V, cell schematics without layout parasitics); pre-layout, ideal clock",
        "library": LIBERTY.name, "library_cells": len(lib.cells),
        "mapping": f"abc -liberty -D {ABC_DELAY_TARGET_PS} -script {ABC_TIMING}",
        "wire_um_per_fanout": sta.WIRE_UM_PER_FANOUT, "wire_layer": sta.WIRE_LAYER,
        "wire_pf_per_fanout": sta.wire_pf_per_fanout(), "clock_transition_ns": sta.CLOCK_TRANSITION_NS,
        "boundary_transition_ns": sta.BOUNDARY_TRANSITION_NS,
        "fo4": sta.fo4_delay(lib), "flip_flop": sta.flip_flop_figures(lib),
    }


# -- decomposition ----------------------------------------------------------------------------------

DECOMPOSITION = {
    "multiplier_free": "multiplier-free datapath: INT8 core of the same width (D = E) against the spike core",
    "zero_skipping": "zero skipping: a spike core that issues every (step, input) pair",
    "tc_lif_steps": "TC-LIF steps: the count-coded core carrying the same integers (2^T - 1 steps)",
    "msts": "MSTS steps: the same core and layer with uniform steps (the larger T for both modalities)",
}
"""The ideas the decomposition takes away one at a time."""


def measured_decomposition(variants: dict, workload: str = DEFAULT_WORKLOAD, bundle: int = 1) -> dict:
    """Each idea's gain, measured by the same flow on a variant without it: the variant's
    figure over the spike core's (cycles, energy per token with and without SRAM, areas).
    An idea whose variant was not measured has ``"measured": False`` and no numbers."""
    spike = variants["spike"]
    sources = {"multiplier_free": "int8_same_width" if "int8_same_width" in variants else
               ("int8" if variants.get("int8", {}).get("dense_inputs") == spike["work_per_cycle"] else None),
               "zero_skipping": "no_zero_skipping", "tc_lif_steps": "count_coding", "msts": "uniform_steps"}
    out = {}
    for idea, label in sources.items():
        v = variants.get(label) if label else None
        if v is None:
            if idea == "zero_skipping" and bundle == 1:
                note = ("not measured at bundle = 1: its events carry no fire bit, so the RTL variant without "
                        "zero skipping needs bundle > 1 (cycle model below)")
            elif idea in ("tc_lif_steps", "msts") and workload != "minilm":
                note = ("not measured on this workload: its fixture holds the integers of its own schedule "
                        "(cycle model below; measured with --workload minilm --decomposition)")
            else:
                note = "not measured (run make synth with --decomposition)"
            out[idea] = {"measured": False, "description": DECOMPOSITION[idea], "note": note}
            continue
        entry = {"measured": True, "variant": label, "description": DECOMPOSITION[idea],
                 "cycles": v["cycles"], "cycles_over_spike": v["cycles"] / spike["cycles"]}
        for key in ("logic_energy_per_token_j", "sram_energy_per_token_j", "energy_per_token_j", "logic_area_um2",
                    "area_um2"):
            entry[key] = v[key]
            entry[f"{key}_over_spike"] = _ratio(v[key], spike[key])
        if idea == "multiplier_free":
            dp_spike = spike["area_by_block_um2"].get("pe_array", 0.0)
            dp_dense = v["area_by_block_um2"].get("mac_array", 0.0)
            e_spike = spike["energy_by_block"].get("pe_array", {}).get("total_j", 0.0) / spike["tokens"]
            e_dense = v["energy_by_block"].get("mac_array", {}).get("total_j", 0.0) / v["tokens"]
            entry.update({"datapath_area_um2": [dp_spike, dp_dense], "datapath_area_over_spike": _ratio(dp_dense, dp_spike),
                          "datapath_energy_per_token_j": [e_spike, e_dense],
                          "datapath_energy_over_spike": _ratio(e_dense, e_spike)})
        out[idea] = entry
    return out


def cycle_model_decomposition(config: AcceleratorConfig, workload: str = DEFAULT_WORKLOAD) -> dict:
    """Where the spike core's cycle advantage comes from, from the exact cycle model (which
    the RTL matches on every tested layer): the spike core and variants that each take one
    idea away. ``no_zero_skipping``: every lane is an event at every step (the RTL variant
    ``zero_skipping=False`` exists for ``bundle > 1``; at ``bundle = 1`` every lane fires).
    ``uniform_steps`` (the activations quantized to the wider ``T``) exists for MiniLM only:
    the Qwen2-VL fixtures hold the integers of their MSTS schedule alone."""
    import torch
    from spikemllm.golden.timing.core_model import core_cycles, dense_core_cycles
    from spikemllm.sim.core.cases import minilm_case

    case = _workload(config, workload)
    program = case.program
    padded = torch.zeros(case.tokens, program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = case.q
    J = program.out_tiles
    entries = {"spike": case.model}
    if config.bundle > 1:  # the RTL variant's own model
        entries["no_zero_skipping"] = core_cycles(no_zero_skipping_config(config), padded, case.timesteps, J)
    else:  # every lane fires at every step
        full = torch.stack([torch.full((program.padded_in,), config.coding.max_value(int(t))) for t in case.timesteps])
        entries["no_zero_skipping"] = core_cycles(config, full, case.timesteps, J)
    if config.coding is Coding.TC_LIF:
        steps = [(1 << int(t)) - 1 for t in case.timesteps]
        count = dataclasses.replace(config, coding="count", t_max=max(steps))
        entries["count_coding"] = core_cycles(count, padded, steps, J)
    tv, tt = (int(t) for t in (case.timesteps.min(), case.timesteps.max()))
    if workload == "minilm":
        entries["uniform_steps"] = minilm_case(config, tv=tt, tt=tt).model
    matched = dataclasses.replace(config, dense_inputs=config.events_per_cycle)
    entries["dense_int8_same_width"] = dense_core_cycles(matched, case.tokens, program.padded_in, J, "int8")
    base = entries["spike"].cycles
    return {
        "source": "exact cycle model (cycles only)",
        "schedule": {"msts": [tv, tt], "uniform": [tt, tt]},
        "entries": {name: {"cycles": m.cycles, "events": m.events, "weight_reads": m.weight_reads,
                           "cycles_over_spike": m.cycles / base}
                    for name, m in entries.items()},
    }


# -- the report ---------------------------------------------------------------------------------------


def _x(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    cores, ratios, checks = report["cores"], report["ratios"], report["checks"]
    names = list(cores)
    run = report.get("workload", {})
    spike = cores["spike"]

    def row(label, fn, table=cores):
        return f"| {label} | " + " | ".join(fn(table[n]) for n in table) + " |"

    def opt(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    def nj(v):
        return f"{v * 1e9:.3f}"

    header = "| | " + " | ".join(f"{n} (D = {cores[n]['dense_inputs']})" if cores[n]["dense_inputs"] else n
                                   for n in names) + " |"
    lines = [
        "# PPA: spike core vs dense INT8 and FP16 baselines",
        "",
        f"Generated by `make synth` (configuration `{report.get('config_label', report['config']['name'])}`). Workload: {run.get('layer', '')}, "
        f"{run.get('tokens', '')} tokens ({run.get('shape', '')}), vision T = {run.get('tv', '')}, text T = {run.get('tt', '')}. "
        f"Bit-exact in every run: {'yes' if checks['bit_exact']['met'] else 'NO'}; RTL cycles = model cycles in every run: "
        f"{'yes' if checks['rtl_cycles_equal_model']['met'] else 'NO'}.",
        "",
        f"Each dense baseline takes D inputs per cycle, the smallest power of two whose cycles on this workload are at "
        f"most the spike core's (E = {spike['work_per_cycle']} events per cycle): INT8 D = {cores['int8']['dense_inputs']}, "
        f"FP16 D = {cores['fp16']['dense_inputs']}.",
        "",
        "**Measured**: cycles (RTL under Verilator), cell counts, sky130 standard-cell area, FPGA resources and Fmax, "
        "switching activity, memory accesses and enable activity (from the VCD of the run). **Estimated**: the "
        "transistor count (Yosys), SRAM area and access energy (published OpenRAM sky130 macro figures), logic and "
        "clock energies (models below).",
        "",
        header,
        "|---|" + "---|" * len(names),
        row("sky130 logic area (um^2)", lambda c: f"{c['logic_area_um2']:,.0f}"),
        row("SRAM area, per bit (um^2, estimate)", lambda c: f"{c['sram_area_um2']:,.0f}"),
        row("area: logic + SRAM (um^2)", lambda c: f"{c['area_um2']:,.0f}"),
        row("SRAM area as whole 2 KB macros (um^2, estimate)", lambda c: f"{c['sram_area_whole_macros_um2']:,.0f}"),
        row("memory (bits)", lambda c: f"{c['memory_bits']:,}"),
        row("transistors (Yosys CMOS estimate, logic)", lambda c: f"{c['transistors']:,}"),
        row("generic cells / sky130 cells / flip-flops",
            lambda c: f"{c['generic_cells']:,} / {c['sky130_cells']:,} / {c['flip_flops']:,}"),
        row("ECP5 LUT / FF / DSP / BRAM", lambda c: "/".join(str(c['fpga'].get('ecp5', {}).get('resources', {}).get(k, '-'))
                                                            for k in ('lut', 'ff', 'dsp', 'bram'))),
        row("ECP5 Fmax (MHz, nextpnr)", lambda c: "not placed (`--fpga-cores`)" if "ecp5" not in c["fpga"] else
            opt(c["fmax_mhz"], ".1f") if c["fmax_mhz"] or "budget" not in (c["fmax_flow"] or "")
            else "over the place-and-route time budget"),
        row("**ASIC Fmax, sky130 tt (MHz, pre-layout STA, estimate)**", lambda c: opt(c.get("asic_fmax_mhz"), ".1f")),
        row("ASIC critical path: cells, start -> end", lambda c: _path_cell(c.get("asic_timing"))),
        row("iCE40 UP5K LUT / FF / DSP / BRAM", lambda c: "/".join(str(c['fpga'].get('ice40', {}).get('resources', {}).get(k, '-'))
                                                                 for k in ('lut', 'ff', 'dsp', 'bram'))),
        row("iCE40 UP5K Fmax (MHz)", lambda c: "not placed" if "ice40" not in c["fpga"] else
            opt(c["fpga"]["ice40"].get("fmax_mhz"), ".1f") if c["fpga"]["ice40"].get("fits") else "does not fit"),
        row("cycles (RTL) / model", lambda c: f"{c['cycles']:,} / {c['model_cycles']:,}"),
        row("utilization: work / (slots x cycles)", lambda c: f"{c['utilization']:.3f}"),
        row("cycles with any work (favourable reading)", lambda c: f"{c['busy_cycle_fraction']:.3f}"),
        row(f"tokens/s at {spike['clock_mhz']:.0f} MHz", lambda c: f"{c['tokens_per_s']:,.0f}"),
        row("tokens/s at ECP5 Fmax", lambda c: opt(c["tokens_per_s_at_fmax"], ",.0f")),
        row("tokens/s at its own ASIC Fmax (estimate)", lambda c: opt(c.get("tokens_per_s_at_asic_fmax"), ",.0f")),
        row("energy/token: logic + clock, clock gating credited (nJ, estimate)", lambda c: nj(c["logic_energy_per_token_j"])),
        row("energy/token: SRAM accesses (nJ, estimate)", lambda c: nj(c["sram_energy_per_token_j"])),
        row("**energy/token: logic + clock + SRAM (nJ, estimate)**", lambda c: nj(c["energy_per_token_j"])),
        row("energy/token without clock gating: logic + clock + SRAM (nJ)", lambda c: nj(c["energy_per_token_no_clock_gating_j"])),
        row("power at the common clock (mW, estimate)", lambda c: f"{c['power_w'] * 1e3:.2f}"),
        row("power at its own ASIC Fmax (mW, estimate)",
            lambda c: opt(c["power_at_asic_fmax_w"] * 1e3 if c.get("power_at_asic_fmax_w") else None, ".2f")),
        row("flip-flops under an evaluated enable (RTL) / clock gates", lambda c: f"{c['enabled_flip_flops_rtl']:,} of "
            f"{c['flip_flops_rtl']:,} / {c['clock_gates']}"),
        row("energy/token, op count 45 nm incl. weight reads (nJ)", lambda c: nj(c["energy_per_token_opcount_45nm_j"])),
        "",
        "## Ratios (spike core against each baseline)",
        "",
        "Areas and energies: baseline over spike; throughputs: spike over baseline. The first rows compare at "
        "iso-throughput (the baseline at the D above); the iso-area rows compare with the baseline D whose area is "
        "closest to the spike core's. Logic-only and with-SRAM figures side by side.",
        "",
        "| ratio | vs FP16 | vs INT8 |",
        "|---|---|---|",
    ]
    f, i = ratios["spike_vs_fp16"], ratios["spike_vs_int8"]
    rows = [
        ("iso-throughput: area, logic only", lambda e: _x(e["iso_throughput"]["area_logic"])),
        ("iso-throughput: area, logic + SRAM", lambda e: _x(e["iso_throughput"]["area_with_sram"])),
        ("iso-throughput: energy per token, logic + clock (clock gating credited)",
         lambda e: _x(e["iso_throughput"]["logic_energy_per_token"])),
        ("iso-throughput: **energy per token, logic + clock + SRAM**",
         lambda e: _x(e["iso_throughput"]["energy_per_token_with_sram"])),
        ("iso-throughput: energy per token, logic + clock, no clock gating",
         lambda e: _x(e["iso_throughput"]["logic_energy_per_token_no_clock_gating"])),
        ("iso-throughput: energy per token with SRAM, no clock gating",
         lambda e: _x(e["iso_throughput"]["energy_per_token_with_sram_no_clock_gating"])),
        ("iso-throughput: tokens/s (spike over baseline, same clock)", lambda e: _x(e["iso_throughput"]["throughput"])),
        ("tokens/s, each core at its own ASIC Fmax (estimate)",
         lambda e: _x(e["iso_throughput"].get("throughput_at_asic_fmax"))),
        ("iso-area, logic only: baseline D / its area over the spike core's",
         lambda e: f"D = {e['iso_area']['logic']['dense_inputs']} / {e['iso_area']['logic']['area_over_spike']:.2f}"),
        ("iso-area, logic only: throughput", lambda e: _x(e["iso_area"]["logic"]["throughput"])),
        ("iso-area, logic + SRAM: baseline D / its area over the spike core's",
         lambda e: f"D = {e['iso_area']['with_sram']['dense_inputs']} / {e['iso_area']['with_sram']['area_over_spike']:.2f}"),
        ("iso-area, logic + SRAM: throughput", lambda e: _x(e["iso_area"]["with_sram"]["throughput"])),
        ("**throughput per area, logic + SRAM** (strict: lower of the two matched readings)",
         lambda e: _x(e["throughput_per_area_with_sram"])),
        ("throughput per area, logic + SRAM (favourable: the other reading)",
         lambda e: _x(e["throughput_per_area_with_sram_favourable"])),
        ("throughput per area, logic only (strict / favourable)",
         lambda e: f"{_x(e['throughput_per_area_logic'])} / {_x(e['throughput_per_area_logic_favourable'])}"),
        ("energy per token, op count 45 nm incl. weight reads (estimate)",
         lambda e: _x(e["iso_throughput"]["energy_per_token_opcount_45nm"])),
        ("energy per token, op count 45 nm arithmetic only (estimate)",
         lambda e: _x(e["iso_throughput"]["energy_per_token_opcount_45nm_compute_only"])),
    ]
    for label, fn in rows:
        lines.append(f"| {label} | {fn(f)} | {fn(i)} |")
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    for base, entry in ratios.items():
        for metric, t in entry["targets"].items():
            lines.append(f"| {base.replace('_', ' ')}: {metric.replace('_', ' ')} >= {t['target']}x | {t['value']:.2f}x | "
                         f"{'met' if t['met'] else 'missed'} |")
    u = checks["event_slot_utilization"]
    lines.append(f"| spike: event-slot utilization, weight-row reads / (E x cycles) >= {u['target']} | {u['value']:.3f} | "
                 f"{'met' if u['met'] else 'missed'} |")
    c = checks["rtl_cycles_equal_model"]
    lines.append("| RTL cycles == model cycles (every run) | " + ", ".join(f"{k} {a} = {b}" for k, (a, b) in c["values"].items())
                 + f" | {'met' if c['met'] else 'missed'} |")
    lines += _gate_level_lines(report)
    lines += _timing_lines(report)
    lines += _decomposition_lines(report)
    lines += ["", "## Memories (SRAM model, estimates; accesses measured)", ""]
    for name in names:
        c = cores[name]
        lines += [f"### {name}", "", "| memory | words x bits | accesses in one cycle (max) | macro | reads | writes "
                  "| energy/token (nJ) | area, per-bit scaling (um^2) | area, whole macros (um^2) |", "|---|---|---|---|---|---|---|---|---|"]
        for mem, m in c["memories"].items():
            lines.append(f"| {mem} | {m['depth']:,} x {m['width']} | {m['ports']} | {m['macro']}"
                         f"{' x' + str(m['copies']) if m['copies'] > 1 else ''} | {m['reads']:,} | {m['writes']:,} | "
                         f"{m['energy_j'] / c['tokens'] * 1e9:.3f} | {m['area_um2']:,.0f} | {m['area_whole_macros_um2']:,.0f} |")
        lines.append("")
    lines += ["## Where the logic area and energy go (per block)", ""]
    for name in names:
        c = cores[name]
        lines += [f"### {name}", "", "| block | sky130 area (um^2) | share of logic | transistors | activity (toggles/bit/cycle) "
                  "| logic energy/token (nJ) | clock energy/token (nJ) | clock kept by gating | share of logic + clock |",
                  "|---|---|---|---|---|---|---|---|---|"]
        total_e = c["energy_by_block"]["total"]["total_j"]
        for block, area in sorted(c["area_by_block_um2"].items(), key=lambda kv: -kv[1]):
            e = c["energy_by_block"].get(block, {})
            lines.append(
                f"| {block} | {area:,.0f} | {area / c['logic_area_um2']:.1%} | {c['transistors_by_block'].get(block, 0):,} | "
                f"{e.get('alpha', 0):.4f} | {e.get('logic_j', 0) / c['tokens'] * 1e9:.3f} | "
                f"{e.get('clock_j', 0) / c['tokens'] * 1e9:.3f} | {e.get('clock_share', 1):.1%} | "
                f"{e.get('total_j', 0) / total_e:.1%} |")
        lines.append("")
    lines += _model_lines(report)
    return "\n".join(lines)


def _path_cell(timing: dict | None) -> str:
    path = (timing or {}).get("critical_path")
    if not path:
        return "n/a"
    return f"{path['cells']} cells, {path['startpoint']} -> {path['endpoint']}"


def _timing_lines(report: dict) -> list[str]:
    m = report.get("timing_model")
    if not m:
        return []
    fo4, ff = m["fo4"], m["flip_flop"]
    lines = ["", "## ASIC timing (sky130 tt, 25 C, 1.8 V; pre-layout estimates)", "",
             f"Static timing of each core's flattened sky130 netlist ({m['mapping']}) with the characterized library "
             f"`{m['library']}` (`make characterize`, ngspice): NLDM delays and transitions, loads from pin capacitances "
             f"plus {m['wire_um_per_fanout']:g} um of {m['wire_layer']} per driven pin "
             f"({m['wire_pf_per_fanout'] * 1e3:.2f} fF, technology LEF), ideal clock with a {m['clock_transition_ns']:g} ns "
             "transition. Memories are SRAM macros whose pins cut the paths (their access and setup times are not "
             "included). Library figures: FO4 inverter delay "
             f"{fo4['fo4_ns'] * 1e3:.1f} ps; {ff['cell']} clock-to-Q {ff['clock_to_q_rise_ns'] * 1e3:.0f}/"
             f"{ff['clock_to_q_fall_ns'] * 1e3:.0f} ps (rise/fall, FO4 load), setup {ff['setup_rise_ns'] * 1e3:.0f}/"
             f"{ff['setup_fall_ns'] * 1e3:.0f} ps, hold {ff['hold_rise_ns'] * 1e3:.0f}/{ff['hold_fall_ns'] * 1e3:.0f} ps.",
             "", "| core | ASIC Fmax (MHz) | reg->reg (ns) | reg->mem (ns) | mem->reg (ns) | in->reg (ns) | reg->out (ns) | "
             "FO4 per cycle |", "|---|---|---|---|---|---|---|---|"]
    cores = report["cores"]
    for name, c in cores.items():
        t = c.get("asic_timing") or {}
        paths = t.get("paths", {})

        def ns(kind, paths=paths):
            return f"{paths[kind]['period_ns']:.3f}" if kind in paths else "-"

        fmax = t.get("fmax_mhz")
        fo4s = f"{1e3 / fmax / fo4['fo4_ns']:.0f}" if fmax else "-"
        lines.append(f"| {name} | {fmax if fmax else 'n/a'} | {ns('reg->reg')} | {ns('reg->mem')} | {ns('mem->reg')} | "
                     f"{ns('in->reg')} | {ns('reg->out')} | {fo4s} |")
    for name, c in cores.items():
        path = (c.get("asic_timing") or {}).get("critical_path")
        if not path:
            continue
        lines += ["", f"### {name}: critical path ({path['period_ns']:.3f} ns incl. {path['setup_ns'] * 1e3:.0f} ps setup)", "",
                  "| instance | cell | arc | net | edge | delay (ps) | arrival (ps) | transition (ps) | load (fF) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for st in path["stages"]:
            lines.append(f"| {st['instance']} | {st['cell'].replace('sky130_fd_sc_hd__', '')} | {st['pin']} | {st['net']} | "
                         f"{st['edge']} | {st['delay_ns'] * 1e3:.1f} | {st['arrival_ns'] * 1e3:.1f} | "
                         f"{st['transition_ns'] * 1e3:.1f} | {st['load_pf'] * 1e3:.2f} |")
        lines.append(f"| {path['endpoint']} | | setup | | | {path['setup_ns'] * 1e3:.1f} | {path['period_ns'] * 1e3:.1f} | | |")
    return lines


def _gate_level_lines(report: dict) -> list[str]:
    cores = {n: c for n, c in report["cores"].items() if "gate_level" in c}
    if not cores:
        return []
    lines = ["", f"## Gate-level power: {gatelevel.LABEL}", "",
             "Each core's mapped sky130 netlist (the cells' Verilog models generated from the characterized liberty) runs "
             "the same testbench as the RTL under Verilator, bit- and cycle-exact; every net's transitions in the run's "
             "cycles come from its VCD (zero-delay simulation: no glitches). Per net: transitions x (input capacitance of "
             "the driven library pins + the timing analysis's wire per pin) x V^2 / 2; per cell output transition the "
             "liberty's internal energy at the net's load and a "
             f"{gatelevel.INPUT_TRANSITION_NS:g} ns input transition; flip-flops' clock, data and clock-to-Q energies; "
             "the RTL estimate's clock-gating credit; leakage over the run at the common clock. No wires from a layout, "
             "no clock tree, no SRAM (the SRAM figures are the estimate's). Logic + clock, per token:", ""]
    for name, c in cores.items():
        g = c["gate_level"]
        if not g["measured"]:
            lines += [f"### {name}: the gate-level run FAILED", "", "```", g["error"][-1500:], "```", ""]
            continue
        lines += [f"### {name} ({g['cells']:,} cells, of which {g['fanout_buffers']:,} fanout-repair buffers; "
                  f"bit-exact {'yes' if g['bit_exact'] else 'NO'}, "
                  f"cycle-exact {'yes' if g['cycle_exact'] else 'NO'}; {g['untraced_nets']} of {g['driven_nets']:,} "
                  f"driven net bits untraced)", "",
                  "| block | RTL-activity estimate (nJ) | gate-level (nJ) | difference | switching (nJ) | internal (nJ) "
                  "| flip-flops (nJ) | clock, gated (nJ) | leakage (pJ) |", "|---|---|---|---|---|---|---|---|---|"]
        e = g["energy_by_block"]
        for block, cmp_ in g["comparison"].items():
            b = e[block]
            diff = "n/a" if cmp_["difference"] is None else f"{cmp_['difference']:+.0%}"
            bold = "**" if block == "total" else ""
            lines.append(
                f"| {bold}{block}{bold} | {cmp_['rtl_estimate_j'] * 1e9:.3f} | {bold}{cmp_['gate_level_j'] * 1e9:.3f}{bold} | "
                f"{diff} | {(b['switching_j'] + b['boundary_switching_j']) / c['tokens'] * 1e9:.3f} | "
                f"{b['internal_j'] / c['tokens'] * 1e9:.3f} | {b['flip_flop_j'] / c['tokens'] * 1e9:.3f} | "
                f"{b['clock_j'] / c['tokens'] * 1e9:.3f} | {b['leakage_j'] / c['tokens'] * 1e12:.3f} |")
        s = g["seconds"]
        sens = g.get("internal_per_token_j_by_input_transition_ns", {})
        spread = (f" Internal energy at 0.05 / 0.1 / 0.3 ns input transitions: "
                  + " / ".join(f"{sens[k] * 1e9:.3f}" for k in ("0.05", "0.1", "0.3")) + " nJ."
                  if all(k in sens for k in ("0.05", "0.1", "0.3")) else "")
        lines += ["", f"Per token: switching includes {e['total']['boundary_switching_j'] / c['tokens'] * 1e9:.3f} nJ on nets "
                  f"driven by the core's inputs and memory read ports; without clock gating "
                  f"{g['logic_energy_per_token_no_clock_gating_j'] * 1e9:.3f} nJ; with the SRAM estimate "
                  f"{g['energy_per_token_j'] * 1e9:.3f} nJ.{spread} Gate-level run ("
                  f"{'ideal and stalled runs' if g.get('stalled_run_simulated') else 'the ideal run'}): build "
                  f"{s.get('build', 0):.0f} s, simulation {s.get('simulation', 0):.0f} s, "
                  + (f"netlist read {s['netlist']:.0f} s, " if "netlist" in s else "")
                  + f"VCD of {g['vcd_mb']:,.0f} MB read in {s.get('toggles', 0):.0f} s.", ""]
    rows = [(b, e["gate_level"]) for b, e in report["ratios"].items() if "gate_level" in e]
    if rows:
        lines += ["Ratios, baseline over spike, gate-level beside the RTL-activity estimate:", "",
                  "| energy per token | " + " | ".join(f"vs {b.split('_vs_')[1].upper()}" for b, _ in rows) + " |",
                  "|---|" + "---|" * len(rows)]
        for label, key in (("logic + clock (gated)", "logic_energy_per_token"),
                           ("logic + clock + SRAM", "energy_per_token_with_sram"),
                           ("logic + clock, no clock gating", "logic_energy_per_token_no_clock_gating")):
            lines.append(f"| {label}: gate-level / RTL estimate | " + " | ".join(
                f"{_x(g[key])} / {_x(report['ratios'][b]['iso_throughput'][key])}" for b, g in rows) + " |")
    return lines


def _decomposition_lines(report: dict) -> list[str]:
    d = report["decomposition"]
    lines = ["", "## Decomposition: where the gain comes from", "",
             "Each row takes one idea away and runs the same flow on that variant; factors are the variant's figure over "
             "the spike core's (above 1: the idea helps).", "",
             "| idea | variant | cycles | energy/token, logic + clock | energy/token, with SRAM | logic area | area with SRAM |",
             "|---|---|---|---|---|---|---|"]
    for idea, e in d["measured"].items():
        if not e["measured"]:
            lines.append(f"| {e['description']} | {e['note']} | | | | | |")
            continue
        lines.append(f"| {e['description']} | `{e['variant']}` | {e['cycles_over_spike']:.2f}x | "
                     f"{e['logic_energy_per_token_j_over_spike']:.2f}x | {e['energy_per_token_j_over_spike']:.2f}x | "
                     f"{e['logic_area_um2_over_spike']:.2f}x | {e['area_um2_over_spike']:.2f}x |")
    mf = d["measured"].get("multiplier_free", {})
    if mf.get("measured"):
        lines += ["", f"Multiplier-free datapath, measured: the INT8 core's MAC array at D = E takes "
                  f"{mf['datapath_area_over_spike']:.2f}x the area of the spike core's PE array "
                  f"({mf['datapath_area_um2'][1]:,.0f} against {mf['datapath_area_um2'][0]:,.0f} um^2) and "
                  f"{mf['datapath_energy_over_spike']:.2f}x its logic + clock energy per token."]
    cm = d["cycle_model"]
    lines += ["", f"Cycles from the exact cycle model alone ({cm['source']}):", "",
              "| variant | cycles | events or MACs | weight-row reads | cycles / spike core |", "|---|---|---|---|---|"]
    for name, e in cm["entries"].items():
        reads = f"{e['weight_reads']:,}" if "weight_reads" in e else "n/a"
        lines.append(f"| {name} | {e['cycles']:,} | {e['events']:,} | {reads} | {e['cycles_over_spike']:.2f} |")
    return lines


def _model_lines(report: dict) -> list[str]:
    m, s = report["energy_model"], report["sram_model"]
    sp, dp = (s["macros"][k] for k in s["macros"])
    return [
        "## Models (estimates) and their sources",
        "",
        "* Activity: bit toggles of every RTL signal per block in the run's cycles (rising edges with the shell's "
        "`busy` high, exactly the CYCLES counter), from the Verilator VCD. A block's sky130 cells are assumed to "
        "toggle at its RTL bits' rate.",
        f"* Per cell-output toggle: 0.5 C V^2 with V = {m['supply_v']} V and C = (1 + fanout {m['fanout']}) x "
        f"{m['mean_input_capacitance_f'] * 1e15:.2f} fF (mean input-pin gate capacitance of the library's cells from their "
        f"SPICE netlists, toxe = {m['gate_oxide_thickness_m'] * 1e9:.3f} nm from the sky130 nFET model): "
        f"{m['energy_per_cell_toggle_j'] * 1e15:.2f} fJ. Wires and overlap capacitance are not modeled (an underestimate).",
        f"* Clock: {m['flip_flop_clock_capacitance_f'] * 1e15:.2f} fF per flip-flop (dfxtp_1 SPICE netlist), "
        f"{m['energy_per_flip_flop_cycle_j'] * 1e15:.2f} fJ per flip-flop per cycle; no clock tree. Clock gating credit, "
        "the same rule for every core: a flip-flop whose update the RTL guards by an enable (Yosys `opt_dff` on the "
        "RTL finds it) has its clock charged only in the cycles its enable (or synchronous reset) is high, evaluated "
        f"from the VCD; each distinct enable pays a {m['clock_gate']}_1 clock gate "
        f"({m['clock_gate_capacitance_f'] * 1e15:.2f} fF, {m['energy_per_clock_gate_cycle_j'] * 1e15:.2f} fJ every cycle).",
        f"* SRAM ({s['source']}): {sp['words']}x{sp['width']} single port {sp['width_um']} x {sp['height_um']} um = "
        f"{sp['area_per_bit_um2']:.2f} um^2 per bit; dual port {dp['width_um']} x {dp['height_um']} um = "
        f"{dp['area_per_bit_um2']:.2f} um^2 per bit, used for a memory taking two accesses in one cycle (copies beyond "
        f"two); {s['read_pj_per_bit']:.3f} pJ per bit read and {s['write_pj_per_bit']:.3f} pJ per bit written. "
        "Headline area per bit; whole 2 KB macros beside it. Accesses counted from the memory ports' enables in the VCD "
        "(asynchronous reads: one per change of address); idle macros assumed clock-gated by their chip select.",
        "* Operation count at 45 nm (Horowitz, ISSCC 2014): " + ", ".join(f"{k} {v:.3g} pJ" for k, v in m["opcount_45nm_pj"].items())
        + ". A cross-check only.",
        "",
    ]


def _stacked(ax, labels, series) -> None:
    """Stacked bars: ``series`` is ``(label, values)`` pairs, one value per bar."""
    bottom = [0.0] * len(labels)
    for label, values in series:
        ax.bar(labels, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]


def _save(fig, path: Path, written: list) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)


def _plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = report["cores"]
    labels = [f"{n}\n(D = {c['dense_inputs']})" if c["dense_inputs"] else n for n, c in cores.items()]
    written = []
    for key, unit, scale, name in (("area_by_block_um2", "sky130 logic area (mm^2)", 1e-6, "ppa_area.png"),
                                   ("energy_by_block", "logic + clock energy per token (nJ, estimate)", 1e9,
                                    "ppa_energy.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        blocks = sorted({b for c in cores.values() for b in c[key] if b != "total"})

        def value(c, block, key=key, scale=scale):
            v = c[key].get(block, 0)
            return (v["total_j"] / c["tokens"] if isinstance(v, dict) else v) * scale

        _stacked(ax, labels, [(block, [value(c, block) for c in cores.values()]) for block in blocks])
        ax.set_ylabel(unit)
        ax.legend()
        ax.set_title(unit.split(" (")[0] + " by block")
        _save(fig, out / name, written)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    logic = [c["logic_area_um2"] * 1e-6 for c in cores.values()]
    mem = [c["sram_area_um2"] * 1e-6 for c in cores.values()]
    _stacked(a1, labels, [("logic (sky130 cells)", logic), ("SRAM (per bit, estimate)", mem)])
    a1.set_ylabel("area (mm^2)")
    a1.set_title("area at iso-throughput")
    a1.legend()
    parts = (("logic", lambda c: c["energy_by_block"]["total"]["logic_j"] / c["tokens"]),
             ("clock (gating credited)", lambda c: c["energy_by_block"]["total"]["clock_j"] / c["tokens"]),
             ("SRAM accesses", lambda c: c["sram_energy_per_token_j"]))
    _stacked(a2, labels, [(part, [fn(c) * 1e9 for c in cores.values()]) for part, fn in parts])
    a2.set_ylabel("energy per token (nJ, estimate)")
    a2.set_title("energy per token at iso-throughput")
    a2.legend()
    _save(fig, out / "ppa_iso_throughput.png", written)

    measured = {k: e for k, e in report["decomposition"]["measured"].items() if e["measured"]}
    if measured:
        fig, ax = plt.subplots(figsize=(7, 4))
        keys = (("cycles_over_spike", "cycles"), ("energy_per_token_j_over_spike", "energy/token with SRAM"),
                ("area_um2_over_spike", "area with SRAM"))
        width = 0.8 / len(keys)
        for n, (key, label) in enumerate(keys):
            ax.bar([x + n * width for x in range(len(measured))], [e[key] for e in measured.values()], width, label=label)
        ax.set_xticks([x + width for x in range(len(measured))], list(measured), rotation=15)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel("variant over spike core")
        ax.set_title("decomposition: each idea taken away (measured)")
        ax.legend()
        _save(fig, out / "ppa_decomposition.png", written)
    return written


def _stale_measurements(raw: dict) -> list[str]:
    """What a raw measurement file written by an older flow lacks (empty if nothing)."""
    missing = []
    runs = raw.get("variants", {}).values()
    if any("weight_reads" not in r.get("run", {}) for r in runs):
        missing.append("the weight-row read counts (run.weight_reads)")
    if any("buffers" not in r["gate_level"] for r in runs if "gate_level" in r and "failed" not in r["gate_level"]):
        missing.append("the fanout-repair buffers in the gate-level energy (gate_level.buffers)")
    return missing


def main(argv=None) -> int:
    from spikemllm.sim.core.cases import WORKLOADS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("build/reports"))
    parser.add_argument("--build", type=Path, default=Path("build/ppa"), help="folder for synthesis and traced simulation")
    parser.add_argument("--clock-mhz", type=float, default=500.0, help="common clock for tokens/s and power")
    parser.add_argument("--jobs", type=int, default=2, help="tool runs in parallel")
    parser.add_argument("--fpga", default=",".join(DEFAULT_FPGA), metavar="FAMILIES",
                        help=f"FPGA families to synthesize and place, comma-separated from {', '.join(FPGA_FAMILIES)}, "
                             f"or 'none' (default: {','.join(DEFAULT_FPGA)})")
    parser.add_argument("--fpga-cores", default=",".join(DEFAULT_FPGA_CORES), metavar="CORES",
                        help=f"cores to place on the FPGAs, comma-separated from {', '.join(FPGA_CORES)} "
                             f"(default: {','.join(DEFAULT_FPGA_CORES)})")
    parser.add_argument("--place-timeout", type=float, default=PLACE_TIMEOUT_S, metavar="SECONDS",
                        help=f"time budget of one nextpnr run; past it the run reports no Fmax (default: {PLACE_TIMEOUT_S:g})")
    parser.add_argument("--workload", choices=WORKLOADS, default=DEFAULT_WORKLOAD,
                        help=f"real layer the cores run (default: {DEFAULT_WORKLOAD})")
    parser.add_argument("--decomposition", action="store_true",
                        help="also measure the decomposition variants (count coding, uniform steps, INT8 at D = E)")
    parser.add_argument("--no-gate-level", action="store_true",
                        help="skip the gate-level simulations of the mapped netlists (and their energy)")
    parser.add_argument("--no-fullsize", action="store_true",
                        help="skip the full-size energy projection from the new ppa.json (flow.fullsize)")
    parser.add_argument("--from-raw", action="store_true",
                        help="rebuild the report from the measurements of the last run (BUILD/raw_<config>.json)")
    args = parser.parse_args(argv)
    if args.clock_mhz <= 0:
        parser.error(f"--clock-mhz must be positive, not {args.clock_mhz!r}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs!r}")
    families = () if args.fpga == "none" else tuple(f for f in args.fpga.split(",") if f)
    unknown = [f for f in families if f not in FPGA_FAMILIES]
    if unknown or not (families or args.fpga == "none"):
        parser.error(f"--fpga takes families from {', '.join(FPGA_FAMILIES)} or 'none', not {args.fpga!r}")
    fpga_cores = tuple(c for c in args.fpga_cores.split(",") if c)
    if not fpga_cores or not set(fpga_cores) <= set(FPGA_CORES):
        parser.error(f"--fpga-cores takes cores from {', '.join(FPGA_CORES)}, not {args.fpga_cores!r}")
    if args.place_timeout <= 0:
        parser.error(f"--place-timeout must be positive, not {args.place_timeout!r}")
    config = config_from_args(parser, args)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    raw_file = args.build / f"raw_{config.name}_{args.workload}.json"
    if args.from_raw:
        if not raw_file.exists():
            parser.error(f"--from-raw: {raw_file} does not exist: run the flow without --from-raw first")
        raw = json.loads(raw_file.read_text())
        stale = _stale_measurements(raw)
        if stale:
            parser.error(f"--from-raw: {raw_file} predates {', '.join(stale)}: run the flow without --from-raw")
        for label, r in raw["variants"].items():  # the statistics files stay: re-read them with the current code
            if r.get("reuse_build"):
                continue
            folder = args.build / "synth" / config.name / label / "asic"
            r["asic"] = asic_results(folder, BLOCKS[r["block"]].module, r["asic"]["memories"], r["asic"]["seconds"])
        for r in raw["variants"].values():
            if r.get("reuse_build"):
                r["asic"] = raw["variants"][r["reuse_build"]]["asic"]
    else:
        print("synthesis (generic, sky130, iCE40, ECP5 + nextpnr), traced simulation and activity of every core ...",
              flush=True)
        raw = measure(config, args.build, workload=args.workload, families=families, fpga_cores=fpga_cores,
                      jobs=args.jobs, decomposition=args.decomposition, place_timeout=args.place_timeout,
                      gate_level=not args.no_gate_level, log=lambda m: print(m, flush=True))
        args.build.mkdir(parents=True, exist_ok=True)
        raw_file.write_text(json.dumps(raw, indent=1) + "\n")
    report = summarize(config, raw, clock_hz=args.clock_mhz * 1e6, workload=args.workload)
    run = raw["variants"]["spike"]["run"]
    report["workload"] = {"name": args.workload, "layer": run["layer"], "tokens": run["tokens"], "tv": run["timesteps"]["vision"],
                          "tt": run["timesteps"]["text"], "shape": f"{run['in_features']} -> {run['out_features']}"}
    report["seconds"] = round(time.monotonic() - start, 1)
    (args.out / "ppa.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "ppa.md").write_text(markdown(report))
    plots = _plots(report, args.out)
    for name, c in {**report["cores"], **report["variants"]}.items():
        print(f"{name:>16}: area {c['area_um2']:,.0f} um^2 (logic {c['logic_area_um2']:,.0f}), {c['cycles']} cycles, "
              f"{c['energy_per_token_j'] * 1e9:.3f} nJ/token (logic + clock {c['logic_energy_per_token_j'] * 1e9:.3f})")
    for base, entry in report["ratios"].items():
        it = entry["iso_throughput"]
        print(f"{base} (D = {entry['dense_inputs']}): throughput/area {entry['throughput_per_area_with_sram']:.2f}x "
              f"(favourable {entry['throughput_per_area_with_sram_favourable']:.2f}x), energy/token "
              f"{it['energy_per_token_with_sram']:.2f}x (logic + clock {it['logic_energy_per_token']:.2f}x)")
    for name, c in report["cores"].items():
        g = c.get("gate_level")
        if g and g["measured"]:
            print(f"{name:>16}: gate-level logic + clock {g['logic_energy_per_token_j'] * 1e9:.3f} nJ/token "
                  f"(RTL estimate {c['logic_energy_per_token_j'] * 1e9:.3f}), bit- and cycle-exact: "
                  f"{g['bit_exact'] and g['cycle_exact']}")
        elif g:
            print(f"{name:>16}: gate-level run FAILED")
    print(f"spike event-slot utilization {report['checks']['event_slot_utilization']['value']:.3f}")
    print(f"wrote {args.out / 'ppa.json'}, ppa.md, {', '.join(p.name for p in plots)} in {report['seconds']:.0f} s")
    if not args.no_fullsize:
        from . import fullsize

        print("full-size energy per token and power from the unit energies just measured ...", flush=True)
        fullsize.write(args.out / "ppa.json", args.out)
    ok = report["checks"]["bit_exact"]["met"] and report["checks"]["rtl_cycles_equal_model"]["met"] and \
        report["checks"].get("gate_level_bit_and_cycle_exact", {"met": True})["met"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
