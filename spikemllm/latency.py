"""Latencies of the hardware blocks, in cycles: the one home that the blocks
(:mod:`spikemllm.hw`, their ``latency`` properties) and the cycle models
(:mod:`spikemllm.golden.timing`) both read.

Pure Python, so that generating Verilog needs neither torch nor the golden model.

==========================  =======  ============================================
block                       latency  from its handshake to its output being valid
==========================  =======  ============================================
TC-LIF neuron array         1        activation vector -> first spike vector
spike-event compactor       3        spike vector -> first event beat (FIFO
                                     write, beat plan, event selection)
sparse-accumulate PE array  3        step-ending event beat -> accumulator vector
                                     (weight-memory read, sums, accumulate)
dense MAC array, INT8       4        final input -> accumulator vector (weight
                                     read, read row registered, multiply, adder
                                     tree and accumulate)
dense MAC array, FP16       8+2lg D  weight read, read row registered, multiply,
                                     two stages per level of the D-input FP32
                                     tree (align; add and round), accumulate (2),
                                     combine the two accumulators (2),
                                     conversion to integer
requantizer                 G + 5    final accumulator vector -> output vector
                                     (G = pes / requantizers groups through
                                     bias add, multiply, rounding, shift,
                                     saturate)
==========================  =======  ============================================

The cores' shell begins a token's tiles back to back (each next tile in the cycle the
datapath issues the previous one's final work item), so fill and drain cost nothing
within a token; a token costs :data:`TOKEN_SWITCH` cycles of the sequencer before its
first tile begins. :mod:`spikemllm.golden.timing.core_model` steps the whole timeline.
"""

from __future__ import annotations

__all__ = [
    "NEURON_ARRAY_LATENCY",
    "COMPACTOR_LATENCY",
    "COMPACTOR_DEPTH",
    "PE_ARRAY_LATENCY",
    "mac_array_latency",
    "requantizer_latency",
    "TOKEN_LOOKUP",
    "TOKEN_BEGIN",
    "TOKEN_SWITCH",
]

NEURON_ARRAY_LATENCY = 1
"""Cycles from an activation vector's handshake to its first spike vector being valid."""

COMPACTOR_LATENCY = 3
"""Cycles from a spike vector's handshake to its first event beat being valid: the vector
is written into the compactor's FIFO, the beat is planned from the FIFO's counts, then
its events are selected (when the beat does not wait for a second vector)."""

COMPACTOR_DEPTH = 8
"""Spike vectors the compactor's FIFO holds (a power of two). Deep enough for the neuron
stage to run ahead through sparse timesteps while the compactor works through dense ones
(measured on MiniLM activations: 4 loses about 3% of the event slots against 8, 16 gains
under 1%)."""

PE_ARRAY_LATENCY = 3
"""Cycles from a step-ending event beat's handshake to its accumulator vector being valid
(one cycle of weight-memory read, one of the beat's sums, one of accumulation)."""

def mac_array_latency(arithmetic: str, inputs: int) -> int:
    """Cycles from a tile's final beat's handshake to the dense MAC array's accumulator
    vector: weight-memory read, the read rows registered, multiply, then for ``"int8"``
    the adder tree and accumulation in one stage; for ``"fp16"`` two stages per level of
    the ``inputs``-wide FP32 tree (``log2(inputs)`` levels: align, then add, normalize and
    round), the two-stage accumulation into two interleaved accumulators, their two-stage
    combination and the conversion to an integer."""
    if arithmetic == "int8":
        return 4
    return 8 + 2 * (inputs.bit_length() - 1)


def requantizer_latency(config) -> int:
    """Cycles from a final accumulator vector's handshake to its output vector being valid:
    its ``G = pes / requantizers`` groups enter the first of five stages (bias add,
    multiply, rounding bias, shift, saturate) one per cycle from the
    cycle after the handshake, and the last one leaves the fifth stage ``G + 5`` cycles
    after the handshake."""
    return config.requant_cycles + 5


# -- the cores' timeline ------------------------------------------------------------------

TOKEN_LOOKUP = 1
"""The sequencer's cycle looking up a token's ``T`` once its activations are loaded."""

TOKEN_BEGIN = 1
"""The sequencer's cycle beginning a token's first tile (the datapath issues from the next)."""

TOKEN_SWITCH = TOKEN_LOOKUP + TOKEN_BEGIN
"""Cycles from the datapath issuing a token's last work item to issuing the next token's
first one, beyond the one cycle per item (the next token loaded already): 2."""
