"""Shared test settings."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from spikemllm.flow.runner import SIMULATORS
from spikemllm.flow.tools import ToolMissing, ensure_iverilog

torch.set_num_threads(min(2, os.cpu_count() or 1))

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _require(simulator: str) -> str:
    """``simulator``, after installing Icarus Verilog when it is that one and missing; a
    test that cannot have it fails (never skips) with the command to run."""
    if simulator == "icarus":
        try:
            ensure_iverilog()
        except ToolMissing as exc:
            pytest.fail(str(exc), pytrace=False)
    return simulator


@pytest.fixture
def simulator(request):
    """The simulator a cocotb test runs on, given indirectly by the test's parameters.

    Icarus Verilog is a system package: it is installed here when missing and this process
    can (``spikemllm.flow.tools.ensure_iverilog``, as ``make test`` does first).
    """
    return _require(request.param)


@pytest.fixture
def every_simulator():
    """Every simulator of ``spikemllm.flow.runner.SIMULATORS``, each ready to run."""
    return [_require(name) for name in SIMULATORS]
