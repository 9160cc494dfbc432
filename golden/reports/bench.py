"""Time ``spike_linear`` against a float matrix multiply of the same shape.

``python -m spikemllm.golden.reports.bench [--out build/reports/golden_bench.json]``

Both are timed on the same inputs: a ``(out, in)`` integer weight and ``tokens`` tokens of
activations, ``T`` TC-LIF steps for the spike path. The spike path does ``T`` times the
arithmetic of one float matmul (one per timestep), so the target is a ratio within
``T + 1``. The median of ``--repeats`` runs is reported, after one warm-up run each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from spikemllm.golden import encode_tc_lif, spike_linear


def _median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def run(*, tokens: int = 512, in_features: int = 4096, out_features: int = 4096, T: int = 4, repeats: int = 5, seed: int = 0) -> dict:
    """Measure and return the benchmark result as a dictionary."""
    g = torch.Generator().manual_seed(seed)
    m = (1 << T) - 1
    q = torch.randint(-m, m + 1, (tokens, in_features), generator=g)
    weight = torch.randint(-127, 128, (out_features, in_features), generator=g)
    spikes = encode_tc_lif(q, T)
    x = q.float()
    w_float = weight.float()

    spike_s, spike_all = _median_seconds(lambda: spike_linear(spikes, weight), repeats)
    float_s, float_all = _median_seconds(lambda: x @ w_float.T, repeats)
    exact = torch.equal(spike_linear(spikes, weight), q @ weight.T)
    ratio = spike_s / float_s
    return {
        "shape": {"tokens": tokens, "in_features": in_features, "out_features": out_features},
        "timesteps": T,
        "repeats": repeats,
        "spike_linear_s": spike_s,
        "float_matmul_s": float_s,
        "ratio": ratio,
        "target_ratio": T + 1,
        "within_target": ratio <= T + 1,
        "exact": exact,
        "spike_linear_runs_s": spike_all,
        "float_matmul_runs_s": float_all,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/reports/golden_bench.json"))
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--features", type=int, default=4096, help="in and out features of the square weight")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for name in ("tokens", "features", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    print(
        f"timing spike_linear (T={args.timesteps}) and a float matmul: {args.tokens} tokens x "
        f"{args.features}x{args.features} weight, median of {args.repeats} runs ...",
        flush=True,
    )
    r = run(tokens=args.tokens, in_features=args.features, out_features=args.features, T=args.timesteps, repeats=args.repeats)
    print(
        f"spike_linear {r['spike_linear_s'] * 1e3:.1f} ms, float matmul {r['float_matmul_s'] * 1e3:.1f} ms, "
        f"ratio {r['ratio']:.2f} (target <= {r['target_ratio']}: {'met' if r['within_target'] else 'MISSED'}), "
        f"exact: {r['exact']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if r["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
