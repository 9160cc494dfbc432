"""Which cocotb runs the tests make on which simulator.

Every cocotb test is parametrized over ``(simulator, ...)`` and takes the ``simulator``
fixture (``tests/conftest.py``, which installs Icarus Verilog when missing). Verilator
runs what a test names for it; Icarus Verilog, whose runs cost more where the designs are
large, runs a few small ones in the default suite and the rest behind the ``slow`` marker
(``make test-all``; ``make sim SIM=icarus`` runs them all). Test ids start with the
simulator (``[icarus-small]``), so ``-k icarus`` selects one simulator's runs.
"""

import pytest

__all__ = ["cocotb_params", "cocotb_parametrize"]


def _values(run):
    return run if isinstance(run, tuple) else (run,)


def cocotb_params(*, verilator=(), icarus=(), icarus_slow=()):
    """pytest parameters ``(simulator, *run)`` for runs on Verilator, on Icarus in the default
    suite and on Icarus behind the ``slow`` marker; a run is a value or a tuple of values."""
    params = []
    for simulator, runs, marks in (("verilator", verilator, ()), ("icarus", icarus, ()),
                                   ("icarus", icarus_slow, (pytest.mark.slow,))):
        for run in runs:
            values = _values(run)
            params.append(pytest.param(simulator, *values, marks=marks,
                                       id="-".join([simulator, *map(str, values)])))
    return params


def cocotb_parametrize(argnames: str, **runs):
    """``pytest.mark.parametrize("simulator, <argnames>", cocotb_params(**runs))`` with the
    simulator given to the ``simulator`` fixture."""
    return pytest.mark.parametrize(f"simulator, {argnames}", cocotb_params(**runs), indirect=["simulator"])
