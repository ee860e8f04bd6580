"""The per-ASV readout (``model.asv_readout``) fitted in closed form before fine-tuning.

``finetune.readout_fit``: the readout's coefficients are those of an L2-regularised linear model
(logistic regression for classification, ridge regression on the standardized target for
regression) on the readout's own features of the training samples, its strength chosen by grouped
inner cross-validation on those samples; the readout is then frozen (or, ``trainable: true``,
trained on from there) and the transformer learns what the linear part leaves.

Why: on the multi-study benchmark a tuned linear model (CLR + L2) leads AAM where the signal is
linear (age in the Claesson cohort), and a readout learned by gradient steps in a short
fine-tuning moves each ASV's coefficient little, whatever its learning rate (docs/benchmark.md,
"Twelfth round"). A linear model's optimum and its strength are what scikit-learn solves well, so
the fit is scikit-learn's; what is written here is the design matrix (the model's own hashing and
readout features, so the fitted coefficients mean in the model what they meant in the fit) and
the copy into the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from aam.models.aam import SequencePredictor, predictor_inputs, readout_weights

log = logging.getLogger(__name__)


@dataclass
class ReadoutFit:
    """A readout fitted into a model: its hash buckets, the chosen strength, every candidate's
    inner scores, and (cross-fitting) the training outputs' corrections."""

    buckets: np.ndarray  # [F] the hash buckets of the training samples' ASVs
    strength: float
    search: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    # [rows of the data module's samples, n_outputs]: cross-fitted minus fitted outputs of each
    # training sample (0 elsewhere); None without cross-fitting
    offsets: np.ndarray | None = None

    def as_dict(self) -> dict:
        return {"strength": self.strength, "buckets": int(self.buckets.size), "search": self.search,
                "cross_fitted": self.offsets is not None, "seconds": round(self.seconds, 3)}


@torch.no_grad()
def design_matrix(model: SequencePredictor, loader) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """The readout's features of every sample of ``loader``: (X [samples, F] over the F distinct
    hash buckets that occur, the buckets, the samples' rows, their targets). X[s, f] is the sum of
    the readout weight x (:func:`aam.models.aam.readout_weights`) over the sample's ASVs hashed to
    bucket f, over the kept slots or every ASV as the model reads them, so X @ coefficients is
    exactly the readout term of the model's forward."""
    config = model.config
    rows, cols, values, sample_rows, targets = [], [], [], [], []
    start = 0
    for batch in loader:
        inputs = predictor_inputs(config, batch)
        keys = inputs[6] if len(inputs) > 6 else None  # asv_readout_key: feature
        if config.reads_every_asv():
            present_tokens, present_counts = inputs[4], inputs[5]
            buckets = model.readout_buckets(present_tokens, keys)[None, :]
            buckets = buckets.expand(present_counts.shape)  # [B, F]
            x = readout_weights(config.asv_readout, present_counts, present_counts > 0)
            mask = present_counts > 0
        else:
            tokens, asv_index, mask, counts = inputs[:4]
            buckets = model.readout_buckets(tokens, keys)[asv_index]  # [B, K]
            x = readout_weights(config.asv_readout, counts, mask)
        b, j = mask.nonzero(as_tuple=True)
        rows.append((b + start).numpy())
        cols.append(buckets[b, j].numpy())
        values.append(x[b, j].double().numpy())
        sample_rows.append(batch["sample_index"].numpy())
        targets.append(batch["target"].numpy())
        start += int(mask.shape[0])
    rows_, cols_ = np.concatenate(rows), np.concatenate(cols)
    used, columns = np.unique(cols_, return_inverse=True)
    x = sp.coo_matrix((np.concatenate(values), (rows_, columns)), shape=(start, used.size)).tocsr()
    x.sum_duplicates()  # two ASVs in one bucket add, as their shared coefficient does in the model
    return x, used, np.concatenate(sample_rows), np.concatenate(targets)


