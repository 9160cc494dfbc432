"""Spike-event compactor: events decode back to the golden spikes; the beats are the golden
packing of any spike-vector stream; cycles grow with the spikes, not with the lanes."""

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from block_suite import *  # noqa: F403 -- the checks every pipeline block passes
from spikemllm.config import SMALL_CONFIG
from spikemllm.golden.timing import cycle_model
from spikemllm.hw.blocks import block_component
from spikemllm.sim.backends.amaranth_sim import run_phases
from spikemllm.sim.blocks import cases, expect
from spikemllm.sim.blocks.benches import bench, codecs, simulate, vector_counts
from spikemllm.sim.patterns import pattern
from spikemllm.sim.streams import StreamDriver, StreamMonitor

BLOCK = "compactor"
VERILATOR_CONFIGS = ("small", "default")


def test_cycles_do_not_grow_with_lanes():
    cycles = {}
    for lanes in (8, 64):
        c = dataclasses.replace(SMALL_CONFIG, name=f"lanes{lanes}", lanes=lanes, max_fan_in=lanes)
        q = torch.zeros(1, lanes, dtype=torch.int64)
        q[0, [1, 5]] = torch.tensor([15, -9])
        case = expect.LinearCase(c, q, [c.t_max], torch.zeros(c.pes, lanes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64), torch.ones(c.pes, dtype=torch.int64),
                                 torch.zeros(c.pes, dtype=torch.int64))
        cycles[lanes] = simulate(bench("compactor", case)).cycles
    assert cycles[8] == cycles[64]


def test_checker_catches_a_wrong_cycle_count():
    b = bench("compactor", cases.random_case(SMALL_CONFIG, seed=3, tokens=2))
    b.model_cycles += 1
    with pytest.raises(AssertionError, match="cycle model predicts"):
        simulate(b)


# -- property: the RTL's beats are the golden packing of any spike-vector stream ----------

PROPERTY_CONFIGS = [
    dataclasses.replace(SMALL_CONFIG, name=f"small_e{E}", events_per_cycle=E, max_fan_in=32) for E in (1, 2, 3, 8)
] + [dataclasses.replace(SMALL_CONFIG, name="lanes4_e4", lanes=4, events_per_cycle=4, max_fan_in=16)]


@st.composite
def spike_streams(draw, config):
    """Tiles of 1-3 steps of 1-3 spike vectors, step-major, each vector sparse, dense or
    empty; ``more`` on some tiles' final vectors (a next tile follows at once)."""
    lanes = config.lanes
    vectors = []
    tiles = draw(st.integers(1, 3))
    for tile in range(tiles):
        steps, chunks = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        for t in range(steps):
            for k in range(chunks):
                density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
                spikes = [draw(st.sampled_from([-1, 1])) if draw(st.floats(0, 1)) < density else 0
                          for _ in range(lanes)]
                end = k == chunks - 1
                final = end and t == steps - 1
                vectors.append({"spikes": spikes, "base": k * lanes, "step": t, "step_end": int(end),
                                "last": int(final), "more": int(final and tile < tiles - 1 and draw(st.booleans()))})
    return vectors


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_rtl_packing_equals_the_golden_packing(data):
    config = data.draw(st.sampled_from(PROPERTY_CONFIGS))
    vectors = data.draw(spike_streams(config))
    stalls = data.draw(st.sampled_from([("always", "always"), ("random30", "always"), ("always", "random70"),
                                        ("bursts", "random30")]))
    k = codecs(config)
    expected = expect.compact(vectors, config)
    source, sink = (pattern(name, seed=n) for n, name in enumerate(stalls))
    phases = [([StreamDriver("i", k["spike_vector"], vectors, source)],
               [StreamMonitor("o", k["event_beat"], len(expected), sink)])]
    result = run_phases(block_component("compactor", config), phases)[-1]
    assert result.beats("o") == expected
    if stalls == ("always", "always"):
        assert result.cycles == cycle_model.compactor_cycles(vector_counts(vectors), config)
    # the beats decode to the spikes, step by step
    fan_in = 3 * config.lanes
    golden = []
    for v in vectors:
        if not golden or golden[-1][1]:
            golden.append([[0] * fan_in, False])
        for lane, s in enumerate(v["spikes"]):
            golden[-1][0][v["base"] + lane] = s
        golden[-1][1] = bool(v["step_end"])
    assert expect.scatter_events(result.beats("o"), fan_in) == [row for row, _ in golden]
