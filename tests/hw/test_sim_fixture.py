"""The checked-in real-data fixture is what its checked-in generator makes from MiniLM."""

import runpy
from pathlib import Path

import spikemllm.sim as sim_package
from spikemllm.sim.cases import FIXTURE

SCRIPT = Path(sim_package.__file__).parent / "fixtures" / "make_minilm_fixture.py"


def test_fixture_is_up_to_date():
    module = runpy.run_path(str(SCRIPT), run_name="fixture_check")
    assert module["render"](module["build"]()) == FIXTURE.read_text()
