"""Every model, the baselines included, sees identical folds: the samples each one was trained,
validated and tested on, read back from the files it writes (the AAM run's embeddings.parquet and
predictions.tsv, the baselines' metrics.json and predictions.tsv), equal a membership worked out
by hand from the fold's splits.tsv, the metadata and the rarefied table. A fold whose training part
differs for one model (its test samples the same) is refused by `aam evaluate` and by the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pytest

from aam.cli import main
from aam.evaluate.cv import fold_scores
from aam.evaluate.fold_samples import split_fingerprints

FINETUNE = {
    "data": {"asv_limit": 16, "batch_size": 8},
    "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0},
    "pretrain": {"enabled": False},
    "finetune": {"trainer": {"max_epochs": 1, "warmup_steps": 1, "patience": None, "progress_bar": False,
                             "monitor": "val/loss", "num_threads": 1,
                             "log_every_n_steps": 1}},
}
# Two AAM runs that take different code paths: one model, and a seed ensemble of two.
RUNS = {"single": FINETUNE, "ensemble": {**FINETUNE, "finetune": {**FINETUNE["finetune"], "ensemble": 2}}}
BASELINES = {"random_forest": {"n_estimators": 10, "search_estimators": 5},
             "hist_gradient_boosting": {"max_iter": 10}, "linear_clr": {"C": [1.0]}, "inner_folds": 2}
DEPTH = 60


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """A fold (splits.tsv: 30 train, 8 val, 12 test; subjects of two samples) of a study run through
    rarefy and tokenize, with the samples every model must leave out: a training sample without a
    label, a validation sample with a missing value, a test sample too
    shallow for the rarefaction depth and a test sample that is not in the table at all. (A class
    that no training sample has is an error of the fine-tuning, not a sample left out.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("fold")
    rng = np.random.default_rng(11)
    n, n_features = 50, 20
    samples = [f"2538.{20000 + i}" for i in range(n)]
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(30, 41)))) for _ in range(n_features)]
    label = np.where(np.arange(n) % 4 < 2, "Crohns", "Control").astype(object)  # subjects share a label
    counts = rng.poisson(6, size=(n, n_features)) * (rng.random((n, n_features)) < 0.6) + 1
    counts[label == "Crohns", 0] += 30
    counts[44] = 1  # 20 reads: below the depth
    label[3] = "not provided"
    label[31] = "missing: not collected"
    ingest = root / "ingest"
    ingest.mkdir()
    pq.write_table(pa.table({"feature_id": seqs, "sequence": seqs}), ingest / "features.parquet")
    rows, cols = np.nonzero(counts)
    pq.write_table(pa.table({"sample": [samples[i] for i in rows], "feature": [seqs[j] for j in cols],
                             "count": counts[rows, cols].astype(np.int64)}), ingest / "counts.parquet")
    split = ["train"] * 30 + ["val"] * 8 + ["test"] * 12
    groups = [f"subject{i // 2}" for i in range(n)]
    splits = pd.DataFrame({"sample": samples, "split": split, "group": groups})
    absent = pd.DataFrame({"sample": ["2538.29999"], "split": ["test"], "group": ["subject99"]})
    pd.concat([splits, absent]).to_csv(root / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"sample": samples + ["2538.29999"], "disease": list(label) + ["Crohns"]}).to_parquet(
        ingest / "samples.parquet", index=False)
    assert main(["rarefy", "--table", str(ingest / "counts.parquet"), "--depth", str(DEPTH), "--seed", "7",
                 "--out", str(root / "rarefied.biom"), "--dropped", str(root / "dropped.tsv")]) == 0
    assert main(["tokenize", "--features", str(ingest / "features.parquet"), "--counts",
                 str(ingest / "counts.parquet"), "--rarefied", str(root / "rarefied.biom"),
                 "--out-dir", str(root / "tokens"), "--settings", '{"max_bp": 40}']) == 0
    return root


def expected_membership(root: Path, splits: Path) -> dict[str, set[str]]:
    """By hand: a sample counts if the rarefied table has it and it has a label."""
    table = set(biom.load_table(str(root / "rarefied.biom")).ids("sample"))
    labels = pd.read_parquet(root / "ingest" / "samples.parquet").set_index("sample")["disease"]
    frame = pd.read_csv(splits, sep="\t", dtype=str)
    labelled = labels.reindex(frame["sample"]).isin(["Crohns", "Control"]).to_numpy()
    frame = frame[frame["sample"].isin(table).to_numpy() & labelled]
    return {name: set(frame.loc[frame["split"] == name, "sample"]) for name in ("train", "val", "test")}


