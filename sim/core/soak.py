"""Soak testbench of a core top level under cocotb: many seeded random layers in one
simulation, each checked bit-exactly and cycle-exactly, some runs aborted on the way.

For each layer ``n`` (:func:`soak_case` with seed ``seed + n``: random shape within the
configuration's memories, 1 to 6 tokens of random modality, random ``T`` per modality
and layer of the timestep table, random activation density) the testbench loads the
layer through the firmware driver and programs the timestep table, then:

* every ``abort_every``-th layer first runs under random stalls and is aborted at a
  random cycle (the driver's ``run`` timeout; ``STATUS.ABORTED`` must be set, nothing
  else);
* an ideal run: outputs equal the golden model's, ``CYCLES``, ``EVENTS``,
  ``ACTIVE_CYCLES`` and ``WEIGHT_READS`` the performance model's, and ``CYCLES`` the testbench's own count;
* a run with random input stalls and output back-pressure: the same outputs, the same
  events, at least as many cycles.

The settings come from ``SPIKEMLLM_SOAK`` (JSON: ``layers``, ``seed``, ``abort_every``,
``max_chunks``), the block key from ``SPIKEMLLM_BLOCK`` and the configuration from
``SPIKEMLLM_DESCRIPTION``, as in :mod:`.testbench`. The counts of what was checked
(layers, runs, tokens, beats, cycles, aborts, mismatches) are written as JSON to
``SPIKEMLLM_RESULTS``. Run it with ``python -m spikemllm.flow.soak`` (``make soak``).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
from spikemllm.firmware.driver import RunTimeout
from spikemllm.sim.patterns import PATTERNS, pattern

from spikemllm.config import AcceleratorConfig, describe_config

from .cases import CoreCase, core_expectation, random_case
from .testbench import start_core

__all__ = ["SOAK_DEFAULTS", "soak_case", "random_layers_soak"]

SOAK_DEFAULTS = {"layers": 1000, "seed": 0, "abort_every": 8, "max_chunks": 8}
"""Settings of a soak run that ``SPIKEMLLM_SOAK`` does not give."""


def soak_case(config: AcceleratorConfig, seed: int, *, max_chunks: int = 8) -> CoreCase:
    """A random layer and token sequence that fits ``config``, from ``seed``.

    Output tiles from 1 to ``max_out_tiles`` (as far as the weight memory holds a chunk
    each); input chunks from 1 to what the weight memory leaves for those tiles, at most
    ``max_chunks``, except every 16th seed, which takes all of it (a full memory); in and
    out features anywhere within their last chunk and tile (padding); 1 to 6 tokens;
    ``T`` of vision and text from 1 to ``t_max``; a table layer from 0 to ``layers - 1``;
    activation density from 0 to 1.
    """
    rng = random.Random(seed)
    c = config
    tiles = rng.randint(1, min(c.max_out_tiles, c.in_chunks_max))
    room = c.max_fan_in // c.lanes // tiles
    chunks = room if seed % 16 == 15 else rng.randint(1, min(room, max_chunks))
    return random_case(
        config, seed=seed, tokens=rng.randint(1, 6),
        in_features=rng.randint((chunks - 1) * c.lanes + 1, chunks * c.lanes),
        out_features=rng.randint((tiles - 1) * c.pes + 1, tiles * c.pes),
        tv=rng.randint(1, c.t_max), tt=rng.randint(1, c.t_max),
        layer_index=rng.randrange(c.layers), density=rng.choice([0.0, 0.1, 0.3, 0.6, 1.0, rng.random()]),
    )


def _settings() -> dict:
    settings = json.loads(os.environ.get("SPIKEMLLM_SOAK") or "{}")
    if not isinstance(settings, dict) or set(settings) - set(SOAK_DEFAULTS):
        raise ValueError(f"SPIKEMLLM_SOAK must be a JSON object with keys from {sorted(SOAK_DEFAULTS)}, not {settings!r}")
    return {**SOAK_DEFAULTS, **settings}


@cocotb.test()
async def random_layers_soak(dut):
    """Seeded random layers, ideal, stalled and aborted runs: zero mismatches."""
    settings = _settings()
    config = AcceleratorConfig.from_dict(json.loads(Path(os.environ["SPIKEMLLM_DESCRIPTION"]).read_text()))
    block = os.environ.get("SPIKEMLLM_BLOCK", "core")
    driver, counter = await start_core(dut, block, config)
    counts = dict.fromkeys(("layers", "runs", "tokens", "input_beats", "output_beats", "weight_rows", "cycles",
                            "aborted_runs", "mismatches"), 0)
    wall = time.monotonic()
    log = cocotb.log
    for n in range(settings["layers"]):
        seed = settings["seed"] + n
        case = soak_case(config, seed, max_chunks=settings["max_chunks"])
        expected, model = core_expectation(case, block)
        rng = random.Random(f"soak runs {seed}")
        run = dict(tokens=case.tokens, out_tiles=case.program.out_tiles)
        await driver.load_layer(case.program)
        await driver.set_timestep_table(case.table)
        counts["weight_rows"] += len(case.program.weight_rows)

        if settings["abort_every"] and n % settings["abort_every"] == settings["abort_every"] - 1:
            point = rng.randint(1, model.cycles - 1)
            try:
                await driver.run(case.beats, timeout=point, in_pattern=pattern(rng.choice(PATTERNS), seed=seed),
                                 out_pattern=pattern(rng.choice(PATTERNS), seed=seed + 1), **run)
                raise AssertionError(f"layer {n}: the run finished before its timeout of {point} cycles")
            except RunTimeout as stop:
                status = await driver.status()
                assert (status["busy"], status["error"], status["aborted"]) == (0, 0, 1), f"layer {n}: {status}"
                counts["aborted_runs"] += 1
                counts["cycles"] += stop.counters["CYCLES"]

        ideal = await driver.run(case.beats, **run)
        ideal_counted = counter.cycles(len(expected))
        stalled = await driver.run(case.beats, in_pattern=pattern(rng.choice(PATTERNS[1:]), seed=seed + 2),
                                   out_pattern=pattern(rng.choice(PATTERNS[1:]), seed=seed + 3), **run)
        c = ideal.counters
        wrong = [
            what for what, ok in (
                ("outputs", ideal.outputs == expected),
                ("stalled outputs", stalled.outputs == expected),
                ("CYCLES", c["CYCLES"] == model.cycles == ideal.transfer_cycles == ideal_counted),
                ("EVENTS", c["EVENTS"] == model.events == stalled.counters["EVENTS"]),
                ("ACTIVE_CYCLES", c["ACTIVE_CYCLES"] == model.active_cycles),
                ("WEIGHT_READS", c["WEIGHT_READS"] == model.weight_reads == stalled.counters["WEIGHT_READS"]),
                ("stalled CYCLES", stalled.counters["CYCLES"] == counter.cycles(len(expected)) >= model.cycles),
            ) if not ok
        ]
        if wrong:
            counts["mismatches"] += 1
            log.error("layer %d (seed %d, %d -> %d, %d tokens): %s differ", n, seed, case.program.in_features,
                      case.program.out_features, case.tokens, ", ".join(wrong))
        counts["layers"] += 1
        counts["runs"] += 2
        counts["tokens"] += 2 * case.tokens
        counts["input_beats"] += 2 * len(case.beats)
        counts["output_beats"] += 2 * len(expected)
        counts["cycles"] += c["CYCLES"] + stalled.counters["CYCLES"]
        if (n + 1) % 50 == 0 or n + 1 == settings["layers"]:
            log.info("soak: %d/%d layers, %d mismatches, %.0f s", n + 1, settings["layers"], counts["mismatches"],
                     time.monotonic() - wall)

    results = os.environ.get("SPIKEMLLM_RESULTS")
    if results:
        Path(results).write_text(json.dumps({
            "config": describe_config(config), "block": block, "settings": settings, **counts,
            "seconds": round(time.monotonic() - wall, 1),
        }, indent=2) + "\n")
    assert counts["mismatches"] == 0, f"{counts['mismatches']} of {counts['layers']} layers mismatched (see the log)"
