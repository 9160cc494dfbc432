"""Installing Icarus Verilog (and ngspice) when it is missing: nothing to do when it is there, apt as root
or through passwordless sudo (``apt-get update`` once), otherwise the one command to run."""

import subprocess

import pytest
from spikemllm.flow import tools
from spikemllm.flow.tools import IVERILOG_INSTALL, ToolMissing, ensure_iverilog


class FakeSystem:
    """``shutil.which``, ``os.geteuid`` and ``subprocess.run`` of a machine where apt installs
    iverilog; records the commands run."""

    def __init__(self, monkeypatch, *, installed=False, uid=0, sudo=None, apt_status=0):
        self.installed, self.sudo, self.apt_status = installed, sudo, apt_status
        self.commands = []
        monkeypatch.setattr(tools.shutil, "which", self.which)
        monkeypatch.setattr(tools.os, "geteuid", lambda: uid)
        monkeypatch.setattr(tools.subprocess, "run", self.run)
        monkeypatch.setattr(tools, "_apt_updated", False)

    def which(self, name):
        if name in ("iverilog", "vvp", "ngspice"):
            return f"/usr/bin/{name}" if self.installed else None
        if name == "sudo":
            return "/usr/bin/sudo" if self.sudo is not None else None
        return f"/usr/bin/{name}"

    def run(self, args, **kwargs):
        self.commands.append(list(args))
        if args[:3] == ["sudo", "-n", "true"]:
            return subprocess.CompletedProcess(args, 0 if self.sudo else 1, b"", b"")
        if "install" in args and self.apt_status == 0:
            self.installed = True
        return subprocess.CompletedProcess(args, self.apt_status, "", "E: no such package")


def test_nothing_to_do_when_it_is_installed(monkeypatch):
    system = FakeSystem(monkeypatch, installed=True, uid=1000)
    assert ensure_iverilog() == "/usr/bin/iverilog"
    assert system.commands == []


def test_root_installs_through_apt_updating_once(monkeypatch):
    system = FakeSystem(monkeypatch)
    assert ensure_iverilog() == "/usr/bin/iverilog"
    assert system.commands == [["apt-get", "update"],
                               ["apt-get", "install", "-y", "--no-install-recommends", "iverilog"]]
    system.installed = False
    ensure_iverilog()
    assert [c[1] for c in system.commands] == ["update", "install", "install"]


def test_passwordless_sudo_installs(monkeypatch):
    system = FakeSystem(monkeypatch, uid=1000, sudo=True)
    ensure_iverilog()
    assert system.commands[0] == ["sudo", "-n", "true"]
    assert system.commands[1:] == [["sudo", "-n", "apt-get", "update"],
                                   ["sudo", "-n", "apt-get", "install", "-y", "--no-install-recommends", "iverilog"]]


@pytest.mark.parametrize("sudo", [None, False], ids=["no sudo", "sudo wants a password"])
def test_without_rights_it_names_the_command(monkeypatch, sudo):
    system = FakeSystem(monkeypatch, uid=1000, sudo=sudo)
    with pytest.raises(ToolMissing, match="run: sudo apt-get install iverilog"):
        ensure_iverilog()
    assert not [c for c in system.commands if "apt-get" in c]


def test_check_only_never_installs(monkeypatch):
    system = FakeSystem(monkeypatch)
    with pytest.raises(ToolMissing, match=IVERILOG_INSTALL):
        ensure_iverilog(install=False)
    assert system.commands == []


def test_a_failed_install_says_so(monkeypatch):
    FakeSystem(monkeypatch, apt_status=100)
    with pytest.raises(ToolMissing, match=r"(?s)'apt-get update' failed with exit code 100.*no such package"):
        ensure_iverilog()


def test_command_line_check(monkeypatch, capsys):
    FakeSystem(monkeypatch, uid=1000)
    assert tools.main(["iverilog", "--check"]) == 1
    assert IVERILOG_INSTALL in capsys.readouterr().err


def test_ngspice_installs_through_the_same_path(monkeypatch):
    system = FakeSystem(monkeypatch)
    assert tools.ensure_ngspice() == "/usr/bin/ngspice"
    assert system.commands[-1] == ["apt-get", "install", "-y", "--no-install-recommends", "ngspice"]
    with pytest.raises(ValueError, match="not 'spice3'"):
        tools.ensure_tool("spice3")
    system = FakeSystem(monkeypatch, uid=1000)
    assert tools.main(["ngspice", "--check"]) == 1
