"""Stage `aam corpus-pretrain`: pretrain one AAM SequenceEncoder on a corpus of studies.

Inputs: ``--studies``, a JSON list of ``{name, tokens_dir, tree, depth}``: each study's token caches
(rules ``corpus_ingest`` + ``corpus_tokenize``, the ingest and tokenize stages of a single dataset),
its tree (studies naming the same tree file share a batch-UniFrac index) and its rarefaction depth.
Training is that of `aam pretrain` (UniFrac + masked nucleotides, :class:`CorpusPretrainModule`)
on batches from :mod:`aam.data.corpus`: one study per batch, re-rarefied per epoch, UniFrac on the
fly, ASVs cropped to random prefix lengths in [``pretrain.crop_min_bp``, max_bp].

Settings (``--settings``: the corpus run's ``data``, ``model``, ``pretrain`` sections) and
``--val-fraction`` (share of each study's samples held out for validation).

Outputs in ``--out-dir``: ``model.safetensors`` + ``model.json`` (as `aam pretrain` writes them,
plus ``corpus``: the studies, their depths and train/val sizes), ``metrics.csv``; working files
``checkpoints/`` (an interrupted run resumes from last.ckpt when settings and inputs are the same)
and ``logs/``. The encoder fine-tunes any dataset whose ASVs are prefixes of the same region
(``pretrain: {from: corpus}`` in a run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from aam.config import load_settings
from aam.errors import InputError
from aam.provenance import provenance, used_settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--studies", required=True,
                        help='JSON list of {"name", "tokens_dir", "tree", "depth"} (text or a file)')
    parser.add_argument("--settings", help="the corpus run's settings (JSON text or a YAML/JSON file)")
    parser.add_argument("--val-fraction", type=float, default=0.03,
                        help="share of each study's samples held out for validation")
    parser.add_argument("--seed", type=int, default=42, help="the config's seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the job on a node (its processes share them)")
    parser.add_argument("--out-dir", required=True, help="output folder (results/corpus/{corpus}/{run})")


def run(args: argparse.Namespace) -> None:
    from aam.data.corpus import CorpusDataModule, read_studies
    from aam.training.pretrain import corpus_module
    from aam.training.runs import (
        fit_and_export,
        input_fingerprint,
        start_trainer,
        train_summary,
        train_timing,
    )

    settings = load_settings(args.settings, "aam_run")
    pre = settings["pretrain"]
    trainer = start_trainer(pre, args.seed, args.threads, "pretrain.trainer")
    if not 0 < args.val_fraction < 1:
        raise InputError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    studies = read_studies(args.studies)
    out_dir = Path(args.out_dir)

    crop = pre.get("crop_min_bp")
    dm = CorpusDataModule(studies, settings["data"], args.val_fraction, seed=args.seed, crop_min_bp=crop)
    if len(dm.val_dataset) == 0:
        raise InputError("pretrain_corpus: no validation samples; raise val_fraction")
    cfg, module = corpus_module(settings, dm, trainer)
    inputs = [s.tokens_dir / name for s in studies for name in ("features.parquet", "samples.parquet")]
    inputs += [Path(t) for t in dm.tree_groups]
    fingerprint = input_fingerprint(
        {k: settings[k] for k in ("data", "model", "pretrain")}
        | {"studies": [[s.name, s.depth, s.tree] for s in studies], "val_fraction": args.val_fraction},
        args.seed, inputs,
    )

    samples_per_step = dm.batch_size * trainer.accumulate_grad_batches

    def outputs(result) -> dict:
        last = result.history.iloc[-1].to_dict() if len(result.history) else {}
        summary = train_summary(result)
        timing = train_timing(result, samples_per_step)
        log.info("corpus pretraining: %s; last epoch %s", json.dumps(summary | timing),
                 {k: round(v, 4) for k, v in last.items() if isinstance(v, float)})
        return {
            "stage": "corpus_pretrain",
            "unifrac_metric": pre["unifrac_metric"],
            "crop_min_bp": crop,
            "data": settings["data"],
            "corpus": {
                "studies": {s.name: {"depth": s.depth, "n_train": dm.n_train[s.name],
                                     "n_val": dm.n_val[s.name]} for s in studies},
                "val_fraction": args.val_fraction,
                "n_train": len(dm.train_dataset),
                "n_val": len(dm.val_dataset),
            },
            "final_metrics": {k: v for k, v in last.items() if isinstance(v, float)},
            "training": summary,
            "trainer": trainer.as_dict(),
            "provenance": provenance(used_settings(settings, model=dataclasses.asdict(cfg),
                                                   pretrain__trainer=trainer.as_dict()), args.seed),
        }

    fit_and_export(module, out_dir, fingerprint=fingerprint, outputs=outputs, what="corpus pretraining",
                   samples_per_step=samples_per_step, datamodule=dm)
