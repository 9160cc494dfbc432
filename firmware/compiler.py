"""Layer compiler: a converted layer and a timestep schedule -> memory images and commands.

:func:`compile_layer` turns a golden :class:`~spikemllm.golden.layer.IntegerLayer` into
what a :class:`~spikemllm.hw.core.SpikeCore` built for ``config`` loads:

* the layer padded to whole spike vectors and tiles (``in`` to a multiple of ``lanes``,
  ``out`` to a multiple of ``pes``; padded inputs get zero weights, padded outputs zero
  weights, bias and a unit multiplier, and are dropped from the results);
* weight rows: for output tile ``j`` and input ``i``, the ``pes`` weights
  ``W[j*pes : (j+1)*pes, i]`` at row ``j * IN + i``;
* per-tile biases and requantizer multipliers and shifts.

:func:`timestep_table` turns a schedule (:class:`~spikemllm.golden.convert.schedule.Schedule`,
the JSON file of the conversion flow) into the core's ``TTABLE`` entries, and
:func:`token_beats` / :func:`expected_outputs` give the input beats and the golden output
beats of a token sequence. Everything that does not fit the hardware raises
``ValueError`` naming the value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from spikemllm.golden.convert.schedule import Schedule
from spikemllm.golden.layer import IntegerLayer, run_integer_layer

from spikemllm.config import AcceleratorConfig
from spikemllm.modality import MODALITIES, Modality, timestep_entries, timestep_index

__all__ = ["LayerProgram", "compile_layer", "timestep_table", "load_timestep_table", "token_beats", "expected_outputs",
           "token_timesteps", "layer_tags"]


@dataclass(frozen=True)
class LayerProgram:
    """Memory images and shape of one layer for one core configuration."""

    config: AcceleratorConfig
    layer: IntegerLayer
    """the padded integer layer the hardware computes"""
    in_features: int
    """logical input features (before padding)"""
    out_features: int
    """logical output features (before padding)"""
    weight_rows: tuple[tuple[int, tuple[int, ...]], ...]
    bias_tiles: tuple[tuple[int, tuple[int, ...]], ...]
    param_tiles: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]

    @property
    def padded_in(self) -> int:
        return self.layer.in_features

    @property
    def padded_out(self) -> int:
        return self.layer.out_features

    @property
    def in_chunks(self) -> int:
        return self.padded_in // self.config.lanes

    @property
    def out_tiles(self) -> int:
        return self.padded_out // self.config.pes


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def compile_layer(config: AcceleratorConfig, layer: IntegerLayer) -> LayerProgram:
    """Pad, tile and check ``layer`` for ``config``; raise ``ValueError`` if it cannot run."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    if not isinstance(layer, IntegerLayer):
        raise TypeError(f"layer must be an IntegerLayer, not {type(layer).__name__}")
    if layer.weight_bits > config.weight_bits:
        raise ValueError(f"layer has {layer.weight_bits}-bit weights; the core holds {config.weight_bits}-bit weights")
    if layer.out_bits != config.out_bits:
        raise ValueError(f"layer requantizes to {layer.out_bits} bits; the core is built for out_bits={config.out_bits}")
    n_out, n_in = layer.weight.shape
    pin, pout = _round_up(n_in, config.lanes), _round_up(n_out, config.pes)
    tiles = pout // config.pes
    if pin > config.max_fan_in:
        raise ValueError(f"in_features={n_in} (padded {pin}) exceeds the core's max_fan_in={config.max_fan_in}")
    if tiles > config.max_out_tiles:
        raise ValueError(f"out_features={n_out} needs {tiles} tiles of {config.pes}; the core holds {config.max_out_tiles}")
    if pin * tiles > config.max_fan_in:
        raise ValueError(
            f"{pin} inputs x {tiles} output tiles = {pin * tiles} weight rows exceed the weight memory's {config.max_fan_in}"
        )
    bias_max = (1 << (config.bias_bits - 1)) - 1
    if int(layer.bias.abs().max()) > bias_max:
        raise ValueError(f"a bias of {int(layer.bias.abs().max())} does not fit bias_bits={config.bias_bits}")
    if int(layer.multiplier.max()) >= 1 << config.multiplier_bits:
        raise ValueError(f"a multiplier of {int(layer.multiplier.max())} does not fit multiplier_bits={config.multiplier_bits}")
    if int(layer.shift.max()) > config.max_shift:
        raise ValueError(f"a shift of {int(layer.shift.max())} exceeds the core's max_shift={config.max_shift}")

    weight = torch.zeros(pout, pin, dtype=torch.int64)
    weight[:n_out, :n_in] = layer.weight
    bias = torch.zeros(pout, dtype=torch.int64)
    bias[:n_out] = layer.bias
    mult = torch.full((pout,), 1 << (config.multiplier_bits - 1), dtype=torch.int64)
    mult[:n_out] = layer.multiplier
    shift = torch.full((pout,), config.multiplier_bits - 1, dtype=torch.int64).clamp(max=config.max_shift)
    shift[:n_out] = layer.shift
    padded = IntegerLayer(weight, bias, mult, shift, out_bits=layer.out_bits, weight_bits=layer.weight_bits)

    P = config.pes
    rows = tuple(
        (j * pin + i, tuple(int(v) for v in weight[j * P:(j + 1) * P, i]))
        for j in range(tiles) for i in range(pin)
    )
    biases = tuple((j, tuple(int(v) for v in bias[j * P:(j + 1) * P])) for j in range(tiles))
    params = tuple(
        (j, tuple(int(v) for v in mult[j * P:(j + 1) * P]), tuple(int(v) for v in shift[j * P:(j + 1) * P]))
        for j in range(tiles)
    )
    return LayerProgram(config, padded, n_in, n_out, rows, biases, params)


