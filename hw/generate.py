"""Emit Verilog for every accelerator block, plus a JSON description of the configuration.

``python -m spikemllm.hw.generate --out build/verilog [--config default]`` writes one file
per block, named for what the block is (``tclif_neuron_array.v``,
``spike_event_compactor.v``, ``sparse_accumulate_pe_array.v``, ``requantizer.v``, the
top level ``spike_core.v`` and the dense baselines ``dense_int8_core.v`` and
``dense_fp16_core.v``), and
``config.json`` (parameters, derived widths, block latencies and each block's ports).
A block the configuration cannot build (the FP16 baseline with activations wider than
FP16 holds exactly) is left out, and ``config.json`` says why under ``skipped``.

Output is deterministic: no source locations, dates or absolute paths are written, so a
rerun is byte-identical. The configuration is validated when it is constructed, before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value

from spikemllm.config import AcceleratorConfig, add_config_arguments, config_from_args

from .blocks import BLOCKS, block_component, block_refusal, check_block, supported_blocks

__all__ = ["block_verilog", "describe", "generate", "main"]


def _emit(block: str, config: AcceleratorConfig) -> tuple[str, dict]:
    """Verilog text of one block and its entry in the description (module, latency, ports)."""
    name = check_block(block).module
    component = block_component(block, config)
    ports = {}
    for path, member, value in component.signature.flatten(component):
        ports["__".join(map(str, path))] = {"direction": member.flow.value.lower(), "width": len(Value.cast(value))}
    entry = {"module": name, "file": f"{name}.v", "latency": component.latency, "ports": ports}
    return verilog.convert(component, name=name, emit_src=False), entry


def block_verilog(block: str, config: AcceleratorConfig) -> str:
    """Verilog text of ``block``; its module is named ``BLOCKS[block].module``."""
    return _emit(block, config)[0]


def describe(config: AcceleratorConfig, blocks: dict | None = None) -> dict:
    """JSON-ready description: the configuration and every block's module, latency and ports.

    ``blocks`` (block key -> entry) reuses entries already made while emitting Verilog.
    """
    if blocks is None:
        blocks = {key: _emit(key, config)[1] for key in supported_blocks(config)}
    skipped = {key: block_refusal(key, config) for key in BLOCKS if key not in blocks}
    return {**config.to_dict(), "blocks": blocks, **({"skipped": skipped} if skipped else {})}


def generate(config: AcceleratorConfig, out: Path, blocks=None) -> list[Path]:
    """Write Verilog of ``blocks`` (default: every block ``config`` can build) and
    ``config.json`` into ``out``; return the paths.

    Raises before anything is written: ``TypeError`` for a config that is not an
    :class:`AcceleratorConfig`, ``ValueError`` for an unknown block or a block asked for
    by name that ``config`` cannot build.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
    keys = supported_blocks(config) if blocks is None else list(blocks)
    for key in keys:
        check_block(key)
        refusal = block_refusal(key, config)
        if refusal is not None:
            raise ValueError(f"block {key!r} cannot be built for configuration {config.name!r}: {refusal}")
    texts, entries = {}, {}
    for key in keys:
        text, entries[key] = _emit(key, config)
        texts[BLOCKS[key].file] = text
    texts["config.json"] = json.dumps(describe(config, entries), indent=2, sort_keys=True) + "\n"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/verilog"), help="output folder")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    for path in generate(config_from_args(parser, args), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
