"""Verilog generation: one file per block, deterministic, with a description that round-trips."""

import json
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from spikemllm.hw import generate as gen

from spikemllm.config import SMALL_CONFIG, AcceleratorConfig

NAMES = {
    "tclif_neuron_array.v", "spike_event_compactor.v", "sparse_accumulate_pe_array.v", "requantizer.v", "spike_core.v",
    "dense_int8_core.v", "dense_fp16_core.v", "config.json",
}


def test_generates_named_files_deterministically(tmp_path):
    first = gen.generate(SMALL_CONFIG, tmp_path / "a")
    second = gen.generate(SMALL_CONFIG, tmp_path / "b")
    assert {p.name for p in first} == NAMES
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    text = (tmp_path / "a" / "tclif_neuron_array.v").read_text()
    assert "module tclif_neuron_array(" in text
    assert str(tmp_path) not in text and "/work" not in text  # no source paths


@pytest.mark.parametrize("config", [SMALL_CONFIG, AcceleratorConfig()], ids=["small", "default"])
def test_the_pes_of_an_array_are_one_module(config):
    text = gen.block_verilog("core", config)
    modules = re.findall(r"^module (\S+?)\s*\(", text, re.M)
    assert [name for name in modules if ".pe_array." in name] == ["\\spike_core.pe_array.pe_0"]
    instances = re.findall(r"^\s*\\(spike_core\.pe_array\.\S+)\s+(\S+)\s*\(", text, re.M)
    assert sorted(instances) == sorted(("spike_core.pe_array.pe_0", f"pe_{p}") for p in range(config.pes))


class _Counter(Elaboratable):
    def __init__(self, step):
        self.step = step
        self.en = Signal()
        self.count = Signal(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + self.step)
        return m


class _Pair(Elaboratable):
    """Two counters under each of two identical wrappers, one counting by 2."""

    def __init__(self, steps=(1, 1, 1, 2)):
        self.en = Signal()
        self.total = Signal(10)
        self.steps = steps

    def elaborate(self, platform):
        m = Module()
        counters = [_Counter(step) for step in self.steps]
        for n, c in enumerate(counters):
            m.submodules[f"c{n}"] = c
            m.d.comb += c.en.eq(self.en)
        m.d.comb += self.total.eq(sum(c.count for c in counters))
        return m


class _Top(Elaboratable):
    def __init__(self):
        self.en = Signal()
        self.total = Signal(11)

    def elaborate(self, platform):
        m = Module()
        m.submodules.left, m.submodules.right = left, right = _Pair(), _Pair()
        m.d.comb += [left.en.eq(self.en), right.en.eq(self.en), self.total.eq(left.total + right.total)]
        return m


def test_identical_modules_merge_from_the_leaves_up():
    top = _Top()
    text = verilog.convert(top, name="top", ports=[top.en, top.total], emit_src=False)
    merged = gen.merge_identical_modules(text)
    modules = re.findall(r"^module (\S+?)\s*\(", merged, re.M)
    # left's counters 0-2 are one module, its counter 3 another; right is left
    assert modules == ["top", "\\top.left", "\\top.left.c0", "\\top.left.c3"]
    instances = re.findall(r"^\s*\\(\S+)\s+(\S+)\s*\(", merged, re.M)
    assert sorted(instances) == [("top.left", "left"), ("top.left", "right"), ("top.left.c0", "c0"),
                                 ("top.left.c0", "c1"), ("top.left.c0", "c2"), ("top.left.c3", "c3")]
    # a design without two equal modules is left as it was
    assert gen.merge_identical_modules(merged) == merged


def test_description_round_trips_and_lists_ports(tmp_path):
    gen.generate(SMALL_CONFIG, tmp_path)
    description = json.loads((tmp_path / "config.json").read_text())
    assert AcceleratorConfig.from_dict(description) == SMALL_CONFIG
    ports = description["blocks"]["pe_array"]["ports"]
    assert ports["i__ready"] == {"direction": "out", "width": 1}
    assert ports["weights__payload"]["direction"] == "in"
    # 4 channels on one multiplier: 4 groups, then round and saturate
    assert description["blocks"]["requantizer"]["latency"] == SMALL_CONFIG.pes // SMALL_CONFIG.requantizers + 5 == 9


def test_bad_configuration_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="lanes must be a power of two, not 12"):
        gen.generate(AcceleratorConfig(lanes=12), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown block"):
        gen.generate(SMALL_CONFIG, tmp_path / "out", blocks=["dense_core"])
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        gen.generate({"lanes": 8}, tmp_path / "out")


def test_a_core_the_configuration_cannot_build_is_left_out(tmp_path):
    """14-bit activations are not exact in FP16: the FP16 baseline is skipped with the reason,
    and asked for by name it is refused before anything is written."""
    wide = AcceleratorConfig(name="wide_act", lanes=8, pes=4, act_bits=14, t_max=7, max_fan_in=16)
    names = {p.name for p in gen.generate(wide, tmp_path / "all")}
    assert names == NAMES - {"dense_fp16_core.v"}
    description = json.loads((tmp_path / "all" / "config.json").read_text())
    assert "fp16_core" not in description["blocks"] and "act_bits=14" in description["skipped"]["fp16_core"]
    with pytest.raises(ValueError, match="fp16_core.*act_bits=14"):
        gen.generate(wide, tmp_path / "fp16", blocks=["core", "fp16_core"])
    assert not (tmp_path / "fp16").exists()


def test_command_line(tmp_path, capsys):
    assert gen.main(["--config", "small", "--out", str(tmp_path)]) == 0
    assert "requantizer.v" in capsys.readouterr().out


def test_generating_verilog_does_not_import_torch():
    """The generator reads block latencies from spikemllm.latency, not from the golden model."""
    import subprocess
    import sys

    code = "import sys, spikemllm.hw, spikemllm.hw.generate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_command_line_takes_a_file_and_overrides(tmp_path):
    gen.generate(SMALL_CONFIG, tmp_path / "a", blocks=["requantizer"])
    assert gen.main(["--config", str(tmp_path / "a" / "config.json"), "--set", "pes=8", "--out", str(tmp_path / "b")]) == 0
    assert AcceleratorConfig.from_dict(json.loads((tmp_path / "b" / "config.json").read_text())).pes == 8
    with pytest.raises(SystemExit):
        gen.main(["--set", "pes=0", "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()
