"""The training engine shared by every model family (AAM, DNA sequence models), on Lightning.

API
---
``TrainerSettings``
    One dataclass of training settings (the config schema's ``trainer`` definition):
    optimizer, learning-rate schedule, precision, accumulation, clipping, early stopping,
    epochs, seed. ``TrainerSettings.from_dict(d)`` rejects unknown keys with an InputError.
``EngineModule(settings)``
    A ``LightningModule`` base class. Subclasses implement ``training_step`` (return the loss)
    and ``validation_step`` and log with ``self.log``: log the training loss as
    ``self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)`` and validation
    metrics as ``val/...`` with ``on_epoch=True``. The base class provides
    ``configure_optimizers`` (AdamW / Adam / SGD; schedules ``warmup_cosine``, ``step``,
    ``plateau``, ``none``, counted in optimizer steps, so gradient accumulation is accounted for),
    weight 0 for padding batches (a batch dict with ``padding`` true: its loss is scaled by 0 before
    the backward pass and what it logs has batch size 0),
    a guard that raises :class:`NonFiniteLossError` naming the step when the training loss is NaN or
    infinite (before the backward pass: no broken weights are ever written), and RNG state in
    checkpoints so that a resumed CPU run ends exactly as an uninterrupted one.
``fit(module, out_dir, datamodule=None, train_dataloaders=None, val_dataloaders=None,
      fingerprint=None) -> FitResult``
    Runs a Lightning ``Trainer``: precision, accumulation, clipping, early stopping
    (monitor / mode / patience / min_delta), ``ModelCheckpoint`` best + last under
    ``out_dir/checkpoints``, resume from ``out_dir/checkpoints/last.ckpt`` when present (and when
    its ``fingerprint`` (settings, inputs) matches; stale checkpoints of other settings are
    discarded; one that is unreadable or names files outside its folder is set aside, renamed to
    ``checkpoints.set-aside-<time>``, with a warning), ``CSVLogger`` + ``TensorBoardLogger`` under
    ``out_dir/logs``, a progress line per epoch (:mod:`aam.training.progress`; a tqdm bar only on a
    terminal), the
    parameter count at the start, the wall time at the end, ``seed_everything`` and deterministic
    algorithms on CPU, and ``accelerator: auto`` which uses a GPU where there is one. After fitting,
    the best checkpoint's weights are loaded into ``module`` (``restore_best``). Checkpoints are
    only ever loaded with ``torch.load(weights_only=True)`` and only from ``out_dir/checkpoints``.
    ``FitResult.history`` is a per-epoch ``DataFrame`` (columns ``epoch``, ``step``,
    ``train/loss``, ``val/loss``, ... : ``_epoch`` suffixes are stripped, ``_step`` columns dropped).

    Data parallelism: ``devices`` x ``num_nodes`` > 1 trains with DDP (gloo on CPU, NCCL on GPU);
    processes come from srun (SLURM, ranks from its environment), torchrun, or Lightning's own
    launcher. Rank 0 alone decides whether to resume, and the others wait for its answer
    (``_resume_decision``); only rank 0 changes checkpoint files; ``FitResult.global_rank`` tells a
    stage whether to write outputs. A datamodule with ``shards_by_rank = True`` deals batches to the
    ranks itself, the last round padded with batches of weight 0 (:mod:`aam.data.ranks`: every
    DataModule of the project), so that W ranks train on what one process with W-fold gradient
    accumulation trains on; others get Lightning's DistributedSampler. Validation metrics must be
    logged with ``sync_dist=True``, and metrics computed from all predictions gathered with
    ``EngineModule.all_ranks``. Checkpoints hold every rank's random state.

    Preemption: SIGUSR1 or SIGTERM saves ``last.ckpt`` at the next optimizer step (all ranks
    together), requeues the SLURM job and raises :class:`aam.errors.Preempted`; the rerun resumes,
    mid-epoch included (see ``_Preemption``).

A trained model's folder (model.safetensors + model.json) is written and read by
:mod:`aam.io.model_files`, which needs no Lightning; :mod:`aam.training.runs` fits and exports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only

from aam.errors import InputError, OutputError, Preempted, destination_cause
from aam.io.atomic import write_text
from aam.threads import use_threads
from aam.training.progress import ProgressLog, RunProgressBar, progress_bar_enabled, quiet_lightning

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("warmup_cosine", "step", "plateau", "none")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
# Not ddp_spawn: its callbacks (the history) run in the spawned children, not in the caller.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")


AUTO = "auto"  # a trainer setting the stage chooses (TrainerSettings.resolve_monitor, resolve_auto)
AUTO_MONITOR = AUTO
# The settings that may be "auto" besides the monitor, and what a stage that does not choose gets (the
# trainer's own defaults); fine-tuning chooses per task (aam.training.finetune.FINETUNE_AUTO).
AUTO_SETTINGS = {"max_epochs": 10, "patience": 5, "restore_best": True}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch, batch and optimizer step."""


