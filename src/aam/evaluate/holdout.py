"""One fine-tuned model and every baseline, scored on the very same test samples.

The library of `aam evaluate`. The model's predictions.tsv, the split's splits.tsv and the
metadata are read and cross-checked (every test prediction is a test-split sample, every y_true is
the metadata's value); the baselines of `aam baselines` must have predicted exactly those samples
and trained and validated on the model's own (each split's fingerprint, the model's read from its
embeddings.parquet), or the comparison would be between different folds, so a mismatch is one
InputError line naming a sample or a split. Every model, ours and the baselines, is then scored by
the one metric registry (:func:`aam.evaluate.metrics.compute_metrics`) in one class order (the
positive class last). With `combine_with`, AAM's mean with each named baseline, or group of
baselines joined with ``+`` (:mod:`aam.evaluate.combine`), is one more model, scored the same way on
the same samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.baselines import LABELS
from aam.evaluate.combine import METHOD, MODEL, combination_members, combine, combined_key
from aam.evaluate.fold_samples import fold_mismatch, positive_last, samples_fingerprint, split_fingerprints
from aam.evaluate.metrics import compute_metrics, degenerate_predictions
from aam.io.embeddings import read_embeddings
from aam.io.splits import read_splits
from aam.provenance import provenance

MODEL_NAME = "AAM"


def read_model_info(path: Path) -> dict:
    """Task type and class names from the fine-tuned model's model.json (tolerant of key names), and
    whether the model saw its val samples in training."""
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    out = {}
    for container in (info, info.get("target", {}) if isinstance(info.get("target"), dict) else {}):
        for key in ("task", "task_type", "type"):
            if isinstance(container.get(key), str) and container[key] in ("regression", "classification"):
                out.setdefault("task", container[key])
        for key in ("classes", "class_names", "labels"):
            if isinstance(container.get(key), list):
                out.setdefault("classes", [str(c) for c in container[key]])
    # the model trained on its val samples (finetune.train_on_val), or its linear or forest member
    # was fitted on them (finetune.linear_member, forest_member): its val scores are not held out
    out["val_seen_in_training"] = bool(info.get("trained_on_val") or info.get("linear_member")
                                       or info.get("forest_member"))
    return out


def read_predictions(path: Path) -> pd.DataFrame:
    """The fine-tuning's predictions.tsv: one row per sample, probabilities as floats."""
    if not path.exists():
        raise InputError(f"{path}: model predictions not found")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"sample", "split", "y_true", "y_pred"} - set(df.columns)
    if missing:
        raise InputError(f"{path}: missing columns {sorted(missing)}")
    if df["sample"].duplicated().any():
        dup = df.loc[df["sample"].duplicated(), "sample"].iloc[0]
        raise InputError(f"{path}: sample {dup!r} appears more than once")
    for col in df.columns:
        if col.startswith("prob_"):
            values = pd.to_numeric(df[col], errors="coerce")
            if values.isna().any():
                raise InputError(f"{path}: column {col} has non-numeric values")
            df[col] = values.astype(float)
    return df


def read_labels(path: Path, column: str) -> pd.Series:
    """The target column of samples.parquet as strings (None where missing), indexed by sample."""
    df = pd.read_parquet(path)
    if "sample" not in df.columns:
        raise InputError(f"{path}: no 'sample' column")
    if column not in df.columns:
        raise InputError(f"{path}: no metadata column {column!r} for the target")
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[column]]
    return pd.Series(values, index=df["sample"].astype(str).to_numpy(dtype=object), dtype=object)


def _numeric(values, what: str) -> np.ndarray:
    """Floats of a regression column; a non-number is one InputError line naming `what`."""
    out = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    if np.isnan(out).any():
        raise InputError(f"{what}: non-numeric values for a regression target")
    return out


def _class_names(pred: pd.DataFrame, info: dict) -> list[str]:
    """The classes of model.json (else of the prob_<class> columns), each with a probability column."""
    prob_classes = [c[len("prob_"):] for c in pred.columns if c.startswith("prob_")]
    classes = info.get("classes") or prob_classes
    if not classes:
        raise InputError(
            "classification predictions name no classes (no prob_<class> columns, no model.json)"
        )
    missing = [c for c in classes if f"prob_{c}" not in pred.columns]
    if missing:
        raise InputError(f"predictions.tsv lacks probability columns for classes {missing}")
    return list(classes)


