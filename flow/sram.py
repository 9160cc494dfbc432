"""Memories costed as SRAM macros, and the accesses each core makes to them (estimates).

Area and read energy per bit come from a published OpenRAM sky130 macro,
``sky130_sram_2kbyte_1rw1r_32x512_8`` of the VLSIDA ``sky130_sram_macros`` repository
(built by the OpenRAM compiler): its LEF is 483.86 x 326.1 um for 2 KB (16,384 bits), so
about 9.63 um^2 per bit with decoders, sense amplifiers and periphery included, against
20 um^2 per bit for a sky130 ``dfxtp_1`` flip-flop. A read costs about 0.16 pJ per bit;
writes are costed the same (an assumption: the macro's write energy is of the same order).
For comparison, Horowitz (ISSCC 2014) gives 10 pJ per 64-bit read of an 8 KB SRAM at
45 nm, 0.156 pJ per bit. Every memory is costed per bit (a memory smaller than a macro is
not rounded up to one, which favours no core: all have the same memories but the weights).

Access counts (:func:`accesses`) follow the RTL's memory-port enables, which fire only
when the row is used: the spike core reads one weight row per spike event and the
activation row of a chunk at every step (its neurons keep no state to write back); a dense core reads its ``D`` weight memories once per beat (one row of
``P`` weights per input) and an activation row once per chunk; every core writes a
token's chunks once and reads one row of bias and requantizer parameters per tile. They
are computed from the workload's shape, ``T`` per token and the ``EVENTS`` counter.
"""

from __future__ import annotations

__all__ = ["MACRO", "AREA_PER_BIT_UM2", "ENERGY_PER_BIT_J", "area_um2", "accesses", "access_energy"]

MACRO = {
    "name": "sky130_sram_2kbyte_1rw1r_32x512_8",
    "source": "OpenRAM sky130 macro, VLSIDA/sky130_sram_macros (LEF size)",
    "width_um": 483.86,
    "height_um": 326.1,
    "bits": 2048 * 8,
    "read_pj_per_bit": 0.16,
}
"""The published macro behind the SRAM figures."""

AREA_PER_BIT_UM2 = MACRO["width_um"] * MACRO["height_um"] / MACRO["bits"]
"""SRAM area per bit, periphery included (about 9.63 um^2)."""

ENERGY_PER_BIT_J = MACRO["read_pj_per_bit"] * 1e-12
"""Energy per bit read or written."""


def area_um2(bits: int) -> float:
    """SRAM area of ``bits`` bits of memory."""
    if bits < 0:
        raise ValueError(f"bits must be non-negative, not {bits!r}")
    return bits * AREA_PER_BIT_UM2


def accesses(kind: str, config, *, tokens: int, in_features: int, out_features: int, timesteps: list[int],
             events: int) -> dict:
    """Reads and writes per memory of one run: ``name -> {"reads", "writes", "bits"}``
    (``bits`` per access).

    ``kind``: ``spike``, ``int8`` or ``fp16``; ``in_features``/``out_features``: the real
    layer (padded here to ``lanes`` and ``pes``); ``timesteps``: ``T`` of every token;
    ``events``: the run's ``EVENTS`` counter (spike events; unused for dense cores).
    Raises ``ValueError`` for an unknown kind or a ``timesteps`` list of the wrong length.
    """
    if kind not in ("spike", "int8", "fp16"):
        raise ValueError(f"kind must be spike, int8 or fp16, not {kind!r}")
    if len(timesteps) != tokens:
        raise ValueError(f"{len(timesteps)} timestep counts for {tokens} tokens")
    c = config
    K = -(-in_features // c.lanes)
    J = -(-out_features // c.pes)
    padded = K * c.lanes
    row = c.lanes * c.act_bits
    params_bits = c.pes * (c.bias_bits + c.multiplier_bits + c.shift_bits)
    vectors = J * K * sum(timesteps) if kind == "spike" else tokens * J * K  # activation rows read
    result = {
        "activation": {"reads": vectors, "writes": tokens * K, "bits": row},
        "tile_params": {"reads": tokens * J, "writes": 0, "bits": params_bits},
    }
    if kind == "spike":
        result["weights"] = {"reads": events, "writes": 0, "bits": c.pes * c.weight_bits}
    else:
        weight_bits = 16 if kind == "fp16" else c.weight_bits
        result["weights"] = {"reads": tokens * J * padded, "writes": 0, "bits": c.pes * weight_bits}
    return result


def access_energy(counts: dict) -> dict:
    """Energy in J per memory and in total of :func:`accesses` counts."""
    per = {name: (a["reads"] + a["writes"]) * a["bits"] * ENERGY_PER_BIT_J for name, a in counts.items()}
    return {"by_memory_j": per, "total_j": sum(per.values())}
