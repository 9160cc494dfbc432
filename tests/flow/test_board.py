"""The board flow: the iCEBreaker top level through the platform's synthesis script
(default suite), whole bitstreams with nextpnr's report (slow), and ``run`` refusing a
serial port that does not exist."""

import json

import pytest
from spikemllm.flow import board as board_flow
from spikemllm.hw.board.top import BOARDS, check_board


def test_icebreaker_top_synthesizes_and_fits(tmp_path):
    """Yosys on the iCEBreaker's top level for its preset: the platform's pins and script
    work, and the cells fit the UP5K (a change that outgrows the board fails here)."""
    board = check_board("icebreaker")
    result = board_flow.synthesize(board, board.preset, tmp_path)
    r = result["resources"]
    assert result["fits"], f"the iCEBreaker's design does not fit the UP5K: {r}"
    assert r["lut"] > 500 and r["ff"] > 300 and r["bram"] >= 2, r  # the core, its buffers and its memories are there
    assert (tmp_path / "top.pcf").read_text().count("set_io") == 7  # UART rx/tx and four LEDs and the clock


def test_unknown_board_and_missing_port_are_named(capsys):
    with pytest.raises(SystemExit):
        board_flow.main(["bitstream", "--board", "nexys"])
    assert "nexys" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        board_flow.main(["run", "--board", "icebreaker", "--port", "/dev/ttyNOSUCH0"])
    assert exit_.value.code == 2
    assert "no serial port at '/dev/ttyNOSUCH0'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BOARDS))
def test_bitstream_and_report(name, tmp_path):
    """The whole flow: placed and routed on the board's pinout at its clock, packed, reported."""
    board = check_board(name)
    report = board_flow.build_bitstream(board, board.preset, tmp_path / "board")
    path = board_flow.write_reports(report, tmp_path / "reports")
    assert json.loads(path.read_text()) == report
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert report["bitstream_bytes"] > 0
    cells = "ICESTORM_LC" if board.family == "ice40" else "TRELLIS_COMB"
    assert 0 < report["utilization"][cells]["used"] <= report["utilization"][cells]["available"]
