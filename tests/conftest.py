"""Shared test settings."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
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


@pytest.fixture
def simulator(request):
    """The simulator a cocotb test runs on, given indirectly by the test's parameters.

    Icarus Verilog is a system package: it is installed here when missing and this process
    can (``spikemllm.flow.tools.ensure_iverilog``, as ``make test`` does first), and the
    test fails, never skips, with the command to run when it cannot.
    """
    name = request.param
    if name == "icarus":
        try:
            ensure_iverilog()
        except ToolMissing as exc:
            pytest.fail(str(exc), pytrace=False)
    return name
