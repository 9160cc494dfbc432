"""Dense INT8 and FP16 baselines in amaranth.sim and under Verilator (and Icarus, behind the slow marker), through the same
firmware driver as the SpikeCore: bit-exact against their golden models, cycle-exact against their cycle model,
same results under stalls, and the configurations they refuse."""

import dataclasses
import re

import pytest
import torch
from core_suite import CORE_SMALL, run_case, run_real_layer_in_cocotb
from simulators import cocotb_parametrize
from spikemllm.golden.dense import fp16_layer_outputs
from spikemllm.golden.timing.core_model import dense_core_cycles
from spikemllm.hw.blocks import BLOCKS
from spikemllm.hw.dense_core import DenseFP16Core, DenseInt8Core, DenseMACArray, check_dense_config
from spikemllm.hw.generate import block_verilog
from spikemllm.sim.core.cases import core_expectation, random_case
from spikemllm.sim.patterns import late_start, pattern

from spikemllm.config import PRESETS

CORES = {"int8_core": DenseInt8Core, "fp16_core": DenseFP16Core}


def run_dense(block, case, **patterns):
    return run_case(CORE_SMALL, case, core_class=CORES[block], **patterns)


@pytest.mark.parametrize("block", CORES)
@pytest.mark.parametrize("shape", [(20, 7), (8, 4), (16, 16)])
def test_bit_exact_and_cycle_exact(block, shape):
    case = random_case(CORE_SMALL, seed=sum(shape), tokens=4, in_features=shape[0], out_features=shape[1], tv=3, tt=4)
    expected, model = core_expectation(case, block)
    result = run_dense(block, case)
    assert result.outputs == expected
    # the same integers as the spike core computes
    assert result.outputs == case.expected
    assert result.counters["CYCLES"] == model.cycles
    assert result.counters["EVENTS"] == model.events == case.tokens * case.program.out_tiles * case.program.padded_in
    assert result.counters["ACTIVE_CYCLES"] == model.active_cycles


@pytest.mark.parametrize("block", CORES)
def test_stalls_change_timing_not_results(block):
    case = random_case(CORE_SMALL, seed=7, tokens=4, in_features=20, out_features=7, tv=3, tt=4)
    result = run_dense(block, case, in_pattern=pattern("random30", seed=1), out_pattern=pattern("random70", seed=2))
    assert result.outputs == case.expected
    assert result.counters["CYCLES"] >= core_expectation(case, block)[1].cycles


@pytest.mark.parametrize("block", CORES)
@pytest.mark.parametrize("inputs, bundle", [(1, 1), (4, 3)])
def test_every_pe_is_the_same_module(block, inputs, bundle):
    """The MAC array's ``P`` PEs (``mac_array.pe_0`` ...) are one circuit: the generated
    Verilog holds one PE module, which every PE instance names, so synthesis builds one
    PE and places it ``P`` times."""
    config = dataclasses.replace(CORE_SMALL, name=f"core_d{inputs}_b{bundle}", dense_inputs=inputs, bundle=bundle)
    text = block_verilog(block, config)
    top = BLOCKS[block].module
    modules = re.findall(r"^module (\S+?) ?\(", text, re.M)
    assert [name for name in modules if ".mac_array." in name] == [f"\\{top}.mac_array.pe_0"]
    instances = re.findall(rf"^\s*\\({re.escape(top)}\.mac_array\.\S+)\s+(\S+)\s*\(", text, re.M)
    assert sorted(instances) == sorted((f"{top}.mac_array.pe_0", f"pe_{p}") for p in range(config.pes))


