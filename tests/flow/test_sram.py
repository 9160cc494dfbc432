"""The SRAM cost model and the throughput matching of the dense baselines."""

import dataclasses

import pytest
from spikemllm.flow import sram
from spikemllm.flow.ppa import matched_dense_inputs
from spikemllm.golden.timing.core_model import dense_core_cycles
from spikemllm.hw.registers import CoreKind

from spikemllm.config import DEFAULT_CONFIG, SMALL_CONFIG


def test_a_macro_sized_memory_costs_the_macro():
    # 512 words of 32 bits is the published 2 KB macro: 483.86 um x 326.1 um.
    assert sram.area_um2(512 * 32) == pytest.approx(483.86 * 326.1)
    assert 9.5 < sram.AREA_PER_BIT_UM2 < 9.7  # against 20 um^2 for a dfxtp_1 flip-flop
    with pytest.raises(ValueError, match="bits must be non-negative"):
        sram.area_um2(-1)


def test_accesses_follow_the_datapaths():
    c = SMALL_CONFIG  # 8 lanes, 4 PEs
    spike = sram.accesses("spike", c, tokens=2, in_features=12, out_features=6, timesteps=[3, 4], events=50)
    # 12 inputs -> 2 chunks, 6 outputs -> 2 tiles
    assert spike["weights"]["reads"] == 50
    assert spike["activation"] == {"reads": 2 * 2 * (3 + 4), "writes": 2 * 2, "bits": 8 * c.act_bits}
    assert set(spike) == {"activation", "tile_params", "weights"}
    dense = sram.accesses("fp16", c, tokens=2, in_features=12, out_features=6, timesteps=[3, 4], events=0)
    assert dense["weights"] == {"reads": 2 * 2 * 16, "writes": 0, "bits": 4 * 16}
    assert dense["activation"]["reads"] == 2 * 2 * 2
    energy = sram.access_energy({"weights": {"reads": 10, "writes": 0, "bits": 64}})
    assert energy["total_j"] == pytest.approx(10 * 64 * 0.16e-12)
    with pytest.raises(ValueError, match="kind"):
        sram.accesses("bf16", c, tokens=1, in_features=8, out_features=4, timesteps=[3], events=0)
    with pytest.raises(ValueError, match="timestep counts"):
        sram.accesses("spike", c, tokens=2, in_features=8, out_features=4, timesteps=[3], events=0)


@pytest.mark.parametrize("kind", [CoreKind.INT8, CoreKind.FP16])
def test_dense_inputs_are_the_smallest_that_match_the_spike_core(kind):
    shape = {"tokens": 12, "in_features": 384, "out_tiles": 2}

    def cycles(D):
        return dense_core_cycles(dataclasses.replace(DEFAULT_CONFIG, dense_inputs=D), shape["tokens"],
                                 shape["in_features"], shape["out_tiles"], kind.value).cycles

    for D in (1, 2, 4, 8):
        assert matched_dense_inputs(DEFAULT_CONFIG, kind, cycles(D), **shape) == D
        if D > 1:  # one cycle faster than D allows needs the next width
            assert matched_dense_inputs(DEFAULT_CONFIG, kind, cycles(D) - 1, **shape) == 2 * D
    assert matched_dense_inputs(DEFAULT_CONFIG, kind, 1, **shape) == DEFAULT_CONFIG.lanes


def test_decomposition_takes_one_idea_away_at_a_time():
    from spikemllm.flow.ppa import decomposition
    from spikemllm.sim.core.cases import minilm_case

    d = decomposition(SMALL_CONFIG, "minilm")["entries"]
    case = minilm_case(SMALL_CONFIG)
    tiles, padded = case.program.out_tiles, case.program.padded_in
    assert d["spike"]["cycles"] == case.model.cycles and d["spike"]["events"] == case.model.events
    # every (step, input) pair is an event without zero skipping
    assert d["no_zero_skipping"]["events"] == tiles * padded * int(case.timesteps.sum())
    # count coding needs 2^T - 1 steps for the same integers: at least as many events
    assert d["count_coding"]["events"] >= d["spike"]["events"]
    assert d["dense_int8_same_width"]["events"] == case.tokens * tiles * padded
    # the uniform-step variant needs activations requantized to the wider T: MiniLM's alone
    assert d["uniform_steps"]["events"] >= d["spike"]["events"]


def test_decomposition_of_the_qwen2vl_workload():
    from spikemllm.flow.ppa import decomposition
    from spikemllm.sim.core.cases import qwen2vl_case

    d = decomposition(SMALL_CONFIG, "qwen2vl")["entries"]
    case = qwen2vl_case(SMALL_CONFIG)
    assert d["spike"]["cycles"] == case.model.cycles
    assert "uniform_steps" not in d  # the fixture holds the integers of its own schedule only
    assert d["dense_int8_same_width"]["events"] == case.tokens * case.program.out_tiles * case.program.padded_in
