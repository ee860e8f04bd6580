"""A training run from start to finish: its settings, seed and threads, its model config, the fit,
and the export that every training stage (pretrain, corpus-pretrain, finetune, seq-train) goes through.

:func:`publish` owns the data-parallel guard: every rank trains, only rank 0 writes outputs (the
model folder, the history and whatever else the stage writes through its ``outputs`` hook), so no
stage can forget it. :func:`fit_and_export` is :func:`train` then :func:`publish` for a stage that
fits one model; fine-tuning fits several (an ensemble's members) and publishes one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from aam.errors import InputError
from aam.io.atomic import atomic_path, write_text
from aam.io.model_files import export_model
from aam.slurm import run_as_job_step
from aam.threads import use_threads
from aam.training.engine import (
    AUTO_SETTINGS,
    FitResult,
    NonFiniteLossError,
    TrainerSettings,
    fit,
    seed_everything,
)

log = logging.getLogger(__name__)


def trainer_settings(section: dict[str, Any], seed: int, threads: int | None, where: str,
                     auto_monitor: tuple[str, str] = ("val/loss", "min"),
                     auto: dict[str, Any] | None = None) -> TrainerSettings:
    """The `trainer` settings of a stage's section, with the config's seed where they name none, the
    rule's threads where given, ``monitor: auto`` resolved to the stage's ``auto_monitor`` (metric
    and mode) and the other ``auto`` settings to the stage's ``auto`` choices (default: the trainer's
    own defaults, engine.AUTO_SETTINGS)."""
    trainer = TrainerSettings.from_dict(section.get("trainer", {}), where=where)
    trainer.resolve_monitor(*auto_monitor)
    trainer.resolve_auto(auto or AUTO_SETTINGS)
    if trainer.seed is None:
        trainer.seed = seed
    if threads:
        trainer.num_threads = threads
    return trainer


def start_trainer(section: dict[str, Any], seed: int, threads: int | None, where: str,
                  auto_monitor: tuple[str, str] = ("val/loss", "min"),
                  auto: dict[str, Any] | None = None) -> TrainerSettings:
    """The trainer settings of a training stage, with the seed and thread count applied (never more
    threads than the cores given: aam.threads): every AAM stage starts this way, so that the same
    config and seed give identical weights. Inside a SLURM job the stage first restarts itself as a
    job step (aam.slurm)."""
    trainer = trainer_settings(section, seed, threads, where, auto_monitor, auto)
    per_node = trainer.devices if isinstance(trainer.devices, int) else 1
    run_as_job_step(trainer.num_nodes, per_node)
    seed_everything(trainer.seed)
    use_threads(trainer.num_threads, per_node)
    return trainer


def model_config(model: dict[str, Any], datamodule, **extra):
    """AAMConfig from the run's ``model`` section and the data's max_bp and asv_limit."""
    from aam.models.aam import AAMConfig

    cfg = AAMConfig(**model, max_bp=datamodule.max_bp, asv_limit=datamodule.asv_limit, **extra)
    if cfg.embedding_dim % cfg.heads:
        raise InputError(f"model: embedding_dim {cfg.embedding_dim} is not divisible by heads {cfg.heads}")
    return cfg


def input_fingerprint(settings: dict, seed: int, paths: list[str | Path]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: settings, seed and the inputs' content."""
    from aam.io.parquet_cache import hash_files

    return {"settings": settings, "seed": seed, "inputs": hash_files([Path(p) for p in paths])}


def check_splits(datamodule, need_val: bool = True) -> None:
    """Enough training samples, and validation samples for early stopping and checkpoints."""
    if len(datamodule.train_dataset) < 2:
        raise InputError(f"only {len(datamodule.train_dataset)} training samples reach depth "
                         f"{datamodule.depth}; need at least 2")
    if need_val and len(datamodule.val_dataset) == 0:
        raise InputError("no validation samples (split 'val'): early stopping and checkpoints need them")