def test_fp16_golden_rounds_where_integers_do_not():
    # Products of 2048 x 2048 = 2^22 accumulate past 2^24, where FP32 keeps 24 bits: the
    # FP16 core's golden model then differs from the exact integer layer, as the hardware does.
    # The even inputs (3 * 2047^2 + 2 = 12570629) and the odd ones (2 * 2047^2 + 2 =
    # 8380420) accumulate exactly; their sum 20951049 > 2^24 is a tie that rounds to the even
    # 20951048. The bias is added after, in integers, by the requantizer.
    q = torch.tensor([[2047, 2047, 2047, 2047, 2047, 1, 1, 1, 1]])
    w = q.clone()
    bias = torch.tensor([3])
    exact = int((q * w).sum()) + 3
    out = fp16_layer_outputs(q, w, bias, torch.tensor([1]), torch.tensor([0]), out_bits=32)
    assert exact == 20951052 and int(out[0, 0]) == 20951051


def test_dense_cycle_model_rejects_bad_input():
    with pytest.raises(ValueError, match="in_features=12"):
        dense_core_cycles(CORE_SMALL, 2, 12, 1)
    with pytest.raises(ValueError, match="out_tiles"):
        dense_core_cycles(CORE_SMALL, 2, 16, 9)
    with pytest.raises(ValueError, match="tokens"):
        dense_core_cycles(CORE_SMALL, 0, 16, 1)


def test_refused_configurations():
    wide = dataclasses.replace(CORE_SMALL, name="wide", act_bits=14, t_max=7)
    with pytest.raises(ValueError, match="act_bits=14"):
        DenseFP16Core(config=wide)
    assert check_dense_config(wide, "int8") is wide  # integers of any configured width are fine
    with pytest.raises(ValueError, match="arithmetic"):
        DenseMACArray(config=CORE_SMALL, arithmetic="bf16")
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        DenseFP16Core(config={"lanes": 8})


@cocotb_parametrize("block", verilator=CORES, icarus_slow=CORES)
def test_real_layer_in_cocotb(simulator, block, tmp_path):
    """The real converted layer in the small configuration (`make synth` runs the default one),
    two inputs per cycle."""
    config = dataclasses.replace(PRESETS["small"], name="small_d2", dense_inputs=2)
    run_real_layer_in_cocotb(config, block, tmp_path, simulator=simulator)


@pytest.mark.parametrize("block", CORES)
@pytest.mark.parametrize("inputs", [2, 4, 8])
def test_wider_beats_bit_exact_and_cycle_exact(block, inputs):
    """``D = dense_inputs`` inputs per cycle (8 = lanes): same integers, ``IN / D`` beats per tile."""
    config = dataclasses.replace(CORE_SMALL, name=f"core_d{inputs}", dense_inputs=inputs)
    case = random_case(config, seed=inputs, tokens=3, in_features=24, out_features=7, tv=3, tt=4)
    expected, model = core_expectation(case, block)
    result = run_case(config, case, core_class=CORES[block])
    assert result.outputs == expected == case.expected
    assert result.counters["CYCLES"] == model.cycles
    beats = case.tokens * case.program.out_tiles * case.program.padded_in // inputs
    assert result.counters["ACTIVE_CYCLES"] == model.active_cycles == beats
    assert result.counters["EVENTS"] == model.events == beats * inputs
    narrow = core_expectation(random_case(CORE_SMALL, seed=inputs, tokens=3, in_features=24, out_features=7,
                                          tv=3, tt=4), block)[1]
    assert model.cycles < narrow.cycles


@pytest.mark.parametrize("block", CORES)
def test_wider_beats_under_stalls(block):
    config = dataclasses.replace(CORE_SMALL, name="core_d4", dense_inputs=4)
    case = random_case(config, seed=11, tokens=4, in_features=16, out_features=8, tv=3, tt=4)
    result = run_case(config, case, core_class=CORES[block], in_pattern=pattern("random30", seed=3),
                      out_pattern=pattern("random70", seed=4))
    assert result.outputs == core_expectation(case, block)[0]


