"""Evaluate one fine-tuned model on the test split beside the baselines on the very same samples.

Inputs (files only):
  finetune dir   model.json (task, classes), metrics.csv, predictions.tsv (sample, split, y_true,
                 y_pred, prob_<class>...), embeddings.parquet (id, split, embedding: the layout
                 of aam.io.embeddings)
  pretrain dir   metrics.csv (optional: runs without pretraining have none)
  baselines dir  metrics.json and predictions.tsv of `aam baselines` on the same split or fold and
                 target (optional): fit once per fold, whatever the number of runs; they must have
                 predicted exactly this model's test samples (an error otherwise)
  splits.tsv (sample, split, group), ingest/samples.parquet (sample + metadata)

Outputs in --out-dir (replaced as a whole, atomically):
  metrics.json     our model and every baseline side by side on the test split (each baseline
                   scored here from its predictions, in the model's class order), with sample
                   counts, our model's validation metrics, the baselines' chosen hyperparameters,
                   the test samples' fingerprint, ``fold_samples`` (each split's samples the model
                   was trained, validated and tested on, from its embeddings.parquet; with
                   --baselines they must be the baselines' own, an error otherwise: identical
                   folds) and ``degenerate_predictions`` (null, or why our
                   model's test predictions ignore their input: one class for every sample, or a
                   regression whose predictions vary by < 10 % of the target's sd; a WARNING line in
                   the log too, for the baselines as well)
  predictions.tsv  sample, split, y_true, aam_pred, <baseline>_pred (+ aam_prob_<c>, <baseline>_prob_<c>)
  plots/           learning_curves.png, embedding_pcoa.png and, per task, pred_vs_true.png
                   (regression) or confusion_matrices.png and roc.png (classification)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.baselines import LABELS
from aam.evaluate.fold_samples import fold_mismatch, positive_last, samples_fingerprint, split_fingerprints
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics, degenerate_predictions
from aam.io.atomic import atomic_dir
from aam.io.embeddings import read_embeddings
from aam.io.splits import read_splits
from aam.provenance import provenance

log = logging.getLogger(__name__)

MODEL_NAME = "AAM"


# --------------------------------------------------------------------------------------------- readers
def read_model_info(path: Path) -> dict:
    """Task type and class names from the fine-tuned model's model.json (tolerant of key names)."""
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
    return out


def read_predictions(path: Path) -> pd.DataFrame:
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


# ------------------------------------------------------------------------------------------ evaluation
def _numeric(values, what: str) -> np.ndarray:
    out = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    if np.isnan(out).any():
        raise InputError(f"{what}: non-numeric values for a regression target")
    return out


def _class_names(pred: pd.DataFrame, info: dict) -> list[str]:
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
Embeddings = tuple[np.ndarray, np.ndarray | None, np.ndarray]  # aam.io.embeddings.read_embeddings


def _outputs(frame: pd.DataFrame, task: str, classes: list[str] | None, what: str) -> Outputs:
    """A model's predictions (y_pred) and class probabilities (prob_<class>) in `classes` order."""
    if task == "regression":
        return _numeric(frame["y_pred"], f"{what} y_pred"), None
    return (frame["y_pred"].astype(str).to_numpy(dtype=object),
            frame[[f"prob_{c}" for c in classes]].to_numpy(dtype=float))


def _truth(frame: pd.DataFrame, task: str, what: str) -> np.ndarray:
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


def evaluate(args: argparse.Namespace) -> dict:
    finetune_dir = Path(args.finetune_dir)
    info = read_model_info(finetune_dir / "model.json")
    task = args.task or info.get("task")
    if task not in ("regression", "classification"):
        raise InputError(f"task {task!r} unknown: pass --task regression|classification")
    if info.get("task") and info["task"] != task:
        raise InputError(
            f"{finetune_dir / 'model.json'}: model task {info['task']!r} but the target is {task!r}"
        )

    pred = read_predictions(finetune_dir / "predictions.tsv")
    splits = pd.Series(read_splits(args.splits), dtype=object)
    labels = read_labels(Path(args.samples), args.target_column)
    test = pred[pred["split"] == "test"].reset_index(drop=True)
    val = pred[pred["split"] == "val"].reset_index(drop=True)
    if test.empty:
        raise InputError(f"{finetune_dir / 'predictions.tsv'}: no test-split predictions")
    unknown = [s for s in test["sample"] if splits.get(s) != "test"]
    if unknown:
        raise InputError(
            f"{len(unknown)} samples predicted as test are not in the test split of {args.splits} "
            f"(first: {unknown[:3]})"
        )
    classes = _class_order(pred, info, args.positive_class) if task == "classification" else None
    y_test = _check_labels(test, labels, task, args.target_column)
    test_samples = list(test["sample"])

    embeddings, fold = model_fold(finetune_dir)

    models: dict[str, Outputs] = {"aam": _outputs(test, task, classes, "predictions.tsv")}
    baselines_info = None
    if args.baselines:
        baselines_info, found = baseline_predictions(Path(args.baselines), test_samples, task, classes)
        check_same_fold(fold, baselines_info, Path(args.baselines))
        models.update(found)
    try:
        scores = {name: compute_metrics(task, y_test, *outputs, classes) for name, outputs in models.items()}
        ours_val = None
        if len(val):
            ours_val = compute_metrics(task, _truth(val, task, "val"), *_outputs(val, task, classes, "val"),
                                       classes)
    except ValueError as err:
        raise InputError(f"{finetune_dir / 'predictions.tsv'}: cannot score the predictions: {err}") from err

    degenerate = None
    for name, (p, proba) in models.items():
        flag = degenerate_predictions(task, y_test, list(p), proba)
        if flag:
            log.warning("degenerate predictions of the %s: %s", _label(name), flag)
        if name == "aam":
            degenerate = flag
    result = {
        "dataset": args.dataset,
        "run": args.run,
        "fold": args.fold,
        "target": args.target,
        "column": args.target_column,
        "task": task,
        "classes": classes,
        "positive_class": classes[1] if classes and len(classes) == 2 else None,
        "n_test": len(test),
        "n_val": len(val),
        "test_samples": samples_fingerprint(test_samples),
        "fold_samples": fold,
        "degenerate_predictions": degenerate,
        "test": scores,
        "val": {"aam": ours_val},
        "baselines": None if baselines_info is None else {
            "n_train": baselines_info.get("n_train"),
            "train_splits": baselines_info.get("train_splits"),
            "models": {name: {k: m.get(k) for k in ("params", "n_features")}
                       for name, m in baselines_info["models"].items()},
        },
        "provenance": provenance(model=info.get("provenance"),
                                 baselines=(baselines_info or {}).get("provenance")),
    }
    out_pred = pd.DataFrame({"sample": test["sample"], "split": "test", "y_true": test["y_true"]})
    for name, (p, _) in models.items():
        out_pred[f"{name}_pred"] = p
    if task == "classification":
        for name, (_, proba) in models.items():
            for j, c in enumerate(classes):
                out_pred[f"{name}_prob_{c}"] = proba[:, j]
    write_outputs(args, result, out_pred, models, scores, y_test, labels, embeddings)
    metric = PRIMARY_METRIC[task]
    log.info("test %s: %s", metric, ", ".join(f"{_label(n)} {_fmt(s[metric])}" for n, s in scores.items()))
    return result


