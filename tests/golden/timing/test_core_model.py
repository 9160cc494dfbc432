"""Core cycle model and full-size projection: their pieces against independent computations."""

import dataclasses
import random

import pytest
import torch
from spikemllm.golden.timing.core_model import core_cycles, dense_core_cycles
from spikemllm.golden.timing.projection import (
    LinearShape,
    ProjectionSetup,
    expected_vector_cycles,
    layer_work,
    model_linear_shapes,
    phase_work,
    project,
)
from spikemllm.golden.timing.spike_datapath import pack, vector_counts

from spikemllm.config import DEFAULT_CONFIG
from spikemllm.latency import TOKEN_SWITCH, mac_array_latency


def test_breakdown_adds_up():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-7, 8, (5, 64), generator=g) * (torch.rand(5, 64, generator=g) < 0.3)
    r = core_cycles(DEFAULT_CONFIG, q, [3, 4, 3, 4, 3], out_tiles=3)
    assert sum(r.breakdown().values()) == r.cycles
    assert 0 < r.pe_utilization <= 1 and 0 < r.event_slot_utilization <= 1


@pytest.mark.parametrize("arithmetic", ["int8", "fp16"])
@pytest.mark.parametrize("tokens, in_features, tiles, D", [(1, 16, 1, 1), (5, 48, 3, 1), (3, 64, 2, 4), (2, 128, 4, 8)])
def test_dense_cycles_follow_the_timeline_by_hand(arithmetic, tokens, in_features, tiles, D):
    # Without back-pressure (G <= IN / D) the dense timeline has a closed form: the first
    # token loads in K cycles, is looked up and begun (2), its tiles' IN / D beats issue
    # back to back, every later token costs TOKEN_SWITCH, the final beat passes the
    # feeder's two registers and the MAC array's latency, and the requantizer's G + 5
    # cycles end the run.
    c = dataclasses.replace(DEFAULT_CONFIG, dense_inputs=D)
    K, beats, G = in_features // c.lanes, in_features // D, c.requant_cycles
    assert G <= beats
    by_hand = (K + 2) + tokens * tiles * beats + (tokens - 1) * TOKEN_SWITCH + 2 + mac_array_latency(arithmetic, D) + G + 5
    r = dense_core_cycles(c, tokens, in_features, tiles, arithmetic)
    assert r.cycles == by_hand
    assert r.active_cycles == tokens * tiles * beats and r.events == tokens * tiles * in_features
    assert sum(r.breakdown().values()) == r.cycles


def test_core_cycles_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple of lanes=16"):
        core_cycles(DEFAULT_CONFIG, torch.zeros(2, 20, dtype=torch.int64), [3, 3], 1)
    with pytest.raises(ValueError, match="T=9"):
        core_cycles(DEFAULT_CONFIG, torch.zeros(1, 16, dtype=torch.int64), [9], 1)
    with pytest.raises(ValueError, match="2 timestep counts for 1 tokens"):
        core_cycles(DEFAULT_CONFIG, torch.zeros(1, 16, dtype=torch.int64), [3, 3], 1)


@pytest.mark.parametrize("lanes, rate, E", [(16, 0.3, 2), (64, 0.05, 8), (8, 0.9, 1), (64, 0.01, 8)])
def test_expected_vector_cycles_matches_the_packing(lanes, rate, E):
    # beats per vector of the compactor's packing rule on sampled spike counts of one long step
    rng = random.Random(1)
    n = 5000
    counts = [sum(rng.random() < rate for _ in range(lanes)) for _ in range(n)]
    sampled = len(pack(vector_counts(counts, n), E)) / n
    assert expected_vector_cycles(lanes, rate, E) == pytest.approx(sampled, rel=0.1)


def test_full_size_shapes_match_published_sizes():
    # Linear-layer weights of the language models, from the published dimensions.
    def lm(hidden, inter, layers, heads, kv, vocab):
        head = hidden // heads
        per_layer = hidden * hidden * 2 + hidden * kv * head * 2 + 3 * hidden * inter
        return per_layer * layers + hidden * vocab

    shapes = model_linear_shapes("Qwen2-VL-7B")
    assert sum(s.weights for s in shapes if s.stage == "language_model") == lm(3584, 18944, 28, 28, 4, 152064)
    shapes = model_linear_shapes("InternVL2-8B")
    assert sum(s.weights for s in shapes if s.stage == "language_model") == lm(4096, 14336, 32, 32, 8, 92553)
    assert {s.stage for s in shapes} == {"vision_encoder", "projector", "language_model"}


