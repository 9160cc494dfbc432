"""Run a Yosys script in the native Yosys of ``pyosys``: ``python -m spikemllm.flow.native_yosys SCRIPT``.

YoWASP's Yosys is a 32-bit WebAssembly program, so one process has at most 4 GB: ABC's
mapping of a single large module (an accelerator-sized MAC array) runs out of it and
stops on an assertion. ``pyosys`` ships the same Yosys release as a native library with
its own ``yosys-abc``, without that limit and somewhat faster. The script runs in the
current folder; its log goes to standard output, and a failed command exits with status 1
after Yosys's ``ERROR:`` line.
"""

from __future__ import annotations

import sys


def available() -> bool:
    """Whether ``pyosys`` is installed (it has wheels for Linux on x86-64)."""
    try:
        from pyosys import libyosys  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m spikemllm.flow.native_yosys SCRIPT.ys", file=sys.stderr)
        return 2
    from pyosys import libyosys as ys

    try:
        ys.run_pass(f"script {args[0]}", ys.Design())
    except Exception as exc:  # Yosys's log_error: its ERROR line is already in the log
        print(f"native Yosys stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
