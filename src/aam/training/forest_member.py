"""The forest member of a fine-tuned AAM model (``finetune.forest_member``): the random forest
baseline, fitted on the fine-tuning's own training samples and served inside the model.

Why: on the multi-study benchmark the forest leads both the neural model and CLR + L2 on one
classification task (Turnbaugh's obesity, grouped by family), where the model with its linear
member trailed it by more than issue 24's margin on the shipped folds; the equal-weight mean of
the neural members, the linear member and the forest trails no baseline beyond the margins on the
benchmark's classification tasks (docs/benchmark.md, "Twenty-third round"). As with the linear
member (:mod:`aam.training.linear_member`), the neural members train exactly as without it: this
module fits :func:`aam.evaluate.baselines.nested_fit` of ``random_forest`` (its grid, inner folds
and seed from ``finetune.forest_member``) on the train + val samples and copies its trees into
:class:`aam.models.forest.ForestModule`. scikit-learn grows the trees; what is written here is the
copy of their arrays.

It reads the model's evaluation rarefaction draw, as the baseline reads a rarefied table, and not
the counts scaled to the depth that the linear member reads. Scaled counts keep every feature a
sample holds, and a deep sample holds more rare ones: a forest splits on their mere presence and
so reads sequencing depth. On the benchmark's first folds a forest on scaled counts told samples
deeper than the median from shallower ones at AUROC 0.78-0.96 (Turnbaugh 0.96, where the label
has no link to depth), on one rarefied draw at 0.45-0.73, and CLR + L2 at 0.51-0.72 either way
(docs/benchmark.md, "Twenty-third round"). On IBD 2538, where depth alone tells the classes apart
(AUROC 0.96), a forest on scaled counts scored 0.94 against the baseline's 0.70.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from aam.models.forest import ForestModule
from aam.training.tabular_member import DRAW_COUNTS, FittedMember, training_set

log = logging.getLogger(__name__)

# the keys of finetune.forest_member that are the random_forest baseline's settings
BASELINE_KEYS = ("n_estimators", "search_estimators", "max_features", "min_samples_leaf")


def fit_forest_member(dm, splits_path: str | Path, task: str, spec: Mapping, seed: int,
                      weight: float, n_jobs: int = 1) -> FittedMember:
    """Fit the forest member on the train + val samples of ``dm`` (as the linear member:
    :func:`aam.training.tabular_member.training_set`) and return it with its share ``weight`` of the
    prediction. ``spec`` is ``finetune.forest_member``."""
    from aam.evaluate.baselines import BaselineSettings, nested_fit

    start = time.perf_counter()
    data = training_set(dm, splits_path, task, DRAW_COUNTS)
    settings = BaselineSettings.from_dict(
        {"models": ["random_forest"], "inner_folds": int(spec["inner_folds"]), "n_jobs": n_jobs,
         "random_forest": {k: spec[k] for k in BASELINE_KEYS}}, seed=seed)
    fit = nested_fit("random_forest", data.counts, data.y, data.groups, task, settings, data.classes)
    module = forest_module(fit.model.estimator, data.keys, task,
                           list(dm.classes) if task == "classification" else None)
    sizes = {"n_trees": int(module.roots.numel()), "n_nodes": int(module.feature.numel()),
             "n_features": int(module.keys.numel())}
    member = FittedMember("random_forest", module, float(weight), fit.params, fit.search, fit.n_train,
                          time.perf_counter() - start, sizes)
    log.info("forest member fitted on %d samples: %s (inner %s), %d trees, %d nodes on %d features, "
             "weight %g, %.1f s", fit.n_train, fit.params,
             [None if s["inner_mean"] is None else round(s["inner_mean"], 4) for s in fit.search],
             module.roots.numel(), module.feature.numel(), module.keys.numel(), member.weight, member.seconds)
    return member


def forest_module(forest, keys: np.ndarray, task: str, classes: list[str] | None) -> ForestModule:
    """A fitted scikit-learn forest over the features ``keys`` (its columns, in order) as a
    :class:`ForestModule` with outputs in ``classes`` order (a class the forest never saw gets
    probability 0, as the baseline gives it). Only the features some tree splits on are kept."""
    trees = [estimator.tree_ for estimator in forest.estimators_]
    sizes = np.array([t.node_count for t in trees])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    feature = np.concatenate([t.feature for t in trees]).astype(np.int64)
    used = np.unique(feature[feature >= 0])
    if used.size == 0:  # every tree a single leaf (a constant target): any feature will do
        used = np.zeros(1, dtype=np.int64)
    order = np.argsort(keys[used])
    used = used[order]
    column = np.full(int(keys.size), -1, dtype=np.int64)
    column[used] = np.arange(used.size)
    left = np.concatenate([np.where(t.children_left >= 0, t.children_left + s, -1)
                           for t, s in zip(trees, starts, strict=True)])
    right = np.concatenate([np.where(t.children_right >= 0, t.children_right + s, -1)
                            for t, s in zip(trees, starts, strict=True)])
    if task == "regression":
        value = np.concatenate([t.value[:, 0, :1] for t in trees])
    else:
        raw = np.concatenate([t.value[:, 0, :] for t in trees])
        raw = raw / raw.sum(axis=1, keepdims=True)  # class shares per node, as predict_proba normalises
        value = np.zeros((raw.shape[0], len(classes)))
        value[:, [classes.index(str(c)) for c in forest.classes_]] = raw
    module = ForestModule(used.size, int(sizes.sum()), len(trees), value.shape[1], task)
    with torch.no_grad():
        module.keys.copy_(torch.from_numpy(keys[used].astype(np.int64)))
        module.roots.copy_(torch.from_numpy(starts.astype(np.int32)))
        module.feature.copy_(torch.from_numpy(np.where(feature >= 0, column[np.maximum(feature, 0)], -1)
                                              .astype(np.int32)))
        module.threshold.copy_(torch.from_numpy(np.concatenate([t.threshold for t in trees])))
        module.left.copy_(torch.from_numpy(left.astype(np.int32)))
        module.right.copy_(torch.from_numpy(right.astype(np.int32)))
        module.value.copy_(torch.from_numpy(value.astype(np.float32)))
    return module
