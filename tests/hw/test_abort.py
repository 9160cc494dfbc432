"""``CTRL.ABORT`` and the driver's run timeout, in amaranth.sim: a run stopped at any cycle,
under stalls, leaves the core idle with its layer loaded, and the next run is bit-exact
against the golden layer and cycle-exact against the performance model."""

import random

import pytest
from core_suite import CORE_COUNT, CORE_SMALL
from spikemllm.firmware.driver import RunTimeout
from spikemllm.hw.blocks import check_block
from spikemllm.sim.backends.amaranth_sim import run_with_driver
from spikemllm.sim.core.cases import core_expectation, random_case
from spikemllm.sim.patterns import PATTERNS, pattern


def _exact(result, case, block="core"):
    """The run's outputs and counters against the golden layer and the model (ideal streams)."""
    expected, model = core_expectation(case, block)
    assert result.outputs == expected
    assert result.counters["CYCLES"] == model.cycles == result.transfer_cycles
    assert result.counters["EVENTS"] == model.events
    assert result.counters["ACTIVE_CYCLES"] == model.active_cycles
    assert result.counters["TOKENS_DONE"] == case.tokens


@pytest.mark.parametrize("config, block", [(CORE_SMALL, "core"), (CORE_COUNT, "core"), (CORE_SMALL, "int8_core")],
                         ids=["spike", "count", "int8"])
def test_abort_at_random_cycles_then_exact(config, block):
    """Runs under random stalls aborted at random cycles (from the first cycle after
    START to the last output beat, found by :meth:`SpikeCoreDriver.run`'s timeout), each
    followed by a run checked against the golden layer and the model: the first ideal,
    then stalled (outputs only)."""
    case = random_case(config, seed=21, tokens=4, in_features=20, out_features=7, tv=3, tt=4)
    expected, model = core_expectation(case, block)
    rng = random.Random(5)
    points = sorted(rng.sample(range(1, model.cycles), 6)) + [1, model.cycles - 1]
    run = dict(tokens=case.tokens, out_tiles=case.program.out_tiles)

    async def body(driver):
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        seen = []
        for n, point in enumerate(points):
            stalls = dict(in_pattern=pattern(rng.choice(PATTERNS), seed=n),
                          out_pattern=pattern(rng.choice(PATTERNS), seed=100 + n))
            with pytest.raises(RunTimeout, match=f"within {point} cycles") as info:
                await driver.run(case.beats, timeout=point, **run, **stalls)
            status = await driver.status()
            assert (status["busy"], status["done"], status["error"], status["aborted"]) == (0, 0, 0, 1), (point, status)
            # the counters stop at the abort: at most the cycles the host took to write it
            stopped = info.value.counters
            assert point <= stopped["CYCLES"] <= point + 4 and stopped["TOKENS_DONE"] < case.tokens
            assert await driver.counters() == stopped
            after = await driver.run(case.beats, **run, **(stalls if n % 2 else {}))
            if n % 2:
                assert after.outputs == expected
                assert after.counters["EVENTS"] == model.events
            else:
                _exact(after, case, block)
            assert (await driver.status())["aborted"] == 0
            seen.append(stopped["TOKENS_DONE"])
        return seen

    tokens_done = run_with_driver(config, body, core_class=check_block(block).component)
    assert tokens_done[0] < tokens_done[-1]  # the aborts fell at different points of the run


def test_abort_while_idle_changes_nothing():
    case = random_case(CORE_SMALL, seed=22, tokens=2, in_features=16, out_features=8, tv=2, tt=3)

    async def body(driver):
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        first = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)
        before = (await driver.status(), await driver.counters())
        await driver.abort()
        after = (await driver.status(), await driver.counters())
        return first, before, after

    first, before, after = run_with_driver(CORE_SMALL, body)
    _exact(first, case)
    assert after == before and before[0]["done"] == 1 and before[0]["aborted"] == 0


def test_a_write_with_abort_never_starts_a_run():
    case = random_case(CORE_SMALL, seed=23, tokens=2, in_features=8, out_features=4, tv=2, tt=3)

    async def body(driver):
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        await driver.write("TOKENS", case.tokens)
        await driver.write("CTRL", driver.regs["CTRL"].pack(START=1, ABORT=1))
        idle = await driver.status()
        result = await driver.run(case.beats, tokens=case.tokens, out_tiles=case.program.out_tiles)
        return idle, result

    idle, result = run_with_driver(CORE_SMALL, body)
    assert (idle["busy"], idle["error"], idle["aborted"]) == (0, 0, 0)
    _exact(result, case)


@pytest.mark.parametrize("timeout", [0, -3, 2.5])
def test_run_refuses_a_bad_timeout(timeout):
    case = random_case(CORE_SMALL, seed=24, tokens=1, in_features=8, out_features=4, tv=2, tt=3)

    async def body(driver):
        with pytest.raises(ValueError, match=f"timeout must be a positive number of cycles, not {timeout!r}"):
            await driver.run(case.beats, tokens=1, out_tiles=1, timeout=timeout)
        return await driver.status()

    assert run_with_driver(CORE_SMALL, body)["busy"] == 0
