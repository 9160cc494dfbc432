"""Test cases for the blocks: hand-picked edges, seeded random tiles and real captured data.

Every case is a :class:`~.expect.LinearCase`; what each block must do with it comes from
:mod:`.expect` (i.e. from the golden model), never from numbers written here.
"""

from __future__ import annotations

import json
from importlib import resources

import torch

from spikemllm.config import AcceleratorConfig

from .expect import LinearCase

__all__ = [
    "FIXTURE",
    "random_case",
    "edge_cases",
    "extreme_accumulator_case",
    "real_data_case",
    "requantizer_vectors",
]

FIXTURE = resources.files("spikemllm.sim") / "fixtures" / "minilm_layer0_ffn.json"
"""Real MiniLM activations and weights, quantized per configuration; made by
``python -m spikemllm.sim.fixtures.make_minilm_fixture``."""


def _params(config: AcceleratorConfig, g: torch.Generator, fan_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Multipliers with their top bit set and shifts that map a typical accumulator into
    the output range, with some channels shifted by 0 (saturating) and some by the most."""
    P, mb = config.pes, config.multiplier_bits
    mult = torch.randint(1 << (mb - 1), 1 << mb, (P,), generator=g)
    typical = max(1, config.act_max * config.weight_max * max(1, fan_in) // 4)
    base = min(config.max_shift, max(0, typical.bit_length() + mb - config.out_bits))
    shift = (base + torch.randint(-2, 3, (P,), generator=g)).clamp(0, config.max_shift)
    shift[0] = 0
    if P > 1:
        shift[-1] = config.max_shift
    return mult, shift


def random_case(config: AcceleratorConfig, *, seed: int, tokens: int = 4, chunks: int = 1,
                density: float = 0.6, timesteps: list[int] | None = None) -> LinearCase:
    """Seeded random tile: per-token ``T`` in ``[1, t_max]``, activations in the range ``T``
    carries (a ``density`` fraction non-zero), uniform weights and biases."""
    g = torch.Generator().manual_seed(seed)
    fan_in = chunks * config.lanes
    if timesteps is None:
        timesteps = torch.randint(1, config.t_max + 1, (tokens,), generator=g).tolist()
    rows = []
    for T in timesteps:
        m = config.coding.max_value(T)
        q = torch.randint(-m, m + 1, (fan_in,), generator=g)
        keep = torch.rand(fan_in, generator=g) < density
        rows.append(q * keep)
    Qw = config.weight_max
    weight = torch.randint(-Qw, Qw + 1, (config.pes, fan_in), generator=g)
    B = 1 << (config.bias_bits - 1)
    bias = torch.randint(-B, B, (config.pes,), generator=g)
    mult, shift = _params(config, g, fan_in)
    return LinearCase(config, torch.stack(rows), list(timesteps), weight, bias, mult, shift, name=f"random{seed}")


def edge_cases(config: AcceleratorConfig) -> list[LinearCase]:
    """Hand-picked tiles: all-zero spikes, every lane firing every step, T=1, T=T_max,
    saturating inputs (beyond what T carries, including the most negative activation),
    max-magnitude weights of both signs."""
    c = config
    lanes, P, Tm, Qw = c.lanes, c.pes, c.t_max, c.weight_max
    g = torch.Generator().manual_seed(1234)
    full = c.act_max
    most_negative = -(1 << (c.act_bits - 1))
    alternating = torch.tensor([full if n % 2 == 0 else -full for n in range(lanes)])
    rows = [
        (torch.zeros(lanes, dtype=torch.int64), 1),               # all-zero, T=1
        (torch.zeros(lanes, dtype=torch.int64), Tm),              # all-zero, T=T_max
        (torch.full((lanes,), full), Tm),                         # every lane fires every step
        (alternating, Tm),                                        # every lane, mixed signs
        (torch.tensor([(n % 3) - 1 for n in range(lanes)]), 1),   # T=1 carries -1, 0, +1
        (torch.full((lanes,), most_negative), Tm),                # saturates to -act_max
        (torch.tensor([most_negative, (1 << (c.act_bits - 1)) - 1] * (lanes // 2)), 1),  # saturate at T=1
        (torch.randint(-full, full + 1, (lanes,), generator=g), Tm),
    ]
    q = torch.stack([r for r, _ in rows])
    timesteps = [T for _, T in rows]
    weight = torch.where(torch.arange(lanes) % 2 == 0, Qw, -Qw).expand(P, lanes).clone()
    weight[P // 2:] = -weight[P // 2:]
    B = 1 << (c.bias_bits - 1)
    bias = torch.tensor([B - 1 if p % 2 else -B for p in range(P)])
    mult, shift = _params(c, g, lanes)
    return [LinearCase(c, q, timesteps, weight, bias, mult, shift, name="edges")]


def extreme_accumulator_case(config: AcceleratorConfig) -> LinearCase:
    """The largest accumulators the configuration allows: ``max_fan_in`` inputs all at
    ``+/-act_max`` for ``t_max`` steps through ``+/-weight_max`` weights, with the most
    positive and most negative bias, so every PE reaches ``+/-acc_bound``."""
    c = config
    fan_in = c.max_fan_in
    q = torch.stack([torch.full((fan_in,), c.act_max), torch.full((fan_in,), -c.act_max)])
    sign = torch.tensor([1 if p % 2 == 0 else -1 for p in range(c.pes)])
    weight = (sign * c.weight_max).unsqueeze(1).expand(c.pes, fan_in).clone()
    B = 1 << (c.bias_bits - 1)
    bias = torch.where(sign > 0, B - 1, -B)
    mult = torch.full((c.pes,), (1 << c.multiplier_bits) - 1)
    shift = torch.full((c.pes,), c.max_shift)
    return LinearCase(c, q, [c.t_max, c.t_max], weight, bias, mult, shift, name="extremes")


def real_data_case(config: AcceleratorConfig, *, tokens: int | None = None) -> LinearCase:
    """Activations and weights captured from MiniLM's layer-0 FFN input projection,
    quantized for ``config`` by the checked-in fixture script. Raises ``KeyError`` if the
    fixture has no entry for ``config.name`` and ``ValueError`` if the entry was made for
    a different configuration."""
    description = json.loads(FIXTURE.read_text())
    entry = description["configs"][config.name]
    if any(entry["config"][name] != getattr(config, name) for name in entry["config"]):
        raise ValueError(f"fixture entry {config.name!r} was made for a different configuration; regenerate it")
    n = len(entry["timesteps"]) if tokens is None else tokens
    t = lambda key: torch.tensor(entry[key], dtype=torch.int64)  # noqa: E731
    return LinearCase(
        config, t("q")[:n], entry["timesteps"][:n], t("weight"), t("bias"), t("multiplier"), t("shift"),
        name="minilm", notes={"layer": description["layer"]},
    )


def requantizer_vectors(config: AcceleratorConfig, *, seed: int, count: int = 24):
    """Accumulator vectors for the requantizer alone, covering the whole accumulator range.

    Returns ``(beats, acc, bias, multiplier, shift, lasts)``: ``beats`` carry the
    accumulators ``acc`` with a mix of final and intermediate vectors (``lasts``); the
    requantizer adds ``bias``. Within the PE array's contract (``|acc| <= S =
    act_max * max_fan_in * weight_max``, biases of ``bias_bits``), rows include
    ``acc = +/-S`` and ``acc = 0``; channel 0's bias is the largest and the last
    channel's the most negative, so ``y = acc + bias`` reaches ``acc_bound - 1`` and
    ``-acc_bound``. Channel 0 shifts by 0 (saturates), the last channel by the largest
    shift, and channel 1 (with three or more PEs) has bias 0 and multiplier 1 so that its
    ``y`` values hit exact rounding ties ``(2k+1) * 2^(S-1)`` of both signs.
    """
    c = config
    g = torch.Generator().manual_seed(seed)
    P = c.pes
    mult, shift = _params(c, g, c.lanes)
    B = 1 << (c.bias_bits - 1)
    bias = torch.randint(-B, B, (P,), generator=g)
    bias[0], bias[-1] = B - 1, -B
    S = c.acc_bound - B
    rows = [torch.full((P,), S), torch.full((P,), -S), torch.zeros(P, dtype=torch.int64)]
    for _ in range(count - len(rows)):
        scale = 1 << int(torch.randint(0, S.bit_length(), (1,), generator=g))
        rows.append(torch.randint(-min(scale, S), min(scale, S) + 1, (P,), generator=g))
    acc = torch.stack(rows)
    if P >= 3:
        bias[1], mult[1] = 0, 1
        shift[1] = int(torch.randint(1, min(c.max_shift, S.bit_length() - 1) + 1, (1,), generator=g))
        half = 1 << (int(shift[1]) - 1)
        odd = 2 * torch.randint(0, max(1, S // (2 * half)), (len(rows),), generator=g) + 1
        sign = torch.where(torch.arange(len(rows)) % 2 == 0, 1, -1)
        acc[3:, 1] = (sign * odd * half)[3:].clamp(-S, S)
    lasts = (torch.rand(len(rows), generator=g) < 0.7).long()
    lasts[-1] = 1
    beats = [{"acc": acc[n].tolist(), "step": 0, "last": int(lasts[n])} for n in range(len(rows))]
    return beats, acc, bias, mult, shift, lasts
