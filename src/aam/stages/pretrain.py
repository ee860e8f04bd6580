"""Stage `aam pretrain`: pretrain the AAM SequenceEncoder on UniFrac + masked nucleotides.

Inputs: the token caches (``tokens/features.parquet``, ``tokens/samples.parquet``), ``splits.tsv``
(train samples train, val samples validate) and the tree (``ingest/tree.nwk``, tips = feature IDs).
Each batch is re-rarefied per epoch by the DataModule and its UniFrac distances are computed on the
fly from the batch's rarefied counts, so no distance matrix is read.

Settings (``--settings``: JSON or a YAML/JSON file, validated against the schema's ``aam_run``):
``data`` (asv_limit, selection, batch_size, num_workers), ``model`` (sizes), ``pretrain``
(unifrac_metric, mask_rate, loss weights, ``trainer``).

``--init-dir``: start from a pretrained encoder (a corpus run's or a bundled one) and pretrain it
further on this dataset's samples (``pretrain.continue_on_study``): the architecture is the
encoder's, as in fine-tuning (:mod:`aam.training.encoder_init`); the run's ``model`` section sets only
the training-only keys (dropout).

Outputs in ``--out-dir``: ``model.safetensors`` + ``model.json`` (class, config, training summary),
``metrics.csv`` (one row per epoch: epoch, step, train/loss, val/loss, val/unifrac_mae,
val/unifrac_r2, val/nucleotide_accuracy, lr, ...). Working files beside them: ``checkpoints/``
(best.ckpt, last.ckpt: a restarted run resumes from last.ckpt when settings and inputs are the same)
and ``logs/`` (CSV and TensorBoard).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from aam.config import load_settings
from aam.provenance import provenance, used_settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens-dir", required=True, help="folder with features.parquet, samples.parquet")
    parser.add_argument("--splits", required=True, help="splits.tsv (sample, split)")
    parser.add_argument("--tree", required=True, help="rooted Newick tree whose tips are the feature IDs")
    parser.add_argument("--settings", help="the run's settings (JSON text or a YAML/JSON file)")
    parser.add_argument("--seed", type=int, default=42, help="the config's seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the job on a node (its processes share them)")
    parser.add_argument("--out-dir", required=True, help="output folder (models/{run}/pretrain)")
    parser.add_argument("--init-dir", default=None,
                        help="start from this pretrained encoder (model.safetensors + model.json of a "
                             "corpus run or a bundled encoder); absent = from random weights")


def run(args: argparse.Namespace) -> None:
    from aam.data.datasets import AAMDataModule
    from aam.training.pretrain import study_module
    from aam.training.runs import (
        check_splits,
        fit_and_export,
        input_fingerprint,
        start_trainer,
        train_summary,
        train_timing,
    )

    settings = load_settings(args.settings, "aam_run")
    pre = settings["pretrain"]
    trainer = start_trainer(pre, args.seed, args.threads, "pretrain.trainer")
    out_dir = Path(args.out_dir)
    tokens = Path(args.tokens_dir)

    # the run's seed (pretrain.trainer.seed), else the config's: initialisation and data draws alike
    dm = AAMDataModule(tokens, args.splits, settings["data"], seed=trainer.seed)
    check_splits(dm)
    cfg, module = study_module(settings, dm, args.tree, trainer, args.init_dir)
    inputs = [tokens / "features.parquet", tokens / "samples.parquet", args.splits, args.tree]
    if args.init_dir:
        inputs.append(Path(args.init_dir) / "model.safetensors")
    sections = {k: settings[k] for k in ("data", "model", "pretrain")}
    fingerprint = input_fingerprint(sections, trainer.seed, inputs)

    samples_per_step = dm.batch_size * trainer.accumulate_grad_batches

    def outputs(result) -> dict:
        last = result.history.iloc[-1].to_dict() if len(result.history) else {}
        summary = train_summary(result)
        timing = train_timing(result, samples_per_step)
        log.info("pretraining: %s; last epoch %s", json.dumps(summary | timing),
                 {k: round(v, 4) for k, v in last.items() if isinstance(v, float)})
        return {
            "stage": "pretrain",
            "unifrac_metric": pre["unifrac_metric"],
            "initialized_from": args.init_dir,
            "data": settings["data"],
            "depth": dm.depth,
            "n_train": len(dm.train_dataset),
            "n_val": len(dm.val_dataset),
            "training": summary,
            "trainer": trainer.as_dict(),
            "provenance": provenance(used_settings(settings, model=dataclasses.asdict(cfg),
                                                   pretrain__trainer=trainer.as_dict()),
                                     args.seed, initialized_from=args.init_dir),
        }

    fit_and_export(module, out_dir, fingerprint=fingerprint, outputs=outputs, what="pretraining",
                   samples_per_step=samples_per_step, datamodule=dm)
