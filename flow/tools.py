"""System tools the flows need that no Python package ships, installed through apt when missing.

The project's rule: system packages are installed by the make targets that need them,
through apt, when missing. :func:`ensure_tool` is that step for each tool of
:data:`SYSTEM_TOOLS`:

* Icarus Verilog (Debian package ``iverilog``, which also holds its runtime ``vvp``): the
  second simulator (``make test``, ``make sim SIM=icarus``);
* ngspice (Debian package ``ngspice``): the circuit simulator of ``make characterize``.

For each:

* its executables on ``PATH``: nothing to do;
* otherwise, as root or with passwordless ``sudo``: ``apt-get update`` (once per process)
  and ``apt-get install -y <package>``;
* otherwise it raises :class:`ToolMissing` naming the one command to run.

``python -m spikemllm.flow.tools iverilog|ngspice`` runs it; ``--check`` only checks and
never installs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["ToolMissing", "SystemTool", "SYSTEM_TOOLS", "IVERILOG_PACKAGE", "IVERILOG_INSTALL", "NGSPICE_INSTALL",
           "ensure_tool", "ensure_iverilog", "ensure_ngspice", "main"]


@dataclass(frozen=True)
class SystemTool:
    """A tool from a Debian package: the package and the executables it must put on ``PATH``."""

    name: str
    package: str
    executables: tuple[str, ...]
    version_flag: str

    @property
    def install_command(self) -> str:
        """The command a user without root rights runs to install it."""
        return f"sudo apt-get install {self.package}"


SYSTEM_TOOLS = {
    "iverilog": SystemTool("Icarus Verilog", "iverilog", ("iverilog", "vvp"), "-V"),
    "ngspice": SystemTool("ngspice", "ngspice", ("ngspice",), "--version"),
}
"""The system tools :func:`ensure_tool` knows, by the name the command line takes."""

IVERILOG_PACKAGE = SYSTEM_TOOLS["iverilog"].package
"""The Debian package that holds Icarus Verilog (``iverilog`` and ``vvp``)."""

IVERILOG_INSTALL = SYSTEM_TOOLS["iverilog"].install_command
NGSPICE_INSTALL = SYSTEM_TOOLS["ngspice"].install_command

_apt_updated = False


class ToolMissing(RuntimeError):
    """A system tool is missing and could not be installed here; the message says how to."""


def _missing(tool: SystemTool) -> list[str]:
    return [name for name in tool.executables if shutil.which(name) is None]


def _privilege_prefix() -> list[str] | None:
    """``[]`` as root, ``["sudo", "-n"]`` when sudo works without a password, else None."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        return None
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
    return ["sudo", "-n"] if probe.returncode == 0 else None


def _apt(prefix: list[str], tool: SystemTool, *args: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run([*prefix, "apt-get", *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise ToolMissing(f"'apt-get {' '.join(args)}' failed with exit code {proc.returncode}:\n{tail}\n"
                          f"Install {tool.name} by hand: {tool.install_command}")


def ensure_tool(key: str, *, install: bool = True) -> str:
    """Return the path of the first executable of ``SYSTEM_TOOLS[key]``, installing its
    Debian package first if any of its executables is missing.

    With ``install=False`` nothing is installed. Raises :class:`ToolMissing` with the
    command to run when the tool is missing and cannot be installed here (no root rights
    and no passwordless sudo, no ``apt-get``, or the install failed), ``ValueError`` for a
    tool it does not know.
    """
    global _apt_updated
    if key not in SYSTEM_TOOLS:
        raise ValueError(f"tool must be one of {sorted(SYSTEM_TOOLS)}, not {key!r}")
    tool = SYSTEM_TOOLS[key]
    missing = _missing(tool)
    if not missing:
        return shutil.which(tool.executables[0])
    why = f"{tool.name} is not installed ({', '.join(missing)} not found on PATH)"
    if not install:
        raise ToolMissing(f"{why}; install it with: {tool.install_command}")
    if shutil.which("apt-get") is None:
        raise ToolMissing(f"{why} and this machine has no apt-get; install {tool.name} with the system's package "
                          f"manager (on Debian or Ubuntu: {tool.install_command})")
    prefix = _privilege_prefix()
    if prefix is None:
        raise ToolMissing(f"{why}, and installing it needs root rights; run: {tool.install_command}")
    print(f"{why}: installing the Debian package {tool.package}", file=sys.stderr)
    if not _apt_updated:
        _apt(prefix, tool, "update")
        _apt_updated = True
    _apt(prefix, tool, "install", "-y", "--no-install-recommends", tool.package)
    still = _missing(tool)
    if still:
        raise ToolMissing(f"{', '.join(still)} still not found on PATH after installing {tool.package}")
    return shutil.which(tool.executables[0])


def ensure_iverilog(*, install: bool = True) -> str:
    """:func:`ensure_tool` for Icarus Verilog: the path of ``iverilog``."""
    return ensure_tool("iverilog", install=install)


def ensure_ngspice(*, install: bool = True) -> str:
    """:func:`ensure_tool` for ngspice: the path of ``ngspice``."""
    return ensure_tool("ngspice", install=install)


def _version(path: str, flag: str) -> str:
    proc = subprocess.run([path, flag], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    lines = [line.strip("* ").strip() for line in proc.stdout.splitlines() if line.strip("* ").strip()]
    return lines[0] if lines else "unknown version"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install the system tools the flows need when they are missing.")
    parser.add_argument("tool", choices=sorted(SYSTEM_TOOLS), help="the tool to make available")
    parser.add_argument("--check", action="store_true", help="only check; never install")
    args = parser.parse_args(argv)
    try:
        path = ensure_tool(args.tool, install=not args.check)
    except ToolMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {_version(path, SYSTEM_TOOLS[args.tool].version_flag)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
