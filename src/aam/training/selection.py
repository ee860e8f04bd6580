"""Inner cross-validation: choose a run's settings from a small grid on its own training samples.

``finetune.select`` (opt-in) names a grid of a few settings and a number of inner folds. Before the
fine-tuning proper, every combination of the grid is fine-tuned on each inner fold of the run's
training samples and scored on that fold's held-out part; the combination with the best mean
score is then fine-tuned as usual. Settings chosen this way are chosen per dataset, and per outer
fold in a cross-validation, so a user can run it on a study of their own; on a benchmark, the
choice costs (grid size x inner folds) extra fine-tunings per outer fold.

What it may read: the samples of the ``train`` and ``val`` splits of the run's ``splits.tsv``,
nothing else. The inner folds are built from those samples alone (grouped by the ``group`` column
of splits.tsv, so a subject never sits on both sides; stratified by class for classification) and
written to splits files that list only them, so neither the inner models nor the inner scores can
see a ``test`` sample or its target (a test poisons the test samples' targets and checks that the
choice and every inner score stay the same).

Grid keys and where they go in the run's settings (``GRID_KEYS``): ``lr`` and ``max_epochs``
(``finetune.trainer``), ``weight_decay`` (``finetune.trainer``), ``asv_limit`` (``data``),
``dropout`` and ``asv_readout`` (``model``), ``readout_lr_scale`` (``finetune``). The readout's
kind is among them because the benchmark found it task-dependent (docs/benchmark.md, "Eleventh
round": ``log`` won every Kostic fold but one and lost all Turnbaugh folds but one).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError

# grid key -> the settings path it sets
GRID_KEYS: dict[str, tuple[str, ...]] = {
    "lr": ("finetune", "trainer", "lr"),
    "max_epochs": ("finetune", "trainer", "max_epochs"),
    "weight_decay": ("finetune", "trainer", "weight_decay"),
    "asv_limit": ("data", "asv_limit"),
    "dropout": ("model", "dropout"),
    "asv_readout": ("model", "asv_readout"),
    "readout_lr_scale": ("finetune", "readout_lr_scale"),
}
TRAINING_SPLITS = ("train", "val")


def grid_candidates(settings: Mapping, grid: Mapping[str, Sequence]) -> list[tuple[dict, dict]]:
    """Every combination of ``grid`` as (the chosen values, the run's settings with them applied),
    in a fixed order (keys sorted, values as given). An empty grid gives the settings alone."""
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise InputError(f"finetune.select.grid: unknown key(s) {unknown}; known: {sorted(GRID_KEYS)}")
    keys = sorted(grid)
    for key in keys:
        if not isinstance(grid[key], list | tuple) or not grid[key]:
            raise InputError(f"finetune.select.grid.{key}: expected a non-empty list of values")
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        out.append((chosen, apply_choice(settings, chosen)))
    return out


def apply_choice(settings: Mapping, chosen: Mapping) -> dict:
    """A deep copy of ``settings`` with each grid value set at its place (GRID_KEYS)."""
    out = copy.deepcopy(dict(settings))
    for key, value in chosen.items():
        *parents, leaf = GRID_KEYS[key]
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def training_part(splits: pd.DataFrame) -> pd.DataFrame:
    """The rows of splits.tsv that the selection may use: the train and val samples."""
    if "split" not in splits.columns or "sample" not in splits.columns:
        raise InputError(f"splits: needs 'sample' and 'split' columns, has {list(splits.columns)}")
    return splits[splits["split"].isin(TRAINING_SPLITS)].reset_index(drop=True)


def inner_folds(part: pd.DataFrame, labels: Mapping[str, str] | None, folds: int, seed: int,
                val_fraction: float) -> list[pd.DataFrame]:
    """Inner K-fold splits of the training part: one splits table (sample, split, group) per fold,
    listing only the samples of ``part``. Grouped by ``part``'s ``group`` column (when present),
    stratified by ``labels`` (classification; None for regression); each fold's training samples
    give up ``val_fraction`` for validation (early stopping), as the outer folds do.
    """
    from aam.data.split import cv_folds

    frame = pd.DataFrame({"sample": part["sample"].astype(str).to_numpy()})
    group = None
    if "group" in part.columns:
        frame["group"] = part["group"].replace("", np.nan).to_numpy()
        group = "group"
    stratify = None
    if labels is not None:
        frame["label"] = [labels.get(s) for s in frame["sample"]]
        stratify = "label"
    try:
        assigned = cv_folds(frame, group, stratify, folds, 1, seed, val_fraction)
    except ValueError as err:
        raise InputError(f"finetune.select: {err}") from None
    out = []
    for fold in range(folds):
        rows = assigned[assigned["fold"] == fold][["sample", "split"]].reset_index(drop=True)
        if group:
            rows["group"] = frame.set_index("sample").loc[rows["sample"], "group"].to_numpy()
        out.append(rows)
    return out


@dataclass
class Selection:
    """The outcome of a selection: every candidate's inner scores and the one chosen."""

    metric: str
    candidates: list[dict] = field(default_factory=list)  # {"values", "scores", "mean"}
    chosen: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"metric": self.metric, "chosen": self.chosen, "candidates": self.candidates}


def select(candidates: list[tuple[dict, dict]], n_folds: int,
           score: Callable[[int, dict, int], float | None], metric: str,
           higher_is_better: bool = True) -> Selection:
    """Score every candidate on every inner fold (``score(candidate_index, settings, fold_index)``:
    the held-out metric, None where undefined) and choose the best mean score; ties go to the
    earlier candidate. A candidate without any defined score cannot be chosen."""
    result = Selection(metric)
    best, best_mean = None, None
    for i, (values, settings) in enumerate(candidates):
        scores = [score(i, settings, k) for k in range(n_folds)]
        defined = [s for s in scores if s is not None and math.isfinite(s)]
        mean = float(np.mean(defined)) if defined else None
        result.candidates.append({"values": values, "scores": scores, "mean": mean})
        if mean is None:
            continue
        better = best_mean is None or (mean > best_mean if higher_is_better else mean < best_mean)
        if better:
            best, best_mean = i, mean
    if best is None:
        raise InputError(f"finetune.select: no candidate has a defined inner {metric} on any fold")
    result.chosen = dict(candidates[best][0])
    return result


def write_inner_splits(folds: list[pd.DataFrame], folder: Path) -> list[Path]:
    """Each inner fold's splits.tsv under ``folder/fold{k}/``."""
    paths = []
    for k, rows in enumerate(folds):
        path = folder / f"fold{k}" / "splits.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, sep="\t", index=False)
        paths.append(path)
    return paths
