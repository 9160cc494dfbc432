"""SpikeCore through the firmware driver, in amaranth.sim and under Verilator and Icarus: bit-exact
outputs against the golden layer, cycle counts against the performance model, registers
and their errors."""

import dataclasses

import pytest
import torch
from core_suite import CORE_COUNT, CORE_E1, CORE_SMALL, run_case, run_real_layer_in_cocotb
from simulators import cocotb_parametrize
from spikemllm.config import DEFAULT_CONFIG
from spikemllm.firmware.compiler import timestep_table, token_timesteps
from spikemllm.firmware.driver import SpikeCoreError
from spikemllm.hw.registers import ERRORS
from spikemllm.sim.backends.amaranth_sim import run_with_driver
from spikemllm.sim.core.cases import _finish, random_case
from spikemllm.sim.patterns import late_start, pattern


CORE_E3 = dataclasses.replace(CORE_SMALL, name="core_e3", events_per_cycle=3)
CORE_E8 = dataclasses.replace(CORE_SMALL, name="core_e8", events_per_cycle=8)


@pytest.mark.parametrize("config, shape, steps", [
    (CORE_SMALL, (20, 7), (3, 4)),   # 3 chunks, 2 tiles, padding on both sides
    (CORE_SMALL, (8, 4), (1, 4)),    # one chunk, one tile, T = 1 and T = t_max
    (CORE_SMALL, (16, 16), (2, 2)),  # 2 chunks x 4 tiles = the whole weight memory
    (CORE_COUNT, (12, 6), (5, 7)),   # count coding: T up to Q
    (CORE_E1, (10, 5), (4, 3)),      # one event per cycle
    (CORE_E3, (20, 7), (3, 4)),      # three events per cycle: beats split at any slot
    (CORE_E8, (24, 8), (4, 2)),      # E = lanes: a beat holds a whole spike vector
    (DEFAULT_CONFIG, (40, 12), (3, 4)),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_bit_exact_and_cycle_exact(config, shape, steps, seed):
    case = random_case(config, seed=seed, tokens=5, in_features=shape[0], out_features=shape[1], tv=steps[0], tt=steps[1])
    result = run_case(config, case)
    assert result.outputs == case.expected
    assert result.counters["CYCLES"] == case.model.cycles
    assert result.counters["EVENTS"] == case.model.events
    assert result.counters["ACTIVE_CYCLES"] == case.model.active_cycles
    assert result.counters["TOKENS_DONE"] == case.tokens
    assert result.counters["STALL_CYCLES"] == 0 and result.counters["IDLE_IN_CYCLES"] == 0


@pytest.mark.parametrize("config, shape, steps, tokens", [
    (dataclasses.replace(CORE_SMALL, name="core_b2", bundle=2), (20, 7), (3, 4), 5),   # a partial last bundle
    (dataclasses.replace(CORE_SMALL, name="core_b4", bundle=4), (16, 16), (1, 4), 8),  # T = 1 beside T = t_max
    (dataclasses.replace(CORE_COUNT, name="count_b2", bundle=2), (12, 6), (5, 7), 4),
    (dataclasses.replace(CORE_E3, name="core_e3_b3", bundle=3, requantizers=2), (24, 8), (2, 3), 7),
])
def test_bundles_bit_exact_cycle_exact_and_reads(config, shape, steps, tokens):
    """``B`` tokens per weight-row read: every token's outputs as the golden layer's (the
    driver puts them back in token order), and ``CYCLES``, ``EVENTS``, ``ACTIVE_CYCLES`` and
    ``WEIGHT_READS`` as the model predicts; under stalls the same outputs, events and reads."""
    case = random_case(config, seed=config.bundle, tokens=tokens, in_features=shape[0], out_features=shape[1],
                       tv=steps[0], tt=steps[1])
    assert case.model.weight_reads < case.model.events  # the bundle's tokens share reads
    _exact_ideal_and_stalled(config, case, tokens)


def _exact_ideal_and_stalled(config, case, tokens):
    """``case`` on ``config``: the golden outputs and every counter as the model predicts;
    under random stalls the same outputs, events and reads, in more cycles."""
    result = run_case(config, case)
    assert result.outputs == case.expected
    for name, value in (("CYCLES", case.model.cycles), ("EVENTS", case.model.events),
                        ("ACTIVE_CYCLES", case.model.active_cycles), ("WEIGHT_READS", case.model.weight_reads),
                        ("TOKENS_DONE", tokens)):
        assert result.counters[name] == value, name
    stalled = run_case(config, case, in_pattern=late_start(pattern("random30", seed=3)),
                       out_pattern=pattern("random70", seed=4))
    assert stalled.outputs == case.expected and stalled.counters["CYCLES"] > case.model.cycles
    assert (stalled.counters["EVENTS"], stalled.counters["WEIGHT_READS"]) == (case.model.events, case.model.weight_reads)


@pytest.mark.parametrize("config, shape, steps, tokens", [
    (dataclasses.replace(CORE_SMALL, name="core_b2_dense_issue", bundle=2, zero_skipping=False), (20, 7), (3, 4), 5),
    (dataclasses.replace(CORE_E3, name="core_e3_b3_dense_issue", bundle=3, zero_skipping=False), (24, 8), (2, 3), 4),
])
def test_without_zero_skipping_every_step_and_input_is_an_event(config, shape, steps, tokens):
    """The variant without zero skipping issues every (step, input) pair of every bundle:
    the same outputs, ``WEIGHT_READS`` = steps x padded inputs x tiles per bundle (counted
    here from the shapes), ``EVENTS`` the tokens' spikes as with zero skipping, and the
    cycles the model predicts, more than the zero-skipping core's."""
    case = random_case(config, seed=11, tokens=tokens, in_features=shape[0], out_features=shape[1],
                       tv=steps[0], tt=steps[1])
    skipping = dataclasses.replace(config, zero_skipping=True)
    skip_case = random_case(skipping, seed=11, tokens=tokens, in_features=shape[0], out_features=shape[1],
                            tv=steps[0], tt=steps[1])
    assert torch.equal(case.q, skip_case.q) and case.expected == skip_case.expected
    B, L = config.bundle, config.lanes
    padded = -(-shape[0] // L) * L
    tiles = -(-shape[1] // config.pes)
    T = case.timesteps.tolist()
    every_pair = sum(max(T[i:i + B]) for i in range(0, tokens, B)) * padded * tiles
    result = run_case(config, case)
    assert result.outputs == case.expected
    for name, value in (("CYCLES", case.model.cycles), ("EVENTS", skip_case.model.events),
                        ("ACTIVE_CYCLES", case.model.active_cycles), ("WEIGHT_READS", every_pair),
                        ("TOKENS_DONE", tokens)):
        assert result.counters[name] == value, name
    assert case.model.weight_reads == every_pair and case.model.cycles > skip_case.model.cycles
    stalled = run_case(config, case, in_pattern=late_start(pattern("random30", seed=3)),
                       out_pattern=pattern("random70", seed=4))
    assert stalled.outputs == case.expected and stalled.counters["WEIGHT_READS"] == every_pair


@pytest.mark.parametrize("config, shape, steps, tokens", [
    (dataclasses.replace(CORE_SMALL, name="core_s2", slices=2), (20, 7), (3, 4), 5),  # one event per slice
    (dataclasses.replace(CORE_E8, name="core_e8_s4", slices=4), (24, 8), (4, 2), 4),  # two per slice
    (dataclasses.replace(CORE_SMALL, name="core_s2_b3", slices=2, bundle=3), (16, 16), (1, 4), 7),
    (dataclasses.replace(CORE_COUNT, name="count_s2_b2", slices=2, bundle=2), (12, 6), (5, 7), 4),
    (dataclasses.replace(CORE_SMALL, name="core_s2_b2_dense_issue", slices=2, bundle=2, zero_skipping=False),
     (20, 7), (3, 4), 5),
])
def test_lane_slices_bit_exact_and_cycle_exact(config, shape, steps, tokens):
    """Lane slices, each with its compactor and weight bank: the golden layer's
    outputs, and every counter as the model (fed each vector's spikes per slice) predicts;
    the same events and reads as the core of one slice, and under stalls the same outputs."""
    case = random_case(config, seed=5, tokens=tokens, in_features=shape[0], out_features=shape[1],
                       tv=steps[0], tt=steps[1])
    whole = random_case(dataclasses.replace(config, slices=1), seed=5, tokens=tokens, in_features=shape[0],
                        out_features=shape[1], tv=steps[0], tt=steps[1])
    assert case.expected == whole.expected
    assert (case.model.events, case.model.weight_reads) == (whole.model.events, whole.model.weight_reads)
    _exact_ideal_and_stalled(config, case, tokens)


def test_bundle_of_one_reads_once_per_event():
    case = random_case(CORE_SMALL, seed=7, tokens=3, in_features=16, out_features=8, tv=3, tt=4)
    result = run_case(CORE_SMALL, case)
    assert result.counters["WEIGHT_READS"] == result.counters["EVENTS"] == case.model.weight_reads


@pytest.mark.parametrize("pes, requantizers", [(4, 4), (4, 2), (16, 1), (16, 4)])
def test_shared_requantizer(pes, requantizers):
    """``R`` multipliers for ``P`` channels: ``P / R`` cycles per tile, overlapped with the
    next tile; with 16 channels on one multiplier short tiles wait for it (back-pressure)."""
    config = dataclasses.replace(CORE_SMALL, name=f"core_p{pes}_r{requantizers}", pes=pes, requantizers=requantizers)
    case = random_case(config, seed=pes + requantizers, tokens=3, in_features=8, out_features=2 * pes, tv=3, tt=4,
                       density=0.3)
    result = run_case(config, case)
    assert result.outputs == case.expected
    assert result.counters["CYCLES"] == case.model.cycles
    stalled = run_case(config, case, in_pattern=pattern("random30", seed=1), out_pattern=pattern("random70", seed=2))
    assert stalled.outputs == case.expected and stalled.counters["CYCLES"] >= case.model.cycles


def test_all_zero_tokens_and_extremes():
    case = random_case(CORE_SMALL, seed=3, tokens=4, in_features=16, out_features=8, tv=4, tt=4, density=0.0)
    assert run_case(CORE_SMALL, case).outputs == case.expected
    full = random_case(CORE_SMALL, seed=4, tokens=3, in_features=16, out_features=8, tv=4, tt=4, density=1.0)
    full.q.copy_(torch.where(full.q >= 0, 15, -15))
    from spikemllm.sim.core.cases import _finish

    full = _finish(full.program, full.schedule, full.layer_index, full.q, full.modality)
    result = run_case(CORE_SMALL, full)
    assert result.outputs == full.expected and result.counters["CYCLES"] == full.model.cycles


@pytest.mark.parametrize("config", [CORE_SMALL, CORE_COUNT], ids=["tc_lif", "count"])
def test_every_activation_at_every_step_count(config):
    """Every activation value at every ``T``: the neuron stage fires like the golden neuron,
    and a value beyond what ``T`` steps carry (``-2^(act_bits-1)`` among them) like the
    value clamped to it (the encoders' ``saturate=True``): outputs and cycles of the
    clamped tokens."""
    values = torch.arange(-(1 << (config.act_bits - 1)), 1 << (config.act_bits - 1))
    steps = list(range(1, config.t_max + 1))
    for tv, tt in zip(steps, steps[1:] + steps[:1]):
        shape = random_case(config, seed=tv, tokens=4, in_features=len(values), out_features=config.pes, tv=tv, tt=tt)
        modality = torch.tensor([0, 1, 1, 0])
        q = values.roll(tv).expand(4, -1).clone()
        T = token_timesteps(timestep_table(config, shape.schedule), modality, shape.layer_index)
        limit = torch.tensor([config.coding.max_value(int(t)) for t in T]).unsqueeze(1)
        clamped = _finish(shape.program, shape.schedule, shape.layer_index, torch.clamp(q, -limit, limit), modality)
        # the beats by hand: the driver refuses -2^(act_bits-1), the core's port takes it
        beats = [{"values": row[k:k + config.lanes], "modality": int(modality[t]), "layer": shape.layer_index}
                 for t, row in enumerate(q.tolist()) for k in range(0, len(values), config.lanes)]
        raw = dataclasses.replace(clamped, q=q, beats=beats)
        result = run_case(config, raw)
        assert result.outputs == clamped.expected
        assert result.counters["CYCLES"] == clamped.model.cycles
        assert result.counters["EVENTS"] == clamped.model.events


@pytest.mark.parametrize("in_name, out_name", [("random30", "random70"), ("bursts", "alternate"), ("always", "random70")])
def test_stalls_change_timing_not_results(in_name, out_name):
    case = random_case(CORE_SMALL, seed=7, tokens=6, in_features=20, out_features=7, tv=3, tt=4)
    result = run_case(CORE_SMALL, case, in_pattern=pattern(in_name, seed=1), out_pattern=pattern(out_name, seed=2))
    assert result.outputs == case.expected
    assert result.counters["EVENTS"] == case.model.events
    assert result.counters["CYCLES"] >= case.model.cycles
    if out_name != "always":
        assert result.counters["STALL_CYCLES"] > 0


def error_name(code):
    return next(name for name, (c, _) in ERRORS.items() if c == code)


@pytest.mark.parametrize("register, value, error", [
    ("TTABLE", 5, "BAD_T"),          # above t_max = 4
    ("TTABLE", 0, "BAD_T"),
    ("IN_FEATURES", 12, "BAD_SHAPE"),  # not a multiple of lanes
    ("IN_FEATURES", 72, "TOO_LARGE"),
    ("OUT_FEATURES", 6, "BAD_SHAPE"),  # not a multiple of pes
    ("OUT_FEATURES", 20, "TOO_LARGE"),
])
def test_bad_register_writes_are_refused(register, value, error):
    async def body(driver):
        before = await driver.read(register)
        await driver.write(register, value)
        status = await driver.status()
        after = await driver.read(register)
        await driver.clear()
        return before, status, after, await driver.status()

    before, status, after, cleared = run_with_driver(CORE_SMALL, body)
    assert status["error"] == 1 and error_name(status["error_code"]) == error
    assert after == before
    assert cleared["error"] == 0


def test_start_errors():
    case = random_case(CORE_SMALL, seed=9, tokens=2, in_features=8, out_features=4, tv=3, tt=3)

    async def body(driver):
        codes = []
        await driver.start()  # no shape, no tokens
        codes.append((await driver.status())["error_code"])
        await driver.clear()
        await driver.load_layer(case.program)
        await driver.write("IN_FEATURES", 16)
        await driver.write("OUT_FEATURES", 16)  # 16 inputs x 4 tiles = 64 rows: fits
        await driver.write("TOKENS", 1)
        await driver.write("IN_FEATURES", 32)   # 32 x 4 = 128 rows: refused at start
        await driver.start()
        codes.append((await driver.status())["error_code"])
        await driver.clear()
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        await driver.write("TOKENS", 2)
        await driver.start()
        await driver.start()  # start while busy
        codes.append((await driver.status())["error_code"])
        return codes

    assert [error_name(c) for c in run_with_driver(CORE_SMALL, body)] == ["NO_TOKENS", "TOO_LARGE", "START_WHILE_BUSY"]


def _pairs(config):
    """Every ``(chunks, tiles)`` the registers take, split into those that fit the weight
    memory (``chunks * lanes * tiles <= max_fan_in``) and those refused at START."""
    pairs = [(k, t) for k in range(1, config.in_chunks_max + 1) for t in range(1, config.max_out_tiles + 1)]
    fits = [(k, t) for k, t in pairs if k * config.lanes * t <= config.max_fan_in]
    return fits, [p for p in pairs if p not in fits]


@pytest.mark.parametrize("in_last", [True, False], ids=["in_last", "out_last"])
def test_start_right_after_a_shape_write_refuses_every_layer_too_large(in_last):
    # One bus write per cycle, no gap: the shape (1 chunk, 1 tile, which fits), then the
    # refused shape's two registers in either order, then START; the last write turns the
    # check from fitting to too large (or, with one register, keeps it too large).
    c = CORE_SMALL
    _fits, refused = _pairs(c)

    async def body(driver):
        await driver.write("TOKENS", 1)
        codes = []
        for k, t in refused:
            writes = [("IN_FEATURES", k * c.lanes), ("OUT_FEATURES", t * c.pes)]
            for name, value in [("IN_FEATURES", c.lanes), ("OUT_FEATURES", c.pes)] + (writes[::-1] if in_last else writes):
                await driver.write(name, value)
            await driver.start()
            status = await driver.status()
            codes.append((status["busy"], error_name(status["error_code"])))
            await driver.clear()
        return codes

    assert run_with_driver(c, body) == [(0, "TOO_LARGE")] * len(refused)


@pytest.mark.parametrize("in_last", [True, False], ids=["in_last", "out_last"])
def test_start_right_after_a_shape_write_runs_every_layer_that_fits(in_last):
    # Each fitting shape follows the largest (refused), and its registers are written in
    # either order: the last write turns the check from too large to fitting.
    c = CORE_SMALL
    fits, _refused = _pairs(c)
    largest = (c.in_chunks_max * c.lanes, c.max_out_tiles * c.pes)
    for k, t in fits:
        async def body(driver, k=k, t=t):
            await driver.write("TOKENS", 1)
            await driver.write("IN_FEATURES", largest[0])
            await driver.write("OUT_FEATURES", largest[1])
            await driver.start()
            refused = await driver.status()
            await driver.clear()
            writes = [("IN_FEATURES", k * c.lanes), ("OUT_FEATURES", t * c.pes)]
            for name, value in writes[::-1] if in_last else writes:
                await driver.write(name, value)
            await driver.start()
            return refused, await driver.status()

        refused, started = run_with_driver(c, body)
        assert error_name(refused["error_code"]) == "TOO_LARGE"
        assert started["busy"] == 1 and started["error"] == 0, (k, t)


@pytest.mark.parametrize("layers, error", [(4, "BAD_T"), (3, "BAD_TOKEN")])
def test_bad_tokens_stop_the_run(layers, error):
    # Tokens tagged with layer 3: with 4 table layers its entry was never programmed; with
    # 3 table layers it does not exist. Either way the core refuses to compute.
    config = dataclasses.replace(CORE_SMALL, name=f"core_l{layers}", layers=layers)
    case = random_case(config, seed=11, tokens=2, in_features=8, out_features=4, tv=3, tt=3)
    beats = [{**b, "layer": 3} for b in case.beats]

    async def body(driver):
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        with pytest.raises(SpikeCoreError) as info:
            await driver.run(beats, tokens=case.tokens, out_tiles=case.program.out_tiles, timeout=200)
        return info.value.name

    assert run_with_driver(config, body) == error


@pytest.mark.parametrize("layers, error", [(4, "BAD_T"), (3, "BAD_TOKEN")])
def test_a_bad_token_in_a_bundle_stops_the_run(layers, error):
    # the second token of the first bundle carries the bad tag: its slot's lookup refuses the bundle
    config = dataclasses.replace(CORE_SMALL, name=f"core_b2_l{layers}", layers=layers, bundle=2)
    case = random_case(config, seed=12, tokens=3, in_features=8, out_features=4, tv=3, tt=3)
    beats = [{**b, "layer": 3} if n == 1 else b for n, b in enumerate(case.beats)]  # one chunk per token

    async def body(driver):
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        with pytest.raises(SpikeCoreError) as info:
            await driver.run(beats, tokens=case.tokens, out_tiles=case.program.out_tiles, timeout=200)
        return info.value.name, await driver.read("TOKENS_DONE")

    assert run_with_driver(config, body) == (error, 0)


def test_identify_detects_a_different_build():
    async def body(driver):
        driver.config = dataclasses.replace(CORE_SMALL, name="other", pes=8)
        with pytest.raises(RuntimeError, match="pes"):
            await driver.identify()
        return True

    assert run_with_driver(CORE_SMALL, body)


@cocotb_parametrize("config, workload",
                    verilator=[("default", "minilm"), ("count", "minilm"), ("wide", "qwen2vl"),
                               ("default", "qwen2vl_mlp")],
                    icarus_slow=[("default", "minilm"), ("count", "minilm"), ("small", "qwen2vl"),
                                 ("small", "qwen2vl_mlp")])
def test_real_layer_in_cocotb(simulator, config, workload, tmp_path):
    """A real converted layer (MiniLM's pretrained FFN layer 0, or the trained Qwen2-VL's
    query projection or MLP down projection, sliced to fit) over tokens mixing vision and
    text: bit- and cycle-exact, also under stalls. The down projection runs where the
    default suite already builds the core (``default``: 16 spike vectors per token); the
    amaranth.sim runs of ``tests/sim/test_core_workloads.py`` take it on ``small``."""
    run_real_layer_in_cocotb(config, "core", tmp_path, workload, simulator=simulator)


@pytest.mark.slow
@cocotb_parametrize("bundle", verilator=[2, 4])
def test_bundles_on_a_real_layer_in_cocotb(simulator, bundle, tmp_path):
    """The Qwen2-VL layer (39 tokens) in bundles of ``B`` on the default configuration: bit-
    and cycle-exact, ``WEIGHT_READS`` as the model predicts (the testbench checks it), ideal
    and under stalls. Behind ``slow`` (about two minutes each); the default suite runs
    bundles under Verilator in ``tests/flow/test_soak.py``."""
    config = dataclasses.replace(DEFAULT_CONFIG, name=f"default_b{bundle}", bundle=bundle)
    r = run_real_layer_in_cocotb(config, "core", tmp_path, "qwen2vl", simulator=simulator)
    assert r["bundle"] == bundle and r["weight_reads"] < r["events"]


@pytest.mark.slow
def test_icarus_agrees_with_verilator_on_a_real_layer(every_simulator, tmp_path):
    """MiniLM's layer on the default configuration under every simulator: the same
    measurements, the stalled run's cycles and stall counters (which no model predicts)
    and the simulation-time window the power flow reads included."""
    runs = {}
    for simulator in every_simulator:
        runs[simulator] = run_real_layer_in_cocotb("default", "core", tmp_path, "minilm", simulator=simulator)
        del runs[simulator]["schedule_file"]  # in each build's own test folder
    first, *others = every_simulator
    for other in others:
        differ = sorted(key for key in runs[first] if runs[first][key] != runs[other].get(key))
        assert not differ and runs[other].keys() == runs[first].keys(), f"{other} differs from {first} in {differ}"
