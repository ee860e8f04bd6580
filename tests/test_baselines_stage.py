"""`aam baselines`: the samples it trains and tests on, and nested selection that never reads the
outer test fold (poisoned test samples leave every choice unchanged)."""

from __future__ import annotations

import json

import biom
import h5py
import numpy as np
import pandas as pd
import pytest

from aam.cli import main
from aam.evaluate import baselines as bl
from aam.evaluate.fold_samples import evaluation_samples, samples_fingerprint

SETTINGS = {
    "random_forest": {"n_estimators": 20, "search_estimators": 10},
    "hist_gradient_boosting": {"max_iter": 15},
    "linear_clr": {"C": [0.01, 1.0]},
}


def write_fold(root, n=72, f=20, seed=0, poison=False):
    """A rarefied table, a fold's splits.tsv (subjects of 3 samples, the last 18 samples test) and
    metadata. Feature 0 marks Crohns. `poison`: the test samples' labels are flipped and their counts
    replaced by a marker feature (the last) that no training sample has."""
    rng = np.random.default_rng(seed)
    samples = [f"2538.{1000 + i}" for i in range(n)]
    label = np.where(np.arange(n) % 6 < 3, "Crohns", "Control")  # whole subjects share a label
    counts = rng.poisson(10, size=(n, f)).astype(float)
    counts[:, -1] = 0
    counts[label == "Crohns", 0] += 30
    split = np.array(["train"] * 45 + ["val"] * 9 + ["test"] * 18, dtype=object)
    age = np.round(20 + 3 * counts[:, 0] / 10 + rng.normal(scale=1, size=n), 1)
    if poison:
        test = split == "test"
        label[test] = np.where(label[test] == "Crohns", "Control", "Crohns")
        age[test] = 1000.0
        counts[test] = 0
        counts[test, -1] = 200
    label[4] = "Missing: Not provided"  # a training sample without a label
    depth = 150
    rare = np.zeros_like(counts)
    for i in range(n):
        rare[i] = rng.multivariate_hypergeometric(counts[i].astype(int), min(depth, int(counts[i].sum())))
    keep = rare.sum(axis=1) == depth
    keep[50] = False  # a sample rarefaction dropped
    table = biom.Table(rare[keep].T, [f"ASV{j}" for j in range(f)], list(np.array(samples)[keep]))
    (root / "rarefied").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "rarefied" / "table.biom", "w") as fh:
        table.to_hdf5(fh, "test")
    pd.DataFrame({"sample": samples, "split": split, "group": [f"s{i // 3}" for i in range(n)]}).to_csv(
        root / "splits.tsv", sep="\t", index=False
    )
    (root / "ingest").mkdir(exist_ok=True)
    pd.DataFrame({"sample": samples, "ibd": label, "age": [str(a) for a in age]}).to_parquet(
        root / "ingest" / "samples.parquet", index=False
    )


