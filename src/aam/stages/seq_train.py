"""Stage `aam seq-train`: train one configured DNA sequence model run (contrastive or VQ).

Input: ``prepared.parquet`` of `aam seq-prepare`. Training uses the ``train`` split, of which a
seeded `val_fraction` is held out for early stopping; the ``test`` split is left to
`aam seq-evaluate`. Output folder ``models/{run}/``: ``model.safetensors`` + ``model.json``
(the engine's export, with the run's settings), ``tokenizer.json``, ``history.csv`` (per-epoch
metrics) and the engine's ``train/`` folder (checkpoints, CSV and TensorBoard logs). Contrastive
runs also store ``reference.parquet``: every training sequence (never a test one) with its ranks
and its embedding, the reference `aam classify` votes over.
"""

from __future__ import annotations

import argparse

from aam.config import load_settings
from aam.training.seq_train import resolve_settings, train_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prepared", required=True, help="prepared.parquet of seq-prepare")
    parser.add_argument("--settings", required=True, help="the `seq_models.runs.<run>` entry (JSON or YAML)")
    parser.add_argument("--seed", type=int, default=42, help="the config's seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (overrides trainer.num_threads)")
    parser.add_argument("--out-dir", required=True, help="models/{run}/ to write")


def run(args: argparse.Namespace) -> None:
    from aam.slurm import run_as_job_step

    settings = resolve_settings(load_settings(args.settings))
    devices = settings["trainer"].get("devices", "auto")
    run_as_job_step(int(settings["trainer"].get("num_nodes", 1)), devices if isinstance(devices, int) else 1)
    if args.threads:
        settings["trainer"] = {**settings["trainer"], "num_threads": args.threads}
    train_run(args.prepared, settings, args.out_dir, seed=args.seed)
