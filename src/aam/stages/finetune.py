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
    the training summary, the validation metrics of the restored best epoch and ``calibration``
    (``finetune.calibrate`` of a regression target: :mod:`aam.training.calibration`, already folded
    into the weights; null without it) and ``linear_member`` (``finetune.linear_member``: the
    CLR + L2 model fitted on the train + val samples and served inside the model with its weight,
    :mod:`aam.training.linear_member`; its chosen strength and inner scores; null without it),
    ``forest_member`` (``finetune.forest_member``: the random forest likewise,
    :mod:`aam.training.forest_member`; its chosen leaf size, inner scores and size; null without it) and
    ``refit_on_val`` (``finetune.refit_on_val``: the epochs of each member's refit on the train and
    val samples, whose weights are exported, in ``refit/m{i}/``; null without it).
``metrics.csv``
    One row per epoch: epoch, step, train/loss, train/target_loss, train/count_loss, val/loss,
    val/target_loss, val/count_loss, val/mae + val/r2 (regression) or val/accuracy + val/auroc
    (classification), lr.
``predictions.tsv``
    sample, split (val | test), y_true, y_pred in the original labels/units, and for classification
    ``prob_<class>`` per class. Val and test samples use the DataModule's fixed evaluation
    rarefaction; the weights are those of the best validation epoch. With a linear member the
    validation predictions include a model fitted on the validation samples: only the test
    predictions are out of sample.
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
import json
import logging
from pathlib import Path

import torch

from aam.config import load_settings
from aam.data.train_features import TRAIN_FEATURES, write_train_features
from aam.errors import InputError
from aam.io.atomic import atomic_path
from aam.io.metadata import target_classes
from aam.models.ensemble import with_tabular_members
from aam.training.calibration import calibrate_refit, calibrate_regression
from aam.training.finetune import (
    AUTO_MONITOR,
    FINETUNE_AUTO,
    check_refit_on_val,
    check_target,
    finetune_record,
    kept_epochs,
    member_history,
    predict_splits,
    refit_members,
    resolve_calibrate,
    select_settings,
    train_members,
    write_sample_embeddings,
)
from aam.training.forest_member import fit_forest_member
from aam.training.linear_member import fit_linear_member
from aam.training.member_weights import member_weights

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


def run(args: argparse.Namespace) -> None:
    from aam.io.metadata import read_target_column
    from aam.io.splits import read_splits
    from aam.training.runs import publish, start_trainer, train_summary, train_timing
    from aam.training.selection import apply_choice

    if args.bundled:
        from aam.pretrained import bundled_dir

        if args.pretrain_dir:
            raise InputError("give --pretrain-dir or --bundled, not both")
        args.pretrain_dir = str(bundled_dir(args.bundled))
    settings = load_settings(args.settings, "aam_run")
    fine = settings["finetune"]
    column, task = args.target_column, args.task
    start_trainer(fine, args.seed, args.threads, "finetune.trainer", AUTO_MONITOR[task], FINETUNE_AUTO[task])
    out_dir = Path(args.out_dir)
    name = args.target or column

    check_refit_on_val(fine)
    weights = member_weights(fine, task)
    classes = target_classes(args.classes, task)
    check_target(read_target_column(args.samples, column, classes), read_splits(args.splits), column, task)
    chosen = None
    if fine.get("select"):
        chosen = select_settings(args, settings, classes, out_dir / "select")
        settings = apply_choice(settings, chosen.chosen)
    trained, model = train_members(args, settings, classes, out_dir)
    first = trained[0]
    dm, trainer = first.dm, first.trainer
    calibration = None
    gpu = torch.cuda.is_available() and first.result.accelerator == "gpu"
    device = torch.device("cuda" if gpu else "cpu")
    if resolve_calibrate(fine.get("calibrate"), task):
        calibration = calibrate_regression(model, dm, device)
        log.info("calibrated the regression head on the validation split: %s", calibration.as_dict())
    refit, first_fits = None, []
    if fine.get("refit_on_val") and dm.train_on_val:
        log.info("finetune.refit_on_val: nothing to refit, the run trained on its val samples already")
    elif fine.get("refit_on_val"):
        refit = {"epochs": [kept_epochs(t) for t in trained]}
        per_step = dm.batch_size * trainer.accumulate_grad_batches
        first_fits = [train_timing(t.result, per_step) for t in trained]
        trained, model = refit_members(args, settings, classes, out_dir, refit["epochs"])
        first = trained[0]
        dm, trainer = first.dm, first.trainer
        if calibration is not None:
            calibration = calibrate_refit(model, dm, calibration, device)
            log.info("calibrated the refit with the first fit's scale: %s", calibration.as_dict())
    linear = forest = None
    if "linear" in weights:
        linear = fit_linear_member(dm, args.splits, task, fine["linear_member"], args.seed, weights["linear"])
    if "forest" in weights:
        forest = fit_forest_member(dm, args.splits, task, fine["forest_member"], args.seed, weights["forest"],
                                   torch.get_num_threads())
    if weights:
        model = with_tabular_members(model, linear.module if linear else None, weights.get("linear", 0.0),
                                     forest.module if forest else None, weights.get("forest", 0.0))

    timings = [train_timing(t.result, dm.batch_size * trainer.accumulate_grad_batches) for t in trained]
    timing = dict(timings[0]) if len(trained) == 1 else {"members": timings}
    if first_fits:  # a refit: the exported model's fits, and the first fits that decided its epochs
        timing["first_fits"] = first_fits

    def outputs() -> dict:
        predictions, embeddings, val_metrics = predict_splits(model, dm, task, first.result.accelerator)
        summaries = [train_summary(t.result) for t in trained]
        summary = summaries[0] if len(trained) == 1 else {"members": summaries}
        log.info("fine-tuning %s: %s %s; best-epoch validation %s", name, json.dumps(summary),
                 json.dumps(timing), val_metrics)
        with atomic_path(out_dir / "predictions.tsv") as tmp:
            predictions.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        write_sample_embeddings(embeddings, out_dir / "embeddings.parquet")
        write_train_features(dm, out_dir / TRAIN_FEATURES)
        record = finetune_record(args, settings, trained, classes, val_metrics, summary, chosen)
        record["calibration"] = None if calibration is None else calibration.as_dict()
        record["linear_member"] = None if linear is None else linear.as_dict()
        record["forest_member"] = None if forest is None else forest.as_dict()
        record["refit_on_val"] = refit
        return record

    publish(model, out_dir, [t.result for t in trained], outputs=outputs, history=member_history(trained),
            timing=timing)
