"""The report commands run end to end on small inputs and write what they promise."""

import json

from spikemllm.golden.reports import bench, plots


def test_bench_small_shape(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--out", str(out), "--tokens", "8", "--features", "64", "--repeats", "2"]) == 0
    r = json.loads(out.read_text())
    assert r["exact"] and r["timesteps"] == 4 and r["target_ratio"] == 5
    assert r["spike_linear_s"] > 0 and r["float_matmul_s"] > 0 and len(r["spike_linear_runs_s"]) == 2


def test_plots_are_written(tmp_path):
    assert plots.main(["--out", str(tmp_path)]) == 0
    for name in ("spike_raster.png", "events_per_value.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "events_per_value.json").read_text())
    for row in data["bits"].values():
        e = row["events_per_value"]
        # TC-LIF fires popcount(|q|) <= |q| <= q + Q spikes per value
        assert e["tc_lif"] <= e["count_signed"] <= e["count_unsigned"]