def baselines(root: Path, splits: Path, out: Path) -> int:
    return main(["baselines", "--rarefied", str(root / "rarefied.biom"), "--splits", str(splits),
                 "--samples", str(root / "ingest/samples.parquet"), "--target-column", "disease",
                 "--task", "classification", "--dataset", "toy", "--fold", "r0f0", "--seed", "42",
                 "--settings", json.dumps(BASELINES), "--out-dir", str(out)])


def evaluate(root: Path, run: str, baselines_dir: Path, out: Path) -> int:
    return main(["evaluate", "--finetune-dir", str(root / "models" / run),
                 "--splits", str(root / "splits.tsv"), "--samples", str(root / "ingest/samples.parquet"),
                 "--target-column", "disease",
                 "--task", "classification", "--run", run, "--dataset", "toy", "--fold", "r0f0",
                 "--baselines", str(baselines_dir), "--out-dir", str(out)])


@pytest.fixture(scope="module")
def trained(fold):
    """Both AAM runs fine-tuned, the baselines fit once, and each run evaluated beside them."""
    for run, settings in RUNS.items():
        assert main(["finetune", "--tokens-dir", str(fold / "tokens"), "--splits", str(fold / "splits.tsv"),
                     "--samples", str(fold / "ingest/samples.parquet"), "--target-column", "disease",
                     "--task", "classification", "--settings", json.dumps(settings), "--seed", "42",
                     "--threads", "1", "--out-dir", str(fold / "models" / run)]) == 0
    assert baselines(fold, fold / "splits.tsv", fold / "baselines") == 0
    for run in RUNS:
        assert evaluate(fold, run, fold / "baselines", fold / "eval" / run) == 0
    return fold


def test_every_model_trains_validates_and_tests_on_the_same_samples(trained):
    root = trained
    want = expected_membership(root, root / "splits.tsv")
    assert len(want["train"]) == 29 and len(want["val"]) == 7 and len(want["test"]) == 11  # 4 left out
    base = json.loads((root / "baselines" / "metrics.json").read_text())
    base_pred = pd.read_csv(root / "baselines" / "predictions.tsv", sep="\t", dtype={"sample": str})
    assert set(base_pred["sample"]) == want["test"]
    assert base["n_train"] == len(want["train"]) + len(want["val"])  # fit on train + val
    assert base["fold_samples"] == split_fingerprints(want)
    records = []
    for run in RUNS:
        embeddings = pd.read_parquet(root / "models" / run / "embeddings.parquet", columns=["id", "split"])
        seen = {name: set(embeddings.loc[embeddings["split"] == name, "id"]) for name in want}
        assert seen == want, run  # what the run trained, validated and tested on
        predictions = pd.read_csv(root / "eval" / run / "predictions.tsv", sep="\t", dtype={"sample": str})
        assert set(predictions["sample"]) == want["test"]
        assert predictions[[f"{b}_pred" for b in base["models"]]].notna().all().all()
        records.append(json.loads((root / "eval" / run / "metrics.json").read_text()))
        assert records[-1]["fold_samples"] == base["fold_samples"]
    scores, _ = fold_scores(records, [base])
    assert sorted(scores["model"]) == sorted([*RUNS, *base["models"]])


def test_baselines_of_another_training_part_are_refused(trained, tmp_path):
    """The same test samples, one training subject moved to validation: the test fingerprints agree,
    so only the fold membership check can tell, and both `aam evaluate` and the summary refuse it."""
    root = trained
    moved = pd.read_csv(root / "splits.tsv", sep="\t", dtype=str)
    moved.loc[moved["group"] == "subject0", "split"] = "val"
    moved.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    assert baselines(root, tmp_path / "splits.tsv", tmp_path / "baselines") == 0
    other = json.loads((tmp_path / "baselines" / "metrics.json").read_text())
    first = json.loads((root / "baselines" / "metrics.json").read_text())
    assert other["test_samples"] == first["test_samples"] and other["n_train"] == first["n_train"]
    assert evaluate(root, "single", tmp_path / "baselines", tmp_path / "eval") == 2
    assert not (tmp_path / "eval").exists()
    record = json.loads((root / "eval" / "single" / "metrics.json").read_text())
    with pytest.raises(ValueError, match="'random_forest' and 'single' had different train samples"):
        fold_scores([record], [other])
