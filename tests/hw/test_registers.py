"""The register map drives the hardware and the driver: every build-parameter register read
from the RTL decodes through the declared fields back into the configuration."""

import dataclasses

import pytest
from core_suite import CORE_COUNT, CORE_SMALL
from spikemllm.hw.blocks import BLOCKS, CORES
from spikemllm.hw.registers import BUILD_FIELDS, CoreKind, register_map
from spikemllm.sim.backends.amaranth_sim import run_with_driver


@pytest.mark.parametrize("kind", list(CoreKind))
@pytest.mark.parametrize("config", [CORE_SMALL, CORE_COUNT], ids=["tc_lif", "count"])
def test_build_registers_decode_back_into_the_config(config, kind):
    async def body(driver):
        words = {reg.name: await driver.backend.read(reg.word) for reg in driver.regs.build_registers}
        return words, await driver.identify()

    words, build = run_with_driver(config, body, core_class=BLOCKS[CORES[kind]].component)
    assert set(words) == set(BUILD_FIELDS) and all(name.startswith("HW_") for name in words)
    assert build.pop("kind") is kind
    assert dataclasses.replace(config, **build) == config
    assert {name for name in build} == {p for fields in BUILD_FIELDS.values() for p in fields.values()} - {"kind"}


def test_bundle_build_register_decodes_back():
    config = dataclasses.replace(CORE_SMALL, name="core_b3", bundle=3)

    async def body(driver):
        return await driver.identify()

    build = run_with_driver(config, body)
    assert build["bundle"] == 3 and build.pop("kind") is CoreKind.SPIKE
    assert dataclasses.replace(config, **build) == config


def test_fields_pack_and_unpack():
    regs = register_map(CORE_SMALL)
    steps = regs["HW_STEPS"]
    word = steps.pack(T_MAX=7, EVENTS_PER_CYCLE=2, LAYERS=8, COUNT_CODING=1, DATAPATH=2)
    assert word == 7 | 2 << 8 | 8 << 16 | 1 << 24 | 2 << 25
    assert steps.unpack(word) == {"T_MAX": 7, "EVENTS_PER_CYCLE": 2, "LAYERS": 8, "COUNT_CODING": 1, "DATAPATH": 2,
                                  "BUNDLE": 0}
    assert steps.unpack(steps.pack(BUNDLE=16))["BUNDLE"] == 16 and steps.pack(BUNDLE=16) == 16 << 27
    assert regs["CTRL"].pack(START=1) == 1 and regs["CTRL"].pack(CLEAR=1) == 2
    with pytest.raises(ValueError, match="T_MAX is 8 bits wide and cannot hold 256"):
        steps.pack(T_MAX=256)
    with pytest.raises(KeyError, match="no field 'BOGUS'"):
        steps.pack(BOGUS=1)


def test_words_follow_declaration_order_without_gaps():
    regs = register_map(CORE_SMALL).registers
    assert [r.word for r in regs] == [sum(p.count for p in regs[:n]) for n in range(len(regs))]
    assert regs[-1].name == "TTABLE" and regs[-1].count == 2 * CORE_SMALL.layers


def test_build_fields_hold_every_configurable_value():
    """Each ``HW_*`` field holds its parameter's whole range (``FIELD_RANGES``), so no
    configuration the dataclass accepts fails to build its register map."""
    from spikemllm.config import FIELD_RANGES, bits_for

    regmap = register_map(CORE_SMALL)
    for reg, fields in BUILD_FIELDS.items():
        for name, param in fields.items():
            if param in FIELD_RANGES:
                width = next(f.width for f in regmap[reg].fields if f.name == name)
                assert bits_for(FIELD_RANGES[param][1]) <= width, (reg, name, param)