def run_stage(root, out, column="ibd", task="classification", settings=SETTINGS, extra=()):
    argv = [
        "baselines",
        "--rarefied",
        str(root / "rarefied/table.biom"),
        "--splits",
        str(root / "splits.tsv"),
        "--samples",
        str(root / "ingest/samples.parquet"),
        "--target-column",
        column,
        "--task",
        task,
        "--dataset",
        "toy",
        "--fold",
        "r0f0",
        "--seed",
        "42",
        "--settings",
        json.dumps(settings),
        "--out-dir",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return json.loads((out / "metrics.json").read_text()), pd.read_csv(
        out / "predictions.tsv", sep="\t", dtype={"sample": str}
    )


def test_stage_writes_every_baseline_on_the_fold_test_samples(tmp_path):
    write_fold(tmp_path)
    m, pred = run_stage(tmp_path, tmp_path / "out", extra=["--positive-class", "Crohns"])
    test = [f"2538.{1000 + i}" for i in range(54, 72) if i != 50]
    assert list(pred["sample"]) == test and m["n_test"] == 18
    assert m["n_train"] == 54 - 2  # train + val, less the unlabelled sample and the one rarefaction dropped
    assert m["classes"] == ["Control", "Crohns"] and m["positive_class"] == "Crohns"
    assert m["test_samples"] == samples_fingerprint(test)
    assert list(m["models"]) == ["random_forest", "linear_clr", "hist_gradient_boosting"]
    lin = m["models"]["linear_clr"]
    assert [c["params"] for c in lin["search"]] == [{"C": 0.01}, {"C": 1.0}]
    assert len(lin["search"][0]["inner_scores"]) == 3
    for name in m["models"]:
        assert {f"{name}_pred", f"{name}_prob_Control", f"{name}_prob_Crohns"} <= set(pred.columns)
        assert m["models"][name]["test"]["auroc"] > 0.8  # the planted signal
    again, pred2 = run_stage(tmp_path, tmp_path / "again", extra=["--positive-class", "Crohns"])
    assert again == m and pred2.equals(pred)  # same inputs, same outputs


@pytest.mark.parametrize(("column", "task"), [("ibd", "classification"), ("age", "regression")])
def test_nested_selection_never_reads_the_outer_test_fold(tmp_path, column, task, monkeypatch):
    """Flip the test samples' labels and replace their counts by a marker feature: every inner-CV
    score, every choice and the fitted models are unchanged, and no fit ever sees the marker. An
    implementation that let test samples into the inner folds or the refit would change the scores
    (labels flipped) or meet the marker."""
    settings = {
        **SETTINGS,
        "random_forest": {"n_estimators": 20, "search_estimators": 10, "min_samples_leaf": [1, 3]},
    }
    write_fold(tmp_path / "clean")
    clean, _ = run_stage(tmp_path / "clean", tmp_path / "clean_out", column, task, settings)
    write_fold(tmp_path / "poisoned", poison=True)
    fits = []
    original = bl.FittedBaseline.fit

    def spy(self, counts, y):
        fits.append((counts[:, -1] > 0).any())
        return original(self, counts, y)

    monkeypatch.setattr(bl.FittedBaseline, "fit", spy)
    poisoned, _ = run_stage(tmp_path / "poisoned", tmp_path / "poisoned_out", column, task, settings)
    assert fits and not any(fits)  # no fit saw a test sample
    for name in clean["models"]:
        assert poisoned["models"][name]["search"] == clean["models"][name]["search"]
        assert poisoned["models"][name]["params"] == clean["models"][name]["params"]
    assert poisoned["n_train"] == clean["n_train"] and poisoned["test_samples"] == clean["test_samples"]


def test_samples_follow_the_rule_of_the_fine_tuning(tmp_path):
    """Every model is scored on the same samples: aam.evaluate.fold_samples against the AAM data
    module on a token cache with unlabelled samples, a class seen only outside training and samples
    absent from the cache."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers.aam_synthetic import write_study

    from aam.data.datasets import AAMDataModule
    from aam.io.metadata import read_target_column
    from aam.io.parquet_cache import read_samples
    from aam.io.splits import read_splits

    write_study(tmp_path, n_samples=40)
    meta = pd.read_csv(tmp_path / "metadata.tsv", sep="\t", dtype=str)
    meta.loc[2, "disease"] = "not provided"  # train, no label
    meta.loc[30, "disease"] = "UC"  # val: a class absent from training
    meta.loc[38, "disease"] = "UC"  # test
    meta.to_csv(tmp_path / "metadata.tsv", sep="\t", index=False)
    with open(tmp_path / "splits.tsv", "a") as fh:
        fh.write("2538.9999\ttest\n")  # in the split, not in the cache
    dm = AAMDataModule(
        tmp_path / "tokens",
        tmp_path / "splits.tsv",
        {"asv_limit": 8},
        seed=1,
        target={"column": "disease", "type": "classification"},
        metadata=tmp_path / "metadata.tsv",
        depth=100,
    )
    cache = read_samples(tmp_path / "tokens" / "samples.parquet")
    present = [s for s, total in zip(cache.sample_ids, cache.totals, strict=True) if total >= 100]
    kept, classes = evaluation_samples(
        read_splits(tmp_path / "splits.tsv"),
        read_target_column(tmp_path / "metadata.tsv", "disease"),
        present,
        "classification",
    )
    assert classes == dm.classes == ["Control", "Crohns"]
    for split in ("train", "val", "test"):
        assert sorted(kept[split]) == sorted(dm.sample_ids[r] for r in dm.rows[split])
    assert "2538.1038" not in kept["test"] and "2538.1002" not in kept["train"]


def test_provenance_records_the_settings_as_they_ran(tmp_path):
    """--threads (the rule's threads) and a null seed (the top-level one) are what the fits used: the
    provenance says 2 and 42, with the schema's defaults filled in, not the config's null."""
    write_fold(tmp_path)
    m, _ = run_stage(tmp_path, tmp_path / "out", extra=["--threads", "2"])
    used = m["provenance"]["settings"]
    assert used["n_jobs"] == 2 and used["seed"] == 42 and m["provenance"]["seed"] == 42
    assert used["random_forest"]["n_estimators"] == 20 and used["inner_folds"] == 3
