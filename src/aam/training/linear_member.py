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
the model and its strength; what is written here is the design matrix from the batches (so that
the module sees at prediction what the fit saw) and the copy of the coefficients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aam.models.linear_clr import LinearCLR

log = logging.getLogger(__name__)

# the keys of finetune.linear_member that are the linear_clr baseline's settings
BASELINE_KEYS = ("pseudocount", "min_prevalence", "C", "alpha")


@dataclass
class LinearMember:
    """A fitted linear member: the module, its weight in the ensemble and the fit's record."""

    module: LinearCLR
    weight: float
    params: dict
    search: list[dict] = field(default_factory=list)
    n_train: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """model.json's record (no time: a rerun writes a byte-identical model.json)."""
        return {"model": "linear_clr", "weight": self.weight, "params": self.params, "search": self.search,
                "n_train": self.n_train, "n_features": int(self.module.keys.numel())}


# what a member reads of an evaluation batch: (feature keys, counts over them)
EXPECTED_COUNTS = ("table_keys", "expected_counts")  # each sample's counts scaled to the depth
DRAW_COUNTS = ("present_keys", "unifrac_counts")  # the model's evaluation rarefaction draw


def training_counts(dm, splits: Sequence[str] = ("train", "val"), fields: tuple[str, str] = EXPECTED_COUNTS,
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sample IDs, counts [samples, features], feature keys [features], targets) of the samples of
    ``splits`` as the model's evaluation batches give them: by default every feature of a sample
    with its count scaled to the depth (``expected_counts`` with ``table_keys``; ``fields``
    :data:`DRAW_COUNTS`: the features of its evaluation draw with their drawn counts). Features are
    every one of these samples, in ascending key order."""
    from aam.evaluate.predict import eval_loader

    key_field, count_field = fields
    samples, key_parts, count_parts, targets = [], [], [], []
    for split in splits:
        for batch in eval_loader(dm, split):
            samples += [dm.sample_ids[int(r)] for r in batch["sample_index"]]
            key_parts.append(batch[key_field].numpy())
            count_parts.append(batch[count_field].numpy())
            targets.append(batch["target"].numpy())
    keys = np.unique(np.concatenate(key_parts)) if key_parts else np.zeros(0, dtype=np.int64)
    counts = np.zeros((len(samples), keys.size), dtype=np.float64)
    start = 0
    for part_keys, part in zip(key_parts, count_parts, strict=True):
        counts[start:start + part.shape[0], np.searchsorted(keys, part_keys)] = part
        start += part.shape[0]
    return samples, counts, keys, np.concatenate(targets) if targets else np.zeros(0)


@dataclass
class TrainingSet:
    """What a member of the model is fitted on: the train + val samples (train first, each split in
    the order ``splits.tsv`` lists it, as the baselines read a fold), their counts scaled to the
    depth over ``keys``, targets (class names; regression: standardized, the model's own units),
    groups and the classes seen (None for regression)."""

    samples: list[str]
    counts: np.ndarray
    keys: np.ndarray
    y: np.ndarray
    groups: list
    classes: list[str] | None


def training_set(dm, splits_path: str | Path, task: str, fields: tuple[str, str] = EXPECTED_COUNTS,
                 ) -> TrainingSet:
    """The :class:`TrainingSet` of ``dm``'s train + val samples, their counts read from the batches'
    ``fields`` (:func:`training_counts`); the groups are those of ``splits_path``."""
    from aam.io.splits import read_groups, read_splits

    samples, counts, keys, targets = training_counts(dm, fields=fields)
    split_of, group_of = read_splits(splits_path), read_groups(splits_path)
    position = {s: i for i, s in enumerate(split_of)}
    order = sorted(range(len(samples)), key=lambda i: (split_of[samples[i]] != "train", position[samples[i]]))
    samples, counts, targets = [samples[i] for i in order], counts[order], targets[order]
    if task == "classification":
        y = np.asarray(dm.classes, dtype=object)[targets.astype(np.int64)]
        classes = sorted(set(y))
    else:
        y, classes = targets.astype(np.float64), None
    return TrainingSet(samples, counts, keys, y, [group_of.get(s) for s in samples], classes)


def fit_linear_member(dm, splits_path: str | Path, task: str, spec: Mapping, seed: int,
                      weight: float) -> LinearMember:
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
    member = LinearMember(module, float(weight), fit.params, fit.search, fit.n_train,
                          time.perf_counter() - start)
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
