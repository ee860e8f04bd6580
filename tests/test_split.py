"""aam.data.split and `aam split`: no group in two splits, stratified, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aam.cli import main
from aam.data.split import check_fractions, grouped_split, split_summary, stratify_column
from aam.errors import InputError

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def synthetic(seed=0, n_groups=60):
    """Samples in groups of 1-12; each group mostly of one class, like patients with a diagnosis."""
    rng = np.random.default_rng(seed)
    samples, groups, classes = [], [], []
    for g in range(n_groups):
        size = int(rng.integers(1, 13))
        cls = "CD" if rng.random() < 0.4 else "control"
        for k in range(size):
            samples.append(f"{g}.{k}")
            groups.append(f"subject{g}")
            classes.append(cls if rng.random() < 0.9 else None)
    return samples, groups, classes


@pytest.mark.parametrize("seed", range(5))
def test_no_group_spans_two_splits(seed):
    samples, groups, classes = synthetic(seed)
    result = grouped_split(samples, groups, classes, FRACTIONS, seed=seed)
    assert list(result["sample"]) == samples
    per_group = result.groupby("group")["split"].nunique()
    assert (per_group == 1).all()
    assert set(result["split"]) == {"train", "val", "test"}


def test_fractions_and_strata_close_to_targets():
    samples, groups, classes = synthetic(1, n_groups=200)
    result = grouped_split(samples, groups, classes, FRACTIONS, seed=3)
    shares = result["split"].value_counts(normalize=True)
    for split, fraction in FRACTIONS.items():
        assert abs(shares[split] - fraction) < 0.03
    frame = result.assign(cls=[c or "<missing>" for c in classes])
    for _, part in frame.groupby("cls"):
        class_shares = part["split"].value_counts(normalize=True)
        for split, fraction in FRACTIONS.items():
            assert abs(class_shares.get(split, 0) - fraction) < 0.05


def test_seeded():
    samples, groups, classes = synthetic(2)
    a = grouped_split(samples, groups, classes, FRACTIONS, seed=7)
    b = grouped_split(samples, groups, classes, FRACTIONS, seed=7)
    c = grouped_split(samples, groups, classes, FRACTIONS, seed=8)
    assert a.equals(b)
    assert not a["split"].equals(c["split"])


def test_without_groups_each_sample_is_its_own_group():
    samples = [f"s{i}" for i in range(100)]
    result = grouped_split(samples, None, None, FRACTIONS, seed=0)
    assert result["split"].value_counts().to_dict() == {"train": 70, "val": 15, "test": 15}
    assert result["group"].isna().all()


def test_missing_group_values_are_singletons():
    samples = [f"s{i}" for i in range(10)]
    groups = ["a"] * 5 + [None, np.nan, None, None, None]
    result = grouped_split(samples, groups, None, {"train": 0.5, "test": 0.5}, seed=0)
    assert result.loc[:4, "split"].nunique() == 1
    assert set(result["split"]) <= {"train", "test"}


def test_split_with_zero_fraction_gets_nothing():
    samples, groups, classes = synthetic(3)
    result = grouped_split(samples, groups, classes, {"train": 0.8, "test": 0.2}, seed=0)
    assert "val" not in set(result["split"])


def test_check_fractions():
    assert check_fractions({"train": 1}) == {"train": 1.0, "val": 0.0, "test": 0.0}
    for bad in (
        {"train": 0.5, "val": 0.2},
        {"train": 0, "test": 1},
        {"train": 0.9, "dev": 0.1},
        {"train": 1.5},
    ):
        with pytest.raises(ValueError):
            check_fractions(bad)


def test_summary_counts():
    samples, groups, classes = synthetic(4)
    result = grouped_split(samples, groups, classes, FRACTIONS, seed=0)
    summary = split_summary(result, classes)
    totals = summary[summary["class"] == "all"].set_index("split")["samples"]
    assert totals.sum() == len(samples)
    by_class = summary[summary["class"] != "all"].groupby("split")["samples"].sum()
    assert (by_class == totals.loc[by_class.index]).all()
    assert "<missing>" in set(summary["class"])


def test_stratify_column():
    targets = [
        {"name": "age", "column": "age_years", "type": "regression"},
        {"name": "ibd", "column": "diagnosis", "type": "classification"},
    ]
    assert stratify_column({}, targets) == "diagnosis"
    assert stratify_column({"stratify": "auto"}, targets[:1]) is None
    assert stratify_column({"stratify": None}, targets) is None
    assert stratify_column({"stratify": "ibd"}, targets) == "diagnosis"
    with pytest.raises(InputError, match="regression"):
        stratify_column({"stratify": "age"}, targets)
    with pytest.raises(InputError, match="no target"):
        stratify_column({"stratify": "bmi"}, targets)


def test_stage_writes_splits_and_summary(tmp_path):
    samples, groups, classes = synthetic(5)
    pq.write_table(
        pa.table({"sample": samples, "host_subject_id": groups, "dx": classes}), tmp_path / "samples.parquet"
    )
    argv = [
        "split",
        "--samples",
        str(tmp_path / "samples.parquet"),
        "--group-column",
        "host_subject_id",
        "--stratify-column",
        "dx",
        "--settings",
        '{"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}}',
        "--seed",
        "3",
        "--out",
        str(tmp_path / "splits.tsv"),
        "--summary",
        str(tmp_path / "summary.tsv"),
    ]
    assert main(argv) == 0
    splits = pd.read_csv(tmp_path / "splits.tsv", sep="\t", dtype=str)
    assert list(splits.columns) == ["sample", "split", "group"]
    assert list(splits["sample"]) == samples
    assert (splits.groupby("group")["split"].nunique() == 1).all()
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    assert list(summary.columns) == ["split", "class", "samples", "groups"]
    assert set(summary["class"]) == {"all", "CD", "control", "<missing>"}
    # the same seed gives the same file
    argv[argv.index("--out") + 1] = str(tmp_path / "again.tsv")
    assert main(argv) == 0
    assert (tmp_path / "again.tsv").read_text() == (tmp_path / "splits.tsv").read_text()
