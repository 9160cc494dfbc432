"""Payload layouts and stream signatures shared by the accelerator blocks.

Every data interface between blocks is an :class:`amaranth.lib.stream.Signature` whose
payload is one of the :class:`~amaranth.lib.data.StructLayout` s built here from an
:class:`~spikemllm.config.AcceleratorConfig`. One function per payload, so that a producer
and its consumer always agree on the layout, and the testbenches pack and unpack the same
layouts (:mod:`spikemllm.sim.payload`).

Spikes are ternary and carried as 2-bit two's complement (``-1 = 0b11``, ``0``, ``+1``).

Payloads (``E`` = events per cycle, ``P`` = PEs, ``B`` = tokens per bundle; the fields that
hold one value per token of a bundle are as shown for ``B = 1`` and gain a leading index
``[B]`` for ``B > 1``):

=====================  ==========================================================================
``activation_vector``  ``values[lanes]`` signed activations, ``timesteps`` (T of this token),
                       ``base`` (input index of lane 0, a multiple of ``lanes``)
``spike_vector``       ``spikes[lanes]`` ternary, ``base``, ``step`` (t), ``step_end`` (this vector
                       completes timestep t), ``last`` (t is the tile's final step), ``more``
                       (with ``last``: the next tile's vectors follow at once)
``event_beat``         ``events[E]`` of ``{valid, negative, index}`` (``B > 1``: ``{valid, index,
                       fire[B], negative[B]}``: the tokens that fire at the index) packed from slot 0,
                       ``step_end`` (a step ends in the beat), ``split`` (events before
                       the step end), ``last`` (the step that ends is the tile's final one)
``weight_write``       ``addr`` (input index), ``row[P]`` signed weights
``accumulator_vector`` ``acc[P]`` signed accumulators, ``step``, ``last``
``bundle_accumulator`` ``acc[B][P]``, ``step``, ``last``: the PE array's output with ``B > 1``
``requant_params``     ``bias[P]`` signed, ``multiplier[P]`` unsigned, ``shift[P]`` unsigned
``output_vector``      ``values[P]`` signed requantized outputs
=====================  ==========================================================================
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream

from spikemllm.config import AcceleratorConfig

__all__ = [
    "SPIKE_SHAPE",
    "activation_vector_layout",
    "spike_vector_layout",
    "event_layout",
    "event_beat_layout",
    "weight_write_layout",
    "accumulator_vector_layout",
    "bundle_accumulator_layout",
    "requant_params_layout",
    "output_vector_layout",
    "ActivationStream",
    "SpikeVectorStream",
    "EventStream",
    "WeightWriteStream",
    "AccumulatorStream",
    "BundleAccumulatorStream",
    "RequantParamsStream",
    "OutputStream",
]

SPIKE_SHAPE = signed(2)
"""A ternary spike: -1, 0 or +1 in two's complement."""


def _check(config) -> AcceleratorConfig:
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    return config


def activation_vector_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One token's activations for the neuron array, with its timestep count."""
    c = _check(config)
    return data.StructLayout({
        "values": data.ArrayLayout(signed(c.act_bits), c.lanes),
        "timesteps": unsigned(c.timesteps_width),
        "base": unsigned(c.index_width),
    })


def spike_vector_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One timestep of ternary spikes of ``lanes`` neurons."""
    c = _check(config)
    spikes = data.ArrayLayout(SPIKE_SHAPE, c.lanes)
    return data.StructLayout({
        "spikes": spikes if c.bundle == 1 else data.ArrayLayout(spikes, c.bundle),
        "base": unsigned(c.index_width),
        "step": unsigned(c.step_width),
        "step_end": 1,
        "last": 1,
        "more": 1,
    })


def event_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One spike event: the input index that fired and whether the spike was -1; with
    ``bundle > 1``, which of the bundle's tokens fire at the index (``fire``) and with which
    sign (``negative``), all served by one weight-row read."""
    c = _check(config)
    if c.bundle > 1:
        return data.StructLayout({
            "valid": 1,
            "index": unsigned(c.index_width),
            "fire": c.bundle,
            "negative": c.bundle,
        })
    return data.StructLayout({
        "valid": 1,
        "negative": 1,
        "index": unsigned(c.index_width),
    })


def event_beat_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Up to ``events_per_cycle`` events, valid ones first, and at most one step boundary:
    with ``step_end``, the events before slot ``split`` complete the current step and the
    rest start the next one (of the next tile after ``last``). Without it, ``split`` is
    the number of events."""
    c = _check(config)
    return data.StructLayout({
        "events": data.ArrayLayout(event_layout(c), c.events_per_cycle),
        "step_end": 1,
        "split": range(c.events_per_cycle + 1),
        "last": 1,
    })


def weight_write_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One weight-memory row: the ``pes`` weights that input ``addr`` contributes."""
    c = _check(config)
    return data.StructLayout({
        "addr": unsigned(c.index_width),
        "row": data.ArrayLayout(signed(c.weight_bits), c.pes),
    })


def accumulator_vector_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Accumulators of the ``pes`` channels after timestep ``step`` (the bias is the requantizer's)."""
    c = _check(config)
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(c.acc_width), c.pes),
        "step": unsigned(c.step_width),
        "last": 1,
    })


def bundle_accumulator_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Accumulators of the ``pes`` channels of each of the ``bundle`` tokens after timestep ``step``."""
    c = _check(config)
    return data.StructLayout({
        "acc": data.ArrayLayout(data.ArrayLayout(signed(c.acc_width), c.pes), c.bundle),
        "step": unsigned(c.step_width),
        "last": 1,
    })


def requant_params_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Per-channel biases, fixed-point multipliers and right shifts of the requantizer."""
    c = _check(config)
    return data.StructLayout({
        "bias": data.ArrayLayout(signed(c.bias_bits), c.pes),
        "multiplier": data.ArrayLayout(unsigned(c.multiplier_bits), c.pes),
        "shift": data.ArrayLayout(unsigned(c.shift_bits), c.pes),
    })


def output_vector_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Requantized outputs of the ``pes`` channels (the next layer's activations)."""
    c = _check(config)
    return data.StructLayout({"values": data.ArrayLayout(signed(c.out_bits), c.pes)})


def _stream(layout_fn):
    def make(config: AcceleratorConfig) -> stream.Signature:
        return stream.Signature(layout_fn(config))

    make.__name__ = layout_fn.__name__.replace("_layout", "_stream")
    make.__doc__ = f"Valid/ready stream of :func:`{layout_fn.__name__}` payloads."
    return make


ActivationStream = _stream(activation_vector_layout)
SpikeVectorStream = _stream(spike_vector_layout)
EventStream = _stream(event_beat_layout)
WeightWriteStream = _stream(weight_write_layout)
AccumulatorStream = _stream(accumulator_vector_layout)
BundleAccumulatorStream = _stream(bundle_accumulator_layout)
RequantParamsStream = _stream(requant_params_layout)
OutputStream = _stream(output_vector_layout)
