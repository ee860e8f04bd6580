"""A full disk or a read-only destination: one line naming the path and the cause, exit 74, and nothing
left behind (no partial output, no temporary file), for every stage that writes.

The real path first: each stage runs with its output folder on a tiny or a read-only tmpfs
(tests/helpers/small_fs.py; skipped where user namespaces are not allowed). Then the same handler without
a special filesystem, by failing the disk operations themselves (always runs).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import small_fs  # noqa: E402
from helpers.aam_synthetic import write_study  # noqa: E402
from helpers.prepare import FIXTURES  # noqa: E402

from aam.cli import main  # noqa: E402
from aam.errors import OUTPUT_EXIT  # noqa: E402

needs_tmpfs = pytest.mark.skipif(not small_fs.available(), reason="no user namespaces to mount a tmpfs")
NO_SPACE, READ_ONLY = os.strerror(errno.ENOSPC), os.strerror(errno.EROFS)

FINETUNE = {
    "data": {"asv_limit": 16, "batch_size": 4},
    "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32},
    "pretrain": {"enabled": False},
    "finetune": {"trainer": {"max_epochs": 2, "limit_train_batches": 3, "warmup_steps": 1, "patience": None,
                             "progress_bar": False}},
}
OUTPUT_FOLDER = {"ingest": "ingest", "rarefy": "rarefied", "tokenize": "tokens", "unifrac": "unifrac",
                 "finetune": "finetune"}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Inputs of every stage below: the small prepare fixture, and a synthetic study rarefied and
    tokenized for unifrac and finetune."""
    root = tmp_path_factory.mktemp("inputs")
    for name in ("table.tsv", "tree.nwk", "metadata.tsv"):
        shutil.copy(FIXTURES / name, root / name)
    study = root / "study"
    study.mkdir()
    write_study(study)
    assert main(["rarefy", "--table", str(study / "counts.parquet"), "--depth", "100",
                 "--out", str(study / "rarefied" / "table.biom"),
                 "--dropped", str(study / "rarefied" / "dropped.tsv")]) == 0
    shutil.rmtree(study / "tokens")
    assert main(["tokenize", "--features", str(study / "features.parquet"), "--counts",
                 str(study / "counts.parquet"), "--rarefied", str(study / "rarefied" / "table.biom"),
                 "--out-dir", str(study / "tokens"), "--settings", '{"max_bp": 32}']) == 0
    return root


def commands(root: Path, out: Path) -> dict[str, list[str]]:
    """One command line per stage, writing under `out`."""
    s = root / "study"
    return {
        "ingest": ["ingest", "--table", str(root / "table.tsv"), "--tree", str(root / "tree.nwk"),
                   "--metadata", str(root / "metadata.tsv"), "--out-dir", str(out / "ingest")],
        "rarefy": ["rarefy", "--table", str(s / "counts.parquet"), "--depth", "100",
                   "--out", str(out / "rarefied" / "table.biom"),
                   "--dropped", str(out / "rarefied" / "dropped.tsv")],
        "tokenize": ["tokenize", "--features", str(s / "features.parquet"), "--counts",
                     str(s / "counts.parquet"), "--rarefied", str(s / "rarefied" / "table.biom"),
                     "--out-dir", str(out / "tokens"), "--settings", '{"max_bp": 32}'],
        "unifrac": ["unifrac", "--table", str(s / "rarefied" / "table.biom"), "--tree", str(s / "tree.nwk"),
                    "--out-dir", str(out / "unifrac"), "--threads", "1"],
        "finetune": ["finetune", "--tokens-dir", str(s / "tokens"), "--splits", str(s / "splits.tsv"),
                     "--samples", str(s / "metadata.tsv"), "--target-column", "disease",
                     "--task", "classification", "--settings", json.dumps(FINETUNE), "--seed", "7",
                     "--threads", "1", "--out-dir", str(out / "finetune")],
    }


def assert_one_line(result: small_fs.Result, stage: str, folder: Path, cause: str) -> None:
    """Exit 74; stderr ends with one line naming a path under `folder` and the cause; no traceback."""
    assert result.returncode == OUTPUT_EXIT, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.last_line
    assert line.startswith(f"aam {stage}: error: {folder}"), line
    assert line.endswith(cause), line


# ------------------------------------------------------------------------------ the real path
@needs_tmpfs
@pytest.mark.parametrize("stage", ["ingest", "rarefy", "tokenize", "unifrac"])
def test_full_disk(study, tmp_path, stage):
    disk = tmp_path / "disk"
    result = small_fs.run_on(disk, small_fs.aam(*commands(study, disk)[stage]), size="4k")
    assert_one_line(result, stage, disk, NO_SPACE)
    assert result.files == [], f"left behind: {result.files}"


@needs_tmpfs
@pytest.mark.parametrize("size", ["8k", "600k"])  # full at the logs, full at the first checkpoint
def test_full_disk_while_training(study, tmp_path, size):
    disk = tmp_path / "disk"
    result = small_fs.run_on(disk, small_fs.aam(*commands(study, disk)["finetune"]), size=size)
    assert_one_line(result, "finetune", disk, NO_SPACE)
    assert result.files == [], f"left behind: {result.files}"


@needs_tmpfs
@pytest.mark.parametrize("stage", ["ingest", "rarefy", "finetune"])
@pytest.mark.parametrize("existing", [False, True], ids=["results_folder", "output_folder"])
def test_read_only(study, tmp_path, stage, existing):
    """A read-only results folder (the stage must make its output folder in it) and a read-only
    output folder that exists already."""
    disk = tmp_path / "disk"
    prepare = [OUTPUT_FOLDER[stage]] if existing else []
    result = small_fs.run_on(disk, small_fs.aam(*commands(study, disk)[stage]), read_only=True,
                             prepare=prepare)
    assert_one_line(result, stage, disk, READ_ONLY)
    assert result.files == prepare


# ----------------------------------------------------------- the same handler, by fault injection
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("operation", ["replace", "mkdir"])
def test_a_failed_write_is_one_line_and_leaves_nothing(study, tmp_path, capsys, monkeypatch, operation):
    out = tmp_path / "out"
    argv = commands(study, out)["rarefy"]
    if operation == "replace":
        monkeypatch.setattr(os, "replace", _no_space)
    else:
        monkeypatch.setattr(Path, "mkdir", _no_space)
    assert main(argv) == OUTPUT_EXIT
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("aam ")]
    assert len(lines) == 1 and lines[0].startswith(f"aam rarefy: error: {out / 'rarefied'}"), lines
    assert lines[0].endswith(f": cannot write: {NO_SPACE}")
    assert not out.exists() or list(out.rglob("*")) == []


def test_other_errors_stay_tracebacks(study, tmp_path, monkeypatch):
    """Only a destination's failure is explained in one line; a bug stays a traceback to report."""
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="I/O error"):
        main(commands(study, tmp_path / "out")["rarefy"])
