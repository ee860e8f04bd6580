"""Stage `aam finetune`: fine-tune an AAM regressor or classifier on one target.

Inputs: the token caches, ``splits.tsv``, the table holding the target column (``--samples``:
``ingest/samples.parquet`` or a metadata TSV) and, optionally, a pretrained encoder
(``--pretrain-dir`` with model.safetensors + model.json of `aam pretrain`); without it the model is
trained from scratch. Loss = target loss + ``count_weight`` x count loss; regression targets are
standardized on the training split; classes get ``class_weights`` (default balanced).

Checked before training (InputError): a target that is constant, a class with no training sample,
a non-numeric regression target, too few training or no validation samples.

Outputs in ``--out-dir`` (for `aam evaluate`):

``model.safetensors``, ``model.json``
    Weights and config: ``model_class``, ``config`` (AAMConfig incl. ``task``, ``n_outputs``),
    ``task``, ``target`` {name, column, type}, ``classes`` (classification; output order),
    ``target_mean``/``target_std`` (regression: prediction = output x std + mean), ``pretrained``,
    the training summary and the validation metrics of the restored best epoch.
``metrics.csv``
    One row per epoch: epoch, step, train/loss, train/target_loss, train/count_loss, val/loss,
    val/target_loss, val/count_loss, val/mae + val/r2 (regression) or val/accuracy + val/auroc
    (classification), lr.
``predictions.tsv``
    sample, split (val | test), y_true, y_pred in the original labels/units, and for classification
    ``prob_<class>`` per class. Val and test samples use the DataModule's fixed evaluation
    rarefaction; the weights are those of the best validation epoch.
``embeddings.parquet``
    id (sample, string), split (train | val | test), embedding (fixed_size_list<float32>: the
    sample encoder's pooled vector; the layout of :mod:`aam.io.embeddings`), for every sample with
    a target; train samples also use a fixed evaluation rarefaction.
``train_features.parquet``
    feature_id, sequence (as the model read it, cut to max_bp) of every feature in a training
    sample: `aam predict` reports how many features of a new table training never saw.
Working files beside them: ``checkpoints/`` (resume) and ``logs/`` (CSV, TensorBoard).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aam.config import load_settings
from aam.errors import InputError
from aam.evaluate.metrics import TRAINING_MONITOR
from aam.evaluate.metrics import mode as metric_mode
from aam.evaluate.predict import eval_loader, predict, prediction_table
from aam.io.atomic import atomic_path
from aam.provenance import provenance, used_settings
from aam.training.encoder_init import apply_encoder, load_encoder

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens-dir", required=True, help="folder with features.parquet, samples.parquet")
    parser.add_argument("--splits", required=True, help="splits.tsv (sample, split)")
    parser.add_argument("--samples", required=True,
                        help="ingest/samples.parquet or metadata TSV with the target")
    parser.add_argument("--target-column", required=True, help="metadata column to predict")
    parser.add_argument("--task", required=True, choices=["regression", "classification"])
    parser.add_argument("--target", default=None, help="target name (default: the column)")
    parser.add_argument("--classes", nargs="?", const="", default="",
                        help='classification: JSON list of the classes to model (others left out)')
    parser.add_argument("--pretrain-dir", default=None,
                        help="pretrained encoder (model.safetensors + model.json)")
    parser.add_argument("--bundled", default=None, metavar="NAME",
                        help="start from a pretrained encoder shipped with aam (aam.pretrained); "
                             "instead of --pretrain-dir")
    parser.add_argument("--settings", help="the run's settings (JSON text or a YAML/JSON file)")
    parser.add_argument("--seed", type=int, default=42, help="the config's seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the job on a node (its processes share them)")
    parser.add_argument("--out-dir", required=True, help="output folder (models/{run}/finetune/{target})")


# ----------------------------------------------------------------------------------- target checks
def check_target(values: dict[str, str], split_of: dict[str, str], column: str, task: str) -> None:
    """Clear errors before training: constant target, class absent from training, non-numeric."""
    by_split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for sample, value in values.items():
        split = split_of.get(sample)
        if split in by_split:
            by_split[split].append(value)
    everything = [v for vs in by_split.values() for v in vs]
    if not by_split["train"]:
        raise InputError(f"target column {column!r}: no training sample has a value")
    if task == "regression":
        bad = [v for v in everything if not _is_number(v)]
        if bad:
            raise InputError(f"target column {column!r} is not numeric (e.g. {bad[0]!r}); "
                             "use type: classification or clean the column")
        numbers = np.array([float(v) for v in by_split["train"]])
        if np.all(numbers == numbers[0]):
            raise InputError(f"target column {column!r} is constant ({numbers[0]:g}) on the training split")
        return
    classes = set(everything)
    if len(classes) < 2:
        only = next(iter(classes))
        raise InputError(f"target column {column!r} is constant ({only!r}): nothing to classify")
    missing = sorted(classes - set(by_split["train"]))
    if missing:
        raise InputError(f"target column {column!r}: class(es) {missing} have no sample in the "
                         "training split")


def target_classes(text: str, task: str) -> list[str] | None:
    """The --classes JSON list (the target's `classes`), or None for every class."""
    if not text:
        return None
    try:
        classes = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--classes: not valid JSON: {err}") from None
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise InputError(f"--classes: expected a JSON list of two or more class names, got {text!r}")
    if task != "classification":
        raise InputError("--classes is for classification targets")
    return classes


def _is_number(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def class_weight_vector(spec, classes: list[str], counts: np.ndarray) -> np.ndarray | None:
    from aam.training.losses import balanced_class_weights

    if spec is None:
        return None
    if spec == "balanced":
        return balanced_class_weights(counts)
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(classes))
        if unknown:
            raise InputError(f"finetune.class_weights: unknown class(es) {unknown}; classes are {classes}")
        return np.array([float(spec.get(c, 1.0)) for c in classes])
    raise InputError(f"finetune.class_weights: expected 'balanced', null or a mapping, got {spec!r}")




def write_embeddings(frames: list[pd.DataFrame], path: Path) -> None:
    """Sample embeddings in the one layout of :mod:`aam.io.embeddings` (id, split, embedding)."""
    from aam.io.embeddings import write_embeddings as write

    table = pd.concat(frames, ignore_index=True)
    write(path, table["sample"].astype(str).to_list(), np.stack(table["embedding"].to_list()),
          split=table["split"].to_list())


TRAIN_FEATURES = "train_features.parquet"


def write_train_features(dm, path: Path) -> None:
    """The features of the training samples (feature_id, and the sequence as the model read it,
    cut to max_bp): `aam predict` counts the features of a new table that training never saw."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aam.data.nucleotides import NucleotideTokenizer

    rows = dm.train_dataset.rows
    present = [dm.samples.row(int(r))[0] for r in rows]
    feats = np.unique(np.concatenate(present)) if present else np.zeros(0, dtype=np.int64)
    table = pa.table({
        "feature_id": pa.array([str(f) for f in dm.feature_ids[feats]], pa.string()),
        "sequence": pa.array(NucleotideTokenizer.decode(dm.features.tokens[feats]) if feats.size else [],
                             pa.string()),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# --------------------------------------------------------------------------------------------- run
# The metric (and mode) that picks the best epoch when finetune.trainer.monitor is "auto", per task.
AUTO_MONITOR = {task: (f"val/{name}", metric_mode(name)) for task, name in TRAINING_MONITOR.items()}


@dataclass
class Trained:
    """One fine-tuned model, its data and its training result."""

    dm: object
    module: object
    result: object
    trainer: object
    weights: np.ndarray | None


def train_model(args: argparse.Namespace, settings: dict, splits: Path | str, classes: list[str] | None,
                member: int, out_dir: Path) -> Trained:
    """Fine-tune one model on ``splits`` with ``settings``: member ``member`` of a seed ensemble
    trains with seed + member (initialisation, batch order and rarefaction draws), so member 0 is
    the single model of the same run."""
    from aam.data.datasets import AAMDataModule
    from aam.training.aam_modules import FinetuneModule
    from aam.training.engine import seed_everything
    from aam.training.runs import check_splits, input_fingerprint, model_config, train, trainer_settings

    fine = settings["finetune"]
    column, task = args.target_column, args.task
    trainer = trainer_settings(fine, args.seed, args.threads, "finetune.trainer", AUTO_MONITOR[task])
    trainer.seed = int(trainer.seed) + member
    seed_everything(trainer.seed)
    dm = AAMDataModule(Path(args.tokens_dir), splits, settings["data"], seed=args.seed + member,
                       target={"column": column, "type": task, "classes": classes}, metadata=args.samples)
    check_splits(dm)
    n_outputs = 1 if task == "regression" else int(dm.n_classes)
    if task == "classification" and n_outputs < 2:
        raise InputError(f"target column {column!r}: only class {dm.classes} remains after rarefaction")

    pretrained_state = None
    if args.pretrain_dir:
        cfg, pretrained_state = load_encoder(Path(args.pretrain_dir), settings["model"], dm, task, n_outputs)
    else:
        cfg = model_config(settings["model"], dm, task=task, n_outputs=n_outputs)

    weights = None
    if task == "classification":
        weights = class_weight_vector(fine["class_weights"], dm.classes, dm.class_counts)
        log.info("classes %s, training counts %s, weights %s", dm.classes, dm.class_counts.tolist(),
                 None if weights is None else np.round(weights, 3).tolist())
    module = FinetuneModule(cfg, trainer, loss=fine["loss"], class_weights=weights,
                            count_weight=fine["count_weight"], focal_gamma=fine["focal_gamma"],
                            huber_delta=fine["huber_delta"], freeze_base=False,
                            target_mean=dm.target_mean or 0.0, target_std=dm.target_std or 1.0,
                            base_lr_scale=fine["base_lr_scale"] if args.pretrain_dir else 1.0)
    if pretrained_state is not None:
        apply_encoder(module.model.base, pretrained_state, Path(args.pretrain_dir))
        log.info("loaded the pretrained encoder from %s", args.pretrain_dir)
    module.model.freeze_base(bool(fine["freeze_base"]))

    tokens = Path(args.tokens_dir)
    inputs = [tokens / "features.parquet", tokens / "samples.parquet", splits, args.samples]
    if args.pretrain_dir:
        inputs.append(Path(args.pretrain_dir) / "model.safetensors")
    fingerprint = input_fingerprint(
        {k: settings[k] for k in ("data", "model", "finetune")} | {"target": [column, task, classes]},
        args.seed + member, inputs,
    )
    result = train(module, out_dir, fingerprint=fingerprint, what="fine-tuning", datamodule=dm)
    return Trained(dm, module, result, trainer, weights)


def held_out_score(trained: Trained, split: str, task: str) -> float | None:
    """The primary metric (aam.evaluate.metrics.PRIMARY_METRIC) of a model on one split of its data."""
    from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics

    pred = predict(trained.module.model, eval_loader(trained.dm, split), torch.device("cpu"))
    if not pred:
        return None
    table = prediction_table(pred, split, trained.dm, task)
    if task == "regression":
        metrics = compute_metrics(task, table["y_true"], table["y_pred"])
    else:
        classes = list(trained.dm.classes)
        proba = table[[f"prob_{c}" for c in classes]].to_numpy(dtype=float)
        metrics = compute_metrics(task, table["y_true"], table["y_pred"], proba, classes)
    return metrics[PRIMARY_METRIC[task]]


def select_settings(args: argparse.Namespace, settings: dict, classes: list[str] | None, folder: Path):
    """Inner cross-validation over ``finetune.select.grid`` on the train + val samples of
    ``args.splits`` (:mod:`aam.training.selection`); returns the Selection (chosen values, scores)."""
    from aam.evaluate.metrics import METRICS, PRIMARY_METRIC
    from aam.io.metadata import read_target_column
    from aam.training import selection

    spec = settings["finetune"]["select"]
    task = args.task
    part = selection.training_part(pd.read_csv(args.splits, sep="\t", dtype=str, keep_default_na=False))
    labels = None
    if task == "classification":
        values = read_target_column(args.samples, args.target_column, classes)
        labels = {s: values.get(s) for s in part["sample"]}  # training samples only
    folds = selection.inner_folds(part, labels, int(spec["folds"]), args.seed, float(spec["val_fraction"]))
    paths = selection.write_inner_splits(folds, folder)
    candidates = selection.grid_candidates(settings, spec["grid"])
    log.info("selection: %d candidates x %d inner folds on %d training samples", len(candidates),
             len(folds), len(part))

    def score(i: int, candidate: dict, k: int) -> float | None:
        trained = train_model(args, candidate, paths[k], classes, 0, folder / f"fold{k}" / f"c{i}")
        value = held_out_score(trained, "test", task)
        log.info("selection: candidate %s, inner fold %d: %s %s", candidates[i][0], k,
                 PRIMARY_METRIC[task], value)
        return value

    chosen = selection.select(candidates, len(folds), score, PRIMARY_METRIC[task],
                              higher_is_better=METRICS[PRIMARY_METRIC[task]].higher_is_better)
    log.info("selection: chose %s (inner %s %s)", chosen.chosen, chosen.metric,
             next(c["mean"] for c in chosen.candidates if c["values"] == chosen.chosen))
    return chosen


def member_history(trained: list[Trained]) -> pd.DataFrame:
    """metrics.csv: one model's epochs, or every member's with a ``member`` column first."""
    if len(trained) == 1:
        return trained[0].result.history
    return pd.concat([t.result.history.assign(member=i)[["member", *t.result.history.columns]]
                      for i, t in enumerate(trained)], ignore_index=True)


def run(args: argparse.Namespace) -> None:
    from aam.io.metadata import read_target_column
    from aam.io.splits import read_splits
    from aam.models.ensemble import EnsemblePredictor
    from aam.training.aam_modules import validation_metrics
    from aam.training.runs import publish, start_trainer, train_summary
    from aam.training.selection import apply_choice

    if args.bundled:
        from aam.pretrained import bundled_dir

        if args.pretrain_dir:
            raise InputError("give --pretrain-dir or --bundled, not both")
        args.pretrain_dir = str(bundled_dir(args.bundled))
    settings = load_settings(args.settings, "aam_run")
    fine = settings["finetune"]
    column, task = args.target_column, args.task
    start_trainer(fine, args.seed, args.threads, "finetune.trainer", AUTO_MONITOR[task])
    out_dir = Path(args.out_dir)
    name = args.target or column

    classes = target_classes(args.classes, task)
    check_target(read_target_column(args.samples, column, classes), read_splits(args.splits), column, task)
    chosen = None
    if fine.get("select"):
        chosen = select_settings(args, settings, classes, out_dir / "select")
        settings = apply_choice(settings, chosen.chosen)
        fine = settings["finetune"]
    members = int(fine.get("ensemble") or 1)
    trained = [train_model(args, settings, args.splits, classes, i,
                           out_dir if members == 1 else out_dir / "members" / f"m{i}")
               for i in range(members)]
    first = trained[0]
    dm, trainer = first.dm, first.trainer
    model = first.module.model if members == 1 else EnsemblePredictor.of([t.module.model for t in trained])

    def outputs() -> dict:
        accelerator = first.result.accelerator
        device = torch.device("cuda" if torch.cuda.is_available() and accelerator == "gpu" else "cpu")
        tables, embeddings, val_metrics = [], [], {}
        for split in ("train", "val", "test"):
            start = time.perf_counter()
            pred = predict(model, eval_loader(dm, split), device)
            if not pred:
                continue
            log.info("predicted the %s split (%d samples) in %.1f s", split, len(pred["row"]),
                     time.perf_counter() - start)
            table = prediction_table(pred, split, dm, task)
            embeddings.append(pd.DataFrame({"sample": table["sample"], "split": split,
                                            "embedding": list(pred["embedding"])}))
            if split == "val":
                val_metrics = validation_metrics(task, torch.from_numpy(pred["output"]),
                                                 torch.from_numpy(pred["target"]),
                                                 dm.target_mean or 0.0, dm.target_std or 1.0)
            if split != "train":
                tables.append(table)
        predictions = pd.concat(tables, ignore_index=True)
        summaries = [train_summary(t.result, dm.batch_size, trainer.accumulate_grad_batches) for t in trained]
        summary = summaries[0] if members == 1 else {"members": summaries}
        log.info("fine-tuning %s: %s; best-epoch validation %s", name, json.dumps(summary), val_metrics)
        with atomic_path(out_dir / "predictions.tsv") as tmp:
            predictions.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        write_embeddings(embeddings, out_dir / "embeddings.parquet")
        write_train_features(dm, out_dir / TRAIN_FEATURES)
        return {
            "stage": "finetune",
            "task": task,
            "target": {"name": name, "column": column, "type": task, "classes": classes},
            "classes": dm.classes,
            "target_mean": dm.target_mean,
            "target_std": dm.target_std,
            "pretrained": bool(args.pretrain_dir),
            "pretrained_from": args.pretrain_dir,
            "freeze_base": bool(fine["freeze_base"]),
            "loss": first.module.loss_name,
            "class_weights": None if first.weights is None else [float(w) for w in first.weights],
            "data": settings["data"],
            "depth": dm.depth,
            "n_samples": {s: len(d) for s, d in (("train", dm.train_dataset), ("val", dm.val_dataset),
                                                 ("test", dm.test_dataset))},
            "val_metrics": val_metrics,
            "ensemble": members,
            "selection": None if chosen is None else chosen.as_dict(),
            "training": summary,
            "trainer": trainer.as_dict(),
            "provenance": provenance(
                used_settings(settings, model=dataclasses.asdict(first.module.model.config),
                              finetune__trainer=trainer.as_dict(),
                              pretrain=None if args.pretrain_dir else settings.get("pretrain")),
                args.seed, target={"column": column, "type": task}, pretrained_from=args.pretrain_dir),
        }

    publish(model, out_dir, [t.result for t in trained], outputs=outputs, history=member_history(trained))