@dataclass
class TrainerSettings:
    """Training settings; every field is a key of the config schema's ``trainer`` definition."""

    max_epochs: int | str = 10  # or auto: the stage's choice (AUTO_SETTINGS)
    max_steps: int = -1  # optimizer steps; -1 = no limit
    batch_size: int = 8  # read by the stage that builds the data loaders
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.01  # applied to weight matrices and embeddings only
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9  # sgd only
    schedule: str = "warmup_cosine"  # warmup_cosine | step | plateau | none
    warmup_steps: int = 100  # optimizer steps of linear warmup (warmup_cosine)
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    step_size: int = 1000  # optimizer steps between decays (step)
    gamma: float = 0.5  # decay factor (step, plateau)
    plateau_patience: int = 2  # epochs without improvement before a decay (plateau)
    precision: str = "32"  # 32 | bf16-mixed | 16-mixed (mixed precisions fall back to 32 on CPU)
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0  # max gradient norm; null = no clipping
    monitor: str = "val/loss"
    mode: str = "min"  # min | max
    patience: int | str | None = 5  # early-stopping patience in epochs; null = no early stopping; auto
    min_delta: float = 0.0
    limit_train_batches: float | int = 1.0  # fraction (float) or number (int) of batches per epoch
    limit_val_batches: float | int = 1.0
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int | str = "auto"  # processes (GPUs, or CPU processes) per node; auto = all GPUs, 1 CPU
    num_nodes: int = 1
    strategy: str = "auto"  # auto (ddp with more than one process) | ddp | ddp_find_unused_parameters_true
    num_workers: int = 0
    num_threads: int | None = None  # CPU threads of the job on a node (aam.threads); null = all cores
    seed: int | None = None  # null = the caller's (config) seed, else 42
    deterministic: bool = True  # deterministic algorithms (CPU only)
    log_every_n_steps: int = 10  # CSV/TensorBoard logging interval (optimizer steps)
    progress_every_n_steps: int | None = None  # a progress line every N steps too; null = per epoch
    progress_bar: bool | str = "auto"  # tqdm bar: auto = only when the output is a terminal
    resume: bool = True  # resume from out_dir/checkpoints/last.ckpt when present
    restore_best: bool | str = True  # load the best checkpoint's weights after fitting; auto: the stage's
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # not used by the engine

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, *, where: str = "trainer") -> TrainerSettings:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"{where}: unknown setting(s) {unknown}; known: {sorted(names)}")
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        settings = cls(**values)
        settings.check(where)
        return settings

    def check(self, where: str = "trainer") -> None:
        def bad(msg: str) -> InputError:
            return InputError(f"{where}: {msg}")

        if self.optimizer not in OPTIMIZERS:
            raise bad(f"optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise bad(f"schedule {self.schedule!r} is not one of {SCHEDULES}")
        if str(self.precision) not in PRECISIONS:
            raise bad(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.mode not in ("min", "max"):
            raise bad(f"mode {self.mode!r} is not 'min' or 'max'")
        if self.restore_best not in (True, False, AUTO):
            raise bad(f"restore_best must be true, false or 'auto', got {self.restore_best!r}")
        if self.progress_bar not in (True, False, "auto"):
            raise bad(f"progress_bar must be true, false or 'auto', got {self.progress_bar!r}")
        if self.lr <= 0:
            raise bad(f"lr must be > 0, got {self.lr}")
        if self.accumulate_grad_batches < 1:
            raise bad("accumulate_grad_batches must be >= 1")
        if self.max_epochs != AUTO and self.max_epochs < 1 and self.max_steps < 1:
            raise bad("max_epochs or max_steps must be >= 1")
        if self.strategy not in STRATEGIES:
            raise bad(f"strategy {self.strategy!r} is not one of {STRATEGIES}")
        if self.num_nodes < 1:
            raise bad("num_nodes must be >= 1")
        if not (self.devices == "auto" or (isinstance(self.devices, int) and self.devices >= 1)):
            raise bad(f"devices must be 'auto' or an integer >= 1, got {self.devices!r}")

    def resolve_monitor(self, monitor: str, mode: str) -> None:
        """``monitor: auto`` means the stage's own metric: ``monitor`` with ``mode`` (the stage says
        which; fine-tuning picks one per task). Other monitors stay as they are."""
        if self.monitor == AUTO_MONITOR:
            self.monitor, self.mode = monitor, mode

    def resolve_auto(self, choices: dict[str, Any]) -> None:
        """Settings of AUTO_SETTINGS given as ``auto`` take the stage's ``choices`` (fine-tuning chooses
        per task: aam.training.finetune.FINETUNE_AUTO); settings given a value keep it."""
        for name in AUTO_SETTINGS:
            if getattr(self, name) == AUTO:
                setattr(self, name, choices[name])

    def unresolved(self) -> list[str]:
        """The settings still ``auto``: none may reach fit()."""
        return [name for name in ("monitor", *AUTO_SETTINGS) if getattr(self, name) == AUTO]

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        d["betas"] = list(self.betas)
        return d


# ----------------------------------------------------------------------------------------------
# The LightningModule base class


def _lr_lambda_warmup_cosine(warmup: int, total: int, floor: float):
    def fn(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


class EngineModule(L.LightningModule):
    """Base LightningModule: optimizers, schedules, the NaN guard and RNG state in checkpoints."""

    def __init__(self, settings: TrainerSettings | dict[str, Any] | None = None):
        super().__init__()
        if not isinstance(settings, TrainerSettings):
            settings = TrainerSettings.from_dict(settings)
        self.settings = settings
        self._padding = False  # the current batch pads an epoch's last round (aam.data.ranks)
        self._batch_idx = -1  # the current training batch's index in its epoch

    def attached_trainer(self) -> L.Trainer | None:
        """The Trainer this module is attached to, or None (``self.trainer`` raises when there is none)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    # -- optimizers and schedules --------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Weight decay on matrices and embeddings (ndim >= 2); none on biases and norms."""
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": self.settings.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    def total_optimizer_steps(self) -> int:
        """Optimizer steps of the whole run (after accumulation), as Lightning estimates them."""
        s = self.settings
        trainer = self.attached_trainer()
        total = trainer.estimated_stepping_batches if trainer is not None else s.max_steps
        if not math.isfinite(total) or total <= 0:
            total = s.max_steps if s.max_steps > 0 else 1
        return int(total)

    def configure_optimizers(self):
        s = self.settings
        groups = self.parameter_groups()
        if s.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=s.lr, betas=tuple(s.betas))
        elif s.optimizer == "adam":
            # Adam's weight_decay is L2 added to the gradient; keep the groups' settings.
            opt = torch.optim.Adam(groups, lr=s.lr, betas=tuple(s.betas))
        else:
            opt = torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum)
        if s.schedule == "none":
            return opt
        if s.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode=s.mode, factor=s.gamma, patience=s.plateau_patience
            )
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "interval": "epoch", "monitor": s.monitor},
            }
        if s.schedule == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, s.step_size), gamma=s.gamma)
        else:
            total = self.total_optimizer_steps()
            warmup = min(s.warmup_steps, max(0, total - 1))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, _lr_lambda_warmup_cosine(warmup, total, s.min_lr_ratio)
            )
        # interval "step": Lightning steps the scheduler once per optimizer step, i.e. after each
        # accumulated group of batches, so the schedule counts optimizer steps.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- data parallelism -----------------------------------------------------------------------
    def all_ranks(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (``[obj]`` in one process). Every rank must call it:
        epoch-end metrics (AUROC, R2) are computed from all ranks' predictions, not averaged."""
        trainer = self.attached_trainer()
        if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
            return [obj]
        out: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    # -- padding batches: weight 0 ----------------------------------------------------------------
    # Under data parallelism an epoch's last round of batches is padded with copies flagged
    # ``padding`` (aam.data.ranks), so that every rank takes part in every gradient all-reduce. Such
    # a batch runs forward and backward like any other, but its loss is scaled by 0 before the
    # backward pass (its gradient is 0) and everything it logs has batch size 0 (it adds nothing to
    # an epoch's means). Subclasses need do nothing, except keep it out of lists they gather
    # themselves (``is_padding``).
    @staticmethod
    def is_padding(batch: Any) -> bool:
        flag = batch.get("padding") if isinstance(batch, dict) else None
        return bool(flag) if flag is not None else False

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._padding, self._batch_idx = self.is_padding(batch), batch_idx

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._padding = False

    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._padding = self.is_padding(batch)

    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._padding = False

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().backward(loss * 0.0 if self._padding else loss, *args, **kwargs)

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if self._padding:
            kwargs["batch_size"] = 0
        if kwargs.get("batch_size") is not None:
            # As a float: Lightning sums batch sizes in an int64 tensor and, syncing an epoch mean
            # over ranks, divides that sum by the world size in place, truncating it (seen as a
            # 1.7e-3 relative error of train/nucleotide_accuracy on 2 ranks); a float sum is exact.
            kwargs["batch_size"] = float(kwargs["batch_size"])
        super().log(name, value, *args, **kwargs)

    # -- NaN / inf guard ------------------------------------------------------------------------
    def on_before_backward(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"training loss is {loss.detach().float().item()} at epoch {self.current_epoch}, "
                f"batch {self._batch_idx}, optimizer step "
                f"{self.global_step}; stopping before the update (no model is written). "
                "Try a lower learning rate, gradient clipping or precision 32."
            )

    # -- RNG state in checkpoints: a resumed run draws the same numbers as an uninterrupted one --
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain tensors and numbers only, so checkpoints load with torch.load(weights_only=True).
        # Every rank's state: ranks draw different amounts (dropout over batches of other sizes),
        # and only rank 0 writes the file. Lightning calls this on every rank.
        _, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": [int(version), list(internal), gauss],
        }
        checkpoint["engine_rng"] = state
        ranks = self.all_ranks(state)
        if len(ranks) > 1:
            checkpoint["engine_rng_ranks"] = ranks

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning loads the checkpoint before it builds the optimizers and the first train
        # iterator (which draws its shuffle seed from the torch RNG), so restoring here makes the
        # resumed epoch draw exactly what the uninterrupted run drew.
        rng = checkpoint.get("engine_rng")
        ranks = checkpoint.get("engine_rng_ranks")
        trainer = self.attached_trainer()
        if ranks and trainer is not None and len(ranks) == trainer.world_size:
            rng = ranks[trainer.global_rank]
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            version, internal, gauss = rng["python"]
            random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------------------------------------
