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
sparse-accumulate PE array  2        step-ending event beat -> accumulator vector
                                     (weight-memory read, accumulate)
dense MAC array, INT8       3        final input -> accumulator vector (weight
                                     read, multiply, adder tree and accumulate)
dense MAC array, FP16       7+lg D   weight read, multiply, one FP32 add per
                                     level of the D-input tree, accumulate (2:
                                     align; add and round), combine the two
                                     accumulators (2), conversion to integer
requantizer                 G + 2    final accumulator vector -> output vector
                                     (G = pes / requantizers groups through
                                     multiply; round, shift and saturate)
==========================  =======  ============================================

A core spends :data:`TILE_OVERHEAD` cycles per token and output tile outside its
datapath's work, built below from the pieces of the tile's timeline, plus
:data:`TOKEN_LOOKUP` per token and the requantizer's last tile at the end of a run.
"""

from __future__ import annotations

__all__ = [
    "NEURON_ARRAY_LATENCY",
    "COMPACTOR_LATENCY",
    "COMPACTOR_DEPTH",
    "PE_ARRAY_LATENCY",
    "mac_array_latency",
    "requantizer_latency",
    "TILE_PARAMS_LOAD",
    "NEURON_STAGE_FILL",
    "FEEDER_FILL",
    "TILE_END_DETECT",
    "FIRST_TOKEN_LOOKUP",
    "TOKEN_LOOKUP",
    "REQUANTIZER_CAPTURE",
    "TILE_OVERHEAD",
    "dense_tile_overhead",
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

PE_ARRAY_LATENCY = 2
"""Cycles from a step-ending event beat's handshake to its accumulator vector being valid
(one cycle of weight-memory read, one of accumulation)."""

def mac_array_latency(arithmetic: str, inputs: int) -> int:
    """Cycles from a tile's final beat's handshake to the dense MAC array's accumulator
    vector: weight-memory read, multiply, then for ``"int8"`` the adder tree and
    accumulation in one stage; for ``"fp16"`` one stage per level of the ``inputs``-wide
    FP32 tree (``log2(inputs)``), the two-stage accumulation into two interleaved
    accumulators, their two-stage combination and the conversion to an integer."""
    if arithmetic == "int8":
        return 3
    return 7 + inputs.bit_length() - 1


def requantizer_latency(config) -> int:
    """Cycles from a final accumulator vector's handshake to its output vector being valid:
    its ``G = pes / requantizers`` groups enter the multiply stage one per cycle from the
    cycle after the handshake, and the last one is rounded, shifted and saturated a cycle
    later (``G + 2``)."""
    return config.requant_cycles + 2


# -- the cores' timeline ------------------------------------------------------------------

TILE_PARAMS_LOAD = 1
"""The tile sequencer's cycle loading a tile's bias and requantizer parameters into the
requantizer's pending set (the previous tile's groups may still be in the requantizer)."""

NEURON_STAGE_FILL = 2
"""The spike core's neuron stage before its first spike vector: membrane-memory read, spike register."""

FEEDER_FILL = 2
"""The dense cores' feeder before its first input: activation-memory read, input register."""

REQUANTIZER_CAPTURE = 1
"""The cycle in which the requantizer takes a tile's final accumulator vector (the PE
array's output register) into its buffer."""

TILE_END_DETECT = 1
"""The tile sequencer's cycle noticing that the requantizer took the tile's final accumulators."""

FIRST_TOKEN_LOOKUP = 1
"""Cycles between the first token's last chunk and its parameter load (the timestep-table lookup)."""

TOKEN_LOOKUP = 1
"""The scheduler's cycle looking up a token's ``T`` before its first tile."""

TILE_OVERHEAD = TILE_PARAMS_LOAD + NEURON_STAGE_FILL + PE_ARRAY_LATENCY + REQUANTIZER_CAPTURE + TILE_END_DETECT
"""Cycles per token and output tile of the spike core outside the compactor's work: parameter
load, neuron-stage fill, the PE array's drain of the tile's final step, the requantizer's
capture of it and its detection (7). The requantizer's work on the tile overlaps the next
tile; the last tile's is the run's tail."""


def dense_tile_overhead(arithmetic: str, inputs: int) -> int:
    """Cycles per token and output tile of a dense core outside its one cycle per beat of
    ``inputs`` inputs. The MAC array's weight read of the final beat happens in the cycle
    the beat is taken, which that beat's cycle already counts, so only the rest of the
    array's latency drains (7 for INT8)."""
    return (TILE_PARAMS_LOAD + FEEDER_FILL + (mac_array_latency(arithmetic, inputs) - 1) + REQUANTIZER_CAPTURE
            + TILE_END_DETECT)