def _fit(task: str, strength: float, x, y, weights, seed: int):
    """Logistic regression of inverse strength C (classification) or ridge of strength alpha."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "classification":
        model = LogisticRegression(C=strength, max_iter=5000, random_state=seed)
    else:
        model = Ridge(alpha=strength)
    return model.fit(x, y, sample_weight=weights)


@dataclass
class LinearFit:
    """:func:`fit_readout`'s result: the linear model in the readout's terms, and its outputs on
    the training samples, fitted on all of them and cross-fitted (each from the inner fold that
    held it out; None without inner folds)."""

    coefficients: np.ndarray  # [F, n_outputs]
    intercept: np.ndarray  # [n_outputs]
    strength: float
    search: list[dict]
    fitted: np.ndarray  # [n, n_outputs]
    cross_fitted: np.ndarray | None  # [n, n_outputs]


def _outputs(model, x, task: str, n_outputs: int) -> np.ndarray:
    """A fitted linear model's outputs in the readout's terms ([n, n_outputs]): the standardized
    prediction (regression) or log-probabilities per class code (classification, -log 1e6 for a
    class the model never saw): the softmax of these is the model's probability."""
    if task == "regression":
        return model.predict(x)[:, None]
    proba = np.full((x.shape[0], n_outputs), 1e-6)
    proba[:, np.asarray(model.classes_, dtype=np.int64)] = np.clip(model.predict_proba(x), 1e-6, None)
    return np.log(proba)


