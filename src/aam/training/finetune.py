"""Fine-tuning an AAM model on one target: the target checks, class weights, training one model
(one member of a seed ensemble), and the inner cross-validation that selects settings.

`aam finetune` parses its arguments and calls :func:`train_model` (per member) or
:func:`select_settings`; the benchmarks call them directly.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aam.errors import InputError, OutputError
from aam.evaluate.metrics import TRAINING_MONITOR
from aam.evaluate.metrics import mode as metric_mode
from aam.evaluate.predict import eval_loader, predict, prediction_table
from aam.provenance import provenance, used_settings
from aam.training.encoder_init import apply_encoder, load_encoder

log = logging.getLogger(__name__)


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


# The metric (and mode) that picks the best epoch when finetune.trainer.monitor is "auto", per task.
AUTO_MONITOR = {task: (f"val/{name}", metric_mode(name)) for task, name in TRAINING_MONITOR.items()}

# Fine-tuning's training length, early stopping and exported weights when finetune.trainer leaves them
# at "auto" (the schema's default), per task. Chosen on the multi-study benchmark (docs/benchmark.md,
# "Third round"): a classifier trained 30 epochs, keeping its last weights, beat the 10-epoch run that
# stopped early and restored the epoch of least validation loss on 6 of 7 classification tasks. A
# classifier's validation loss rises with its confidence while its AUROC holds or improves, so on a
# validation part of a few subjects the least-loss epoch is an early one (IBD 2538 kept epoch 0 on 4 of
# 10 folds), and most tasks were still improving at epoch 10. A regressor overfits instead: 30
# epochs lowered R2 on both age tasks, kept last or restored at its best validation epoch, so
# regression keeps the 10-epoch run with early stopping and the best epoch's weights.
FINETUNE_AUTO = {
    "classification": {"max_epochs": 30, "patience": None, "restore_best": False},
    "regression": {"max_epochs": 10, "patience": 4, "restore_best": True},
}

# finetune.calibrate when "auto" (the schema's default), per task: a regressor is calibrated on its
# validation split (aam.training.calibration), a classifier has nothing to calibrate. Measured on the
# benchmark (docs/benchmark.md, "Fourth round"): it raised R2 on both age tasks, where the
# uncalibrated regressor scored below predicting the training mean.
CALIBRATE_AUTO = {"classification": False, "regression": True}


def resolve_calibrate(value: bool | str | None, task: str) -> bool:
    """``finetune.calibrate`` for this task: ``auto`` is CALIBRATE_AUTO's choice, absent is false,
    a boolean stays itself (calibration applies to regression only either way)."""
    if value == "auto":  # aam.training.engine.AUTO, not imported here: that would load Lightning
        return CALIBRATE_AUTO[task]
    return bool(value) and task == "regression"


def val_decisions(fine: dict, trainer, task: str) -> list[str]:
    """The settings by which this fine-tuning needs its val split apart from training: it decides
    something on it, or (readout_fit) fits part of the model on the train split alone and trains
    the rest on that part's outputs. An empty list: the val split only reports."""
    used = []
    if trainer.patience is not None:
        used.append("finetune.trainer.patience (early stopping)")
    if trainer.restore_best:
        used.append("finetune.trainer.restore_best")
    if resolve_calibrate(fine.get("calibrate"), task):
        used.append("finetune.calibrate")
    if fine.get("readout_fit") is not None:  # {} is on, with the schema's settings
        used.append("finetune.readout_fit (fitted on the train split alone)")
    return used


def resolve_train_on_val(fine: dict, trainer, task: str) -> bool:
    """``finetune.train_on_val`` for this run: ``auto`` trains on the val samples too exactly where
    the run decides nothing on them (the classifier's auto run: fixed epochs, last weights, no
    calibration), so no sample is wasted on a split that only reports; ``true`` where the run does
    decide on them is refused (one line), as its choices would rest on samples it trained on."""
    value = fine.get("train_on_val", "auto")  # the schema's default
    used = val_decisions(fine, trainer, task)
    if value == "auto":  # aam.training.engine.AUTO, not imported here: that would load Lightning
        return not used
    if value and used:
        raise InputError(f"finetune.train_on_val is true but the run decides on its validation split by "
                         f"{', '.join(used)}: set train_on_val to auto or false")
    return bool(value)


@dataclass
class Trained:
    """One fine-tuned model, its data and its training result."""

    dm: object
    module: object
    result: object
    trainer: object
    weights: np.ndarray | None
    readout: object = None  # aam.training.readout_fit.ReadoutFit where finetune.readout_fit is on


