"""Fuzzed configurations (strategies in :mod:`spikemllm.sim.configs`).

Every valid configuration hypothesis draws is emitted as Verilog and linted, and its spike
core and dense INT8 core run a random layer in amaranth.sim through the firmware driver:
outputs equal the golden layer's, ``CYCLES``, ``EVENTS`` and ``ACTIVE_CYCLES`` equal the
cycle model's with ideal streams, and under input stalls and output back-pressure the
outputs are the same and the run takes at least as long. Every value just outside a
field's range is refused by name, by the dataclass and by ``load_config``, before any
Verilog is written.

The default suite runs a few fixed-seed examples and the regressions; ``make fuzz`` runs
the sweep (``-m slow``), ``FUZZ_EXAMPLES`` configurations (200 by default) from the seed
``FUZZ_SEED`` (random by default), and writes its summary to ``SPIKEMLLM_FUZZ_REPORT``.
"""

import contextlib
import dataclasses
import io
import json
import os
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from core_suite import run_case
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from spikemllm.flow.lint import lint
from spikemllm.hw import generate as gen
from spikemllm.hw.blocks import BLOCKS, CORES, supported_blocks
from spikemllm.sim.configs import FUZZ_BOUNDS, FuzzBounds, RunPlan, accelerator_configs, core_runs, invalid_changes, invalid_configs
from spikemllm.sim.core.cases import core_expectation

from spikemllm.config import FIELD_RANGES, AcceleratorConfig, Coding, load_config

SIMULATED_CORES = ("core", "int8_core")
"""The cores each configuration runs (the FP16 baseline has its own tests)."""

DEFAULT_EXAMPLES = 2
DEFAULT_SEED = 20251
DEFAULT_BOUNDS = FuzzBounds(lanes=16, pes=8, chunks=8, out_tiles=8, layers=16, tokens=3, run_work=400, bundle=1)
"""The default suite's examples: few, fixed, smaller sizes, one token per weight-row read
(bundles are drawn by the sweep, ``make fuzz``, and run in the core tests), and only the
cores emitted (they hold the pipeline blocks), to stay under a minute with the regressions."""


def _plan(**fields) -> RunPlan:
    defaults = dict(seed=1, tokens=2, in_features=2, out_features=1, steps=((1, 1),), layer_tags=(0, 0), density=0.6,
                    full_range=False, in_pattern="random30", out_pattern="random70", pattern_seed=3)
    return RunPlan(**{**defaults, **fields})


REGRESSIONS = [
    # one chunk per tile (max_fan_in = lanes): OUT_FEATURES of one tile compared in_chunks
    # with a constant it cannot exceed, and the lint refused the core (CMPCONST)
    (AcceleratorConfig(name="fuzz", lanes=4, pes=3, act_bits=16, t_max=15, events_per_cycle=3, max_fan_in=4,
                       requantizers=3, out_bits=16, layers=2, max_out_tiles=2),
     _plan(in_features=4, out_features=3, steps=((15, 2), (1, 15)), layer_tags=(1, 0))),
    # the smallest of everything: one-entry tile memories ([-1:0] addresses, ASCRANGE)
    (AcceleratorConfig(name="fuzz", lanes=2, pes=1, act_bits=2, weight_bits=2, t_max=1, events_per_cycle=1,
                       max_fan_in=2, bias_bits=2, out_bits=2, multiplier_bits=2, shift_bits=1, layers=1,
                       max_out_tiles=1),
     _plan(full_range=True)),
    # count coding of 16-bit activations at the largest t_max the build registers report
    (AcceleratorConfig(name="fuzz", lanes=8, pes=2, act_bits=16, t_max=255, coding="count", events_per_cycle=8,
                       max_fan_in=16, bias_bits=8, multiplier_bits=8, layers=3, max_out_tiles=2, dense_inputs=8),
     _plan(tokens=3, in_features=9, out_features=2, steps=((15, 1), (4, 2), (1, 3)), layer_tags=(2, 0, 2),
           density=1.0)),
    # outputs wider than the requantizer's product (out_bits = 16, a 13-bit product): the
    # shifted value was not sign-extended, so -3 left as 8189
    (AcceleratorConfig(name="fuzz", lanes=2, pes=16, act_bits=10, weight_bits=8, t_max=1, events_per_cycle=2,
                       max_fan_in=2, bias_bits=3, out_bits=16, multiplier_bits=2, shift_bits=1, layers=1,
                       max_out_tiles=16, requantizers=8, dense_inputs=2),
     _plan(seed=46559, tokens=1, in_features=2, out_features=1, layer_tags=(0,), density=0.2, in_pattern="random70",
           out_pattern="alternate", pattern_seed=497)),
    # three chunks per token (max_fan_in / lanes not a power of two): the activation memory
    # held 2 * 3 rows, but rows are addressed Cat(chunk, bank), so bank 1's third chunk
    # (row 6) fell outside it and its spikes were lost (EVENTS 3 where the model gives 5;
    # the outputs saturate at out_bits = 4, so only the counters showed it)
    (AcceleratorConfig(name="fuzz", lanes=2, pes=16, act_bits=10, weight_bits=5, t_max=1, events_per_cycle=1,
                       max_fan_in=6, bias_bits=11, out_bits=4, multiplier_bits=31, shift_bits=1, layers=1,
                       max_out_tiles=1, requantizers=8, dense_inputs=1),
     _plan(seed=5777, tokens=4, in_features=6, out_features=15, layer_tags=(0, 0, 0, 0), density=0.2,
           full_range=True, in_pattern="bursts", out_pattern="bursts", pattern_seed=55)),
]
"""Configurations the fuzzing found accepted but failing to emit, lint or simulate exactly."""