def _readout_terms(model, task: str, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted linear model as the readout's [n_outputs, F] coefficients and [n_outputs]
    intercept. A binary logistic model's logit w.x + b becomes -(w.x + b) / 2 and +(w.x + b) / 2
    for its two classes, whose softmax is its probability; a class the model never saw gets no
    coefficients and the intercept log 1e-6, as in :func:`_outputs`."""
    coef = np.atleast_2d(model.coef_).astype(np.float64)  # [1 or C, F]
    intercept = np.atleast_1d(model.intercept_).astype(np.float64)
    if task == "regression":
        return coef, intercept
    seen = np.asarray(model.classes_, dtype=np.int64)
    if seen.size == 2:
        coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
    full_coef = np.zeros((n_outputs, coef.shape[1]))
    full_intercept = np.full(n_outputs, np.log(1e-6))
    full_coef[seen], full_intercept[seen] = coef, intercept
    return full_coef, full_intercept


def fit_readout(x: sp.csr_matrix, y: np.ndarray, groups: Sequence[object], task: str, n_outputs: int,
                strengths: Sequence[float], folds: int, seed: int,
                class_weights: np.ndarray | None = None) -> LinearFit:
    """The linear model on ``x`` (:class:`LinearFit`): ``strengths`` are logistic regression's C
    (classification, ``y`` class codes 0..n_outputs-1, weighted by ``class_weights``) or ridge's
    alpha (regression, ``y`` the standardized target), chosen by the best mean inner score (the
    task's primary metric, aam.evaluate.baselines) over grouped inner folds stratified by class;
    in the readout's terms (:func:`_readout_terms`)."""
    from aam.evaluate.baselines import estimator_predictions, inner_folds, inner_score, search_grid

    classify = task == "classification"
    codes = [str(c) for c in range(n_outputs)] if classify else None  # class codes as labels
    weights = None
    if classify and class_weights is not None:
        weights = np.asarray(class_weights, dtype=np.float64)[y]
    candidates = [{"strength": float(s)} for s in strengths]
    splits = inner_folds(groups, y if classify else None, folds, seed)

    def fold_fit(strength: float, fit_rows: np.ndarray):
        if classify and np.unique(y[fit_rows]).size < 2:
            return None
        return _fit(task, strength, x[fit_rows], y[fit_rows], None if weights is None else weights[fit_rows],
                    seed)

    def score(params: dict, fit_rows: np.ndarray, val_rows: np.ndarray) -> float | None:
        model = fold_fit(params["strength"], fit_rows)
        if model is None:
            return None
        pred, proba = estimator_predictions(model, x[val_rows], task, codes)
        truth = y[val_rows].astype(str) if classify else y[val_rows]
        return inner_score(task, truth, pred, proba, codes)

    chosen, search = search_grid(candidates, splits if len(candidates) > 1 else [], score)
    model = _fit(task, chosen["strength"], x, y, weights, seed)
    coef, intercept = _readout_terms(model, task, n_outputs)
    cross_fitted = None
    if splits:
        cross_fitted = np.zeros((x.shape[0], n_outputs))
        for fit_rows, val_rows in splits:
            fold_model = fold_fit(chosen["strength"], fit_rows)
            if fold_model is None:  # a fold without two classes: its samples keep the full fit
                cross_fitted[val_rows] = _outputs(model, x[val_rows], task, n_outputs)
            else:
                cross_fitted[val_rows] = _outputs(fold_model, x[val_rows], task, n_outputs)
    return LinearFit(coef.T, intercept, chosen["strength"], search, _outputs(model, x, task, n_outputs),
                     cross_fitted)


def fit_model_readout(model: SequencePredictor, loader, sample_ids: Sequence[str],
                      group_of: Mapping[str, object], task: str, spec: Mapping, seed: int,
                      class_weights: np.ndarray | None = None) -> ReadoutFit:
    """Fit ``model``'s readout on the samples of ``loader`` (the training split with the fixed
    evaluation rarefaction) and write it into the model: the coefficients into ``asv_readout``'s
    rows of the buckets that occur (every other row stays 0: an ASV unseen in training adds
    nothing), the intercept into the target head's bias. ``sample_ids`` name the data module's
    rows, ``group_of`` maps a sample to its group (absent: its own); ``spec`` is
    ``finetune.readout_fit``.

    With ``cross_fit`` (the default) the result carries, per training sample, its cross-fitted
    minus its fitted output: training adds it, so the rest of the model learns from what a linear
    model fitted without that sample leaves. Why: fitted on the very samples it then trains on, the
    readout already explains them (training loss 0.09 from the first epoch against 0.75 without it,
    on a Turnbaugh fold), the transformer learns nothing, and the model is the linear model
    (docs/benchmark.md, "Thirteenth round")."""
    start = time.perf_counter()
    x, buckets, sample_rows, targets = design_matrix(model, loader)
    y = targets.astype(np.int64) if task == "classification" else targets.astype(np.float64)
    strengths = spec["C"] if task == "classification" else spec["alpha"]
    groups = [group_of.get(sample_ids[int(r)]) for r in sample_rows]
    n_outputs = model.config.n_outputs
    fit = fit_readout(x, y, groups, task, n_outputs, strengths, int(spec["folds"]), seed, class_weights)
    with torch.no_grad():
        weight = model.asv_readout.weight
        weight.zero_()
        weight[torch.from_numpy(buckets)] = torch.from_numpy(fit.coefficients).to(weight.dtype)
        bias = model.target_head.out.bias
        bias.add_(torch.from_numpy(fit.intercept).to(bias.dtype))
    model.asv_readout.requires_grad_(bool(spec.get("trainable", False)))
    offsets = None
    if spec.get("cross_fit", True) and fit.cross_fitted is not None:
        offsets = np.zeros((len(sample_ids), n_outputs), dtype=np.float32)
        offsets[sample_rows] = fit.cross_fitted - fit.fitted
    result = ReadoutFit(buckets, fit.strength, fit.search, time.perf_counter() - start, offsets)
    log.info("readout fitted in closed form on %d samples x %d buckets: strength %g (inner %s)%s in %.1f s",
             x.shape[0], buckets.size, fit.strength,
             [None if s["inner_mean"] is None else round(s["inner_mean"], 4) for s in fit.search],
             ", cross-fitted" if offsets is not None else "", result.seconds)
    return result
