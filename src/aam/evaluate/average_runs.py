"""AAM runs averaged after training: the equal-weight mean of several runs' test predictions on each
fold, one more model row of the cross-validated summary and the leaderboard.

``finetune.ensemble: N`` trains a seed ensemble in one job. Runs trained apart can be averaged the
same way afterwards, with no more training: per fold, the mean of the runs' class probabilities (the
predicted class the most probable, as in aam.evaluate.combine) or regression values on the fold's
test samples. Two uses:

- a seed ensemble built from runs already done: the run of ``finetune.trainer.seed`` 43 beside the
  run of the config's 42 (otherwise the same) is member 1 of ``ensemble: 2``, so their mean is that
  ensemble's test prediction for classification; for regression it differs by the calibration (an
  ensemble fits one scale on its members' mean, each averaged run fits its own);
- runs of different kinds (from scratch and pretrained, say), averaged as one model.

The row is named ``<run1>+<run2>+... (mean)`` (aam.evaluate.combine.row_name) and is of kind
``combined``; its weights are fixed, never fitted, so nothing is tuned on the test fold. The members
of a fold must have been tested on the same samples and trained and validated on the same samples
(their fingerprints in metrics.json), so an average never mixes folds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError
from aam.evaluate.combine import MODEL, mean_outputs, row_name
from aam.evaluate.fold_samples import fold_mismatch
from aam.evaluate.metrics import compute_metrics, degenerate_predictions


def parse_groups(specs: Sequence[str]) -> list[list[str]]:
    """``--average aam,aam_s43 scratch,bundled`` -> [[aam, aam_s43], [scratch, bundled]]: each group
    two or more distinct runs."""
    groups = []
    for spec in specs:
        runs = [r for r in spec.split(",") if r]
        if len(runs) < 2 or len(set(runs)) != len(runs):
            raise InputError(f"--average {spec}: give two or more distinct runs, separated by commas")
        groups.append(runs)
    return groups


def read_test_outputs(predictions: Path, classes: list[str] | None) -> pd.DataFrame:
    """The run's test rows of an evaluation's predictions.tsv, indexed by sample: y_true, the
    model's prediction and (classification) its probabilities in `classes` order."""
    columns = [f"{MODEL}_pred", *[f"{MODEL}_prob_{c}" for c in classes or []]]
    try:
        text = {"sample": str} | ({"y_true": str, f"{MODEL}_pred": str} if classes else {})
        table = pd.read_csv(predictions, sep="\t", dtype=text)
        test = table.loc[table["split"] == "test", ["sample", "y_true", *columns]]
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"{predictions}: not an `aam evaluate` predictions.tsv ({err})") from None
    return test.set_index("sample")


def average_fold(group: Sequence[str], members: Sequence[tuple[Mapping, Path]]) -> dict:
    """The averaged model's record for one fold: model (its row name), fold, task, test (its
    metrics), test_samples and fold_samples (the members'), degenerate (or None).

    `members`: each run's (metrics.json record, predictions.tsv path), in `group` order."""
    first, first_path = members[0]
    task, classes, fold = first["task"], first.get("classes"), first["fold"]
    frames = []
    for record, path in members:
        if record.get("test_samples") != first.get("test_samples"):
            raise InputError(f"{path}: run {record['run']!r} was tested on other samples than "
                             f"{first['run']!r} in fold {fold}; they cannot be averaged")
        split = fold_mismatch(record.get("fold_samples") or {}, first.get("fold_samples") or {})
        if split:
            raise InputError(f"{path}: run {record['run']!r} had other {split} samples than "
                             f"{first['run']!r} in fold {fold}; they cannot be averaged")
        frames.append(read_test_outputs(path, classes))
    order = frames[0].index
    for frame, (_, path) in zip(frames, members, strict=True):
        if frame.index.has_duplicates or set(frame.index) != set(order):
            raise InputError(f"{path}: its test samples are not those of {first_path} (fold {fold})")
    frames = [frame.loc[order] for frame in frames]
    outputs = [(f[f"{MODEL}_pred"].to_numpy(),
                f[[f"{MODEL}_prob_{c}" for c in classes]].to_numpy(dtype=np.float64) if classes else None)
               for f in frames]
    pred, proba = mean_outputs(task, outputs, classes)
    y_true = frames[0]["y_true"].to_numpy()
    return {
        "model": row_name(group[0], group),
        "fold": fold,
        "task": task,
        "test": compute_metrics(task, y_true, pred, proba, classes),
        "test_samples": first.get("test_samples"),
        "fold_samples": first.get("fold_samples"),
        "degenerate": degenerate_predictions(task, y_true, pred, proba),
    }


def averaged_records(groups: Sequence[Sequence[str]], records: Sequence[Mapping],
                     predictions: Sequence[Path]) -> list[dict]:
    """One averaged record per group and fold (average_fold). `records[i]` is the metrics.json
    whose predictions.tsv is `predictions[i]`; a run of a group absent from them, or a fold that
    lacks one of a group's runs, is one InputError line."""
    by_run_fold = {(r["run"], r.get("fold")): (r, Path(p)) for r, p in zip(records, predictions, strict=True)}
    runs = {run for run, _ in by_run_fold}
    out = []
    for group in groups:
        missing = [run for run in group if run not in runs]
        if missing:
            raise InputError(f"--average {','.join(group)}: no evaluation of run {missing[0]!r} among "
                             f"the metrics given (runs: {sorted(runs)})")
        folds = sorted({fold for run, fold in by_run_fold if run == group[0]}, key=str)
        for fold in folds:
            absent = [run for run in group if (run, fold) not in by_run_fold]
            if absent:
                raise InputError(f"--average {','.join(group)}: fold {fold} has no evaluation of run "
                                 f"{absent[0]!r}")
            out.append(average_fold(group, [by_run_fold[(run, fold)] for run in group]))
    return out
