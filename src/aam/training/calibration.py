"""Validation calibration of a fine-tuned regressor (``finetune.calibrate: true``).

Why (docs/benchmark.md, "Regression: diagnosis"): on the benchmark's small regression studies the
fine-tuned model's test predictions correlate with the target (Pearson r ~0.4 on Claesson's age)
yet score R^2 below that of predicting the training mean. Two parts of their error are not signal:
(1) their mean over the training samples drifts from the training targets' mean (up to 0.6 target
sd: the last steps of a batch-of-8 run move the head's bias), which a least-squares fit of the bias
would remove; (2) they vary more than their correlation with the target supports, so a few test
samples get confident, far-off values. Least squares on held-out samples corrects both: in
standardized units (targets scaled with the training mean and sd), with outputs z,

- centre ``c`` = mean of z over the training samples (the bias error; no target read but the
  training split's, which the standardization already used);
- scale ``k`` = the least-squares slope, through the origin, of the validation targets on
  ``z - c``, clipped to [0, 1]: 0 predicts the training mean (outputs that anti-correlate with the
  target on validation, or do not vary), 1 keeps the trained spread; never above 1 (a slope fitted
  on a few validation samples that says "spread further" is noise more often than signal).

The calibrated output is ``k (z - c)``. It is folded into the head's last linear layer
(``W' = k W``, ``b' = k (b - c)``, and the linear readouts that add to it scaled by k; for a seed
ensemble into every member's, since the mean of calibrated members is the calibrated mean), so the
saved weights predict calibrated values and `aam predict` / `aam evaluate` need nothing new.
Validation metrics reported afterwards were measured on the samples that chose ``k``: optimistic,
like the best epoch's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from aam.errors import InputError


@dataclass(frozen=True)
class Calibration:
    """``k (z - c)``: centre c and scale k in standardized units; the samples each was fitted on."""

    centre: float
    scale: float
    n_train: int
    n_val: int

    def as_dict(self) -> dict:
        return asdict(self)


def fit_calibration(train_out: np.ndarray, val_out: np.ndarray, val_target: np.ndarray) -> Calibration:
    """The centre and clipped scale (module docstring) from standardized outputs and targets."""
    train_out, val_out = np.asarray(train_out, np.float64), np.asarray(val_out, np.float64)
    val_target = np.asarray(val_target, np.float64)
    if train_out.size == 0 or val_out.size == 0:
        raise InputError("finetune.calibrate needs training and validation samples with a target")
    centre = float(train_out.mean())
    dev = val_out - centre
    spread = float(np.dot(dev, dev))
    scale = 0.0 if spread == 0.0 else float(np.clip(np.dot(dev, val_target) / spread, 0.0, 1.0))
    return Calibration(centre, scale, int(train_out.size), int(val_out.size))


@torch.no_grad()
def apply_calibration(model: torch.nn.Module, calibration: Calibration) -> None:
    """Fold ``k (z - c)`` into the last linear layer of the target head of a SequencePredictor, or
    of every member of an EnsemblePredictor."""
    members = getattr(model, "members", None) or [model]
    k, c = calibration.scale, calibration.centre
    for member in members:
        out = member.target_head.out
        if out.out_features != 1:
            raise ValueError("calibration applies to a regression head (one output)")
        out.weight.mul_(k)
        out.bias.sub_(c).mul_(k)
        # the linear readouts add to the head's output: scaled too, so the member's output is k (z - c)
        for readout in (getattr(member, "clr_readout", None), getattr(member, "asv_readout", None)):
            if readout is not None:
                readout.weight.mul_(k)


def calibrate_regression(model: torch.nn.Module, dm, device: torch.device) -> Calibration:
    """Fit the calibration on the model's outputs for the training and validation samples (the
    DataModule's fixed evaluation rarefaction) and fold it into ``model``."""
    from aam.evaluate.predict import eval_loader, predict

    train = predict(model, eval_loader(dm, "train"), device)
    val = predict(model, eval_loader(dm, "val"), device)
    if not train or not val:
        raise InputError("finetune.calibrate needs training and validation samples with a target")
    calibration = fit_calibration(train["output"], val["output"], val["target"])
    apply_calibration(model, calibration)
    return calibration


def calibrate_refit(model: torch.nn.Module, dm, first: Calibration, device: torch.device) -> Calibration:
    """The calibration of a refit on the train and val samples (``finetune.refit_on_val``): the first
    fit's scale (no held-out sample is left to fit another), the centre re-fitted as the refit's
    mean output over the samples it trained on, train and val; folded into ``model``."""
    from aam.evaluate.predict import eval_loader, predict

    outputs = [predict(model, eval_loader(dm, split), device) for split in ("train", "val")]
    trained_on = np.concatenate([p["output"].reshape(-1) for p in outputs if p])
    if trained_on.size == 0:
        raise InputError("finetune.refit_on_val needs training samples with a target")
    calibration = Calibration(float(trained_on.astype(np.float64).mean()), first.scale, int(trained_on.size),
                              first.n_val)
    apply_calibration(model, calibration)
    return calibration
