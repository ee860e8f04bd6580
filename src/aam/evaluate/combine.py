"""AAM combined with baselines: the equal-weight mean of their test predictions, one more model row.

Issue 24 asks for "a stacked AAM + forest model, reported as its own row". What the evaluation has
without further training is each model's predictions on the same test fold, so the combined model
of AAM and m baselines (a combination is named by its baselines joined with ``+``, e.g.
``random_forest`` or ``random_forest+linear_clr``) is

    classification: p_c = (p_aam,c + sum_b p_b,c) / (1 + m) for each class c; the predicted class
                    is the one of highest mean probability (the first in class order on a tie)
    regression:     y = (y_aam + sum_b y_b) / (1 + m)

Its weights are fixed (equal), never learned, so nothing is fitted on the test fold and the row
is honest; it is named ``<run>+<baseline>[+<baseline>] (mean)`` in the cross-validated summary and
the leaderboard, for what it is. A stacking whose weights are learned would need out-of-fold predictions
of both models on training samples (the baselines predict the test fold only; AAM's validation
predictions chose its best epoch), i.e. more training per fold.

Both members are read by ``aam evaluate`` from one fold's files, after it has checked that the
baselines predicted exactly the model's test samples and trained and validated on its samples, so a
combination never mixes folds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aam.errors import InputError

METHOD = "mean"
MODEL = "aam"  # the fine-tuned model's key among an evaluation's models

Outputs = tuple[np.ndarray, np.ndarray | None]  # predictions and, for classification, probabilities


def combined_key(combination: str) -> str:
    """The combined model's key in an evaluation's metrics.json (``test``) and predictions.tsv."""
    return f"{MODEL}+{combination}"


def combination_members(combination: str) -> list[str]:
    """The baselines of a combination, ``random_forest+linear_clr`` -> [random_forest, linear_clr]."""
    return combination.split("+")


def row_name(run: str, members: Sequence[str], method: str = METHOD) -> str:
    """The combined model's row in the cross-validated summary and the leaderboard: the run in place
    of ``aam``, e.g. ``scratch+random_forest (mean)``."""
    return "+".join([run, *members[1:]]) + f" ({method})"


def mean_outputs(task: str, members: Sequence[Outputs], classes: list[str] | None) -> Outputs:
    """The equal-weight mean of the members' outputs (module docstring); all on the same samples in
    the same order, probabilities in `classes` order."""
    if task == "regression":
        return np.mean([np.asarray(p, dtype=np.float64) for p, _ in members], axis=0), None
    proba = np.mean([np.asarray(q, dtype=np.float64) for _, q in members], axis=0)
    return np.asarray(classes, dtype=object)[proba.argmax(axis=1)], proba


def combine(models: Mapping[str, Outputs], combinations: Sequence[str], task: str,
            classes: list[str] | None, where: str) -> dict[str, Outputs]:
    """The mean of AAM and the baselines of each of `combinations` (keys ``aam+<combination>``); a
    baseline absent from `models` is one InputError line naming `where` (the baselines' folder)."""
    out = {}
    for combination in combinations:
        members = combination_members(combination)
        for baseline in members:
            if baseline == MODEL or baseline not in models:
                fitted = sorted(set(models) - {MODEL})
                raise InputError(f"{where}: cannot combine AAM with {baseline!r}: the baselines there are "
                                 f"{fitted}; add it to evaluate.baselines.models")
        out[combined_key(combination)] = mean_outputs(task, [models[MODEL], *(models[b] for b in members)],
                                                      classes)
    return out