def _label(name: str) -> str:
    return MODEL_NAME if name == "aam" else LABELS.get(name, name)


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def write_outputs(args, result, out_pred, models, scores, y_test, labels, embeddings: Embeddings) -> None:
    finetune_dir, task, classes = Path(args.finetune_dir), result["task"], result["classes"]
    labelled = {_label(n): s for n, s in scores.items()}
    with atomic_dir(Path(args.out_dir)) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        out_pred.to_csv(tmp / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
        pdir = tmp / "plots"
        pdir.mkdir()
        if task == "regression":
            plots.plot_pred_vs_true(y_test, {_label(n): p for n, (p, _) in models.items()},
                                    pdir / "pred_vs_true.png", target=args.target, scores=labelled)
        else:
            plots.plot_confusion_matrices({_label(n): s["confusion_matrix"] for n, s in scores.items()},
                                          classes, pdir / "confusion_matrices.png", target=args.target)
            plots.plot_roc_curves(y_test, {_label(n): proba for n, (_, proba) in models.items()}, classes,
                                  pdir / "roc.png", target=args.target, scores=labelled)
        histories = {}
        if args.pretrain_dir and (Path(args.pretrain_dir) / "metrics.csv").exists():
            histories["pretrain"] = pd.read_csv(Path(args.pretrain_dir) / "metrics.csv")
        if (finetune_dir / "metrics.csv").exists():
            history = pd.read_csv(finetune_dir / "metrics.csv")
            if "member" in history.columns:  # a seed ensemble: one panel per member
                for member, part in history.groupby("member", sort=True):
                    histories[f"finetune ({args.target}), member {member}"] = part.drop(columns="member")
            else:
                histories[f"finetune ({args.target})"] = history
        plots.plot_learning_curves(histories, pdir / "learning_curves.png",
                                   title=f"learning curves: run {args.run}")
        emb_ids, emb_split, emb_matrix = embeddings
        emb_labels = labels.reindex(emb_ids).to_numpy(dtype=object)
        plots.plot_embedding_pcoa(emb_matrix.astype(np.float64), emb_labels, task,
                                  pdir / "embedding_pcoa.png",
                                  splits=None if emb_split is None else pd.Series(emb_split),
                                  target=args.target)

# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-dir", required=True, help="models/{run}/finetune/{target}/")
    parser.add_argument("--pretrain-dir", default=None, help="models/{run}/pretrain/ (learning curves)")
    parser.add_argument("--splits", required=True, help="splits.tsv")
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet (metadata)")
    parser.add_argument("--target-column", required=True, help="metadata column of the target")
    parser.add_argument("--task", choices=("regression", "classification"), default=None,
                        help="target type (default: from model.json)")
    parser.add_argument("--target", default=None, help="target name (default: the column)")
    parser.add_argument("--positive-class", nargs="?", const="", default="",
                        help="binary classification: the class AUROC scores (default: the second sorted)")
    parser.add_argument("--run", default="run", help="run name, for labels")
    parser.add_argument("--dataset", default="dataset", help="dataset name, for labels")
    parser.add_argument("--fold", default=None, help="cross-validation fold (e.g. r0f3), for labels")
    parser.add_argument("--baselines", default=None,
                        help="the folder of `aam baselines` on the same split and target")
    parser.add_argument("--out-dir", required=True, help="eval/{run}/{target}/")


def run(args: argparse.Namespace) -> None:
    if args.target is None:
        args.target = args.target_column
    evaluate(args)
