"""System tools the flows need that no Python package ships, installed through apt when missing.

The project's rule: system packages are installed by the make targets that need them,
through apt, when missing. :func:`ensure_iverilog` is that step for Icarus Verilog
(Debian package ``iverilog``, which also holds its runtime ``vvp``):

* ``iverilog`` and ``vvp`` on ``PATH``: nothing to do;
* otherwise, as root or with passwordless ``sudo``: ``apt-get update`` (once per process)
  and ``apt-get install -y iverilog``;
* otherwise it raises :class:`ToolMissing` naming the one command to run.

``python -m spikemllm.flow.tools iverilog`` runs it (``make test`` and ``make sim
SIM=icarus`` do, before pytest); ``--check`` only checks and never installs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

__all__ = ["ToolMissing", "IVERILOG_PACKAGE", "IVERILOG_INSTALL", "ensure_iverilog", "main"]

IVERILOG_PACKAGE = "iverilog"
"""The Debian package that holds Icarus Verilog (``iverilog`` and ``vvp``)."""

IVERILOG_INSTALL = f"sudo apt-get install {IVERILOG_PACKAGE}"
"""The command a user without root rights runs to install it."""

_EXECUTABLES = ("iverilog", "vvp")

_apt_updated = False


class ToolMissing(RuntimeError):
    """A system tool is missing and could not be installed here; the message says how to."""


def _missing() -> list[str]:
    return [name for name in _EXECUTABLES if shutil.which(name) is None]


def _privilege_prefix() -> list[str] | None:
    """``[]`` as root, ``["sudo", "-n"]`` when sudo works without a password, else None."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        return None
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
    return ["sudo", "-n"] if probe.returncode == 0 else None


def _apt(prefix: list[str], *args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run([*prefix, "apt-get", *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise ToolMissing(f"'apt-get {' '.join(args)}' failed with exit code {proc.returncode}:\n{tail}\n"
                          f"Install Icarus Verilog by hand: {IVERILOG_INSTALL}")


def ensure_iverilog(*, install: bool = True) -> str:
    """Return the path of ``iverilog``, installing the Debian package first if it is missing.

    With ``install=False`` nothing is installed. Raises :class:`ToolMissing` with the
    command to run when Icarus Verilog is missing and cannot be installed here (no root
    rights and no passwordless sudo, no ``apt-get``, or the install failed).
    """
    global _apt_updated
    missing = _missing()
    if not missing:
        return shutil.which("iverilog")
    why = f"Icarus Verilog is not installed ({', '.join(missing)} not found on PATH)"
    if not install:
        raise ToolMissing(f"{why}; install it with: {IVERILOG_INSTALL}")
    if shutil.which("apt-get") is None:
        raise ToolMissing(f"{why} and this machine has no apt-get; install Icarus Verilog 11 or later "
                          f"with the system's package manager (on Debian or Ubuntu: {IVERILOG_INSTALL})")
    prefix = _privilege_prefix()
    if prefix is None:
        raise ToolMissing(f"{why}, and installing it needs root rights; run: {IVERILOG_INSTALL}")
    print(f"{why}: installing the Debian package {IVERILOG_PACKAGE}", file=sys.stderr)
    if not _apt_updated:
        _apt(prefix, "update")
        _apt_updated = True
    _apt(prefix, "install", "-y", "--no-install-recommends", IVERILOG_PACKAGE)
    still = _missing()
    if still:
        raise ToolMissing(f"{', '.join(still)} still not found on PATH after installing {IVERILOG_PACKAGE}")
    return shutil.which("iverilog")


def _version(path: str) -> str:
    proc = subprocess.run([path, "-V"], capture_output=True, text=True, check=False)
    return (proc.stdout.splitlines() or ["unknown version"])[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install the system tools the flows need when they are missing.")
    parser.add_argument("tool", choices=["iverilog"], help="the tool to make available")
    parser.add_argument("--check", action="store_true", help="only check; never install")
    args = parser.parse_args(argv)
    try:
        path = ensure_iverilog(install=not args.check)
    except ToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {_version(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