def write_history(history: pd.DataFrame, path: Path) -> None:
    """The per-epoch metrics as CSV, atomically."""
    with atomic_path(path) as tmp:
        history.to_csv(tmp, index=False)


TIMING = "timing.json"  # beside model.json: the time a fit took, which no rerun reproduces


def train_summary(result: FitResult) -> dict[str, Any]:
    """Training figures for model.json: those the same config and seed reproduce (the time taken is
    in :func:`train_timing`)."""
    epochs_done = int(result.history["epoch"].max()) + 1 if len(result.history) else 0
    return {
        "n_parameters": result.n_parameters,
        "n_trainable": result.n_trainable,
        "epochs": epochs_done,
        "optimizer_steps": result.global_step,
        "best_score": result.best_score,
        "accelerator": result.accelerator,
        "resumed": result.resumed,
        "torch": torch.__version__,
    }


def train_timing(result: FitResult, samples_per_step: int) -> dict[str, Any]:
    """How long a fit took and how fast it went: samples/s counts the samples of the optimizer steps
    taken (``samples_per_step``: one rank's batch size times the batches accumulated per step).
    Written to ``timing.json``, not model.json, so that a rerun of the same config and seed gives
    a byte-identical model.json (docs/outputs.md)."""
    n_seen = result.global_step * samples_per_step * result.world_size
    return {
        "wall_time_s": round(result.wall_time_s, 3),
        "train_samples_per_s": round(n_seen / max(result.wall_time_s, 1e-9), 3),
    }


def train(module, train_dir: str | Path, *, fingerprint: dict[str, Any], what: str,
          datamodule=None) -> FitResult:
    """Fit ``module`` with the engine (:func:`aam.training.engine.fit`; checkpoints and logs in
    ``train_dir``); a loss that turns NaN or infinite is one InputError saying ``what`` diverged."""
    try:
        return fit(module, train_dir, datamodule=datamodule, fingerprint=fingerprint)
    except NonFiniteLossError as err:
        raise InputError(f"{what} diverged: {err}") from err


def publish(
    model: torch.nn.Module,
    out_dir: str | Path,
    results: Sequence[FitResult],
    *,
    outputs: Callable[[], dict[str, Any]],
    history: pd.DataFrame,
    timing: dict[str, Any],
    history_name: str = "metrics.csv",
) -> bool:
    """Write a trained model's outputs, on rank 0 only (``results``: the fits it came from; under
    data parallelism every rank returns from them, and only rank 0 writes): ``outputs()`` writes what
    else the stage writes and returns the keys it adds to ``model.json``; then ``timing``
    (:func:`train_timing`) goes to ``timing.json``, ``model`` is exported to ``out_dir``
    (model.safetensors + model.json, :mod:`aam.io.model_files`) and ``history`` written as
    ``history_name``. Returns whether this process wrote them."""
    if any(result.global_rank for result in results):  # data parallel: rank 0 writes the outputs
        return False
    extra = outputs()
    out_dir = Path(out_dir)
    write_text(out_dir / TIMING, json.dumps(timing, indent=2) + "\n")
    model.cpu()
    export_model(model, out_dir, extra=extra)
    write_history(history, out_dir / history_name)
    return True


def fit_and_export(
    module,
    out_dir: str | Path,
    *,
    fingerprint: dict[str, Any],
    outputs: Callable[[FitResult], dict[str, Any]],
    what: str,
    samples_per_step: int,
    datamodule=None,
    train_dir: str | Path | None = None,
    history_name: str = "metrics.csv",
) -> FitResult:
    """:func:`train` ``module`` (in ``train_dir``, default ``out_dir``), then :func:`publish`
    ``module.model`` with ``outputs(result)``, the fit's history and its :func:`train_timing`;
    returns the fit's result."""
    result = train(module, train_dir or out_dir, fingerprint=fingerprint, what=what, datamodule=datamodule)
    publish(module.model, out_dir, [result], outputs=lambda: outputs(result), history=result.history,
            timing=train_timing(result, samples_per_step), history_name=history_name)
    return result
