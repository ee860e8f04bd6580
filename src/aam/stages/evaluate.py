"""Evaluate one fine-tuned model on the test split beside a random forest on the very same samples.

Inputs (files only):
  finetune dir   model.json (task, classes), metrics.csv, predictions.tsv (sample, split, y_true,
                 y_pred, prob_<class>...), embeddings.parquet (id, split, embedding: the layout
                 of aam.io.embeddings)
  pretrain dir   metrics.csv (optional: runs without pretraining have none)
  rarefied/table.biom, splits.tsv (sample, split, group), ingest/samples.parquet (sample + metadata)

Outputs in --out-dir (replaced as a whole, atomically):
  metrics.json     our model and the forest side by side on the test split, with sample counts, our
                   model's validation metrics, the forest's settings and ``degenerate_predictions``
                   (null, or why our model's test predictions ignore their input: one class for
                   every sample, or a regression whose predictions vary by < 10 % of the target's sd;
                   a WARNING line in the log too, for the forest as well)
  predictions.tsv  sample, split, y_true, aam_pred, rf_pred (+ aam_prob_<c>, rf_prob_<c>)
  plots/           learning_curves.png, embedding_pcoa.png and, per task, pred_vs_true.png
                   (regression) or confusion_matrices.png and roc.png (classification)

The forest (aam.evaluate.baselines) is trained on the splits in `random_forest.train_splits`
(default train + val, as q2-sample-classifier trains on everything not test) using relative
abundances of the rarefied table, with labels from the metadata column of the target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam.config import load_schema, load_settings, validate
from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.baselines import ForestSettings, fit_predict_forest, relative_abundance
from aam.evaluate.metrics import compute_metrics, degenerate_predictions
from aam.io.atomic import atomic_dir
from aam.io.biom import read_table, table_to_csr
from aam.io.embeddings import read_embeddings
from aam.io.splits import read_splits
from aam.provenance import provenance, used_settings

log = logging.getLogger(__name__)

MODEL_NAME = "AAM"
FOREST_NAME = "random forest"


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


def read_rarefied(path: Path) -> tuple[list[str], object]:
    """Sample IDs and the samples x features count matrix (scipy CSR) of a BIOM table."""
    counts, samples, _ = table_to_csr(read_table(path))
    return samples, counts


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


def positive_last(classes: list[str], positive: str) -> list[str]:
    """The two classes with `positive` second: binary AUROC, the ROC curve and the confusion matrix
    take classes[1] as the positive class (the target's positive_class; default: sorted order)."""
    if positive not in classes:
        raise InputError(f"--positive-class {positive!r} is not one of the model's classes {classes}")
    if len(classes) != 2:
        raise InputError(f"--positive-class needs two classes; the model has {len(classes)}: {classes}")
    return [c for c in classes if c != positive] + [positive]


def load_evaluate_settings(value: str | None) -> dict:
    """The config's `evaluate` section from JSON, validated with the schema's defaults filled in."""
    settings = load_settings(value or "{}")
    if not isinstance(settings, dict):
        raise InputError("--settings must be a JSON object (the config's evaluate section)")
    schema = load_schema()
    section = {**schema["properties"]["evaluate"], "definitions": schema.get("definitions", {})}
    return validate(settings, section, where="settings (evaluate)")

def _score(task, test, val, y_test, forest, classes):
    """Test metrics of both models, validation metrics of ours, our test probabilities."""
    if task == "regression":
        ours_test = compute_metrics(task, y_test, _numeric(test["y_pred"], "predictions.tsv y_pred"))
        rf_test = compute_metrics(task, y_test, forest.predictions)
        ours_val = (compute_metrics(task, _numeric(val["y_true"], "val y_true"),
                                    _numeric(val["y_pred"], "val y_pred")) if len(val) else None)
        ours_proba = None
    else:
        ours_proba = test[[f"prob_{c}" for c in classes]].to_numpy(dtype=float)
        ours_test = compute_metrics(task, y_test, test["y_pred"].astype(str), ours_proba, classes)
        rf_test = compute_metrics(task, y_test, forest.predictions, forest.proba, classes)
        ours_val = None
        if len(val):
            ours_val = compute_metrics(task, val["y_true"].astype(str), val["y_pred"].astype(str),
                                       val[[f"prob_{c}" for c in classes]].to_numpy(dtype=float), classes)
    return ours_test, rf_test, ours_val, ours_proba


def _check_degenerate(task, y_test, test, forest, ours_proba) -> str | None:
    """A WARNING line for predictions that ignore the input (ours and the forest's); ours is returned
    for metrics.json."""
    ours_pred = test["y_pred"].astype(str) if task == "classification" else _numeric(test["y_pred"], "y_pred")
    ours = degenerate_predictions(task, y_test, list(ours_pred), ours_proba)
    forest_flag = degenerate_predictions(task, y_test, list(forest.predictions), forest.proba)
    for who, flag in ((MODEL_NAME, ours), (FOREST_NAME, forest_flag)):
        if flag:
            log.warning("degenerate predictions of the %s: %s", who, flag)
    return ours


def evaluate(args: argparse.Namespace, settings: dict) -> dict:
    finetune_dir = Path(args.finetune_dir)
    forest_settings = ForestSettings.from_dict(settings.get("random_forest"), seed=args.seed)
    if args.threads is not None:
        forest_settings = ForestSettings(forest_settings.n_estimators, args.threads, forest_settings.seed,
                                         forest_settings.train_splits)

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
    table_samples, counts = read_rarefied(Path(args.rarefied))
    row_of = {s: i for i, s in enumerate(table_samples)}

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
    absent = [s for s in test["sample"] if s not in row_of]
    if absent:
        raise InputError(
            f"{len(absent)} of {len(test)} test samples are missing from the rarefied table {args.rarefied} "
            f"(first: {absent[:3]}): the forest cannot be scored on the same samples"
        )

    classes = _class_names(pred, info) if task == "classification" else None
    if classes and args.positive_class:
        classes = positive_last(classes, args.positive_class)

    # labels of the test samples: the model's y_true must agree with the metadata
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
            f"{int(bad.sum())} test samples' y_true differ from metadata column {args.target_column!r} "
            f"(first: {first!r}: {test['y_true'][bad].iloc[0]!r} vs {meta_test[bad].iloc[0]!r})"
        )

    # forest training samples: chosen splits, in the rarefied table, with a usable label
    train_ids = [s for s, sp in splits.items() if sp in forest_settings.train_splits and s in row_of]
    train_labels = labels.reindex(train_ids)
    if task == "regression":
        y_num = pd.to_numeric(train_labels, errors="coerce")
        keep = y_num.notna().to_numpy()
        y_train = y_num.to_numpy(dtype=float)[keep]
    else:
        keep = train_labels.isin(classes).to_numpy()
        y_train = train_labels.to_numpy(dtype=object)[keep]
    train_ids = [s for s, k in zip(train_ids, keep, strict=True) if k]
    if len(train_ids) < 2:
        raise InputError(
            f"only {len(train_ids)} labelled samples of splits {list(forest_settings.train_splits)} "
            "are in the rarefied table: cannot train the random forest"
        )
    n_split_train = int(sum(sp in forest_settings.train_splits for sp in splits.to_numpy()))
    log.info("random forest: %d training samples (%d in splits %s), %d test samples, %d trees",
             len(train_ids), n_split_train, list(forest_settings.train_splits), len(test),
             forest_settings.n_estimators)

    rel = relative_abundance(counts[[row_of[s] for s in train_ids + list(test["sample"])]])
    x_train, x_test = rel[: len(train_ids)], rel[len(train_ids):]
    t0 = time.perf_counter()
    forest = fit_predict_forest(x_train, y_train, x_test, task, forest_settings, classes=classes)
    log.info("random forest fitted and predicted in %.1f s", time.perf_counter() - t0)

    # metrics
    try:
        ours_test, rf_test, ours_val, ours_proba = _score(task, test, val, y_test, forest, classes)
    except ValueError as err:
        raise InputError(f"{finetune_dir / 'predictions.tsv'}: cannot score the predictions: {err}") from err

    degenerate = _check_degenerate(task, y_test, test, forest, ours_proba)
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
        "degenerate_predictions": degenerate,
        "test": {"aam": ours_test, "random_forest": rf_test},
        "val": {"aam": ours_val, "random_forest": None},
        "random_forest": {
            "recipe": "q2-sample-classifier: relative abundances of the rarefied table, default forest",
            "n_estimators": forest_settings.n_estimators,
            "n_jobs": forest_settings.n_jobs,
            "seed": forest_settings.seed,
            "train_splits": list(forest_settings.train_splits),
            "n_train": forest.n_train,
            "n_features": forest.n_features,
            "note": "trained on train_splits, so it has no held-out validation score",
        },
        "provenance": provenance(
            used_settings(settings, random_forest=dataclasses.asdict(forest_settings)), args.seed,
            model=info.get("provenance")),
    }

    # predictions side by side
    out_pred = pd.DataFrame({"sample": test["sample"], "split": "test", "y_true": test["y_true"],
                             "aam_pred": test["y_pred"], "rf_pred": forest.predictions})
    if task == "classification":
        for j, c in enumerate(classes):
            out_pred[f"aam_prob_{c}"] = ours_proba[:, j]
        for j, c in enumerate(classes):
            out_pred[f"rf_prob_{c}"] = forest.proba[:, j]

    out_dir = Path(args.out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        out_pred.to_csv(tmp / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
        pdir = tmp / "plots"
        pdir.mkdir()
        scores = {MODEL_NAME: ours_test, FOREST_NAME: rf_test}
        if task == "regression":
            plots.plot_pred_vs_true(y_test, {MODEL_NAME: out_pred["aam_pred"].astype(float),
                                             FOREST_NAME: forest.predictions},
                                    pdir / "pred_vs_true.png", target=args.target, scores=scores)
        else:
            plots.plot_confusion_matrices(
                {MODEL_NAME: ours_test["confusion_matrix"], FOREST_NAME: rf_test["confusion_matrix"]},
                classes, pdir / "confusion_matrices.png", target=args.target)
            plots.plot_roc_curves(y_test, {MODEL_NAME: ours_proba, FOREST_NAME: forest.proba}, classes,
                                  pdir / "roc.png", target=args.target, scores=scores)
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
        emb_path = finetune_dir / "embeddings.parquet"
        if not emb_path.exists():
            raise InputError(f"{emb_path}: sample embeddings not found")
        emb_ids, emb_split, emb_matrix = read_embeddings(emb_path)
        emb_labels = labels.reindex(emb_ids).to_numpy(dtype=object)
        plots.plot_embedding_pcoa(emb_matrix.astype(np.float64), emb_labels, task,
                                  pdir / "embedding_pcoa.png",
                                  splits=None if emb_split is None else pd.Series(emb_split),
                                  target=args.target)
    log.info("test %s: AAM %s, random forest %s", "AUROC" if task == "classification" else "R^2",
             ours_test.get("auroc", ours_test.get("r2")), rf_test.get("auroc", rf_test.get("r2")))
    return result


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-dir", required=True, help="models/{run}/finetune/{target}/")
    parser.add_argument("--pretrain-dir", default=None, help="models/{run}/pretrain/ (learning curves)")
    parser.add_argument("--rarefied", required=True, help="rarefied/table.biom")
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
    parser.add_argument("--settings", default="{}",
                        help="the config's evaluate section as JSON (or a YAML/JSON file)")
    parser.add_argument("--seed", type=int, default=42, help="seed when random_forest.seed is null")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the forest (overrides random_forest.n_jobs)")
    parser.add_argument("--out-dir", required=True, help="eval/{run}/{target}/")


def run(args: argparse.Namespace) -> None:
    if args.target is None:
        args.target = args.target_column
    evaluate(args, load_evaluate_settings(args.settings))