def read_baselines(folder: Path) -> tuple[dict, pd.DataFrame]:
    """metrics.json and predictions.tsv of `aam baselines`."""
    try:
        info = json.loads((folder / "metrics.json").read_text())
        _ = info["models"], info["task"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{folder / 'metrics.json'}: not an `aam baselines` metrics.json ({err})") from None
    path = folder / "predictions.tsv"
    try:
        pred = pd.read_csv(path, sep="\t", dtype={"sample": str, "y_true": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return info, pred.set_index("sample")


def _class_order(pred: pd.DataFrame, info: dict, positive: str) -> list[str]:
    """The class order every model is scored in: the positive class last for binary AUROC."""
    classes = _class_names(pred, info)
    if positive:
        try:
            classes = positive_last(classes, positive)
        except ValueError as err:
            raise InputError(f"--positive-class: {err}") from None
    return classes


def _check_labels(test: pd.DataFrame, labels: pd.Series, task: str, column: str) -> np.ndarray:
    """The test samples' true values; the model's y_true must agree with the metadata."""
    meta_test = labels.reindex(test["sample"].to_numpy(dtype=object))
    if task == "regression":
        y_test = _numeric(test["y_true"], "predictions.tsv y_true")
        meta_vals = pd.to_numeric(meta_test, errors="coerce").to_numpy(dtype=float)
        # y_true comes back from the model's float32 standardization and %.6g text: compare loosely
        scale = float(np.nanmax(np.abs(y_test))) or 1.0
        bad = ~np.isclose(meta_vals, y_test, rtol=1e-4, atol=1e-5 * scale)
    else:
        y_test = test["y_true"].astype(str).to_numpy(dtype=object)
        bad = meta_test.astype(str).to_numpy(dtype=object) != y_test
    if bad.any():
        first = test["sample"][bad].iloc[0]
        raise InputError(
            f"{int(bad.sum())} test samples' y_true differ from metadata column {column!r} "
            f"(first: {first!r}: {test['y_true'][bad].iloc[0]!r} vs {meta_test[bad].iloc[0]!r})"
        )
    return y_test


Outputs = tuple[np.ndarray, np.ndarray | None]  # predictions and, for classification, probabilities


def _outputs(frame: pd.DataFrame, task: str, classes: list[str] | None, what: str) -> Outputs:
    """A model's predictions (y_pred) and class probabilities (prob_<class>) in `classes` order."""
    if task == "regression":
        return _numeric(frame["y_pred"], f"{what} y_pred"), None
    return (frame["y_pred"].astype(str).to_numpy(dtype=object),
            frame[[f"prob_{c}" for c in classes]].to_numpy(dtype=float))


def _truth(frame: pd.DataFrame, task: str, what: str) -> np.ndarray:
    """The true values of a predictions frame, numbers for a regression."""
    if task == "regression":
        return _numeric(frame["y_true"], f"{what} y_true")
    return frame["y_true"].astype(str).to_numpy(dtype=object)


def baseline_predictions(folder: Path, test_samples: list[str], task: str,
                         classes: list[str] | None) -> tuple[dict, dict[str, Outputs]]:
    """Each baseline's test predictions (and probabilities in `classes` order) for exactly our test
    samples; an error naming a sample when the baselines predicted another set (another fold)."""
    info, pred = read_baselines(folder)
    if info["task"] != task:
        raise InputError(f"{folder / 'metrics.json'}: baselines of a {info['task']} task, not {task}")
    ours, theirs = set(test_samples), set(pred.index)
    if ours != theirs:
        extra = sorted(ours - theirs)
        missing = sorted(theirs - ours)
        detail = (f"{len(extra)} of the model's test samples lack a baseline prediction (first: {extra[0]!r})"
                  if extra else f"the baselines predicted {len(missing)} samples the model did not test "
                  f"(first: {missing[0]!r})")
        raise InputError(f"{folder / 'predictions.tsv'}: {detail}; were both made from the same splits.tsv?")
    if classes is not None and set(info.get("classes") or []) != set(classes):
        raise InputError(f"{folder / 'metrics.json'}: baselines' classes {info.get('classes')} differ from "
                         f"the model's {classes}")
    rows = pred.loc[test_samples]
    out = {}
    for name in info["models"]:
        column = f"{name}_pred"
        if column not in rows.columns:
            raise InputError(f"{folder / 'predictions.tsv'}: no column {column}")
        if task == "regression":
            out[name] = (_numeric(rows[column], f"{folder / 'predictions.tsv'} {column}"), None)
        else:
            probs = [f"{name}_prob_{c}" for c in classes]
            absent = [c for c in probs if c not in rows.columns]
            if absent:
                raise InputError(f"{folder / 'predictions.tsv'}: no columns {absent}")
            out[name] = (rows[column].astype(str).to_numpy(dtype=object), rows[probs].to_numpy(dtype=float))
    return info, out


Embeddings = tuple[np.ndarray, np.ndarray | None, np.ndarray]  # aam.io.embeddings.read_embeddings


def model_fold(finetune_dir: Path) -> tuple[Embeddings, dict[str, str] | None]:
    """The fine-tuned model's sample embeddings and, from their split column, the fingerprints of
    the samples it was trained, validated and tested on (None for a file without splits)."""
    path = finetune_dir / "embeddings.parquet"
    if not path.exists():
        raise InputError(f"{path}: sample embeddings not found")
    ids, split, matrix = read_embeddings(path)
    if split is None:
        return (ids, split, matrix), None
    return (ids, split, matrix), split_fingerprints({name: ids[split == name] for name in set(split)})


def check_same_fold(ours: dict[str, str] | None, info: dict, folder: Path) -> None:
    """The baselines of `folder` must have used this model's samples in every split."""
    split = fold_mismatch(ours, info.get("fold_samples"))
    if split:
        raise InputError(f"{folder / 'metrics.json'}: the baselines' {split} samples differ from the "
                         "model's; were both made from the same splits.tsv?")


@dataclass
class Holdout:
    """The test split as scored: the inputs read, every model's outputs and scores."""

    task: str
    classes: list[str] | None
    info: dict  # the fine-tuned model's model.json (task, classes, provenance)
    test: pd.DataFrame  # the model's test-split rows of predictions.tsv
    n_val: int
    y_test: np.ndarray
    labels: pd.Series  # the target column of every sample
    models: dict[str, Outputs]  # "aam" first, then each baseline, then each combination
    scores: dict[str, dict]
    val_scores: dict | None  # the model's validation metrics
    baselines_info: dict | None
    embeddings: Embeddings  # the model's sample embeddings of every split
    fold_samples: dict[str, str] | None  # each split's fingerprint, from the embeddings' split column
    combined: dict[str, list[str]] = field(default_factory=dict)  # "aam+<combination>" -> its members


def score_holdout(finetune_dir: Path, splits: str, samples: str, target_column: str, task: str | None,
                  positive_class: str, baselines: str | None, combine_with: Sequence[str] = ()) -> Holdout:
    """Read and cross-check the inputs, then score the model, the baselines and AAM's mean with each
    combination of `combine_with` (baselines joined with +; it needs `baselines`) on the test samples."""
    info = read_model_info(finetune_dir / "model.json")
    task = task or info.get("task")
    if task not in ("regression", "classification"):
        raise InputError(f"task {task!r} unknown: pass --task regression|classification")
    if info.get("task") and info["task"] != task:
        raise InputError(
            f"{finetune_dir / 'model.json'}: model task {info['task']!r} but the target is {task!r}"
        )
    pred = read_predictions(finetune_dir / "predictions.tsv")
    split_of = pd.Series(read_splits(splits), dtype=object)
    labels = read_labels(Path(samples), target_column)
    test = pred[pred["split"] == "test"].reset_index(drop=True)
    val = pred[pred["split"] == "val"].reset_index(drop=True)
    if test.empty:
        raise InputError(f"{finetune_dir / 'predictions.tsv'}: no test-split predictions")
    unknown = [s for s in test["sample"] if split_of.get(s) != "test"]
    if unknown:
        raise InputError(
            f"{len(unknown)} samples predicted as test are not in the test split of {splits} "
            f"(first: {unknown[:3]})"
        )
    classes = _class_order(pred, info, positive_class) if task == "classification" else None
    y_test = _check_labels(test, labels, task, target_column)
    embeddings, fold = model_fold(finetune_dir)
    models: dict[str, Outputs] = {"aam": _outputs(test, task, classes, "predictions.tsv")}
    baselines_info = None
    if combine_with and not baselines:
        raise InputError(f"--combine {' '.join(combine_with)}: needs --baselines (the fold's baselines)")
    if baselines:
        baselines_info, found = baseline_predictions(Path(baselines), list(test["sample"]), task, classes)
        check_same_fold(fold, baselines_info, Path(baselines))
        models.update(found)
        models.update(combine(models, combine_with, task, classes, str(Path(baselines) / "predictions.tsv")))
    try:
        scores = {name: compute_metrics(task, y_test, *outputs, classes) for name, outputs in models.items()}
        val_scores = None
        if len(val):
            val_scores = compute_metrics(task, _truth(val, task, "val"), *_outputs(val, task, classes, "val"),
                                         classes)
    except ValueError as err:
        raise InputError(f"{finetune_dir / 'predictions.tsv'}: cannot score the predictions: {err}") from err
    return Holdout(task, classes, info, test, len(val), y_test, labels, models, scores, val_scores,
                   baselines_info, embeddings, fold,
                   {combined_key(c): [MODEL, *combination_members(c)] for c in combine_with})


def degenerate_flags(h: Holdout) -> dict[str, str | None]:
    """Per model, why its test predictions ignore their input (one class for every sample, or a
    regression nearly constant), or None."""
    return {name: degenerate_predictions(h.task, h.y_test, list(p), proba)
            for name, (p, proba) in h.models.items()}


def metrics_record(h: Holdout, flags: dict[str, str | None], labels: dict) -> dict:
    """metrics.json: `labels` (dataset, run, fold, target, column), then the scores side by side;
    `flags`: :func:`degenerate_flags`."""
    b = h.baselines_info
    return {
        **labels,
        "task": h.task,
        "classes": h.classes,
        "positive_class": h.classes[1] if h.classes and len(h.classes) == 2 else None,
        "n_test": len(h.test),
        "n_val": h.n_val,
        "test_samples": samples_fingerprint(list(h.test["sample"])),
        "fold_samples": h.fold_samples,
        "degenerate_predictions": flags[MODEL],
        "test": h.scores,
        "val": {"aam": h.val_scores},
        "val_seen_in_training": h.info.get("val_seen_in_training", False),
        "baselines": None if b is None else {
            "n_train": b.get("n_train"),
            "train_splits": b.get("train_splits"),
            "models": {name: {k: m.get(k) for k in ("params", "n_features")}
                       for name, m in b["models"].items()},
        },
        "combined": {name: {"members": members, "method": METHOD, "degenerate_predictions": flags[name]}
                     for name, members in h.combined.items()},
        "provenance": provenance(model=h.info.get("provenance"), baselines=(b or {}).get("provenance")),
    }


def prediction_table(h: Holdout) -> pd.DataFrame:
    """predictions.tsv: sample, split, y_true, <model>_pred (+ <model>_prob_<class>) per model."""
    out = pd.DataFrame({"sample": h.test["sample"], "split": "test", "y_true": h.test["y_true"]})
    for name, (p, _) in h.models.items():
        out[f"{name}_pred"] = p
    if h.task == "classification":
        for name, (_, proba) in h.models.items():
            for j, c in enumerate(h.classes):
                out[f"{name}_prob_{c}"] = proba[:, j]
    return out


def label(name: str) -> str:
    """A model's name in plots and logs."""
    if name in LABELS:
        return LABELS[name]
    if name.startswith(f"{MODEL}+"):  # a combination: AAM + <baseline> [+ <baseline>] (mean)
        members = combination_members(name[len(MODEL) + 1:])
        return " + ".join([MODEL_NAME, *(LABELS.get(b, b) for b in members)]) + f" ({METHOD})"
    return MODEL_NAME if name == MODEL else name


def write_plots(pdir: Path, h: Holdout, finetune_dir: Path, pretrain_dir: str | None, target: str,
                run: str) -> None:
    """learning_curves.png, embedding_pcoa.png and pred_vs_true.png (regression) or
    confusion_matrices.png and roc.png (classification) into `pdir`."""
    labelled = {label(n): s for n, s in h.scores.items()}
    if h.task == "regression":
        plots.plot_pred_vs_true(h.y_test, {label(n): p for n, (p, _) in h.models.items()},
                                pdir / "pred_vs_true.png", target=target, scores=labelled)
    else:
        plots.plot_confusion_matrices({label(n): s["confusion_matrix"] for n, s in h.scores.items()},
                                      h.classes, pdir / "confusion_matrices.png", target=target)
        plots.plot_roc_curves(h.y_test, {label(n): proba for n, (_, proba) in h.models.items()}, h.classes,
                              pdir / "roc.png", target=target, scores=labelled)
    histories = {}
    if pretrain_dir and (Path(pretrain_dir) / "metrics.csv").exists():
        histories["pretrain"] = pd.read_csv(Path(pretrain_dir) / "metrics.csv")
    if (finetune_dir / "metrics.csv").exists():
        history = pd.read_csv(finetune_dir / "metrics.csv")
        if "member" in history.columns:  # a seed ensemble: one panel per member
            for member, part in history.groupby("member", sort=True):
                histories[f"finetune ({target}), member {member}"] = part.drop(columns="member")
        else:
            histories[f"finetune ({target})"] = history
    plots.plot_learning_curves(histories, pdir / "learning_curves.png", title=f"learning curves: run {run}")
    emb_ids, emb_split, emb_matrix = h.embeddings
    emb_labels = h.labels.reindex(emb_ids).to_numpy(dtype=object)
    plots.plot_embedding_pcoa(emb_matrix.astype(np.float64), emb_labels, h.task, pdir / "embedding_pcoa.png",
                              splits=None if emb_split is None else pd.Series(emb_split), target=target)