def train_model(args: argparse.Namespace, settings: dict, splits: Path | str, classes: list[str] | None,
                member: int, out_dir: Path) -> Trained:
    """Fine-tune one model on ``splits`` with ``settings``: member ``member`` of a seed ensemble
    trains with seed + member (initialisation, batch order and rarefaction draws), so member 0 is
    the single model of the same run. The seed is ``finetune.trainer.seed`` where the run names one
    (a run with seed 43 is member 1 of the ensemble of seed 42), else the config's."""
    from aam.data.datasets import AAMDataModule
    from aam.training.aam_modules import FinetuneModule
    from aam.training.engine import seed_everything
    from aam.training.runs import check_splits, input_fingerprint, model_config, train, trainer_settings

    fine = settings["finetune"]
    column, task = args.target_column, args.task
    trainer = trainer_settings(fine, args.seed, args.threads, "finetune.trainer", AUTO_MONITOR[task],
                               FINETUNE_AUTO[task])
    trainer.seed = int(trainer.seed) + member
    seed_everything(trainer.seed)
    dm = AAMDataModule(Path(args.tokens_dir), splits, settings["data"], seed=trainer.seed,
                       target={"column": column, "type": task, "classes": classes}, metadata=args.samples,
                       train_on_val=resolve_train_on_val(fine, trainer, task))
    check_splits(dm)
    if dm.train_on_val:
        log.info("training on the train and val samples together (%d; finetune.train_on_val): the "
                 "validation figures of each epoch are on samples the model trains on",
                 len(dm.fit_dataset))
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
                            base_lr_scale=fine["base_lr_scale"] if args.pretrain_dir else 1.0,
                            readout_lr_scale=fine["readout_lr_scale"])
    if pretrained_state is not None:
        apply_encoder(module.model.base, pretrained_state, Path(args.pretrain_dir))
        log.info("loaded the pretrained encoder from %s", args.pretrain_dir)
    module.model.freeze_base(bool(fine["freeze_base"]))
    readout = fit_readout(module.model, dm, splits, fine.get("readout_fit"), task, trainer.seed, weights)
    if readout is not None:
        module.set_training_offsets(readout.offsets)

    tokens = Path(args.tokens_dir)
    inputs = [tokens / "features.parquet", tokens / "samples.parquet", splits, args.samples]
    if args.pretrain_dir:
        inputs.append(Path(args.pretrain_dir) / "model.safetensors")
    fingerprint = input_fingerprint(
        {k: settings[k] for k in ("data", "model", "finetune")} | {"target": [column, task, classes]},
        trainer.seed, inputs,
    )
    result = train(module, out_dir, fingerprint=fingerprint, what="fine-tuning", datamodule=dm)
    return Trained(dm, module, result, trainer, weights, readout)


def fit_readout(model, dm, splits: Path | str, spec: dict | None, task: str, seed: int,
                class_weights: np.ndarray | None):
    """``finetune.readout_fit``: the per-ASV readout fitted in closed form on the training split
    (aam.training.readout_fit), grouped as ``splits`` groups it; None where it is off."""
    from aam.io.splits import read_groups
    from aam.training.readout_fit import fit_model_readout

    if spec is None:
        return None
    if model.asv_readout is None:
        raise InputError("finetune.readout_fit needs a per-ASV readout: set model.asv_readout to "
                         "presence, clr or log")
    # a sample without a group is its own (aam.evaluate.baselines.inner_folds)
    return fit_model_readout(model, eval_loader(dm, "train"), dm.sample_ids, read_groups(splits), task, spec,
                             seed, class_weights)


def train_members(args: argparse.Namespace, settings: dict, classes: list[str] | None,
                  out_dir: Path) -> tuple[list[Trained], torch.nn.Module]:
    """The run's model: one fine-tuned model in `out_dir`, or a seed ensemble of
    ``finetune.ensemble`` members (member i in ``members/m{i}/``) predicting as their mean."""
    members = int(settings["finetune"].get("ensemble") or 1)
    try:
        trained = [train_model(args, settings, args.splits, classes, i,
                               out_dir if members == 1 else out_dir / "members" / f"m{i}")
                   for i in range(members)]
    except OutputError:
        # A member that could not write (a full disk) removed its own state (aam.training.engine);
        # the folders above it go too where nothing else is left in them.
        for folder in (out_dir / "members", out_dir):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return trained, predictor_of(trained)


def predictor_of(trained: list[Trained]) -> torch.nn.Module:
    """The exported model of fitted members: the one model, or their seed ensemble."""
    from aam.models.ensemble import EnsemblePredictor

    if len(trained) == 1:
        return trained[0].module.model
    return EnsemblePredictor.of([t.module.model for t in trained])


