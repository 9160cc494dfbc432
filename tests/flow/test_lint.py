"""Verilator --lint-only -Wall is clean on every generated block, with only the explained waivers."""

import pytest
from spikemllm.flow.lint import WAIVERS, lint
from spikemllm.hw.generate import generate

from spikemllm.config import PRESETS


@pytest.mark.parametrize("config", ["default", "small", "count", pytest.param("wide", marks=pytest.mark.slow)])
def test_generated_verilog_is_lint_clean(config, tmp_path):
    for path in generate(PRESETS[config], tmp_path):
        if path.suffix == ".v":
            assert lint(path) == [], path.name


def test_every_waiver_is_explained():
    assert WAIVERS and all(len(reason) > 40 for reason in WAIVERS.values())


def test_lint_reports_problems(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output [1:0] y);\n  assign y = a;\nendmodule\n")
    assert lint(bad, waivers={}) != []