# Callbacks


class _History(Callback):
    """Per-epoch metrics, kept in the checkpoint so that a resumed run's history is complete."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.endswith("_step"):
                continue
            name = key[: -len("_epoch")] if key.endswith("_epoch") else key
            row[name] = float(value.detach().float().cpu()) if torch.is_tensor(value) else float(value)
        for i, group in enumerate(trainer.optimizers[0].param_groups[:1] if trainer.optimizers else []):
            row[f"lr{'' if i == 0 else i}"] = float(group["lr"])
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


class _FiniteMonitor(Callback):
    """A NaN/inf validation metric that is being monitored stops the run with a clear error."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and not torch.isfinite(torch.as_tensor(value)).all():
            raise NonFiniteLossError(
                f"{self.monitor} is {float(value)} at epoch {trainer.current_epoch} "
                f"(optimizer step {trainer.global_step}); stopping (no model is written)."
            )


class _Preemption(Callback):
    """Checkpoint and stop on SIGUSR1 or SIGTERM (a cluster's warning before a time limit or a
    preemption); on SLURM, requeue the job (``scontrol requeue``) so that it reruns and resumes.

    The signal handler only sets a flag. At the next optimizer-step boundary every rank learns
    whether any rank was signalled (one all-reduce), all ranks save ``last.ckpt`` together, and
    :class:`aam.errors.Preempted` ends the run (no model is written). Saving at a step boundary,
    rather than inside the handler as Lightning's SLURM auto-requeue does, means that no rank saves
    in the middle of an update or of another rank's collective. The checkpoint records how many of
    the epoch's batches this rank had trained on; a datamodule with ``resume_at(epoch, n)`` starts
    in that epoch and skips them on resume, so that the resumed run ends with the same weights as an
    uninterrupted one.
    """

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self, last_path: Path) -> None:
        self.last_path = last_path
        self.signalled: int | None = None
        self._previous: dict[int, Any] = {}
        self._saving_batches: int | None = None
        self._epoch_ended = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.signalled = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning's own handlers are registered, so that ours take their place.
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_ended = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs this before the checkpoint callbacks' own on_train_epoch_end (callbacks that
        # monitor a metric come last), where ModelCheckpoint saves the epoch's checkpoint.
        self._epoch_ended = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        # batch_idx counts the epoch's batches, those before a mid-epoch resume included.
        done = batch_idx + 1
        if done % trainer.accumulate_grad_batches and done < trainer.num_training_batches:
            return  # mid-way through an accumulated step: not a resumable point
        stop = trainer.strategy.reduce_boolean_decision(self.signalled is not None, all=False)
        if not stop:
            return
        self._saving_batches = done
        trainer.save_checkpoint(self.last_path)
        self._saving_batches = None
        if trainer.is_global_zero:
            _requeue_slurm_job()
        what = signal.Signals(self.signalled).name if self.signalled else "a signal on another rank"
        raise Preempted(f"{what} at epoch {trainer.current_epoch}, optimizer step {trainer.global_step}: "
                        f"checkpoint saved to {self.last_path}; the same command resumes from it")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        # Where a resumed run starts, in our own keys (Lightning's loop state is not public API).
        if self._saving_batches is not None:
            checkpoint["engine_mid_epoch_batches"] = self._saving_batches
            checkpoint["engine_resume_epoch"] = trainer.current_epoch
        else:  # ModelCheckpoint's save at an epoch's end: the next epoch starts afresh
            checkpoint["engine_resume_epoch"] = trainer.current_epoch + int(self._epoch_ended)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        done = checkpoint.get("engine_mid_epoch_batches")
        # The epoch the loop resumes in, which Lightning tells samplers only after it has made the
        # first iterator (a checkpoint without our key was saved at an epoch's end).
        epoch = checkpoint.get("engine_resume_epoch", int(checkpoint["epoch"]) + int(done is None))
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "resume_at"):
            dm.resume_at(int(epoch), int(done or 0))
            # Lightning cannot know that this loader resumes by skipping: quiet its warning.
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
        elif done is not None:
            log.warning("resuming mid-epoch with data that cannot skip the %d batches already trained "
                        "on: the rest of this epoch repeats its first batches", done)


