"""The linear member of a fine-tuned AAM model (``finetune.linear_member``): the CLR + L2 baseline,
fitted on the fine-tuning's own training samples and served inside the model.

Why: on the multi-study benchmark a tuned linear model on CLR abundances leads the neural model
where the signal is linear (Kostic, age in the Claesson cohort, PGP), while the neural model leads
elsewhere (IBD 2538, Sokol); their equal-weight mean met every margin of issue 24 on four repeats
of the benchmark where neither alone did (docs/benchmark.md). Fitting the linear part into the
readout by gradient steps or in closed form did not get there (twelfth to fifteenth rounds).
So the model keeps both: the neural members train exactly as without it, and this module fits
:func:`aam.evaluate.baselines.nested_fit` of ``linear_clr`` (the same grid, inner folds and seed as
the baseline's settings give) on the train + val samples' expected counts at the model's depth,
and copies it into :class:`aam.models.linear_clr.LinearCLR`. The expected counts (each sample's
counts scaled to the depth, the mean of its rarefaction draws) keep one draw's noise out of the fit
and the prediction: on four repeats of the benchmark the model ranked higher so than with the
member on the model's evaluation draw (docs/benchmark.md, "Nineteenth round"). scikit-learn solves
the model and its strength; the design matrix comes from the model's own batches
(:mod:`aam.training.tabular_member`, so that the module sees at prediction what the fit saw), and
what is written here is the copy of the coefficients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from aam.models.linear_clr import LinearCLR
from aam.training.tabular_member import FittedMember, training_set

log = logging.getLogger(__name__)

# the keys of finetune.linear_member that are the linear_clr baseline's settings
BASELINE_KEYS = ("pseudocount", "min_prevalence", "C", "alpha")


def fit_linear_member(dm, splits_path: str | Path, task: str, spec: Mapping, seed: int,
                      weight: float) -> FittedMember:
    """Fit the linear member on the train + val samples of ``dm`` (:func:`training_set`) and return
    it with its share ``weight`` of the prediction. ``spec`` is ``finetune.linear_member``."""
    from aam.evaluate.baselines import BaselineSettings, nested_fit

    start = time.perf_counter()
    data = training_set(dm, splits_path, task)
    settings = BaselineSettings.from_dict(
        {"models": ["linear_clr"], "inner_folds": int(spec["inner_folds"]),
         "linear_clr": {k: spec[k] for k in BASELINE_KEYS}}, seed=seed)
    fit = nested_fit("linear_clr", data.counts, data.y, data.groups, task, settings, data.classes)
    module = linear_module(fit.model, data.keys, task, list(dm.classes) if task == "classification" else None)
    member = FittedMember("linear_clr", module, float(weight), fit.params, fit.search, fit.n_train,
                          time.perf_counter() - start, {"n_features": int(module.keys.numel())})
    log.info("linear member (CLR + L2) fitted on %d samples x %d features: %s (inner %s), weight %g, %.1f s",
             fit.n_train, module.keys.numel(), fit.params,
             [None if s["inner_mean"] is None else round(s["inner_mean"], 4) for s in fit.search],
             member.weight, member.seconds)
    return member


def linear_module(fitted, keys: np.ndarray, task: str, classes: list[str] | None) -> LinearCLR:
    """A fitted ``linear_clr`` baseline (aam.evaluate.baselines.FittedBaseline over the features
    ``keys``) as a :class:`LinearCLR` with outputs in ``classes`` order. A binary logistic model's
    logit w.x + b becomes -(w.x + b) / 2 and +(w.x + b) / 2 for its two classes, whose softmax is
    its probability; a class it never saw gets the intercept -1e4 (probability 0, as the baseline
    gives it)."""
    estimator = fitted.estimator
    kept_keys = keys[fitted.keep]
    order = np.argsort(kept_keys)
    coef = np.atleast_2d(estimator.coef_).astype(np.float64)[:, order]  # [1 or C', F]
    intercept = np.atleast_1d(estimator.intercept_).astype(np.float64)
    n_outputs = 1 if task == "regression" else len(classes)
    full_coef, full_intercept = coef, intercept
    if task == "classification":
        seen = [classes.index(str(c)) for c in estimator.classes_]
        if len(seen) == 2:
            coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
        full_coef = np.zeros((n_outputs, coef.shape[1]))
        full_intercept = np.full(n_outputs, -1e4)
        full_coef[seen], full_intercept[seen] = coef, intercept
    module = LinearCLR(kept_keys.size, n_outputs, task, float(fitted.options["pseudocount"]))
    with torch.no_grad():
        module.keys.copy_(torch.from_numpy(kept_keys[order].astype(np.int64)))
        module.coef.copy_(torch.from_numpy(np.ascontiguousarray(full_coef.T)))
        module.intercept.copy_(torch.from_numpy(full_intercept))
    return module
