"""splits.tsv: each sample's split (train, val or test), as the split stage writes it."""

from __future__ import annotations

import os

import pandas as pd

from aam.errors import InputError

_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    """splits.tsv -> {sample: train|val|test}. Columns: a sample column and ``split``."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    split_col = next((c for c in table.columns if c.lower() == "split"), None)
    if split_col is None:
        raise InputError(f"{path}: no 'split' column (has {list(table.columns)})")
    names = ("sample", "sample_id", "sample-id", "sampleid", "#sampleid", "id")
    sample_col = next((c for c in table.columns if c.lower() in names), table.columns[0])
    out = {}
    for sample, split in zip(table[sample_col], table[split_col], strict=True):
        name = _SPLIT_ALIASES.get(split.strip().lower())
        if name is None:
            raise InputError(f"{path}: sample {sample}: unknown split {split!r}")
        out[str(sample)] = name
    return out


def read_groups(path: str | os.PathLike) -> dict[str, str | None]:
    """splits.tsv -> {sample: its group} (None for an empty cell; {} without a ``group`` column):
    the grouping that inner cross-validation keeps whole."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if "group" not in frame.columns:
        return {}
    return {s: (g or None) for s, g in zip(frame.iloc[:, 0], frame["group"], strict=True)}