def timestep_table(config: AcceleratorConfig, schedule: Schedule) -> list[int]:
    """``TTABLE`` entries (at :func:`~spikemllm.modality.timestep_index`) from a schedule; 0 = not programmed.

    Raises ``ValueError`` if the schedule has more layers than the table or a ``T`` above
    the core's ``t_max``.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, not {type(schedule).__name__}")
    rows = schedule.table()
    if len(rows) > config.layers:
        raise ValueError(f"schedule has {len(rows)} layers; the core's timestep table holds {config.layers}")
    entries = [0] * timestep_entries(config.layers)
    for index, (name, row) in enumerate(zip(schedule.layers, rows)):
        for tag, T in enumerate(row):
            if T > config.t_max:
                raise ValueError(
                    f"schedule gives layer {name!r} {MODALITIES[tag]} T={T}, above the core's t_max={config.t_max}"
                )
            entries[timestep_index(index, tag)] = T
    return entries


def load_timestep_table(config: AcceleratorConfig, path) -> list[int]:
    """``TTABLE`` entries from a schedule file (:meth:`Schedule.load` checks its format)."""
    return timestep_table(config, Schedule.load(path))


def layer_tags(layer_index, tokens: int) -> list[int]:
    """Each token's layer tag: ``layer_index`` is one tag for every token or a sequence of
    ``tokens`` tags (a run may mix tokens of several layers of the timestep table)."""
    if isinstance(layer_index, int):
        return [layer_index] * tokens
    tags = [int(t) for t in torch.as_tensor(layer_index).flatten().tolist()]
    if len(tags) != tokens:
        raise ValueError(f"{len(tags)} layer tags for {tokens} tokens")
    return tags


def token_timesteps(table: list[int], modality: torch.Tensor, layer_index) -> torch.Tensor:
    """Per-token ``T`` the core will use: ``table[timestep_index(layer, modality)]``;
    ``layer_index`` is one layer tag or one per token (:func:`layer_tags`)."""
    tags = layer_tags(layer_index, len(modality))
    return torch.tensor([table[timestep_index(n, int(m))] for n, m in zip(tags, modality)], dtype=torch.int64)


def _check_tokens(program: LayerProgram, q: torch.Tensor, modality: torch.Tensor) -> None:
    if q.dim() != 2 or q.shape[1] != program.in_features:
        raise ValueError(f"q must have shape (tokens, {program.in_features}), not {tuple(q.shape)}")
    if modality.shape != (q.shape[0],):
        raise ValueError(f"modality must have shape ({q.shape[0]},), not {tuple(modality.shape)}")
    tags = [int(m) for m in Modality]
    if not bool(torch.isin(modality, torch.tensor(tags)).all()):
        raise ValueError(f"modality tags must be {' or '.join(f'{int(m)} ({m.label})' for m in Modality)}")


def token_beats(program: LayerProgram, q: torch.Tensor, modality: torch.Tensor, layer_index) -> list[dict]:
    """Input beats for tokens ``q`` ``(tokens, in)``: ``in_chunks`` chunks per token, padded;
    ``layer_index`` is one layer tag or one per token (:func:`layer_tags`)."""
    _check_tokens(program, q, modality)
    c = program.config
    limit = (1 << (c.act_bits - 1)) - 1
    if q.numel() and int(q.abs().max()) > limit:
        raise ValueError(f"activation {int(q.abs().max())} does not fit act_bits={c.act_bits}")
    tags = layer_tags(layer_index, q.shape[0])
    for tag in tags:
        if not 0 <= tag < c.layers:
            raise ValueError(f"layer_index must be in [0, {c.layers - 1}], not {tag!r}")
    padded = torch.zeros(q.shape[0], program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = q
    beats = []
    for t, row in enumerate(padded.tolist()):
        for k in range(program.in_chunks):
            beats.append({
                "values": row[k * c.lanes:(k + 1) * c.lanes],
                "modality": int(modality[t]),
                "layer": tags[t],
            })
    return beats


def expected_outputs(program: LayerProgram, q: torch.Tensor, timesteps: torch.Tensor) -> list[dict]:
    """Golden output beats (one per tile per token) for tokens ``q`` with per-token ``T``."""
    c = program.config
    padded = torch.zeros(q.shape[0], program.padded_in, dtype=torch.int64)
    padded[:, : program.in_features] = q
    out = torch.empty(q.shape[0], program.padded_out, dtype=torch.int64)
    for T in timesteps.unique().tolist():
        rows = timesteps == T
        out[rows] = run_integer_layer(program.layer, padded[rows], int(T)).out
    beats = []
    for row in out.tolist():
        for j in range(program.out_tiles):
            beats.append({"values": row[j * c.pes:(j + 1) * c.pes], "tile": j, "last": int(j == program.out_tiles - 1)})
    return beats
