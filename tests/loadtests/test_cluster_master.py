"""loadtests/cluster_master.py: a master pod's output folder survives the trip through its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.cluster_master import MissingResultsError, main, pack, unpack


def test_a_folder_packed_into_a_log_unpacks_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "slo.meta.json").write_text('{"windows": []}')
    (out / "slo.html").write_bytes(bytes(range(256)) * 40)
    log = "Locust starting\nsome warning\n" + pack(out) + "\ntrailing line\n"
    assert all(len(line) <= 80 for line in log.splitlines()), "log lines stay short for any log collector"
    names = unpack(log, tmp_path / "back")
    assert sorted(names) == ["slo.html", "slo.meta.json"]
    for name in names:
        assert (tmp_path / "back" / name).read_bytes() == (out / name).read_bytes()


@pytest.mark.parametrize("log", ["", "no results here\n", "----- modelops results (base64 tar.gz) begin -----\nabc"])
def test_a_log_without_a_complete_results_block_says_where_to_look(log: str, tmp_path: Path) -> None:
    with pytest.raises(MissingResultsError, match="kubectl logs job"):
        unpack(log, tmp_path)


def test_the_wrapper_keeps_the_commands_exit_code_and_prints_the_folder(tmp_path: Path, capsys) -> None:
    # `python -m locust --version` stands in for a load: the wrapper only runs Locust and reports what it left.
    out = tmp_path / "out"
    assert main(["--out", str(out), "--", "--version"]) == 0
    names = unpack(capsys.readouterr().out, tmp_path / "back")
    assert names == ["exit_code"] and (tmp_path / "back" / "exit_code").read_text() == "0"
