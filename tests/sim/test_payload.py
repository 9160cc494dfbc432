"""PayloadCodec: flat port integers <-> nested payload values, with errors naming the field."""

import pytest
from amaranth.hdl import Shape
from spikemllm.hw import signatures as sig
from spikemllm.sim.payload import PayloadCodec

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def test_round_trip_and_layout_positions():
    c = SMALL_CONFIG
    codec = PayloadCodec(sig.spike_vector_layout(c))
    value = {"spikes": [-1, 0, 1, 1, 0, -1, 0, 1], "base": 8, "step": 3, "step_end": 1, "last": 0, "more": 0}
    bits = codec.pack(value)
    assert codec.unpack(bits) == value
    assert codec.width == Shape.cast(sig.spike_vector_layout(c)).width
    assert bits & 0b11 == 0b11  # lane 0 holds -1 in two's complement at the lowest bits


def test_signed_and_unsigned_fields_check_their_range():
    codec = PayloadCodec(sig.accumulator_vector_layout(DEFAULT_CONFIG))
    top = (1 << (DEFAULT_CONFIG.acc_width - 1)) - 1
    acc = [top, -top - 1] + [0] * (DEFAULT_CONFIG.pes - 2)
    assert codec.unpack(codec.pack({"acc": acc, "step": 0, "last": 1}))["acc"] == acc
    with pytest.raises(ValueError, match=r"payload.acc\[0\]"):
        codec.pack({"acc": [top + 1] + [0] * (DEFAULT_CONFIG.pes - 1)})
    with pytest.raises(ValueError, match="unknown fields"):
        codec.pack({"acc": acc, "bogus": 1})
    with pytest.raises(ValueError, match="elements"):
        codec.pack({"acc": [0]})
