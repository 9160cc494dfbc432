"""Bad input at every boundary of the firmware and the core: files (layer, schedule,
configuration), the driver's arguments, and operations the core refuses during a run.
Each is refused with an error that names the value, and changes nothing: the run that
follows is bit- and cycle-exact."""

import json

import pytest
import torch
from core_suite import CORE_SMALL
from spikemllm.firmware.compiler import compile_layer
from spikemllm.firmware.driver import SpikeCoreError, Transfer, TransferTimeout
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.layer import IntegerLayer
from spikemllm.hw.registers import ERRORS
from spikemllm.sim.backends.amaranth_sim import run_with_driver
from spikemllm.sim.core.cases import random_case

from spikemllm.config import load_config

CASE = random_case(CORE_SMALL, seed=31, tokens=3, in_features=12, out_features=6, tv=2, tt=4)
RUN = dict(tokens=CASE.tokens, out_tiles=CASE.program.out_tiles)


def _exact(result):
    assert result.outputs == CASE.expected
    assert result.counters["CYCLES"] == CASE.model.cycles and result.counters["EVENTS"] == CASE.model.events


# -- files ---------------------------------------------------------------------------------


def test_layer_file_round_trip(tmp_path):
    path = tmp_path / "layer.json"
    CASE.program.layer.save(path)
    loaded = IntegerLayer.load(path)
    again = compile_layer(CORE_SMALL, loaded)
    assert again.weight_rows == CASE.program.weight_rows and again.param_tiles == CASE.program.param_tiles


def _layer_data():
    return CASE.program.layer.to_dict()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("shift"), r"missing \['shift'\]"),
    (lambda d: d.update(scale=3), r"unknown entries \['scale'\]"),
    (lambda d: d.update(format="other/2"), "format is 'other/2'"),
    (lambda d: d["weight"][2].__setitem__(5, 1.5), "weight row 2 entry 5 is 1.5; integers only"),
    (lambda d: d["weight"][1].pop(), "weight row 1 must be a list of 16 integers"),
    (lambda d: d["bias"].append(0), r"bias must have shape \(8,\), not \(9,\)"),
    (lambda d: d["weight"][0].__setitem__(0, 8), r"weight must lie in \[-7, 7\]; found 8 at index \(0, 0\)"),
    (lambda d: d.update(out_bits="5"), "out_bits is '5'; an integer is needed"),
    (lambda d: d.update(multiplier=[]), "multiplier must be a non-empty list"),
    (lambda d: d["multiplier"].__setitem__(0, True), "multiplier entry 0 is True; integers only"),
])
def test_malformed_layer_files_are_named(tmp_path, change, message):
    data = _layer_data()
    change(data)
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        IntegerLayer.load(path)


