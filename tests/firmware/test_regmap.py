"""The register map is declared once; the generated C header, Python constants and JSON agree with it."""

import json
import re

import pytest
from spikemllm.firmware.regmap import main, to_c_header, to_json, to_python, write_all
from spikemllm.hw.registers import register_map

from spikemllm.config import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_generated_files_agree_with_the_map(name):
    config = PRESETS[name]
    regmap = register_map(config)
    header = to_c_header(config)
    defines = dict(re.findall(r"#define SPIKECORE_(\w+) (0x[0-9A-F]+|\d+)u", header))
    constants = {}
    exec(to_python(config), constants)
    described = {r["name"]: r for r in json.loads(to_json(config))["registers"]}
    words = set()
    for reg in regmap.registers:
        assert int(defines[reg.name], 0) == reg.address == constants[reg.name] == described[reg.name]["address"]
        span = set(range(reg.word, reg.word + reg.count))
        assert not span & words, f"{reg.name} overlaps another register"
        words |= span
        for f in reg.fields:
            assert int(defines[f"{reg.name}_{f.name}_SHIFT"], 0) == f.offset == constants[f"{reg.name}_{f.name}_SHIFT"]
    assert described["TTABLE"]["count"] == 2 * config.layers


def test_generation_is_deterministic(tmp_path):
    first = {p.name: p.read_bytes() for p in write_all(PRESETS["default"], tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in write_all(PRESETS["default"], tmp_path / "b")}
    assert first == second and set(first) == {"spikecore_regs.h", "spikecore_regs.py", "spikecore_regs.json"}
    assert main(["--config", "small", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "small" / "spikecore_regs.h").exists()


def test_c_header_compiles_and_matches(tmp_path):
    import subprocess

    config = PRESETS["default"]
    write_all(config, tmp_path)
    ttable = register_map(config)["TTABLE"]
    source = tmp_path / "check.c"
    source.write_text(
        '#include "spikecore_regs.h"\n'
        f"_Static_assert(SPIKECORE_TTABLE_AT(3) == {ttable.address + 12}u, \"TTABLE address\");\n"
        f"_Static_assert(SPIKECORE_TTABLE_COUNT == {ttable.count}u, \"TTABLE size\");\n"
        "int main(void) { return SPIKECORE_ID_VALUE == 0x534D4C31u ? 0 : 1; }\n"
    )
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I", str(tmp_path / "default"), str(source)], check=True)
