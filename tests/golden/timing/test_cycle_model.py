"""Cycle model functions: what they predict from first principles, and bad input."""

import pytest
from spikemllm.golden.timing import cycle_model as cm
from spikemllm.golden.timing.spike_datapath import pack

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def test_neuron_array_takes_T_cycles_per_token():
    assert cm.neuron_array_cycles([7], DEFAULT_CONFIG) == cm.NEURON_ARRAY_LATENCY + 7
    assert cm.neuron_array_cycles([3, 4, 1], DEFAULT_CONFIG) == cm.NEURON_ARRAY_LATENCY + 8
    # T outside [1, t_max] runs what the hardware runs: clamped
    assert cm.neuron_array_beats([0, 99], DEFAULT_CONFIG) == 1 + DEFAULT_CONFIG.t_max


V = cm.SpikeVectorCount


def test_compactor_cycles_grow_with_events():
    # one vector of 5 spikes at one event per beat: stored, planned, selected (latency 3), then 5 beats
    assert cm.compactor_cycles([V(5, True, True)], SMALL_CONFIG) == cm.COMPACTOR_LATENCY + 5
    assert cm.compactor_beats([V(5, True, True)], SMALL_CONFIG) == 5
    # 8 vectors of one spike each at E = 2: 4 full beats, two vectors retired per beat
    ones = [V(1)] * 7 + [V(1, True, True)]
    assert cm.compactor_beats(ones, DEFAULT_CONFIG) == 4


def test_compactor_empty_vectors_cost_nothing():
    # a vector without a spike that ends no step is dropped on entry
    assert cm.compactor_beats([V(0), V(3, True, True)], SMALL_CONFIG) == 3
    assert cm.compactor_cycles([V(0), V(3, True, True)], SMALL_CONFIG) == 1 + cm.COMPACTOR_LATENCY + 3
    # an all-zero tile still ends its step: one beat without events
    assert cm.compactor_beats([V(0, True, True)], SMALL_CONFIG) == 1
    with pytest.raises(ValueError, match="no spike vector produces"):
        cm.compactor_cycles([V(0)], SMALL_CONFIG)


def test_step_boundary_inside_a_beat():
    # step 0 has one event, step 1 one: one beat carries both, split after the first
    plans = pack([V(1, True), V(1, True, True)], 2)
    assert [(p.events, p.boundary, p.split, p.last) for p in plans] == [(2, True, 1, False), (0, True, 0, True)]
    # the second step end waited for the next beat (one boundary per beat); with a third
    # event the second beat is not empty
    plans = pack([V(1, True), V(2, True, True)], 2)
    assert [(p.events, p.boundary, p.split, p.last) for p in plans] == [(2, True, 1, False), (1, True, 1, True)]


def test_tile_boundary_needs_more():
    tile = [V(1, True, True)]
    assert len(pack(tile + tile, 2)) == 2  # without 'more' the final beat is emitted alone
    plans = pack([V(1, True, True, True), V(1, True, True)], 2)
    assert [(p.events, p.boundary, p.split, p.last) for p in plans] == [(2, True, 1, True), (0, True, 0, True)]


def test_pack_refuses_a_stream_that_stops_mid_tile():
    with pytest.raises(ValueError, match="waits"):
        pack([V(1)], 2)
    with pytest.raises(ValueError, match="waits"):
        pack([V(1, True, True, True)], 2)


def test_pe_and_requantizer():
    assert cm.pe_array_cycles(10, DEFAULT_CONFIG) == 10 + cm.PE_ARRAY_LATENCY
    G = DEFAULT_CONFIG.requant_cycles
    assert cm.requantizer_cycles([0, 0, 1], DEFAULT_CONFIG) == 3 + G + 5
    # back-to-back final vectors are taken G cycles apart
    assert cm.requantizer_cycles([1, 1], DEFAULT_CONFIG) == G + G + 6
    assert cm.requantizer_beats([0, 1, 1]) == 2
    # steps of 0, 3 and 4 events in one vector each at E = 2: 7 events in 4 beats (the
    # empty first step's end shares the first beat)
    assert cm.compactor_beats([V(0, True), V(3, True), V(4, True, True)], DEFAULT_CONFIG) == 4


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: cm.neuron_array_cycles([], DEFAULT_CONFIG), ValueError),
        (lambda: cm.neuron_array_cycles([1.5], DEFAULT_CONFIG), ValueError),
        (lambda: cm.compactor_cycles([], DEFAULT_CONFIG), ValueError),
        (lambda: cm.compactor_cycles([3], DEFAULT_CONFIG), TypeError),
        (lambda: cm.compactor_cycles([V(3, True)], DEFAULT_CONFIG), ValueError),
        (lambda: cm.pe_array_cycles(0, DEFAULT_CONFIG), ValueError),
        (lambda: cm.requantizer_cycles([0, 0], DEFAULT_CONFIG), ValueError),
        (lambda: cm.pe_array_cycles(3, {"lanes": 16}), TypeError),
    ],
)
def test_bad_input(call, error):
    with pytest.raises(error):
        call()
