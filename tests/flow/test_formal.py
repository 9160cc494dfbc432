"""The formal flow: a quick proof passes, a broken harness is reported as failing (with its
counterexample trace and a non-zero exit status), and, behind ``slow``, every proof ends
as expected."""

import json

import pytest

from spikemllm.flow import formal


def test_proof_list_names_every_proof_once(capsys):
    assert formal.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == formal.proof_names() + [p.name for p in formal.EXTRA_PROOFS]
    assert len(set(listed)) == len(listed)
    assert {p.block for p in formal.PROOFS} == {"neuron_array", "compactor", "pe_array", "requantizer", "core"}
    assert all(p.mode in formal.MODES for p in formal.PROOFS)


def test_unknown_proof_is_refused_by_name():
    with pytest.raises(ValueError, match="no_such_proof"):
        formal.get_proof("no_such_proof")


def test_quick_stream_proof_passes(tmp_path):
    result = formal.run_proof(formal.get_proof("neuron_array_stream"), tmp_path)
    assert result.status == "PASS" and result.ok, result
    assert result.mode == "prove" and result.traces == []
    assert (tmp_path / "neuron_array_stream" / "neuron_array_stream.sby").read_text().startswith("[options]\nmode prove")


def test_a_valid_that_drops_before_ready_fails_the_command(tmp_path, capsys):
    # The consumer's view of valid falls in the cycle after a stall: the protocol
    # property must fail, name its counterexample, and fail the command.
    code = formal.main(["--proof", "neuron_array_stream", "--drop-valid", "--build", str(tmp_path / "formal"),
                        "--out", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "counterexample:" in out
    report = json.loads((tmp_path / "reports" / "formal.json").read_text())
    (result,) = report["proofs"]
    assert result["status"] == "FAIL" and not result["ok"] and not report["ok"]
    assert result["traces"] and all(t.endswith(".vcd") for t in result["traces"])
    assert any("valid fell before ready" in line or "properties.py" in line for line in result["failed"])


@pytest.mark.slow
@pytest.mark.parametrize("name", formal.proof_names())
def test_every_proof_ends_as_expected(name, tmp_path):
    result = formal.run_proof(formal.get_proof(name), tmp_path)
    assert result.ok, result