def check_refit_on_val(fine: dict) -> None:
    """Refuse, before any training, a ``refit_on_val`` run that cannot be refitted: a readout_fit
    run's readout is fitted on the train split alone."""
    if fine.get("refit_on_val") and fine.get("readout_fit") is not None:
        raise InputError("finetune.refit_on_val cannot refit a readout_fit run (its readout is fitted on the "
                         "train split alone): turn one of them off")


def kept_epochs(trained: Trained) -> int:
    """The number of epochs behind the weights a fit kept: its best epoch's (by the monitor, the
    first of ties) where it restored the best, else every epoch it ran."""
    history = trained.result.history
    if not len(history):
        raise ValueError("a fit without epochs has nothing to refit")
    if not trained.trainer.restore_best or trained.result.best_score is None:
        return int(history["epoch"].max()) + 1
    monitored = history[trained.trainer.monitor].to_numpy(dtype=np.float64)
    best = int(np.nanargmin(np.abs(monitored - float(trained.result.best_score))))
    return int(history["epoch"].iloc[best]) + 1


def refit_settings(settings: dict, epochs: int) -> dict:
    """The run's settings for a refit (``finetune.refit_on_val``): the train and val samples
    together, ``epochs`` epochs, last weights, nothing decided on the val split."""
    refit = copy.deepcopy(settings)
    fine = refit["finetune"]
    fine["trainer"] = {**fine.get("trainer", {}), "max_epochs": int(epochs), "patience": None,
                       "restore_best": False}
    fine.update(train_on_val=True, calibrate=False, refit_on_val=False, select=None)
    return refit


def refit_members(args: argparse.Namespace, settings: dict, classes: list[str] | None, out_dir: Path,
                  epochs: list[int]) -> tuple[list[Trained], torch.nn.Module]:
    """``finetune.refit_on_val``: member i fitted again, with its seed, on the train and val samples
    for ``epochs[i]`` epochs (what its first fit kept, :func:`kept_epochs`), in
    ``out_dir/refit/m{i}``. Why: a regressor decides its epoch and calibration on the val split, so
    it cannot train on it (``train_on_val``); once they are decided, the val samples can join."""
    refitted = []
    for i, n_epochs in enumerate(epochs):
        log.info("refit of member %d on the train and val samples: %d epochs (finetune.refit_on_val)", i,
                 n_epochs)
        refitted.append(train_model(args, refit_settings(settings, n_epochs), args.splits, classes, i,
                                    out_dir / "refit" / f"m{i}"))
    return refitted, predictor_of(refitted)


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


def predict_splits(model, dm, task: str, accelerator: str) -> tuple[pd.DataFrame, list[pd.DataFrame], dict]:
    """The fine-tuned model on each split with the fixed evaluation rarefaction: the val and test
    predictions (one table), the sample embeddings of every split, and the validation metrics of
    the restored weights."""
    from aam.training.aam_modules import validation_metrics

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
    return pd.concat(tables, ignore_index=True), embeddings, val_metrics


def write_sample_embeddings(frames: list[pd.DataFrame], path: Path) -> None:
    """Sample embeddings in the one layout of :mod:`aam.io.embeddings` (id, split, embedding)."""
    from aam.io.embeddings import write_embeddings

    table = pd.concat(frames, ignore_index=True)
    write_embeddings(path, table["sample"].astype(str).to_list(), np.stack(table["embedding"].to_list()),
                     split=table["split"].to_list())


def finetune_record(args: argparse.Namespace, settings: dict, trained: list[Trained],
                    classes: list[str] | None, val_metrics: dict, summary: dict, chosen) -> dict:
    """model.json's record of a fine-tuned model (or seed ensemble): target, classes and scaling,
    data, validation metrics, selection, training summary, trainer and provenance."""
    first = trained[0]
    dm, trainer, fine = first.dm, first.trainer, settings["finetune"]
    column, task = args.target_column, args.task
    return {
        "stage": "finetune",
        "task": task,
        "target": {"name": args.target or column, "column": column, "type": task, "classes": classes},
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
        "trained_on_val": dm.train_on_val,
        "val_metrics": val_metrics,
        "ensemble": len(trained),
        "selection": None if chosen is None else chosen.as_dict(),
        "readout_fit": None if first.readout is None else [t.readout.as_dict() for t in trained],
        "training": summary,
        "trainer": trainer.as_dict(),
        "provenance": provenance(
            used_settings(settings, model=dataclasses.asdict(first.module.model.config),
                          finetune__trainer=trainer.as_dict(),
                          pretrain=None if args.pretrain_dir else settings.get("pretrain")),
            args.seed, target={"column": column, "type": task}, pretrained_from=args.pretrain_dir),
    }