def _requeue_slurm_job() -> None:
    """Put this SLURM job back in the queue (it reruns the same command, which resumes)."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job:
        return
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("could not requeue SLURM job %s: %s", job, err)
        return
    if done.returncode:
        log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
    else:
        log.info("requeued SLURM job %s", job)


class _WallClock(Callback):
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        total = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        log.info("model: %s parameters (%s trainable)", f"{total:,}", f"{trainable:,}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log.info(
            "training ended after %.1f s (epoch %d, %d optimizer steps)",
            time.perf_counter() - self.start, trainer.current_epoch, trainer.global_step,
        )


# ----------------------------------------------------------------------------------------------
# fit


@dataclass
class FitResult:
    history: pd.DataFrame  # one row per epoch
    best_model_path: str | None
    best_score: float | None
    n_parameters: int
    n_trainable: int
    wall_time_s: float
    global_step: int
    epochs: int
    resumed: bool
    accelerator: str
    global_rank: int = 0  # under data parallelism only rank 0 writes outputs
    world_size: int = 1


def gpu_available() -> bool:
    return torch.cuda.is_available()


def _resolve_precision(settings: TrainerSettings, on_gpu: bool) -> str:
    precision = str(settings.precision)
    if precision != "32" and not on_gpu:
        log.warning("precision %s needs a GPU here; training in 32-bit on CPU", precision)
        return "32"
    if precision == "bf16-mixed" and on_gpu and not torch.cuda.is_bf16_supported():
        log.warning("this GPU has no bf16; using 16-mixed")
        return "16-mixed"
    return precision


def _parallelism(settings: TrainerSettings, on_gpu: bool) -> tuple[int | str, str]:
    """Lightning's ``devices`` and ``strategy``: ddp when more than one process trains."""
    devices: int | str = settings.devices
    if on_gpu:
        per_node = torch.cuda.device_count() if devices == "auto" else int(devices)
    else:
        devices = 1 if devices == "auto" else int(devices)  # CPU processes
        per_node = devices
    strategy = settings.strategy
    if strategy == "auto" and per_node * settings.num_nodes > 1:
        strategy = "ddp"
    return devices, strategy


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch. Stages call it before building a model, so that weight
    initialization is reproducible too (`fit` seeds again, for training)."""
    L.seed_everything(int(seed), workers=True, verbose=False)


FINISHED = "finished"  # marker of a run that trained to its end: a new run starts afresh


def _inside(path: str | Path, folder: Path) -> bool:
    """Whether `path` (symbolic links resolved) lies inside `folder`."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _resume_problem(last: Path, ckpt_dir: Path) -> str | None:
    """Why `last` cannot be resumed from, or None.

    It must load as plain data (``weights_only=True``: a pickle payload never runs), and every file
    its ModelCheckpoint state names must lie inside the run's own checkpoint folder: Lightning
    later loads ``best_model_path`` and deletes ``kth_best_model_path``, so a tampered (or moved)
    checkpoint could otherwise make the run read or remove files anywhere.
    """
    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, empty file: torch raises many types
        first = (str(err).strip().splitlines() or [""])[0][:200]
        return f"unreadable as a plain-data checkpoint ({type(err).__name__}: {first})"
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return "not a training checkpoint (no state_dict)"
    for state in (checkpoint.get("callbacks") or {}).values():
        if not isinstance(state, dict):
            continue
        keys = ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path")
        paths = [state.get(key) for key in keys]
        paths += list(state.get("best_k_models") or {})
        outside = [str(p) for p in paths if p and not _inside(p, ckpt_dir)]
        if outside:
            return f"it names a file outside the run's checkpoint folder ({outside[0]!r})"
    return None


