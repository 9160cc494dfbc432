"""Golden model: the exact integers the accelerator must produce, and the models around them.

The numeric reference, at the top of the package: plain torch functions, one per hardware
job, vectorized over tokens and channels (re-exported here):

* :mod:`.quantize` -- activation and weight quantizers (round-to-nearest, static,
  SmoothQuant, Hadamard rotation).
* :mod:`.encoding` -- TC-LIF and count-coding spike encoders and decoders.
* :mod:`.spike_linear` -- the sparse-accumulate linear layer, step by step.
* :mod:`.requantize` -- fixed-point multiplier/shift requantization.
* :mod:`.layer` -- an end-to-end integer layer; :mod:`.dense` -- the FP16 baseline's arithmetic.
* :mod:`.stats` -- spike counts, firing rate, sparsity.
* :mod:`.modules` / :mod:`.count_linear` -- ``SpikeLinear``, its fake-quant twin, the count-coding layer.
* :mod:`.real_data` -- real activations of a pretrained MiniLM.

One subpackage per other idea:

* :mod:`.timing` -- cycle models of the blocks and cores, and full-size projections.
* :mod:`.convert` -- converting an MLLM to spike form: MED, MSTS schedules.
* :mod:`.vqa` -- the shapes-VQA task: data, model, training, evaluation.
* :mod:`.reports` -- command-line reports (demo, bench, plots).
"""

from .encoding import (
    count_timesteps,
    decode_count_signed,
    decode_count_unsigned,
    decode_tc_lif,
    encode_count_signed,
    encode_count_unsigned,
    encode_tc_lif,
    tc_lif_max,
    tc_lif_thresholds,
    tc_lif_timesteps,
)
from .modules import FakeQuantLinear, SpikeLinear
from .quantize import (
    Quantized,
    block_hadamard,
    calibrate_static_scale,
    gptq_weight_per_channel,
    hadamard_matrix,
    qmax,
    quantize_per_token,
    quantize_static,
    quantize_weight_per_channel,
    smoothquant_factors,
)
from .requantize import quantize_multiplier, requantize, requantize_error_bound
from .rounding import round_half_away, shift_round_half_away
from .spike_linear import exact_matmul, integer_matmul, spike_linear
from .stats import SpikeStats, spike_statistics

__all__ = [
    "Quantized",
    "qmax",
    "quantize_per_token",
    "calibrate_static_scale",
    "quantize_static",
    "quantize_weight_per_channel",
    "smoothquant_factors",
    "hadamard_matrix",
    "block_hadamard",
    "gptq_weight_per_channel",
    "round_half_away",
    "shift_round_half_away",
    "tc_lif_thresholds",
    "tc_lif_max",
    "tc_lif_timesteps",
    "count_timesteps",
    "encode_tc_lif",
    "decode_tc_lif",
    "encode_count_signed",
    "decode_count_signed",
    "encode_count_unsigned",
    "decode_count_unsigned",
    "spike_linear",
    "integer_matmul",
    "exact_matmul",
    "spike_statistics",
    "SpikeStats",
    "quantize_multiplier",
    "requantize",
    "requantize_error_bound",
    "SpikeLinear",
    "FakeQuantLinear",
]
