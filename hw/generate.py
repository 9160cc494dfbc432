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
rerun is byte-identical. Submodules that are the same circuit (the PEs of an array) are
written once (:func:`merge_identical_modules`): every instance names the first one's
module, so synthesis maps one PE and a simulator compiles one. The configuration is validated when it is constructed, before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value

from spikemllm.config import AcceleratorConfig, add_config_arguments, config_from_args

from .blocks import BLOCKS, block_component, block_refusal, check_block, supported_blocks

__all__ = ["block_verilog", "describe", "generate", "main", "merge_identical_modules"]


def _emit(block: str, config: AcceleratorConfig) -> tuple[str, dict]:
    """Verilog text of one block and its entry in the description (module, latency, ports)."""
    name = check_block(block).module
    component = block_component(block, config)
    ports = {}
    for path, member, value in component.signature.flatten(component):
        ports["__".join(map(str, path))] = {"direction": member.flow.value.lower(), "width": len(Value.cast(value))}
    entry = {"module": name, "file": f"{name}.v", "latency": component.latency, "ports": ports}
    return merge_identical_modules(verilog.convert(component, name=name, emit_src=False)), entry


_MODULE = re.compile(r"((?:^\(\*[^\n]*\*\)\n)*)^module (\S+) (.*?^endmodule\n)", re.S | re.M)
_BACKEND_ID = re.compile(r"\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+")
"""A name Yosys's Verilog writer numbers across the whole file (the same in every copy of a module)."""


def merge_identical_modules(text: str) -> str:
    """``text`` (Verilog written by Amaranth through Yosys) with every module that has the
    same ports and body as another -- submodules are emitted per instance -- replaced by
    it: the module written first stays, the others are removed and their instances name it.
    Modules deeper in the hierarchy merge first, so parents of merged children can merge
    in turn. Instance names, and so every hierarchical path, stay as they were."""
    modules = [(match.group(2), match) for match in _MODULE.finditer(text)]
    bodies = {name: match.group(3) for name, match in modules}
    removed = set()
    for depth in sorted({name.count(".") for name in bodies}, reverse=True):
        first: dict[str, str] = {}
        merged = {}
        for name, _ in modules:
            if name.count(".") != depth:
                continue
            key = _BACKEND_ID.sub("$auto", bodies[name])
            if key in first:
                merged[name] = first[key]
            else:
                first[key] = name
        if not merged:
            continue
        removed |= merged.keys()
        instance = re.compile(r"^(\s+)(" + "|".join(re.escape(n) for n in merged) + r") ", re.M)
        for name in bodies:
            bodies[name] = instance.sub(lambda m: m.group(1) + merged[m.group(2)] + " ", bodies[name])
    out, end = [], 0
    for name, match in modules:
        out.append(text[end:match.start()])
        if name not in removed:
            out.append(match.group(1) + f"module {name} " + bodies[name])
        end = match.end()
    out.append(text[end:])
    return "".join(out)


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
