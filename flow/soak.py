"""``make soak``: many seeded random layers on a core's RTL under Verilator, zero mismatches.

``python -m spikemllm.flow.soak [--config default] [--block core] [--layers 1000]
[--seed 0] [--abort-every 8] [--max-chunks 8] [--out build/reports]`` runs the soak
testbench (:mod:`spikemllm.sim.core.soak`) in one simulation and writes ``soak.json``:
layers, runs, tokens, input and output beats, weight rows loaded, simulated cycles,
aborted runs and mismatches checked, and the wall time. The command fails if any layer
mismatched; the simulation log (``build/sim/<config>/<block>/run/sim.log``) names it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spikemllm.hw.blocks import CORES
from spikemllm.sim.core.soak import SOAK_DEFAULTS

from spikemllm.config import AcceleratorConfig, add_config_arguments, config_from_args

from .runner import build_block, run_block

__all__ = ["soak", "main"]

SOAK_MODULE = "spikemllm.sim.core.soak"


def soak(config: AcceleratorConfig, block: str = "core", *, out: Path, **settings) -> dict:
    """Build ``block`` for ``config`` and run the soak with ``settings`` (keys of
    :data:`~spikemllm.sim.core.soak.SOAK_DEFAULTS`); return the counts written to
    ``out / "soak.json"``. Raises ``ValueError`` for an unknown block or setting, and
    ``AssertionError`` if a layer mismatched."""
    if block not in CORES.values():
        raise ValueError(f"block must be one of {sorted(CORES.values())}, not {block!r}")
    unknown = set(settings) - set(SOAK_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown soak settings {sorted(unknown)}; known: {sorted(SOAK_DEFAULTS)}")
    for name, value in settings.items():
        if not isinstance(value, int) or value < (1 if name in ("layers", "max_chunks") else 0):
            raise ValueError(f"soak setting {name} must be a {'positive' if name in ('layers', 'max_chunks') else 'non-negative'} integer, not {value!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "soak.json"
    report.unlink(missing_ok=True)
    build = build_block(config, block)
    run_block(build, test_module=SOAK_MODULE, results=report, extra_env={"SPIKEMLLM_SOAK": json.dumps(settings)})
    return json.loads(report.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Soak a core's RTL with seeded random layers (Verilator).")
    add_config_arguments(parser)
    parser.add_argument("--block", default="core", choices=sorted(CORES.values()), help="core to soak (default: core)")
    parser.add_argument("--layers", type=int, default=SOAK_DEFAULTS["layers"], help="random layers (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SOAK_DEFAULTS["seed"], help="seed of the first layer (default: %(default)s)")
    parser.add_argument("--abort-every", type=int, default=SOAK_DEFAULTS["abort_every"],
                        help="abort a stalled run of every N-th layer first; 0: never (default: %(default)s)")
    parser.add_argument("--max-chunks", type=int, default=SOAK_DEFAULTS["max_chunks"],
                        help="input chunks per layer, except every 16th layer, which may fill the memories (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("build/reports"), help="folder of soak.json")
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    start = time.monotonic()
    print(f"soak: {args.layers} layers on {config.name}/{args.block}, seed {args.seed}", flush=True)
    try:
        r = soak(config, args.block, out=args.out, layers=args.layers, seed=args.seed, abort_every=args.abort_every,
                 max_chunks=args.max_chunks)
    except ValueError as exc:
        parser.error(str(exc))
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{r['layers']} layers, {r['runs']} runs ({r['aborted_runs']} more aborted), {r['tokens']} tokens, "
          f"{r['input_beats']} input and {r['output_beats']} output beats, {r['weight_rows']} weight rows, "
          f"{r['cycles']} cycles: {r['mismatches']} mismatches ({time.monotonic() - start:.0f} s) -> {args.out / 'soak.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
