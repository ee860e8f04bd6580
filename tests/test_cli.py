"""The `aam` command: every stage is a subcommand with its own --help; bad input is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aam.cli import STAGES, build_parser, main

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


def _stage_options(stage: str) -> set[str]:
    parser = build_parser(stage)
    sub = next(a for a in parser._actions if a.dest == "stage")
    return {opt for action in sub.choices[stage]._actions for opt in action.option_strings}


def test_one_flag_name_per_meaning_across_stages():
    """CPU threads are `--threads`, an output folder `--out-dir`, one output file `--out`, a model
    folder `--model-dir` (or a role: `--pretrain-dir`, `--finetune-dir`): never an alias."""
    aliases = {"--n-jobs", "--jobs", "--num-threads", "--cores", "--out-tsv", "--out-png", "--out-file",
               "--output", "--outdir", "--output-dir", "--out-features", "--out-samples", "--model"}
    options = {stage: _stage_options(stage) for stage in STAGES}
    used = {stage: sorted(opts & aliases) for stage, opts in options.items() if opts & aliases}
    assert not used
    # a stage that writes a folder never also names single output files with --out-<kind>
    for stage, opts in options.items():
        assert not any(o.startswith("--out-") and o != "--out-dir" for o in opts), (stage, opts)
        assert not ({"--out", "--out-dir"} <= opts), stage
    # the training and compute stages all take --threads
    for stage in ("pretrain", "finetune", "baselines", "unifrac", "embed", "seq-train", "predict"):
        if stage in options:
            assert "--threads" in options[stage], stage


def test_version_names_the_package_version_and_commit():
    import importlib.metadata

    result = subprocess.run([str(AAM), "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith(f"aam {importlib.metadata.version('aam')}")
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:  # a checkout: the commit is named
        assert f"(git {head.stdout.strip()[:12]}" in result.stdout


def test_provenance_block():
    from aam import __version__
    from aam.provenance import provenance

    block = provenance({"lr": 0.1}, 7)
    assert block["aam_version"] == __version__
    assert block["settings"] == {"lr": 0.1} and block["seed"] == 7
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    assert block["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
