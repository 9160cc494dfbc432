"""Figures for the method documentation, drawn from real activations.

``python -m spikemllm.golden.reports.plots [--out build/plots]`` writes:

* ``spike_raster.png``: one real token's activations as TC-LIF spikes (T = 3) beside the
  signed count coding of the same integers (T = 7);
* ``events_per_value.png``: events per encoded value (the work of a sparse-accumulate
  core) for TC-LIF and both count codings, over activation bit widths, on the inputs of
  every linear layer of the real pretrained MiniLM;
* ``events_per_value.json``: the numbers behind the second plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from spikemllm.golden import (  # noqa: E402
    count_timesteps,
    encode_count_signed,
    encode_count_unsigned,
    encode_tc_lif,
    qmax,
    quantize_per_token,
    spike_statistics,
)
from spikemllm.golden.real_data import capture_linear_inputs  # noqa: E402

RASTER_LAYER = "encoder.layer.0.intermediate.dense"
EVENT_LAYERS = (
    "encoder.layer.0.attention.self.query",
    "encoder.layer.0.intermediate.dense",
    "encoder.layer.0.output.dense",
    "encoder.layer.3.intermediate.dense",
    "encoder.layer.5.output.dense",
)
BITS = (3, 4, 5, 6, 8)
SPIKE_COLORS = ListedColormap(["#2166ac", "#f7f7f7", "#b2182b"])


def spike_raster(path: Path, *, bits: int = 4, channels: int = 48, token: int = 3) -> None:
    """Raster of one token's TC-LIF and count-coded spikes."""
    x, _ = capture_linear_inputs(RASTER_LAYER)
    q, _ = quantize_per_token(x, bits)
    q = q[token, :channels]
    tc = encode_tc_lif(q, bits - 1)
    count = encode_count_signed(q, count_timesteps(bits))
    fig, axes = plt.subplots(
        3, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [1.2, tc.shape[0], count.shape[0]]}
    )
    axes[0].bar(range(channels), q.tolist(), color=["#b2182b" if v > 0 else "#2166ac" for v in q.tolist()])
    axes[0].set_ylabel(f"q ({bits}-bit)")
    axes[0].axhline(0, color="black", linewidth=0.5)
    for ax, spikes, title, labels in (
        (axes[1], tc, f"TC-LIF, T = {tc.shape[0]}: {int((tc != 0).sum())} events",
         [f"t={t}  θ={1 << (tc.shape[0] - 1 - t)}" for t in range(tc.shape[0])]),
        (axes[2], count, f"signed count coding, T = {count.shape[0]}: {int((count != 0).sum())} events",
         [f"t={t}" for t in range(count.shape[0])]),
    ):
        ax.imshow(spikes.numpy(), aspect="auto", cmap=SPIKE_COLORS, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_yticks(range(spikes.shape[0]), labels, fontsize=8)
        ax.set_title(title, fontsize=10, loc="left")
    axes[2].set_xlabel("input channel (red +1, blue -1)")
    fig.suptitle(f"One real token entering MiniLM {RASTER_LAYER}, {bits}-bit activations", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def events_per_value() -> dict:
    """Events per value for each coding and bit width, over the real layers' inputs."""
    per_layer = [capture_linear_inputs(name)[0] for name in EVENT_LAYERS]
    result = {"layers": list(EVENT_LAYERS), "values": sum(int(x.numel()) for x in per_layer), "bits": {}}
    for bits in BITS:
        totals = {"tc_lif": [0, 0], "count_signed": [0, 0], "count_unsigned": [0, 0]}
        for x in per_layer:
            q, _ = quantize_per_token(x, bits)
            for key, spikes in (
                ("tc_lif", encode_tc_lif(q, bits - 1)),
                ("count_signed", encode_count_signed(q, count_timesteps(bits))),
                ("count_unsigned", encode_count_unsigned(q + qmax(bits), count_timesteps(bits, signed=False))),
            ):
                s = spike_statistics(spikes)
                totals[key][0] += s.events
                totals[key][1] += s.values
        result["bits"][str(bits)] = {
            "timesteps": {"tc_lif": bits - 1, "count_signed": count_timesteps(bits), "count_unsigned": count_timesteps(bits, signed=False)},
            "events_per_value": {k: e / v for k, (e, v) in totals.items()},
        }
    return result


def events_plot(data: dict, path: Path) -> None:
    """Grouped bars of events per value, log scale."""
    bits = list(data["bits"])
    keys = (("tc_lif", "TC-LIF (T = b-1)", "#1b7837"), ("count_signed", "signed count (T = Q)", "#762a83"),
            ("count_unsigned", "unsigned count (T = L-1)", "#999999"))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.27
    for i, (key, label, color) in enumerate(keys):
        values = [data["bits"][b]["events_per_value"][key] for b in bits]
        ax.bar([j + (i - 1) * width for j in range(len(bits))], values, width, label=label, color=color)
    ax.set_xticks(range(len(bits)), [f"{b}-bit" for b in bits])
    ax.set_yscale("log")
    ax.set_ylabel("events per value (accumulates)")
    ax.set_title(f"Real MiniLM activations ({len(data['layers'])} linear layers' inputs, per-token quantization)", fontsize=10)
    ax.legend(fontsize=9)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/plots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("drawing the spike raster ...", flush=True)
    spike_raster(args.out / "spike_raster.png")
    print("counting events per value on real activations ...", flush=True)
    data = events_per_value()
    (args.out / "events_per_value.json").write_text(json.dumps(data, indent=2) + "\n")
    events_plot(data, args.out / "events_per_value.png")
    for b, row in data["bits"].items():
        e = row["events_per_value"]
        print(f"  {b}-bit: TC-LIF {e['tc_lif']:.3f}, signed count {e['count_signed']:.3f}, unsigned count {e['count_unsigned']:.3f}")
    print(f"wrote {args.out}/spike_raster.png, events_per_value.png, events_per_value.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
