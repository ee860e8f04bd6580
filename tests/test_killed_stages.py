"""Stages with several outputs publish all of them or none, wherever they are killed.

Each run is cut at its k-th disk operation, for every k from the first to the last: from that point
on every disk operation fails, as if the process had received kill -9 (no clean-up runs either).
Afterwards the output folder must hold the complete previous outputs, nothing, or the complete new
outputs, never a mix; and a rerun must finish with outputs identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from helpers.cv_records import records
from helpers.prepare import FIXTURES, run_ingest
from helpers.token_inputs import COUNTS, write_inputs

from aam.cli import main
from aam.data.token_caches import build
from aam.io.biom import csr_to_table, write_biom


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


def _ingested(tmp_path) -> Path:
    for name in ("table.tsv", "tree.nwk", "metadata.tsv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    assert run_ingest(tmp_path) == 0
    return tmp_path / "out"


def test_rarefy_publishes_the_table_and_the_dropped_samples_or_neither(tmp_path, monkeypatch):
    ingest, out = _ingested(tmp_path), tmp_path / "rarefied"

    def rarefy(seed):
        return lambda: main(["rarefy", "--table", str(ingest / "counts.parquet"), "--samples",
                             str(ingest / "samples.parquet"), "--depth", "10", "--seed", str(seed),
                             "--out", str(out / "table.biom"), "--dropped", str(out / "dropped.tsv")])

    points = check_all_or_none(monkeypatch, out, rarefy(1), rarefy(2), ["table.biom", "dropped.tsv"])
    assert points >= 4, points


def test_split_publishes_both_files_or_neither(tmp_path, monkeypatch):
    ingest, out = _ingested(tmp_path), tmp_path / "split"

    def split(seed):
        return lambda: main(["split", "--samples", str(ingest / "samples.parquet"), "--settings",
                             '{"fractions": {"train": 0.5, "val": 0.5}}', "--seed", str(seed),
                             "--out", str(out / "splits.tsv"), "--summary", str(out / "summary.tsv")])

    points = check_all_or_none(monkeypatch, out, split(1), split(3), ["splits.tsv", "summary.tsv"])
    assert points >= 4, points


def test_cv_split_publishes_every_fold_or_none(tmp_path, monkeypatch):
    ingest, out = _ingested(tmp_path), tmp_path / "cv_split"

    def cv_split(seed):
        return lambda: main(["cv-split", "--samples", str(ingest / "samples.parquet"), "--folds", "2",
                             "--val-fraction", "0.3", "--seed", str(seed), "--out-dir", str(out)])

    names = ["folds.tsv", "summary.tsv", "r0f0.tsv", "r0f1.tsv"]
    points = check_all_or_none(monkeypatch, out, cv_split(1), cv_split(4), names)
    assert points >= 6, points


def test_unifrac_publishes_every_matrix_ordination_and_plot_or_none(tmp_path, monkeypatch):
    features = ["f1", "f2", "f3", "f4"]
    (tmp_path / "tree.nwk").write_text("((f1:0.5,f2:0.25):0.1,(f3:0.3,f4:0.2):0.4);")
    rng = np.random.default_rng(0)
    for name in ("old", "new"):
        counts = rng.integers(0, 9, size=(5, 4)) * (rng.random((5, 4)) < 0.6)  # absences: distances
        counts[:, 0] += 1
        write_biom(csr_to_table(sp.csr_matrix(counts), [f"s{i}" for i in range(5)], features),
                   tmp_path / f"{name}.biom")
    out = tmp_path / "unifrac"

    def unifrac(name):
        return lambda: main(["unifrac", "--table", str(tmp_path / f"{name}.biom"), "--tree",
                             str(tmp_path / "tree.nwk"), "--out-dir", str(out), "--threads", "1",
                             "--settings", '{"metrics": ["unweighted"], "pcoa_dimensions": 2}'])

    names = ["unweighted.tsv", "pcoa_unweighted.tsv", "pcoa_unweighted.txt", "pcoa_unweighted.png",
             "faith_pd.tsv"]
    points = check_all_or_none(monkeypatch, out, unifrac("old"), unifrac("new"), names)
    assert points >= 10, points


def test_compare_and_cv_summary_publish_all_or_none(tmp_path, monkeypatch):
    paths = []
    for k, m in enumerate(records()):
        paths.append(tmp_path / f"m{k}.json")
        paths[-1].write_text(json.dumps(m))
    out = tmp_path / "cv_summary"

    def summary(first):
        return lambda: main(["cv-summary", "--metrics", *map(str, paths[first:]), "--out",
                             str(out / "summary.tsv"), "--json", str(out / "summary.json"),
                             "--plot", str(out / "summary.png")])

    names = ["summary.tsv", "summary.json", "summary.png"]
    assert check_all_or_none(monkeypatch, out, summary(2), summary(0), names) >= 6
    comparison = tmp_path / "comparison"
    frames = pd.DataFrame(records())
    assert len(frames) == 10

    def compare(first):
        picked = [str(paths[first]), str(paths[first + 1])]
        return lambda: main(["compare", "--metrics", *picked, "--out", str(comparison / "comparison.tsv"),
                             "--plot", str(comparison / "comparison.png")])

    names = ["comparison.tsv", "comparison.png"]
    assert check_all_or_none(monkeypatch, comparison, compare(0), compare(2), names) >= 4


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
