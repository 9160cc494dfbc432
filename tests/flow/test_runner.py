"""The runner's choice of simulator: names checked, one build folder per simulator and
configuration, builds reused while nothing changed, each simulator's build options."""

import pytest
from spikemllm.flow import runner
from spikemllm.flow.runner import SIMULATORS, build_block, check_simulator

from spikemllm.config import SMALL_CONFIG


class FakeRunner:
    """Stands for cocotb's runner: records each build and leaves the model file behind."""

    builds = []

    def __init__(self, simulator, public="all"):
        self.simulator = simulator
        self.public = public

    def build(self, *, build_dir, hdl_toplevel, **options):
        model = "sim.vvp" if self.simulator == "icarus" else hdl_toplevel
        (build_dir / model).write_text("model")
        self.builds.append((self.simulator, build_dir, {**options, "public": self.public}))


@pytest.fixture
def fake_runner(monkeypatch):
    FakeRunner.builds = []
    monkeypatch.setattr(runner, "_runner", FakeRunner)
    monkeypatch.setattr(runner, "_use_simulator", lambda simulator: None)
    return FakeRunner


def test_unknown_simulators_are_refused_by_name(tmp_path):
    assert [check_simulator(name) for name in SIMULATORS] == list(SIMULATORS)
    with pytest.raises(ValueError, match="not 'modelsim'"):
        build_block(SMALL_CONFIG, "neuron_array", simulator="modelsim", root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_command_line_refuses_an_unknown_simulator(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        runner.main(["--sim", "questa"])
    assert "not 'questa'" in capsys.readouterr().err
    monkeypatch.setenv("SIM", "xcelium")
    with pytest.raises(SystemExit):
        runner.main([])
    err = capsys.readouterr().err
    assert "SIM: " in err and "not 'xcelium'" in err


def test_one_build_folder_per_simulator_reused_while_unchanged(fake_runner, tmp_path):
    builds = {sim: build_block(SMALL_CONFIG, "neuron_array", simulator=sim, root=tmp_path, waves=False)
              for sim in SIMULATORS}
    for sim, build in builds.items():
        assert build.build_dir == (tmp_path / sim / "small" / "neuron_array").resolve()
        assert build.simulator == sim and build.compiled
        assert (build.build_dir / "rtl" / "tclif_neuron_array.v").is_file()
    again = build_block(SMALL_CONFIG, "neuron_array", simulator="icarus", root=tmp_path, waves=False)
    assert not again.compiled
    traced = build_block(SMALL_CONFIG, "neuron_array", simulator="icarus", root=tmp_path, waves=True)
    assert traced.compiled
    assert [sim for sim, _, _ in fake_runner.builds] == ["verilator", "icarus", "icarus"]


def test_build_options_of_each_simulator(fake_runner, tmp_path):
    for sim in SIMULATORS:
        build_block(SMALL_CONFIG, "neuron_array", simulator=sim, root=tmp_path, waves=False)
    options = {sim: opts for sim, _, opts in fake_runner.builds}
    # Icarus compiles Amaranth's Verilog-2005 as such (cocotb passes -g2012 first) with a
    # time unit fine enough for the 10 ns clock.
    assert options["icarus"]["build_args"][-1] == "-g2005"
    assert options["icarus"]["timescale"] == ("1ns", "1ps")
    assert "-O3" in options["verilator"]["build_args"] and options["verilator"]["timescale"] is None


def test_alternate_sources_with_only_the_ports_public(fake_runner, tmp_path):
    netlist = tmp_path / "netlist.v"
    netlist.write_text("module tclif_neuron_array(); endmodule\n")
    build = build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, waves=False, sources=[netlist],
                        build_args=["-Wno-fatal"], public="ports")
    _, _, options = fake_runner.builds[-1]
    control, compiled = options["sources"]
    assert compiled == netlist.resolve() and options["build_args"] == ["-Wno-fatal"] and options["public"] == "ports"
    text = control.read_text()
    assert text.startswith("`verilator_config") and 'public_flat_rw -module "tclif_neuron_array" -var "clk"' in text
    assert build.description == build.build_dir / "rtl" / "config.json"  # the description is still generated
    assert not build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, waves=False, sources=[netlist],
                           build_args=["-Wno-fatal"], public="ports").compiled
    netlist.write_text("module tclif_neuron_array(); wire a; endmodule\n")  # a changed source rebuilds
    assert build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, waves=False, sources=[netlist],
                       build_args=["-Wno-fatal"], public="ports").compiled
    with pytest.raises(ValueError, match="not found"):
        build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, sources=[tmp_path / "missing.v"])
    with pytest.raises(ValueError, match="'ports' under Verilator"):
        build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, simulator="icarus", public="ports")


def test_an_already_generated_rtl_folder_is_compiled_as_it_is(fake_runner, tmp_path, monkeypatch):
    from spikemllm.config import DEFAULT_CONFIG
    from spikemllm.hw.generate import generate

    rtl = tmp_path / "generated"
    generate(SMALL_CONFIG, rtl, blocks=["neuron_array"])
    monkeypatch.setattr(runner, "generate", lambda *args, **kwargs: pytest.fail("generated again"))
    build = build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, waves=False, rtl=rtl)
    _, _, options = fake_runner.builds[-1]
    assert options["sources"] == [(rtl / "tclif_neuron_array.v").resolve()]
    assert build.description == (rtl / "config.json").resolve()
    with pytest.raises(ValueError, match="another configuration .*lanes"):
        build_block(DEFAULT_CONFIG, "neuron_array", root=tmp_path, waves=False, rtl=rtl)
    with pytest.raises(ValueError, match="no generated 'pe_array'"):
        build_block(SMALL_CONFIG, "pe_array", root=tmp_path, waves=False, rtl=rtl)
    with pytest.raises(ValueError, match="no config.json"):
        build_block(SMALL_CONFIG, "neuron_array", root=tmp_path, waves=False, rtl=tmp_path / "empty")
