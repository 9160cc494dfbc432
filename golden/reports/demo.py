"""Run the golden core on a real pretrained layer and say what it did.

``python -m spikemllm.golden.reports.demo [--report build/reports/demo.json]``

Takes the first feed-forward layer of all-MiniLM-L6-v2 (384 -> 1536, real weights) and its
real input activations for a few sentences, then: quantizes activations per token to 4
bits, encodes them as TC-LIF spikes (T = 3), accumulates them through the 8-bit weights
step by step and checks the result against a dense integer product and the float layer;
compares the events TC-LIF needs with count coding; and, with static calibrated scales,
runs the whole layer in integers down to the requantized 4-bit outputs of the next layer.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from spikemllm.golden import (
    SpikeLinear,
    calibrate_static_scale,
    count_timesteps,
    encode_count_signed,
    encode_count_unsigned,
    encode_tc_lif,
    integer_matmul,
    qmax,
    quantize_per_token,
    quantize_static,
    quantize_weight_per_channel,
    requantize_error_bound,
    round_half_away,
    spike_linear,
    spike_statistics,
)
from spikemllm.golden.layer import IntegerLayer, run_integer_layer
from spikemllm.golden.real_data import capture_linear_inputs

LAYER = "encoder.layer.0.intermediate.dense"
MULTIPLIER_BITS = 16


def run(act_bits: int = 4, weight_bits: int = 8, percentile: float = 99.9) -> dict:
    """Run the demonstration and return its measurements as a dictionary."""
    T = act_bits - 1
    x, linear = capture_linear_inputs(LAYER)
    with torch.no_grad():
        y_float = linear(x)

    # Per-token dynamic quantization (the default): spikes and exactness of the spike path.
    q, _ = quantize_per_token(x, act_bits)
    spikes = encode_tc_lif(q, T)
    weight = quantize_weight_per_channel(linear.weight.detach(), weight_bits).q
    exact = torch.equal(spike_linear(spikes, weight), integer_matmul(q, weight))
    tc = spike_statistics(spikes)
    count_signed = spike_statistics(encode_count_signed(q, count_timesteps(act_bits)))
    count_unsigned = spike_statistics(encode_count_unsigned(q + qmax(act_bits), count_timesteps(act_bits, signed=False)))
    dynamic = SpikeLinear.from_linear(linear, timesteps=T, weight_bits=weight_bits)(x)
    cosine = torch.nn.functional.cosine_similarity(dynamic, y_float, dim=-1)

    # Static scales: the whole layer in integers, requantized for the next layer.
    in_scale = float(calibrate_static_scale(x, act_bits, percentile=percentile))
    out_scale = float(calibrate_static_scale(y_float, act_bits, percentile=percentile))
    q_static, _ = quantize_static(x, in_scale, act_bits)
    layer = IntegerLayer.from_linear(
        linear, in_scale=in_scale, out_scale=out_scale, out_bits=act_bits,
        weight_bits=weight_bits, multiplier_bits=MULTIPLIER_BITS,
    )
    trace = run_integer_layer(layer, q_static, T)
    # The requantizer against an exact float rescale of the same accumulators.
    wscale = quantize_weight_per_channel(linear.weight.detach().double(), weight_bits).scale.double()
    exact_value = (trace.acc + layer.bias).double() * (in_scale * wscale / out_scale)
    rescaled = round_half_away(exact_value)
    Q = qmax(act_bits)
    unsaturated = exact_value.abs() <= Q
    err = (trace.out.double() - exact_value).abs()
    within_bound = bool((err <= requantize_error_bound(exact_value, MULTIPLIER_BITS))[unsaturated].all())
    requant_diff = (trace.out - rescaled.clamp(-Q, Q)).abs()
    direct, _ = quantize_static(y_float, out_scale, act_bits)
    end_to_end_diff = (trace.out - direct).abs()

    return {
        "layer": f"all-MiniLM-L6-v2 {LAYER}",
        "tokens": int(x.shape[0]),
        "in_features": linear.in_features,
        "out_features": linear.out_features,
        "act_bits": act_bits,
        "weight_bits": weight_bits,
        "timesteps": T,
        "spike_linear_equals_integer_matmul": exact
        and bool(torch.equal(trace.acc, integer_matmul(q_static, layer.weight))),
        "spikes": {
            "tc_lif": tc.as_dict(),
            "count_signed": count_signed.as_dict(),
            "count_unsigned": count_unsigned.as_dict(),
        },
        "per_token_dynamic_cosine_vs_float": {"mean": float(cosine.mean()), "min": float(cosine.min())},
        "static": {
            "calibration_percentile": percentile,
            "requantizer_outputs": int(requant_diff.numel()),
            "requantizer_outputs_off_by_one": int((requant_diff == 1).sum()),
            "requantizer_max_abs_diff": int(requant_diff.max()),
            "requantizer_within_stated_bound": within_bound,
            "outputs_equal_to_quantized_float_layer": float((end_to_end_diff == 0).double().mean()),
            "outputs_max_abs_diff": int(end_to_end_diff.max()),
        },
    }


def describe(r: dict) -> str:
    """Human-readable summary of :func:`run`'s result."""
    tc, cs, cu = (r["spikes"][k] for k in ("tc_lif", "count_signed", "count_unsigned"))
    st = r["static"]
    ok = "yes" if r["spike_linear_equals_integer_matmul"] else "NO"
    return "\n".join(
        [
            f"layer          {r['layer']}: {r['tokens']} real tokens, {r['in_features']} -> {r['out_features']}",
            f"quantization   activations {r['act_bits']}-bit per token, weights {r['weight_bits']}-bit per channel",
            f"TC-LIF         T = {tc['timesteps']} steps, {tc['events']} events over {tc['values']} values: "
            f"{tc['events_per_value']:.3f} events/value, sparsity {tc['sparsity']:.1%}",
            f"               firing rate per step {', '.join(f'{f:.3f}' for f in tc['firing_rate_per_step'])} (MSB first)",
            f"count coding   signed T = {cs['timesteps']}: {cs['events_per_value']:.3f} events/value; "
            f"unsigned T = {cu['timesteps']}: {cu['events_per_value']:.3f} events/value",
            f"exactness      spike_linear == dense integer matmul: {ok}",
            f"requantizer    static scales ({st['calibration_percentile']}th percentile): "
            f"{st['requantizer_outputs_off_by_one']} of {st['requantizer_outputs']} outputs differ from an exact "
            f"float rescale (max difference {st['requantizer_max_abs_diff']}; within the stated error bound: "
            f"{'yes' if st['requantizer_within_stated_bound'] else 'NO'});\n"
            f"               {st['outputs_equal_to_quantized_float_layer']:.1%} equal "
            f"the float layer's output quantized directly (max difference {st['outputs_max_abs_diff']})",
            f"float match    per-token dynamic SpikeLinear vs float layer: cosine mean "
            f"{r['per_token_dynamic_cosine_vs_float']['mean']:.4f}, min {r['per_token_dynamic_cosine_vs_float']['min']:.4f}",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--act-bits", type=int, default=4, help="activation bits (T = bits - 1); default 4")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight bits; default 8")
    parser.add_argument("--report", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"loading all-MiniLM-L6-v2 and capturing {LAYER} inputs ...", flush=True)
    result = run(args.act_bits, args.weight_bits)
    print(describe(result))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.report}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    ok = result["spike_linear_equals_integer_matmul"] and result["static"]["requantizer_within_stated_bound"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