def _set_aside(ckpt_dir: Path, problem: str) -> None:
    """Rename a checkpoint folder that cannot be resumed (and the run's logs, into it); never delete it."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = ckpt_dir.with_name(f"{ckpt_dir.name}.set-aside-{stamp}")
    n = 1
    while aside.exists():
        aside = ckpt_dir.with_name(f"{ckpt_dir.name}.set-aside-{stamp}-{n}")
        n += 1
    os.replace(ckpt_dir, aside)
    logs = ckpt_dir.parent / "logs"
    if logs.exists():
        os.replace(logs, aside / "logs")
    log.warning(
        "%s: %s; set aside as %s (delete it when you no longer need it); training starts afresh",
        ckpt_dir / "last.ckpt",
        problem,
        aside,
    )


def _prepare_checkpoints(ckpt_dir: Path, fingerprint: dict[str, Any] | None, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None (rank 0 alone calls it: see ``_resume_decision``).

    Only an unfinished run resumes: checkpoints of other settings, and those of a run that ran to
    its end (a forced rerun, say), are removed so that training starts afresh. A last checkpoint
    that cannot be resumed safely (unreadable, truncated, or naming files outside its folder) is
    set aside with a warning, never deleted, and training starts afresh.
    """
    stamp = ckpt_dir / "fingerprint.json"
    text = json.dumps(fingerprint, sort_keys=True, default=str) if fingerprint is not None else None
    last = ckpt_dir / "last.ckpt"
    if ckpt_dir.exists():
        same = text is None or (stamp.exists() and stamp.read_text() == text)
        finished = (ckpt_dir / FINISHED).exists()
        if not resume or not same or finished:
            why = ("resume is off" if not resume else "settings or inputs changed" if not same
                   else "the last run finished")
            log.info("removing old checkpoints and logs in %s (%s)", ckpt_dir.parent, why)
            shutil.rmtree(ckpt_dir)
            shutil.rmtree(ckpt_dir.parent / "logs", ignore_errors=True)
        elif last.exists():
            problem = _resume_problem(last, ckpt_dir)
            if problem:
                _set_aside(ckpt_dir, problem)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if text is not None:
        write_text(stamp, text)
    if last.exists():
        log.info("resuming from %s", last)
        return last
    return None


