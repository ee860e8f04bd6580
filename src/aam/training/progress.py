"""What a person reads while a model trains: one progress line per epoch (or every N optimizer
steps), whatever the progress bar does, and Lightning's own output without its noise.

``ProgressLog`` is a Lightning callback; the engine adds it to every fit, so every model family
logs the same lines through Python logging (the stage's log file under Snakemake)::

    epoch 2/3  step 30/45  train/loss 0.6812  val/loss 0.7013  val/auroc 0.7143  (monitor val/loss,
    best 0.6950)  14.2 samples/s  elapsed 1m42s  run left ~51s

Under DDP only rank 0 logs, and samples/s counts every device's samples. ``left`` is the
remaining optimizer steps at the run's average time per step so far (validation
included): an upper bound when early stopping ends the run sooner.

``quiet_lightning()`` makes the log read top to bottom: Lightning's messages appear once (its own
console handler is dropped when the application has configured logging, so they reach the log only
through the root logger), and its advertisements, per-run chatter and a warning that our own
checkpoint handling makes meaningless on fresh runs are dropped.

``progress_bar_enabled(setting)``: ``auto`` shows a tqdm bar only on a terminal. The bar
(``RunProgressBar``) is Lightning's with two changes: its postfix gives the time left for the whole
run (Lightning's own estimate covers the current epoch only), and on a terminal that reports no size
(a pseudo-terminal of 0x0 columns and rows, as some job schedulers and CI runners open) it draws at
80 columns instead of drawing nothing.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

log = logging.getLogger(__name__)

# Lightning messages that say nothing about this run (one substring per message).
_CHATTER = (
    "litlogger",  # an advertisement
    "TPU available",
    "HPU available",
    "was configured so 100% of the batches",
    "to estimate number of stepping batches",
)
# Warnings that do not apply: the engine writes its fingerprint into the checkpoint folder before
# Lightning starts (and removes stale checkpoints itself), so the folder is never empty; the pytree
# deprecation comes from Lightning's own code.
_IGNORED_WARNINGS = (
    r"Checkpoint directory .* exists and is not empty",
    r".*isinstance\(treespec, LeafSpec\)",
)
_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric",
                      "pytorch_lightning")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in _CHATTER)


_FILTER = _DropChatter()


def quiet_lightning() -> None:
    """Lightning's messages once, without advertisements and chatter (idempotent)."""
    root_configured = logging.getLogger().hasHandlers()
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if root_configured:
            # Lightning adds its own console handler; with the root logger's handler as well,
            # every message appeared twice.
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler):
                    logger.removeHandler(handler)
            logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for pattern in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def progress_bar_enabled(setting: bool | str) -> bool:
    """``True``/``False`` as given; ``"auto"``: only when the output is a terminal."""
    if setting == "auto":
        return sys.stdout.isatty() and sys.stderr.isatty()
    return bool(setting)


def batch_size_of(batch: Any) -> int:
    """Samples in a training batch: AAM batches count ``sample_index`` (their first tensor holds
    distinct ASVs, not samples), contrastive batches ``group``, others their first tensor's rows."""
    if isinstance(batch, dict):
        for key in ("sample_index", "group"):
            if key in batch:
                return len(batch[key])
        batch = list(batch.values())
    if isinstance(batch, list | tuple):
        for item in batch:
            if torch.is_tensor(item) and item.dim() > 0:
                return int(item.shape[0])
        return 0
    return int(batch.shape[0]) if torch.is_tensor(batch) and batch.dim() > 0 else 0


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def time_left(elapsed: float, steps_done: int, total_steps: int | None, global_step: int) -> float | None:
    """Seconds left for the run: the optimizer steps still to go at the average time per step so far
    (`steps_done` steps took `elapsed` seconds); None before the first step or without a total."""
    if not total_steps or steps_done <= 0:
        return None
    return elapsed / steps_done * max(total_steps - global_step, 0)


def _total_steps(trainer: L.Trainer) -> int | None:
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - an estimate only; some loaders have no length
        return None
    return int(total) if total is not None and total != float("inf") else None


def _number(value: Any) -> float | None:
    try:
        return float(value.detach().float().cpu()) if torch.is_tensor(value) else float(value)
    except (TypeError, ValueError):
        return None