def describe_run(config: AcceleratorConfig, plan: RunPlan) -> dict:
    """What a summary counts about one checked configuration and its run."""
    return {
        "coding": config.coding.value,
        "lanes": config.lanes,
        "pes": config.pes,
        "events_per_cycle": config.events_per_cycle,
        "requantizers": config.requantizers,
        "dense_inputs": config.dense_inputs,
        "bundle": config.bundle,
        "act_bits": config.act_bits,
        "t_max": config.t_max,
        "product_width": config.product_width,
        "table_layers": len(plan.steps),
        "tokens": plan.tokens,
        "max_T": max(max(s) for s in plan.steps),
    }


def check_config(config: AcceleratorConfig, plan: RunPlan, *, cores_only: bool = False) -> dict:
    """Emit (every block, or with ``cores_only`` the three cores), lint and simulate
    ``config`` on ``plan``'s run; return what was checked."""
    start = time.monotonic()
    blocks = supported_blocks(config)
    if cores_only:
        blocks = [b for b in blocks if b in CORES.values()]
    with tempfile.TemporaryDirectory() as folder:
        paths = gen.generate(config, Path(folder), blocks=None if not cores_only else blocks)
        assert {p.name for p in paths} == {BLOCKS[k].file for k in blocks} | {"config.json"}
        for path in paths:
            if path.suffix == ".v":
                problems = lint(path)
                assert not problems, f"{path.name} of {config}: {problems}"
    emitted = time.monotonic()
    case = plan.case(config)
    cores = [block for block in SIMULATED_CORES if block in blocks]
    in_pattern, out_pattern = plan.patterns()
    cycles = {}
    for block in cores:
        expected, model = core_expectation(case, block)
        component = BLOCKS[block].component
        ideal = run_case(config, case, core_class=component)
        assert ideal.outputs == expected, f"{block}: outputs differ from the golden layer's"
        counters = {name: ideal.counters[name] for name in ("CYCLES", "EVENTS", "ACTIVE_CYCLES", "WEIGHT_READS")}
        assert counters == {"CYCLES": model.cycles, "EVENTS": model.events, "ACTIVE_CYCLES": model.active_cycles,
                            "WEIGHT_READS": model.weight_reads}, (
            f"{block}: RTL counters {counters}, cycle model {model}")
        assert ideal.counters["TOKENS_DONE"] == case.tokens
        stalled = run_case(config, case, core_class=component, in_pattern=in_pattern, out_pattern=out_pattern)
        assert stalled.outputs == expected, f"{block}: outputs under stalls differ from the golden layer's"
        assert stalled.counters["EVENTS"] == model.events
        assert stalled.counters["CYCLES"] >= model.cycles
        cycles[block] = {"ideal": model.cycles, "stalled": stalled.counters["CYCLES"]}
    return {**describe_run(config, plan), "cores": cores, "cycles": cycles, "blocks_emitted": len(blocks),
            "emit_lint_seconds": round(emitted - start, 2), "seconds": round(time.monotonic() - start, 2)}


@st.composite
def configured_runs(draw, bounds: FuzzBounds = FUZZ_BOUNDS):
    config = draw(accelerator_configs(bounds=bounds))
    return config, draw(core_runs(config, bounds=bounds))


def fuzz_test(records: list, *, examples: int, seed_value: int, bounds: FuzzBounds = FUZZ_BOUNDS,
              cores_only: bool = False, progress: bool = False):
    """A hypothesis test over :func:`configured_runs` that appends one record per checked
    configuration (and with ``progress`` prints it); the :data:`REGRESSIONS` run first."""
    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, derandomize=False, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(run=configured_runs(bounds))
    def check(run):
        config, plan = run
        records.append(check_config(config, plan, cores_only=cores_only))
        if progress:
            print(len(records), json.dumps({k: v for k, v in records[-1].items() if k != "cycles"}), flush=True)

    for config, plan in REGRESSIONS:
        check = example(run=(config, plan))(check)
    return check