def _truncated(tmp_path, text):
    path = tmp_path / "truncated.json"
    path.write_text(text[: len(text) // 2])
    return path


def test_truncated_files_are_refused(tmp_path):
    CASE.program.layer.save(tmp_path / "layer.json")
    with pytest.raises(ValueError, match="truncated.json: not valid JSON"):
        IntegerLayer.load(_truncated(tmp_path, (tmp_path / "layer.json").read_text()))
    CASE.schedule.save(tmp_path / "schedule.json")
    with pytest.raises(ValueError, match="truncated.json: not valid JSON"):
        Schedule.load(_truncated(tmp_path, (tmp_path / "schedule.json").read_text()))
    (tmp_path / "config.json").write_text(json.dumps(CORE_SMALL.to_dict()))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(_truncated(tmp_path, (tmp_path / "config.json").read_text()))


# -- the driver's arguments ------------------------------------------------------------------


def _beats(change):
    beats = [dict(b, values=list(b["values"])) for b in CASE.beats]
    change(beats)
    return beats


@pytest.mark.parametrize("call, message", [
    (lambda d: d.run(_beats(lambda b: b.pop()), **RUN), "5 input beats for 3 tokens of 2 chunks"),
    (lambda d: d.run(_beats(lambda b: b[1]["values"].pop()), **RUN), "input beat 1: 'values' must be 8 integers"),
    (lambda d: d.run(_beats(lambda b: b[2]["values"].__setitem__(3, 16)), **RUN),
     r"input beat 2, lane 3: 16 is not an integer in \[-16, 15\]"),
    (lambda d: d.run(_beats(lambda b: b[0]["values"].__setitem__(0, 1.0)), **RUN), "lane 0: 1.0 is not an integer"),
    (lambda d: d.run(_beats(lambda b: b[4].update(modality=2)), **RUN), "input beat 4: modality 2 is not 0"),
    (lambda d: d.run(_beats(lambda b: b[3].update(layer=4)), **RUN), r"input beat 3: layer 4 is not in \[0, 3\]"),
    (lambda d: d.run(_beats(lambda b: b[0].update(tag=1)), **RUN), "input beat 0 must be a dict with"),
    (lambda d: d.run(CASE.beats, tokens=CASE.tokens, out_tiles=3), "out_tiles=3, but the loaded layer has 2"),
    (lambda d: d.run(CASE.beats, tokens=0, out_tiles=2), "tokens must be a positive integer, not 0"),
    (lambda d: d.set_timestep_table([0] * 7 + [5]), r"entry 7 is 5; entries are integers in \[0, t_max=4\]"),
    (lambda d: d.set_timestep_table([0, 2.0] + [0] * 6), "entry 1 is 2.0"),
    (lambda d: d.set_timestep_table([-1] + [0] * 7), "entry 0 is -1"),
    (lambda d: d.set_timestep_table([1] * 9), "timestep table needs 8 entries, not 9"),
])
def test_bad_driver_arguments_change_nothing(call, message):
    async def body(driver):
        await driver.load_layer(CASE.program)
        await driver.set_timestep_table(CASE.table)
        before = [await driver.read("TTABLE", n) for n in range(8)], await driver.read("TOKENS"), await driver.status()
        with pytest.raises(ValueError, match=message):
            await call(driver)
        after = [await driver.read("TTABLE", n) for n in range(8)], await driver.read("TOKENS"), await driver.status()
        return before, after, await driver.run(CASE.beats, **RUN)

    before, after, result = run_with_driver(CORE_SMALL, body)
    assert after == before
    _exact(result)


def test_a_layer_compiled_for_another_core_is_refused():
    other = random_case(load_config("small"), seed=1, tokens=1, in_features=8, out_features=8, tv=2, tt=2)

    async def body(driver):
        with pytest.raises(ValueError, match="compiled for 'small', the core is 'core_small'"):
            await driver.load_layer(other.program)
        with pytest.raises(TypeError, match="program must be a LayerProgram"):
            await driver.load_layer(CASE.program.layer)
        return True

    assert run_with_driver(CORE_SMALL, body)


# -- during a run ----------------------------------------------------------------------------


def test_loads_and_configuration_writes_during_a_run_change_nothing():
    """While a run waits for its input: the driver refuses a load and a second run by name;
    weight, bias and parameter beats offered on the ports are not taken; configuration
    writes are refused (``START_WHILE_BUSY``) and leave the registers. The run then
    completes exactly, and so does the next one (the memories are unchanged)."""
    other = random_case(CORE_SMALL, seed=32, tokens=3, in_features=12, out_features=6, tv=2, tt=4)
    code = ERRORS["START_WHILE_BUSY"][0]

    async def body(driver):
        await driver.load_layer(CASE.program)
        await driver.set_timestep_table(CASE.table)
        await driver.write("TOKENS", CASE.tokens)
        await driver.start()
        with pytest.raises(RuntimeError, match=r"load_layer: the core is busy with a run \(0 of 3 tokens done\)"):
            await driver.load_layer(other.program)
        with pytest.raises(RuntimeError, match="run: the core is busy"):
            await driver.run(CASE.beats, **RUN)
        p = other.program
        for name, beats in (("weights", [{"addr": a, "row": list(r)} for a, r in p.weight_rows]),
                            ("bias", [{"tile": j, "bias": list(b)} for j, b in p.bias_tiles]),
                            ("params", [{"tile": j, "multiplier": list(m), "shift": list(s)} for j, m, s in p.param_tiles])):
            with pytest.raises(TransferTimeout, match=f"{name}': '0/{len(beats)} sent"):
                await driver.backend.transfer({name: Transfer(beats)}, max_cycles=16)
        registers = {name: await driver.read(name) for name in ("IN_FEATURES", "OUT_FEATURES", "TOKENS")}
        for name, value in (("IN_FEATURES", 8), ("OUT_FEATURES", 4), ("TOKENS", 1), ("TTABLE", 1)):
            await driver.write(name, value)
            status = await driver.status()
            assert status["error"] and status["error_code"] == code and status["busy"], (name, status)
            await driver.clear()
        assert {name: await driver.read(name) for name in registers} == registers
        assert await driver.read("TTABLE") == CASE.table[0]
        received, _ = await driver.backend.transfer({"i": Transfer(CASE.beats), "o": Transfer(count=len(CASE.expected))})
        return received["o"], await driver.status(), await driver.run(CASE.beats, **RUN)

    outputs, status, again = run_with_driver(CORE_SMALL, body)
    assert outputs == CASE.expected and status["done"] and not status["error"]
    _exact(again)


def test_a_pending_error_refuses_the_next_run_until_cleared():
    """After a refused write the core refuses START until CLEAR; the driver raises the
    pending error before starting, and the run after ``clear()`` is exact."""
    async def body(driver):
        await driver.load_layer(CASE.program)
        await driver.set_timestep_table(CASE.table)
        await driver.write("TTABLE", CORE_SMALL.t_max + 1)   # refused: BAD_T
        with pytest.raises(SpikeCoreError, match="BAD_T") as info:
            await driver.run(CASE.beats, **RUN)
        status = await driver.status()
        await driver.write("TOKENS", CASE.tokens)
        await driver.start()                                  # the core itself refuses it too
        started = await driver.status()
        await driver.clear()
        return info.value, status, started, await driver.run(CASE.beats, **RUN)

    error, status, started, result = run_with_driver(CORE_SMALL, body)
    assert any("clear() it first" in note for note in error.__notes__)
    assert status["error"] and not status["busy"] and not started["busy"]
    _exact(result)
