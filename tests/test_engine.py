"""The training engine: fit, checkpoints, resume, NaN guard, schedules, export/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.engine import Tiny, TinyConfig, TinyModule, loaders, settings

from aam.errors import InputError
from aam.io.model_files import export_model, load_model
from aam.training.engine import (
    NonFiniteLossError,
    TrainerSettings,
    fit,
)


def test_fit_writes_checkpoints_logs_and_history(tmp_path):
    torch.manual_seed(0)
    module = TinyModule(settings())
    train, val = loaders()
    result = fit(module, tmp_path, train_dataloaders=train, val_dataloaders=val)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "logs" / "csv" / "version_0" / "metrics.csv").exists()
    assert any((tmp_path / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    h = result.history
    assert list(h["epoch"]) == [0, 1, 2, 3]
    assert {"train/loss", "val/loss", "lr", "step"} <= set(h.columns)
    assert h["val/loss"].iloc[-1] < h["val/loss"].iloc[0]
    assert result.global_step == 32 and result.n_parameters == 4 * 8 + 8 + 8 + 1
    assert result.best_score == pytest.approx(h["val/loss"].min())


class KillAt(__import__("lightning").pytorch.callbacks.Callback):
    """Simulates a crash in the middle of an epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("killed")


def test_resume_after_kill_ends_with_identical_metrics(tmp_path):
    train, val = loaders()
    torch.manual_seed(0)
    full = TinyModule(settings())
    r_full = fit(full, tmp_path / "full", train_dataloaders=train, val_dataloaders=val)

    torch.manual_seed(0)
    killed = TinyModule(settings())
    with pytest.raises(RuntimeError, match="killed"):
        fit(killed, tmp_path / "resumed", train_dataloaders=train, val_dataloaders=val,
            callbacks=[KillAt(epoch=2, batch=3)])
    torch.manual_seed(123)  # a fresh process: different initial weights and RNG state
    restarted = TinyModule(settings())
    r_res = fit(restarted, tmp_path / "resumed", train_dataloaders=train, val_dataloaders=val)
    assert r_res.resumed
    cols = ["epoch", "step", "train/loss", "val/loss", "lr"]
    np.testing.assert_array_equal(r_full.history[cols].to_numpy(), r_res.history[cols].to_numpy())
    for a, b in zip(full.state_dict().values(), restarted.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class ValidationCount(__import__("lightning").pytorch.callbacks.Callback):
    """Validation batches run before the first training batch (Lightning's sanity check)."""

    def __init__(self):
        self.before_training, self.training = 0, False

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.before_training += not self.training

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.training = True


def test_a_fresh_run_checks_one_validation_batch_first_and_a_resumed_run_does_not(tmp_path):
    train, val = loaders()
    fresh = ValidationCount()
    with pytest.raises(RuntimeError, match="killed"):
        fit(TinyModule(settings()), tmp_path, train_dataloaders=train, val_dataloaders=val,
            callbacks=[fresh, KillAt(epoch=1, batch=2)])
    resumed = ValidationCount()
    assert fit(TinyModule(settings()), tmp_path, train_dataloaders=train, val_dataloaders=val,
               callbacks=[resumed]).resumed
    assert (fresh.before_training, resumed.before_training) == (1, 0)


def test_engine_uses_only_public_lightning_api():
    """Lightning's loops, their progress counters, the checkpoint's loop state and the Trainer's
    connectors are internals that change between releases (pyproject allows Lightning 2.x): the
    package and the scripts read what they need from hook arguments, public Trainer properties and
    their own checkpoint keys."""
    from pathlib import Path

    import aam

    internals = ("fit_loop", "epoch_loop", "batch_progress", "epoch_progress", '["loops"]',
                 "_should_accumulate", "._trainer", "_checkpoint_connector", "_logger_connector",
                 "_data_connector", "_accelerator_connector", "._results", "_active_loop",
                 "lightning.pytorch.loops", "lightning.pytorch.trainer.connectors")
    scripts = Path(__file__).parents[1] / "scripts"
    sources = [*Path(aam.__file__).parent.rglob("*.py"), *scripts.glob("*.py")]
    assert len(sources) > 50
    for source in sources:
        text = source.read_text()
        found = [name for name in internals if name in text]
        assert not found, f"{source} uses Lightning internals {found}"


def test_changed_settings_do_not_resume(tmp_path):
    train, val = loaders()
    fit(TinyModule(settings(max_epochs=1)), tmp_path, train_dataloaders=train, val_dataloaders=val,
        fingerprint={"lr": 1})
    r = fit(TinyModule(settings(max_epochs=1)), tmp_path, train_dataloaders=train,
            val_dataloaders=val, fingerprint={"lr": 2})
    assert not r.resumed and r.global_step == 8


def test_a_finished_run_trains_afresh_when_run_again(tmp_path):
    train, val = loaders()
    first = fit(TinyModule(settings(max_epochs=1)), tmp_path, train_dataloaders=train, val_dataloaders=val)
    again = fit(TinyModule(settings(max_epochs=1)), tmp_path, train_dataloaders=train, val_dataloaders=val)
    assert not again.resumed and again.global_step == first.global_step == 8


def test_nan_loss_raises_naming_the_step(tmp_path):
    train, val = loaders()
    module = TinyModule(settings(), nan_at_step=5)
    with pytest.raises(NonFiniteLossError, match="epoch 0, batch 5, optimizer step 5"):
        fit(module, tmp_path, train_dataloaders=train, val_dataloaders=val)


@pytest.mark.parametrize("schedule", ["warmup_cosine", "step", "plateau", "none"])
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_schedules_count_optimizer_steps(tmp_path, schedule, optimizer):
    train, val = loaders()
    module = TinyModule(settings(max_epochs=2, accumulate_grad_batches=2, schedule=schedule,
                                 optimizer=optimizer, step_size=2, warmup_steps=3))
    result = fit(module, tmp_path, train_dataloaders=train, val_dataloaders=val)
    assert result.global_step == 8  # 2 epochs x 8 batches / accumulation 2
    if schedule in ("warmup_cosine", "step"):
        sched = module.trainer.lr_scheduler_configs[0].scheduler
        assert sched.last_epoch == 8
    if schedule == "warmup_cosine":
        assert result.history["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0
    if schedule == "step":
        assert result.history["lr"].iloc[-1] == pytest.approx(1e-2 * 0.5**4)


def test_settings_reject_unknown_and_bad_values():
    with pytest.raises(InputError, match="unknown"):
        TrainerSettings.from_dict({"epochs": 3})
    with pytest.raises(InputError, match="optimizer"):
        TrainerSettings.from_dict({"optimizer": "lamb"})
    assert TrainerSettings.from_dict({"betas": [0.9, 0.98]}).betas == (0.9, 0.98)


def test_export_load_roundtrip_without_pickles(tmp_path):
    model = Tiny(TinyConfig(d_hidden=5))
    export_model(model, tmp_path, extra={"task": "regression", "target_mean": np.float32(1.5)})
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["config"] == {"d_in": 4, "d_hidden": 5, "dropout": 0.2} and meta["target_mean"] == 1.5
    with pytest.raises(InputError, match="not part of aam"):
        load_model(tmp_path)
    loaded, meta2 = load_model(tmp_path, cls=Tiny)
    x = torch.randn(3, 4)
    model.eval()
    assert torch.equal(model(x), loaded(x)) and meta2 == meta


def test_parallel_settings_reach_lightning():
    from aam.training.engine import _parallelism

    assert _parallelism(settings(), on_gpu=False) == (1, "auto")
    assert _parallelism(settings(devices=2, accelerator="cpu"), on_gpu=False) == (2, "ddp")
    assert _parallelism(settings(num_nodes=2, devices=1), on_gpu=False) == (1, "ddp")
    assert _parallelism(settings(devices=4, strategy="ddp_find_unused_parameters_true"), on_gpu=True) == (
        4, "ddp_find_unused_parameters_true")
    for bad in ({"strategy": "ddp_spawn"}, {"devices": 0}, {"num_nodes": 0}, {"devices": "all"}):
        with pytest.raises(InputError):
            TrainerSettings.from_dict(bad)