@contextlib.contextmanager
def _state_removed_on_write_failure(out_dir: Path, keep: bool) -> Iterator[None]:
    """A run that cannot write its checkpoints or logs (a full disk, a read-only folder) stops with
    one `OutputError` naming the run's folder and the cause. Unless told to `keep` them (a run
    resumed from a checkpoint, which a rerun after freeing space resumes again; a checkpoint cut
    short by the full disk is then set aside, see _prepare_checkpoints), what the run wrote there,
    ``checkpoints/`` and ``logs/``, is removed first (rank 0): it would resume nothing."""
    try:
        yield
    except (InputError, OutputError, Preempted):
        raise
    except Exception as err:
        cause = destination_cause(err)
        if cause is None:
            raise
        if not keep and rank_zero_only.rank == 0:
            for name in ("checkpoints", "logs"):
                shutil.rmtree(out_dir / name, ignore_errors=True)
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only when nothing else is left in it
        raise OutputError(f"{out_dir}: cannot write the run's checkpoints and logs: {cause}") from err


# Rank 0's decisions, for the processes Lightning's own launcher starts inside trainer.fit.
_DECISIONS_ENV = "AAM_RESUME_DECISIONS"


def _resume_decision(trainer: L.Trainer, ckpt_dir: Path, fingerprint: dict[str, Any] | None,
                     resume: bool) -> Path | None:
    """The checkpoint every rank resumes from, or None: rank 0 decides, the others follow.

    If each rank read the shared filesystem itself, ranks could disagree (one sees a stale
    ``last.ckpt`` while rank 0 removes it, or an NFS client's cached view) and then hang in their
    first collective. So only rank 0 looks at (and changes) the checkpoint folder, and the others
    wait for its answer:

    - processes started by srun, torchrun or by hand (all running already): they join the process
      group now (``strategy.setup_environment``, which Lightning would call in ``fit`` anyway) and
      rank 0's answer is broadcast: a barrier before anyone resumes;
    - processes that Lightning's own launcher starts inside ``trainer.fit`` (``devices`` > 1 with
      no launcher): rank 0 decides before it starts them, and they inherit the answer in their
      environment.
    """
    key = os.path.realpath(ckpt_dir)
    inherited = json.loads(os.environ.get(_DECISIONS_ENV) or "{}")
    if key in inherited:  # started by rank 0 through Lightning's launcher: its answer, once
        decided = inherited.pop(key)
        os.environ[_DECISIONS_ENV] = json.dumps(inherited)
        return Path(decided) if decided else None
    if trainer.world_size == 1:
        return _prepare_checkpoints(ckpt_dir, fingerprint, resume)
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if torch.distributed.is_initialized() or (environment is not None
                                             and environment.creates_processes_externally):
        trainer.strategy.setup_environment()
        decided = _prepare_checkpoints(ckpt_dir, fingerprint, resume) if trainer.is_global_zero else None
        answer = trainer.strategy.broadcast(None if decided is None else str(decided), src=0)
        return None if answer is None else Path(answer)
    decided = _prepare_checkpoints(ckpt_dir, fingerprint, resume)
    os.environ[_DECISIONS_ENV] = json.dumps({**inherited, key: "" if decided is None else str(decided)})
    return decided