def test_projection_bounds():
    fast_memory = ProjectionSetup(bandwidth_bytes_per_s=1e18)
    slow_memory = dataclasses.replace(fast_memory, bandwidth_bytes_per_s=1e9)
    fast = project("Qwen2-VL-7B", fast_memory)
    slow = project("Qwen2-VL-7B", slow_memory)
    assert fast["decode"]["bound"] == "compute" and slow["decode"]["bound"] == "bandwidth"
    assert slow["decode"]["tokens_per_s"] == pytest.approx(1e9 / slow["decode"]["weight_bytes"])
    fewer_steps = project("Qwen2-VL-7B", fast_memory, tv=2, tt=3)
    assert fewer_steps["prefill"]["tokens_per_s"] > fast["prefill"]["tokens_per_s"]
    with pytest.raises(ValueError, match="unknown model"):
        project("GPT-5")
    with pytest.raises(ValueError, match="cores must be at least 1"):
        ProjectionSetup(cores=0)


def test_layer_work_by_hand():
    setup = ProjectionSetup(lanes=16, pes=4, events_per_cycle=2)
    shape = LinearShape("language_model", in_features=100, out_features=10, count=2)  # K = 7 chunks, J = 3 tiles
    spike = layer_work(shape, setup, 2, (0.5, 0.25))
    # compactor cycles per vector: 16 x 0.5 / 2 = 4 and 16 x 0.25 / 2 = 2 (each above half a cycle), mean 3
    assert spike["cycles"] == 2 * (3 * 2 * 7 * 3 + TOKEN_SWITCH)
    assert spike["work"] == pytest.approx(2 * 3 * 100 * 0.75) and spike["weight_row_reads"] == spike["work"]
    assert spike["operations"] == pytest.approx(spike["work"] * 4)
    assert spike["activation_row_reads"] == 2 * 3 * 2 * 7  # T x K rows per tile
    assert (spike["activation_row_writes"], spike["outputs"], spike["tiles"]) == (14, 24, 6)
    dense = layer_work(shape, setup, 2, (0.5, 0.25), core="int8", dense_inputs=4)
    assert dense["work"] == 2 * 3 * 7 * 16 and dense["operations"] == dense["work"] * 4  # padded inputs, every one
    assert dense["cycles"] == 2 * (3 * (7 * 16 // 4) + TOKEN_SWITCH)
    assert dense["activation_row_reads"] == 2 * 3 * 7
    assert layer_work(shape, setup, 2, (0.0, 0.0))["work"] == 0  # no spike, no event
    with pytest.raises(ValueError, match="core must be one of"):
        layer_work(shape, setup, 2, (0.5, 0.25), core="int4")
    with pytest.raises(ValueError, match="dense_inputs must be a positive int"):
        layer_work(shape, setup, 2, (0.5, 0.25), core="fp16")
    with pytest.raises(ValueError, match="rates must be 2 firing rates"):
        layer_work(shape, setup, 2, (0.5,))


def test_phase_work_sums_phases_and_streams_each_weight_once():
    setup = ProjectionSetup(lanes=16, pes=4, events_per_cycle=2, cores=2, text_tokens=3, weight_bits=4)
    shapes = (LinearShape("vision_encoder", 32, 16, 1), LinearShape("projector", 64, 16, 1),
              LinearShape("language_model", 16, 48, 2))
    rates = {3: (0.1, 0.2, 0.3), 4: (0.1, 0.2, 0.3, 0.4)}
    w = phase_work("Qwen2-VL-7B", setup, tv=3, tt=4, shapes=shapes, rates=rates)
    vision, lm_vision = 1024, 256  # one 448x448 image of Qwen2-VL
    lm = layer_work(shapes[2], setup, 4, rates[4])
    assert w["decode"]["tokens"] == 1 and w["decode"]["work"] == pytest.approx(lm["work"])
    assert w["decode"]["cycles"] == pytest.approx(lm["cycles"] / 2)  # spread over two cores
    assert w["decode"]["weight_bits"] == 2 * 16 * 48 * 4
    assert w["prefill"]["tokens"] == lm_vision + 3
    assert w["prefill"]["weight_bits"] == (32 * 16 + 64 * 16 + 2 * 16 * 48) * 4
    expected = (vision * layer_work(shapes[0], setup, 3, rates[3])["outputs"]
                + lm_vision * layer_work(shapes[1], setup, 3, rates[3])["outputs"]
                + lm_vision * layer_work(shapes[2], setup, 3, rates[3])["outputs"] + 3 * lm["outputs"])
    assert w["prefill"]["outputs"] == expected