class ProgressLog(Callback):
    """One log line per epoch, and every ``every_n_steps`` optimizer steps when set.

    Epoch lines hold the epoch, the optimizer step, the epoch's training loss, every validation
    metric, the monitored metric and its best value so far, the epoch's samples/s, the time elapsed
    and an estimate of the time left. Step lines hold the step, the running training loss, samples/s
    since the last line, elapsed and left.
    """

    def __init__(self, monitor: str = "val/loss", mode: str = "min", every_n_steps: int | None = None,
                 max_val_metrics: int = 6) -> None:
        self.monitor, self.mode = monitor, mode
        self.every_n_steps = int(every_n_steps) if every_n_steps else None
        self.max_val_metrics = max_val_metrics
        self.best: float | None = None

    # -- timing ----------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.start_step = trainer.global_step  # > 0 when resuming
        self.total_steps = _total_steps(trainer)
        self.last_step_logged = trainer.global_step
        self.samples_since_line, self.line_time = 0, self.start
        # A run resumed mid-epoch (after preemption) starts without on_train_epoch_start.
        self.epoch_start, self.epoch_samples = self.start, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()
        self.epoch_samples = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        n = batch_size_of(batch)
        self.epoch_samples += n
        self.samples_since_line += n
        step = trainer.global_step
        if (not self.every_n_steps or trainer.global_rank != 0 or step == self.last_step_logged
                or step % self.every_n_steps):
            return
        self.last_step_logged = step
        now = time.perf_counter()
        metrics = trainer.callback_metrics
        loss = _number(metrics.get("train/loss_step", metrics.get("train/loss")))
        rate = self.samples_since_line * trainer.world_size / max(now - self.line_time, 1e-9)
        self.samples_since_line, self.line_time = 0, now
        parts = [f"epoch {trainer.current_epoch + 1}{self._of(trainer.max_epochs)}",
                 f"step {step}{self._of(self.total_steps)}"]
        if loss is not None:
            parts.append(f"train/loss {loss:.4g}")
        parts += [f"{rate:.1f} samples/s", *self._times(trainer, now)]
        log.info("  ".join(parts))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:  # one line per run, not per device
            return
        now = time.perf_counter()
        metrics = {k: _number(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}
        metrics = {(k[: -len("_epoch")] if k.endswith("_epoch") else k): v for k, v in metrics.items()
                   if v is not None}
        parts = [f"epoch {trainer.current_epoch + 1}{self._of(trainer.max_epochs)}",
                 f"step {trainer.global_step}{self._of(self.total_steps)}"]
        if "train/loss" in metrics:
            parts.append(f"train/loss {metrics['train/loss']:.4g}")
        val = [k for k in sorted(metrics) if k.startswith("val/")]
        val = (["val/loss"] if "val/loss" in val else []) + [k for k in val if k != "val/loss"]
        parts += [f"{k} {metrics[k]:.4g}" for k in val[: self.max_val_metrics]]
        current = metrics.get(self.monitor)
        if current is not None:
            better = self.best is None or (current < self.best if self.mode == "min" else current > self.best)
            self.best = current if better else self.best
            parts.append(f"(monitor {self.monitor} {current:.4g}, best {self.best:.4g})")
        rate = self.epoch_samples * trainer.world_size / max(now - self.epoch_start, 1e-9)
        parts += [f"{rate:.1f} samples/s", *self._times(trainer, now)]
        log.info("  ".join(parts))

    def _times(self, trainer: L.Trainer, now: float) -> list[str]:
        elapsed = now - self.start
        out = [f"elapsed {format_duration(elapsed)}"]
        step = trainer.global_step
        left = time_left(elapsed, step - self.start_step, self.total_steps, step)
        if left is not None:
            out.append(f"run left ~{format_duration(left)}")
        return out

    @staticmethod
    def _of(total: int | None) -> str:
        return f"/{total}" if total and total > 0 else ""

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")


FALLBACK_COLUMNS = 80


def _sized(measure):
    """tqdm's terminal measure, with 80 columns and 20 rows where the terminal reports no size (tqdm
    measures 0 - 1 = -1 there, and a bar whose position is not above the last row is not drawn)."""

    def sized(fp):
        columns, rows = measure(fp) if measure else (None, None)
        return (columns if columns and columns > 0 else FALLBACK_COLUMNS), (rows if rows and rows > 0 else 20)

    return sized


class RunProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with the run's time left in its postfix, drawn on 0x0 terminals too."""

    def _fix_width(self, bar):
        bar.dynamic_ncols = _sized(bar.dynamic_ncols or None)
        bar.ncols, bar.nrows = bar.dynamic_ncols(bar.fp)
        return bar

    def init_sanity_tqdm(self):
        return self._fix_width(super().init_sanity_tqdm())

    def init_train_tqdm(self):
        return self._fix_width(super().init_train_tqdm())

    def init_validation_tqdm(self):
        return self._fix_width(super().init_validation_tqdm())

    def init_predict_tqdm(self):
        return self._fix_width(super().init_predict_tqdm())

    def init_test_tqdm(self):
        return self._fix_width(super().init_test_tqdm())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self._total = _total_steps(trainer)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # the logger's version: always 0 here
        start = getattr(self, "_start", None)
        if start is not None:
            left = time_left(time.perf_counter() - start, trainer.global_step - self._start_step, self._total,
                             trainer.global_step)
            if left is not None:  # first, so that a narrow terminal does not cut it off
                items = {"run left": f"~{format_duration(left)}", **items}
        return items