def fit(
    module: EngineModule,
    out_dir: str | Path,
    datamodule: L.LightningDataModule | None = None,
    train_dataloaders: Any = None,
    val_dataloaders: Any = None,
    fingerprint: dict[str, Any] | None = None,
    callbacks: list[Callback] | None = None,
) -> FitResult:
    """Train ``module`` with its ``settings``; see the module docstring."""
    s = module.settings
    if s.unresolved():
        raise ValueError(f"trainer setting(s) {s.unresolved()} 'auto' reached fit(): the stage must resolve "
                         "them (TrainerSettings.resolve_monitor, resolve_auto)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = 42 if s.seed is None else int(s.seed)
    L.seed_everything(seed, workers=True, verbose=False)

    on_gpu = s.accelerator in ("auto", "gpu", "cuda") and gpu_available()
    history, checkpoint = _History(), _checkpoint(s, out_dir)
    trainer = _lightning_trainer(s, out_dir, on_gpu, datamodule,
                                 _callbacks(s, out_dir, history, checkpoint, callbacks))
    with _state_removed_on_write_failure(out_dir, keep=(out_dir / "checkpoints" / "last.ckpt").exists()):
        ckpt_path = _resume_decision(trainer, out_dir / "checkpoints", fingerprint, s.resume)
    # One validation batch before a fresh run's first epoch catches a broken validation step early;
    # a resumed run has run validation already.
    trainer.num_sanity_val_steps = 0 if ckpt_path is not None else 1
    start = time.perf_counter()
    with _state_removed_on_write_failure(out_dir, keep=ckpt_path is not None):
        trainer.fit(
            module,
            train_dataloaders=train_dataloaders,
            val_dataloaders=val_dataloaders,
            datamodule=datamodule,
            ckpt_path=str(ckpt_path) if ckpt_path is not None else None,
            weights_only=True,
        )
        wall = time.perf_counter() - start
        if trainer.interrupted:
            raise KeyboardInterrupt("training was interrupted")
        if trainer.is_global_zero:
            write_text(out_dir / "checkpoints" / FINISHED, f"global_step {trainer.global_step}\n")

    best_path = checkpoint.best_model_path or None
    best_score = checkpoint.best_model_score
    if s.restore_best and best_path and Path(best_path).exists():
        module.load_state_dict(_best_weights(Path(best_path), out_dir / "checkpoints"))
        log.info("loaded the best weights (%s = %s) from %s", s.monitor, _fmt(best_score), best_path)
    return _fit_result(module, trainer, history, best_path, best_score, wall, resumed=ckpt_path is not None,
                       accelerator="gpu" if on_gpu else "cpu")


def _checkpoint(s: TrainerSettings, out_dir: Path) -> ModelCheckpoint:
    """best.ckpt by the monitored metric and last.ckpt (resume), both at each training epoch's end."""
    return ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=s.monitor,
        mode=s.mode,
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        save_on_train_epoch_end=True,
    )


