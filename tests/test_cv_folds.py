"""aam.data.split.cv_folds: grouped, stratified, seeded, repeated K-fold with a validation part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aam.data.split import cv_folds, fold_name, fold_names, fold_splits, parse_fold_name


def frame(seed=0, n_groups=60):
    """Samples in groups of 1-12 (subjects), each group mostly of one class; some values missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        size = int(rng.integers(1, 13))
        cls = "CD" if rng.random() < 0.4 else "control"
        for k in range(size):
            rows.append(
                {
                    "sample": f"{g}.{k}",
                    "subject": f"subject{g}" if g % 17 else None,  # a few samples without a group
                    "ibd": cls if rng.random() < 0.9 else None,
                }
            )
    return pd.DataFrame(rows)


def group_keys(samples):
    return [s if g is None else g for s, g in zip(samples["sample"], samples["subject"], strict=True)]


@pytest.mark.parametrize("seed", range(3))
def test_no_group_in_two_splits_and_every_sample_tested_once(seed):
    samples = frame(seed)
    result = cv_folds(samples, "subject", "ibd", folds=5, repeats=2, seed=seed)
    assert list(result.columns) == ["sample", "repeat", "fold", "split"]
    assert len(result) == len(samples) * 10
    keys = dict(zip(samples["sample"], group_keys(samples), strict=True))
    result["group"] = result["sample"].map(keys)
    # within one fold, a group sits in one split only
    assert (result.groupby(["repeat", "fold", "group"])["split"].nunique() == 1).all()
    for (_, _), part in result.groupby(["repeat", "fold"]):
        assert set(part["split"]) == {"train", "val", "test"}
        assert sorted(part["sample"]) == sorted(samples["sample"])
    tested = result[result["split"] == "test"].groupby(["repeat", "sample"]).size()
    assert (tested == 1).all()
    assert len(tested) == 2 * len(samples)


def test_seeded_and_repeats_differ():
    samples = frame(1)
    a = cv_folds(samples, "subject", "ibd", 5, 2, seed=7)
    b = cv_folds(samples, "subject", "ibd", 5, 2, seed=7)
    c = cv_folds(samples, "subject", "ibd", 5, 2, seed=8)
    assert a.equals(b)
    assert not a["split"].equals(c["split"])
    # repeat 0 and repeat 1 put samples in different test folds (as a partition, not just relabelled)
    tests = a[a["split"] == "test"]
    part0 = {frozenset(p["sample"]) for _, p in tests[tests["repeat"] == 0].groupby("fold")}
    part1 = {frozenset(p["sample"]) for _, p in tests[tests["repeat"] == 1].groupby("fold")}
    assert part0 != part1


def test_stratified_and_balanced():
    samples = frame(2, n_groups=200)
    result = cv_folds(samples, "subject", "ibd", folds=5, repeats=1, seed=0, val_fraction=0.15)
    merged = result.merge(samples, on="sample")
    overall = samples["ibd"].fillna("<missing>").value_counts(normalize=True)
    for _, part in merged.groupby("fold"):
        test = part[part["split"] == "test"]
        assert abs(len(test) / len(samples) - 0.2) < 0.03
        shares = test["ibd"].fillna("<missing>").value_counts(normalize=True)
        for cls, share in overall.items():
            assert abs(shares.get(cls, 0) - share) < 0.06, (cls, shares.to_dict(), overall.to_dict())
        training = part[part["split"] != "test"]
        assert abs((training["split"] == "val").mean() - 0.15) < 0.03


def test_without_groups_or_strata():
    samples = pd.DataFrame({"sample": [f"s{i}" for i in range(23)]})
    result = cv_folds(samples, None, None, folds=4, repeats=1, seed=0, val_fraction=0)
    sizes = result[result["split"] == "test"].groupby("fold").size()
    assert sorted(sizes) == [5, 6, 6, 6]
    assert set(result["split"]) == {"train", "test"}