@pytest.mark.parametrize("block", CORES)
def test_shared_requantizer_back_pressure(block):
    """16 channels on one requantizer multiplier: tiles of one beat wait for it."""
    config = dataclasses.replace(CORE_SMALL, name="core_p16_d8", pes=16, requantizers=1, dense_inputs=8)
    case = random_case(config, seed=5, tokens=3, in_features=8, out_features=32, tv=3, tt=4)
    expected, model = core_expectation(case, block)
    result = run_case(config, case, core_class=CORES[block])
    assert result.outputs == expected
    assert result.counters["CYCLES"] == model.cycles


def test_fp16_tree_order_is_the_golden_order():
    # 8 products of 2^22 and 8 of 1, exact sum 2^25 + 8. D = 1: each accumulator reaches
    # 2^24 and its + 1s are ties that stay even: 2^25. D = 2: beats of 2^23 and of 2 (exact);
    # each accumulator reaches 2^24 + 4: 2^25 + 8. D = 16: one tree, exact: 2^25 + 8.
    q = torch.tensor([[2048] * 8 + [1] * 8])
    out = {d: int(fp16_layer_outputs(q, q.clone(), torch.tensor([0]), torch.tensor([1]), torch.tensor([0]),
                                     out_bits=32, inputs=d)[0, 0]) for d in (1, 2, 16)}
    assert out == {1: 1 << 25, 2: (1 << 25) + 8, 16: (1 << 25) + 8}


@pytest.mark.parametrize("block", CORES)
@pytest.mark.parametrize("bundle, inputs", [(2, 1), (3, 4)])
def test_bundles_bit_exact_cycle_exact_and_reads(block, bundle, inputs):
    """``B`` tokens per weight-row read: a beat carries ``D`` inputs of each token of a
    bundle and reads their ``D`` rows once. Every token's outputs (FP16: in its own FP16
    order), cycles, events (inputs multiplied for the bundle's tokens) and weight-row reads
    as the model predicts; a partial last bundle; the same outputs under stalls."""
    config = dataclasses.replace(CORE_SMALL, name=f"core_b{bundle}_d{inputs}", bundle=bundle, dense_inputs=inputs)
    case = random_case(config, seed=bundle, tokens=5, in_features=24, out_features=7, tv=3, tt=4)
    expected, model = core_expectation(case, block)
    result = run_case(config, case, core_class=CORES[block])
    assert result.outputs == expected
    rows = case.program.out_tiles * case.program.padded_in
    bundles = -(-case.tokens // bundle)
    assert result.counters["CYCLES"] == model.cycles
    assert result.counters["EVENTS"] == model.events == case.tokens * rows
    assert result.counters["WEIGHT_READS"] == model.weight_reads == bundles * rows
    assert result.counters["ACTIVE_CYCLES"] == model.active_cycles == bundles * rows // inputs
    alone = core_expectation(random_case(CORE_SMALL, seed=bundle, tokens=5, in_features=24, out_features=7,
                                         tv=3, tt=4), block)[1]
    assert model.cycles < alone.cycles
    stalled = run_case(config, case, core_class=CORES[block], in_pattern=late_start(pattern("random30", seed=3)),
                       out_pattern=pattern("random70", seed=4))
    assert stalled.outputs == expected and stalled.counters["CYCLES"] > model.cycles


@pytest.mark.slow
@cocotb_parametrize("block", verilator=CORES)
def test_bundles_on_a_real_layer_in_cocotb(simulator, block, tmp_path):
    """The Qwen2-VL layer on the small configuration in bundles of three tokens, two inputs
    per cycle, under Verilator: bit- and cycle-exact, ``WEIGHT_READS`` as the model predicts
    (the testbench checks it), ideal and under stalls."""
    config = dataclasses.replace(PRESETS["small"], name="small_d2_b3", dense_inputs=2, bundle=3)
    r = run_real_layer_in_cocotb(config, block, tmp_path, "qwen2vl", simulator=simulator)
    bundles = -(-r["tokens"] // 3)
    assert r["bundle"] == 3 and r["weight_reads"] * r["tokens"] == r["events"] * bundles