def _callbacks(s: TrainerSettings, out_dir: Path, history: _History, checkpoint: ModelCheckpoint,
               extra: list[Callback] | None) -> list[Callback]:
    """The engine's callbacks (history, finite monitor, wall clock, progress lines, checkpoints,
    preemption, early stopping, the terminal bar) followed by the caller's."""
    quiet_lightning()
    progress = ProgressLog(s.monitor, s.mode, s.progress_every_n_steps)
    cbs: list[Callback] = [history, _FiniteMonitor(s.monitor), _WallClock(), progress, checkpoint,
                           _Preemption(out_dir / "checkpoints" / "last.ckpt")]
    if s.patience is not None:
        cbs.append(
            EarlyStopping(
                monitor=s.monitor, mode=s.mode, patience=s.patience, min_delta=s.min_delta,
                check_finite=False, check_on_train_epoch_end=True,
            )
        )
    if progress_bar_enabled(s.progress_bar):
        cbs.append(RunProgressBar())
    return cbs + list(extra or [])


def _lightning_trainer(s: TrainerSettings, out_dir: Path, on_gpu: bool, datamodule,
                       callbacks: list[Callback]) -> L.Trainer:
    """The Lightning Trainer of the settings: device and parallelism, precision, threads, loggers
    (CSV and TensorBoard under logs/), SLURM ranks."""
    precision = _resolve_precision(s, on_gpu)
    devices, strategy = _parallelism(s, on_gpu)
    # Threads: never more than the cores this process was given (shared by the node's processes).
    use_threads(s.num_threads, devices if isinstance(devices, int) else torch.cuda.device_count())
    loggers = [
        CSVLogger(out_dir / "logs", name="csv", version=0),
        TensorBoardLogger(out_dir / "logs", name="tensorboard", version=0, default_hp_metric=False),
    ]
    plugins = []
    if SLURMEnvironment.detect():  # ranks from SLURM; requeueing is _Preemption's job
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return L.Trainer(
        accelerator="gpu" if on_gpu else "cpu",
        devices=devices,
        num_nodes=s.num_nodes,
        strategy=strategy,
        plugins=plugins or None,
        # A datamodule that deals batches to ranks itself (AAMDataModule) keeps its sampler.
        use_distributed_sampler=not getattr(datamodule, "shards_by_rank", False),
        precision=precision,
        max_epochs=s.max_epochs,
        max_steps=s.max_steps,
        accumulate_grad_batches=s.accumulate_grad_batches,
        gradient_clip_val=s.gradient_clip_val,
        gradient_clip_algorithm="norm",
        limit_train_batches=s.limit_train_batches,
        limit_val_batches=s.limit_val_batches,
        callbacks=callbacks,
        logger=loggers,
        log_every_n_steps=s.log_every_n_steps,
        enable_progress_bar=progress_bar_enabled(s.progress_bar),
        enable_model_summary=False,
        deterministic=bool(s.deterministic) and not on_gpu,
        default_root_dir=out_dir,
    )


def _fit_result(module: EngineModule, trainer: L.Trainer, history: _History, best_path: str | None,
                best_score, wall: float, *, resumed: bool, accelerator: str) -> FitResult:
    """The FitResult: the per-epoch history as a frame, the best checkpoint, sizes and counters."""
    n_params = sum(p.numel() for p in module.parameters())
    n_train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frame = pd.DataFrame(history.rows)
    if not frame.empty:
        frame = frame.sort_values("epoch").reset_index(drop=True)
        frame["epoch"] = frame["epoch"].astype(int)
        frame["step"] = frame["step"].astype(int)
    return FitResult(
        history=frame,
        best_model_path=best_path,
        best_score=None if best_score is None else float(best_score),
        n_parameters=n_params,
        n_trainable=n_train,
        wall_time_s=wall,
        global_step=trainer.global_step,
        epochs=trainer.current_epoch,
        resumed=resumed,
        accelerator=accelerator,
        global_rank=trainer.global_rank,
        world_size=trainer.world_size,
    )


def _best_weights(path: Path, ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """The state_dict of the best checkpoint: only from the run's own folder, only as plain data."""
    if not _inside(path, ckpt_dir):
        raise InputError(f"{path}: the best checkpoint lies outside the run's folder {ckpt_dir}; not loaded")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # a pickle payload is refused here, as is a truncated file
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: cannot load the best checkpoint as plain data ({type(err).__name__}: {first}); "
            f"delete {ckpt_dir} to train afresh"
        ) from None


def _fmt(x: Any) -> str:
    try:
        return f"{float(x):.4g}"
    except (TypeError, ValueError):
        return str(x)
