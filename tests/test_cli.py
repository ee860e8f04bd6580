"""The `aam` command: every stage is a subcommand with its own --help; bad input is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aam.cli import STAGES, main

AAM = Path(sys.executable).with_name("aam")


def test_top_level_help_lists_every_stage():
    result = subprocess.run([str(AAM), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in STAGES:
        assert name in result.stdout


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_each_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    assert "usage: aam" in capsys.readouterr().out


def test_input_error_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nope.biom"
    result = subprocess.run(
        [str(AAM), "rarefy", "--table", str(missing), "--depth", "10", "--out", str(tmp_path / "out.biom"),
         "--dropped", str(tmp_path / "dropped.tsv")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("aam rarefy: error:") and "nope.biom" in lines[-1]
    assert not (tmp_path / "out.biom").exists()
