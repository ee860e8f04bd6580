"""Stages with several outputs publish all of them or none, wherever they are killed.

Each run is cut at its k-th disk operation, for every k from the first to the last: from that point
on every disk operation fails, as if the process had received kill -9 (no clean-up runs either).
Afterwards the output folder must hold the complete previous outputs, nothing, or the complete new
outputs, never a mix; and a rerun must finish with outputs identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_bad_input_prepare import FIXTURES, run_ingest
from test_parquet_cache import COUNTS, write_inputs

from aam.stages.tokenize import build


class Killed(BaseException):
    """The process died (a BaseException, so no `except Exception` in the stage can swallow it)."""


# Every call a stage makes that changes the disk.
DISK_OPERATIONS = [
    (os, "replace"),
    (os, "rename"),
    (os, "chmod"),
    (os, "unlink"),
    (shutil, "rmtree"),
    (tempfile, "mkdtemp"),
    (tempfile, "mkstemp"),
    (pq, "write_table"),
    (Path, "write_text"),
    (Path, "write_bytes"),
    (Path, "unlink"),
    (Path, "mkdir"),
]


def run_killed_at(monkeypatch, k: int | None, stage) -> int:
    """Run `stage()` with every disk operation from the k-th on failing; returns the operations seen."""
    state = {"count": 0, "dead": False}

    def wrap(original):
        def operation(*args, **kwargs):
            state["count"] += 1
            if state["dead"] or (k is not None and state["count"] >= k):
                state["dead"] = True
                raise Killed
            return original(*args, **kwargs)

        return operation

    with monkeypatch.context() as patch:
        for owner, name in DISK_OPERATIONS:
            patch.setattr(owner, name, wrap(getattr(owner, name)))
        with contextlib.suppress(Killed):
            stage()
    return state["count"]


def visible(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


def check_all_or_none(monkeypatch, out: Path, run_old, run_new, names) -> int:
    """Kill `run_new` at every disk operation over the outputs of `run_old`; returns the points tried."""
    run_new()
    new = visible(out)
    assert sorted(new) == sorted(names)
    shutil.rmtree(out)
    run_old()
    old = visible(out)
    assert sorted(old) == sorted(names) and old != new
    n_operations = run_killed_at(monkeypatch, None, run_new)
    assert n_operations >= len(names)
    for k in range(1, n_operations + 1):
        shutil.rmtree(out, ignore_errors=True)
        run_old()
        run_killed_at(monkeypatch, k, run_new)
        assert visible(out) in ({}, old, new), f"a mix of outputs after a kill at disk operation {k}"
        run_new()  # the rerun clears what the killed run left and publishes the complete set
        assert visible(out) == new
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")] == []
    return n_operations


def test_ingest_publishes_all_four_outputs_or_none(tmp_path, monkeypatch):
    for name in ("table.tsv", "tree.nwk", "metadata.tsv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    # The old outputs come from a slightly different table, so old and new files differ.
    (tmp_path / "old.tsv").write_text((tmp_path / "table.tsv").read_text().replace("\t40\t", "\t41\t"))
    names = ("features.parquet", "counts.parquet", "samples.parquet", "tree.nwk")
    points = check_all_or_none(
        monkeypatch,
        tmp_path / "out",
        lambda: run_ingest(tmp_path, table="old.tsv"),
        lambda: run_ingest(tmp_path),
        names,
    )
    assert points >= 8, points


def test_tokenize_publishes_both_caches_or_neither(tmp_path, monkeypatch):
    features, counts = write_inputs(tmp_path / "in", counts=COUNTS)
    out = tmp_path / "tokens"
    targets = (out / "features.parquet", out / "samples.parquet")
    points = check_all_or_none(
        monkeypatch,
        out,
        lambda: build(features, counts, None, *targets, max_bp=6),
        lambda: build(features, counts, None, *targets, max_bp=8, force=True),
        [t.name for t in targets],
    )
    assert points >= 6, points


def test_an_output_folder_holding_other_files_is_refused(tmp_path, capsys):
    for name in ("table.tsv", "tree.nwk", "metadata.tsv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert run_ingest(tmp_path) == 2
    assert "holds files that are not this stage's outputs (e.g. 'notes.txt')" in capsys.readouterr().err
    assert visible(tmp_path / "out") == {"notes.txt": b"mine"}


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")
