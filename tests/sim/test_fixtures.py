"""The checked-in real-data fixture is what its checked-in generator makes from MiniLM."""

import json
import math
import runpy
from importlib import resources

from spikemllm.sim.blocks.cases import FIXTURE

SCRIPT = resources.files("spikemllm.sim") / "fixtures" / "make_minilm_fixture.py"


def assert_same(made, stored, path="fixture"):
    """Integers (activations, weights, requantizer parameters) equal exactly; the float
    scales, kept as notes, within float32 rounding (torch and transformers releases may
    reorder MiniLM's float32 arithmetic)."""
    if isinstance(stored, dict):
        assert made.keys() == stored.keys(), path
        for key in stored:
            assert_same(made[key], stored[key], f"{path}.{key}")
    elif isinstance(stored, list):
        assert len(made) == len(stored), path
        for n, (a, b) in enumerate(zip(made, stored)):
            assert_same(a, b, f"{path}[{n}]")
    elif isinstance(stored, float):
        assert math.isclose(made, stored, rel_tol=1e-6), f"{path}: {made} != {stored}"
    else:
        assert made == stored, f"{path}: {made!r} != {stored!r}"


def test_fixture_is_up_to_date():
    module = runpy.run_path(str(SCRIPT), run_name="fixture_check")
    assert_same(json.loads(module["render"](module["build"]())), json.loads(FIXTURE.read_text()))