def test_fold_splits_is_one_fold_in_splits_tsv_form():
    samples = frame(3)
    result = cv_folds(samples, "subject", "ibd", 3, 1, seed=0)
    one = fold_splits(result, samples, "subject", "r0f2")
    assert list(one.columns) == ["sample", "split", "group"]
    assert list(one["sample"]) == list(samples["sample"])
    expected = result[result["fold"] == 2].set_index("sample")["split"]
    assert (one.set_index("sample")["split"] == expected.loc[one["sample"]]).all()
    assert fold_names(2, 2) == ["r0f0", "r0f1", "r1f0", "r1f1"]
    assert parse_fold_name(fold_name(3, 11)) == (3, 11)
    with pytest.raises(ValueError, match="bad fold name"):
        parse_fold_name("fold3")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 7}, "7 folds but only 6 groups"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"repeats": 0}, "repeats must be an integer >= 1"),
        ({"val_fraction": 1.0}, r"val_fraction must lie in \[0, 1\)"),
        ({"group_column": "nope"}, "no group column 'nope'"),
        ({"folds": 2}, "fewer than 2 groups"),
    ],
)
def test_bad_settings_one_clear_line(kwargs, message):
    names = [f"s{i}" for i in range(12)]
    samples = pd.DataFrame({"sample": names, "subject": [f"g{i // 2}" for i in range(12)]})
    settings = {"group_column": "subject", "stratify": None, "folds": 3, "repeats": 1, "seed": 0} | kwargs
    if message == "fewer than 2 groups":
        samples["subject"] = ["a"] * 10 + ["b"] * 2  # 2 groups, 2 folds: a training part of 1 group
    with pytest.raises(ValueError, match=message) as err:
        cv_folds(samples, **settings)
    assert "\n" not in str(err.value)


def test_a_repeat_s_folds_do_not_depend_on_how_many_repeats_are_made():
    """Repeat 2 made alone (as the workflow's job of that repeat makes it) equals repeat 2 of four."""
    samples = frame(4)
    four = cv_folds(samples, "subject", "ibd", 3, 4, seed=5)
    alone = cv_folds(samples, "subject", "ibd", 3, 1, seed=5, first_repeat=2)
    assert alone.equals(four[four["repeat"] == 2].reset_index(drop=True))
    assert not alone.equals(cv_folds(samples, "subject", "ibd", 3, 1, seed=5).assign(repeat=2))
    with pytest.raises(ValueError, match="first repeat must be an integer >= 0"):
        cv_folds(samples, "subject", "ibd", 3, 1, seed=5, first_repeat=-1)


