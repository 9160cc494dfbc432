"""Cycle model functions: what they predict from first principles, and bad input."""

import pytest
from spikemllm.golden.timing import cycle_model as cm

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def test_neuron_array_takes_T_cycles_per_token():
    assert cm.neuron_array_cycles([7], DEFAULT_CONFIG) == cm.NEURON_ARRAY_LATENCY + 7
    assert cm.neuron_array_cycles([3, 4, 1], DEFAULT_CONFIG) == cm.NEURON_ARRAY_LATENCY + 8
    # T outside [1, t_max] runs what the hardware runs: clamped
    assert cm.neuron_array_beats([0, 99], DEFAULT_CONFIG) == 1 + DEFAULT_CONFIG.t_max


def test_compactor_cycles_grow_with_spikes_not_lanes():
    E = DEFAULT_CONFIG.events_per_cycle
    assert cm.compactor_vector_cycles(0, DEFAULT_CONFIG) == 1
    assert cm.compactor_vector_cycles(1, DEFAULT_CONFIG) == 1
    assert cm.compactor_vector_cycles(2 * E + 1, DEFAULT_CONFIG) == 3
    assert cm.compactor_cycles([5], [True], SMALL_CONFIG) == cm.compactor_cycles([5], [True], DEFAULT_CONFIG.__class__(
        name="wide", lanes=64, pes=8, events_per_cycle=1, max_fan_in=1024))


def test_compactor_empty_vectors():
    # an all-zero vector that ends a step still sends its end-of-step marker
    assert cm.compactor_beats([0], [True], SMALL_CONFIG) == 1
    assert cm.compactor_beats([0, 3], [False, True], SMALL_CONFIG) == 3
    assert cm.compactor_cycles([0, 3], [False, True], SMALL_CONFIG) == 1 + 1 + 3
    with pytest.raises(ValueError, match="no spike vector produces"):
        cm.compactor_cycles([0], [False], SMALL_CONFIG)


def test_pe_and_requantizer():
    assert cm.pe_array_cycles(10, DEFAULT_CONFIG) == 10 + cm.PE_ARRAY_LATENCY
    G = DEFAULT_CONFIG.requant_cycles
    assert cm.requantizer_cycles([0, 0, 1], DEFAULT_CONFIG) == 3 + G + 2
    # back-to-back final vectors are taken G cycles apart
    assert cm.requantizer_cycles([1, 1], DEFAULT_CONFIG) == G + G + 3
    assert cm.requantizer_beats([0, 1, 1]) == 2
    assert cm.spike_linear_event_beats([0, 3, 4], DEFAULT_CONFIG) == 1 + 2 + 2


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: cm.neuron_array_cycles([], DEFAULT_CONFIG), ValueError),
        (lambda: cm.neuron_array_cycles([1.5], DEFAULT_CONFIG), ValueError),
        (lambda: cm.compactor_vector_cycles(17, DEFAULT_CONFIG), ValueError),
        (lambda: cm.compactor_cycles([1, 2], [True], DEFAULT_CONFIG), ValueError),
        (lambda: cm.pe_array_cycles(0, DEFAULT_CONFIG), ValueError),
        (lambda: cm.requantizer_cycles([0, 0], DEFAULT_CONFIG), ValueError),
        (lambda: cm.pe_array_cycles(3, {"lanes": 16}), TypeError),
    ],
)
def test_bad_input(call, error):
    with pytest.raises(error):
        call()
