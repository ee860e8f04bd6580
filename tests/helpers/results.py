"""A toy results folder with every file the results page reads: six samples, four groups, two classes."""

from __future__ import annotations

from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd

SPLITS = pd.DataFrame({
    "sample": ["a1", "a2", "b1", "c1", "c2", "d1"],
    "split": ["train", "train", "train", "test", "test", "test"],
    "group": ["A", "A", "B", "C", "C", "D"],
})
CLASSES = pd.Series({"a1": "CD", "a2": "CD", "b1": "no", "c1": "CD", "c2": "CD", "d1": "no"})


def write_toy_results(results: Path) -> dict:
    """A dataset `toy` under `results` with every file the results page reads; returns its plan."""
    root = results / "toy"
    (root / "rarefied").mkdir(parents=True)
    (root / "ingest").mkdir()
    (root / "split").mkdir()
    (root / "comparison").mkdir()
    SPLITS.to_csv(root / "split" / "splits.tsv", sep="\t", index=False)
    samples = pd.DataFrame({"sample": CLASSES.index, "dx": CLASSES.to_numpy()})
    samples.to_parquet(root / "ingest/samples.parquet")
    pd.DataFrame({"sample": ["a2", "c1", "c2"], "reads": [10, 12, 3]}).to_csv(
        root / "rarefied/dropped.tsv", sep="\t", index=False)
    kept = ["a1", "b1", "d1"]
    table = biom.Table(np.array([[20, 5, 1], [0, 15, 19]]), ["f1", "f2"], kept)  # every sample has 20 reads
    with h5py.File(root / "rarefied/table.biom", "w") as fh:
        table.to_hdf5(fh, "test")
    pd.DataFrame({"target": ["dx"], "task": ["classification"], "run": ["r"], "n_test": [1],
                  "metric": ["auroc"], "aam": [0.5], "random_forest": [0.75],
                  "best_baseline": ["random_forest"],
                  "difference": [-0.25]}).to_csv(
        root / "comparison" / "comparison.tsv", sep="\t", index=False)
    return {"datasets": {"toy": {"class_column": "dx", "comparison": True, "faith_pd": False}},
            "sequences": {}}