def test_cv_split_stage_writes_one_splits_tsv_per_fold(tmp_path, capsys):
    from aam.cli import main
    from aam.io.splits import read_splits

    samples = frame(4)
    samples.to_parquet(tmp_path / "samples.parquet", index=False)
    out = tmp_path / "cv"
    argv = [
        "cv-split",
        "--samples",
        str(tmp_path / "samples.parquet"),
        "--group-column",
        "subject",
        "--stratify-column",
        "ibd",
        "--folds",
        "3",
        "--repeats",
        "2",
        "--seed",
        "5",
        "--out-dir",
        str(out),
    ]
    assert main(argv) == 0
    folds = pd.read_csv(out / "folds.tsv", sep="\t", dtype={"sample": str})
    assert folds.equals(cv_folds(samples, "subject", "ibd", 3, 2, seed=5).astype({"sample": str}))
    for name in fold_names(3, 2):
        repeat, fold = parse_fold_name(name)
        expected = folds[(folds["repeat"] == repeat) & (folds["fold"] == fold)].set_index("sample")["split"]
        assert read_splits(out / f"{name}.tsv") == expected.to_dict()
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    assert set(summary["fold"]) == set(fold_names(3, 2))
    # one repeat in a folder of its own, as the workflow makes it: repeat 1's files, the same folds
    assert main([*argv[:argv.index("--repeats")], "--repeats", "1", "--first-repeat", "1", "--seed", "5",
                 "--out-dir", str(tmp_path / "r1")]) == 0
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == [
        "folds.tsv", "r1f0.tsv", "r1f1.tsv", "r1f2.tsv", "summary.tsv"]
    for name in ("r1f0", "r1f1", "r1f2"):
        assert (tmp_path / "r1" / f"{name}.tsv").read_bytes() == (out / f"{name}.tsv").read_bytes()
    # too many folds: one line naming the problem, exit 2, nothing written
    argv[argv.index("--folds") + 1] = "500"
    argv[argv.index("--out-dir") + 1] = str(tmp_path / "bad")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "500 folds but only" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_pretrain_split_takes_every_table_sample(tmp_path):
    """Pretraining's split holds every sample of counts.parquet, also those without metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aam.cli import main

    names = [f"s{i}" for i in range(40)]
    pq.write_table(
        pa.table({"sample": np.repeat(names, 2), "feature": ["A", "B"] * 40, "count": [3] * 80}),
        tmp_path / "counts.parquet",
    )
    meta = pd.DataFrame({"sample": names[:20], "subject": [f"g{i // 4}" for i in range(20)]})  # 20 unlabelled
    meta.to_parquet(tmp_path / "samples.parquet", index=False)
    argv = [
        "pretrain-split",
        "--counts",
        str(tmp_path / "counts.parquet"),
        "--samples",
        str(tmp_path / "samples.parquet"),
        "--group-column",
        "subject",
        "--val-fraction",
        "0.25",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "p.tsv"),
    ]
    assert main(argv) == 0
    split = pd.read_csv(tmp_path / "p.tsv", sep="\t", dtype=str)
    assert list(split["sample"]) == names
    assert set(split["split"]) == {"train", "val"}
    assert (split["split"] == "val").sum() == 10
    grouped = split.dropna(subset=["group"]).groupby("group")["split"].nunique()
    assert (grouped == 1).all()


def test_few_large_groups_still_get_a_validation_group():
    # 8 groups of 8: a fold's 4 training groups; 15 % of 32 samples is 4.8, one group is 8, and the
    # greedy split alone would leave val empty. One (whole) group goes to val.
    samples = pd.DataFrame(
        {
            "sample": [f"s{i}" for i in range(64)],
            "subject": [f"g{i // 8}" for i in range(64)],
            "ibd": ["CD" if i // 8 < 4 else "control" for i in range(64)],
        }
    )
    result = cv_folds(samples, "subject", None, folds=2, repeats=1, seed=0)
    for _, part in result.groupby("fold"):
        assert (part["split"] == "val").sum() == 8
        assert (part["split"] == "train").sum() == 24
    from aam.data.split import pretrain_split

    split = pretrain_split(list(samples["sample"]), list(samples["subject"]), 0.05, seed=0)
    assert (split["split"] == "val").sum() == 8
    with pytest.raises(ValueError, match="at least 2 groups"):
        pretrain_split(["a", "b"], ["g", "g"], 0.5, seed=0)


def test_validation_holds_every_class_when_subjects_have_one_class():
    # 8 subjects of 8 samples, each subject one class: 15 % of a fold's 32 training samples is less
    # than a subject, yet val gets one subject of each class, so that a validation AUROC exists.
    samples = pd.DataFrame(
        {
            "sample": [f"s{i}" for i in range(64)],
            "subject": [f"g{i // 8}" for i in range(64)],
            "ibd": ["CD" if (i // 8) % 2 else "control" for i in range(64)],
        }
    )
    result = cv_folds(samples, "subject", "ibd", folds=2, repeats=1, seed=3).merge(samples, on="sample")
    for _, part in result.groupby("fold"):
        assert set(part.loc[part["split"] == "val", "ibd"]) == {"CD", "control"}
        assert set(part.loc[part["split"] == "train", "ibd"]) == {"CD", "control"}