def summarize(records: list, *, seed_value: int, seconds: float) -> dict:
    """Counts of the checked configurations by kind (coding, cores, sizes at their ends)."""
    def count(key):
        return dict(sorted(Counter(str(r[key]) for r in records).items(), key=lambda kv: (len(kv[0]), kv[0])))

    r = FIELD_RANGES
    return {
        "configurations": len(records),
        "seed": seed_value,
        "seconds": round(seconds, 1),
        "by_coding": count("coding"),
        "cores_simulated": dict(Counter(core for rec in records for core in rec["cores"])),
        "runs": sum(2 * len(rec["cores"]) for rec in records),
        "by_lanes": count("lanes"),
        "by_events_per_cycle": count("events_per_cycle"),
        "by_pes": count("pes"),
        "by_dense_inputs": count("dense_inputs"),
        "by_bundle": count("bundle"),
        "by_act_bits": count("act_bits"),
        "at_range_ends": {
            "act_bits_16": sum(rec["act_bits"] == r["act_bits"][1] for rec in records),
            "t_max_255": sum(rec["t_max"] == r["t_max"][1] for rec in records),
            "product_64_bits": sum(rec["product_width"] == 64 for rec in records),
            "events_per_cycle_equal_lanes": sum(rec["events_per_cycle"] == rec["lanes"] for rec in records),
            "requantizers_equal_pes": sum(rec["requantizers"] == rec["pes"] for rec in records),
            "table_layers_over_100": sum(rec["table_layers"] > 100 for rec in records),
        },
        "mean_seconds_per_configuration": round(sum(rec["seconds"] for rec in records) / max(1, len(records)), 2),
    }


def test_fuzzed_configs():
    """A few fixed-seed configurations and the regressions, emitted, linted and simulated."""
    records = []
    fuzz_test(records, examples=DEFAULT_EXAMPLES, seed_value=DEFAULT_SEED, bounds=DEFAULT_BOUNDS, cores_only=True)()
    assert len(records) >= len(REGRESSIONS) + 1


@pytest.mark.slow
def test_fuzzed_configs_sweep():
    """``FUZZ_EXAMPLES`` (default 200) fuzzed configurations; the summary goes to
    ``SPIKEMLLM_FUZZ_REPORT`` (``make fuzz``: ``build/reports/fuzz.json``) and stdout."""
    examples = int(os.environ.get("FUZZ_EXAMPLES") or 200)
    seed_value = int(os.environ.get("FUZZ_SEED") or random.randrange(1 << 32))
    records, start = [], time.monotonic()
    try:
        fuzz_test(records, examples=examples, seed_value=seed_value, progress=True)()
    finally:
        summary = summarize(records, seed_value=seed_value, seconds=time.monotonic() - start)
        report = os.environ.get("SPIKEMLLM_FUZZ_REPORT")
        if report:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(json.dumps({**summary, "records": records}, indent=2, sort_keys=True) + "\n")
        print("\nfuzzed configurations:", json.dumps(summary, indent=2))
    assert len(records) >= examples


# -- invalid configurations ----------------------------------------------------------------

def names(message: str, field: str, value) -> bool:
    """Whether an error message names ``field`` and ``value``."""
    shown = re.escape(str(value.value if isinstance(value, Coding) else value))
    return field in message and (repr(value) in message or re.search(rf"(?<![\w.]){shown}(?![\w.])", message))


@given(config=accelerator_configs())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_values_outside_a_range_are_refused_by_name(config):
    """Every field just below and above its range given the others, constraints between
    fields broken, wrong types: the dataclass raises naming the field and the value."""
    for field, value in invalid_changes(config):
        with pytest.raises((ValueError, TypeError)) as info:
            dataclasses.replace(config, **{field: value})
        assert names(str(info.value), field, value), (field, value, str(info.value))


@given(bad=invalid_configs())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_load_config_and_generate_refuse_before_writing(bad):
    """The same values through a ``config.json`` and through ``--set`` overrides: refused by
    name by ``load_config``, and ``python -m spikemllm.hw.generate`` exits with the message
    before it writes anything."""
    config, field, value = bad
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        description = config.to_dict()
        description["parameters"][field] = value
        del description["derived"]
        source = folder / "bad.json"
        source.write_text(json.dumps(description))
        with pytest.raises((ValueError, TypeError)) as info:
            load_config(source)
        assert names(str(info.value), field, value), (field, value, str(info.value))
        attempts = [["--config", str(source)]]
        # (an integer name is a valid name once ``--set`` has made it text)
        if isinstance(value, int) and not isinstance(value, bool) and field != "name" or value in (
                "", "two words", "rate"):
            good = folder / "good.json"
            good.write_text(config.to_json())
            attempts.append(["--config", str(good), "--set", f"{field}={value}"])
        for arguments in attempts:
            out = folder / "verilog"
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
                gen.main([*arguments, "--out", str(out)])
            assert exit_info.value.code == 2
            assert names(stderr.getvalue(), field, value), (field, value, stderr.getvalue())
            assert not out.exists()
