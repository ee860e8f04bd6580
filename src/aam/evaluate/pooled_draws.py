"""One benchmark over several fold draws: each task's folds of every draw pooled, then ranked.

Why: one draw of 5 folds x 2 repeats decides a small task's margin by chance. On Sokol's 176
samples HistGradientBoosting scored 0.562 AUROC on the shipped folds and 0.644 on those of
`seed: 2026` (docs/benchmark.md, "New folds and seeds"): the draw moves a task by more than issue
24's margin of 0.02. A run of the benchmark with another `seed:` (and its own `results:`) draws new
grouped partitions and new training seeds, so its repeats are further repeats of the same repeated
k-fold cross-validation: the folds of all draws together are r1 + r2 + ... repeats of k folds.
The corrected repeated k-fold t-test (aam.evaluate.cv) applies to them unchanged, with n the
pooled folds and n2 / n1 the mean of the draws' test / training ratios (the same data, so nearly
equal), and the leaderboard (aam.evaluate.leaderboard) ranks the pooled tasks exactly as it ranks
one draw's.

Pooled per task and model: the per-fold scores (fold ``r0f3`` of draw ``s2026`` becomes
``s2026:r0f3``), their mean and sd, the secondary means (MAE: the leaderboard's regression
margin) as the fold-weighted mean of the draws' (each draw's is the mean over its folds, so this is
the mean over the pooled folds) and their per-fold values where every draw keeps them, and the
paired tests against each baseline over the pooled folds.

Refused, each with one line naming the draws and the task: a draw whose repeat partitions the
samples as a repeat of another draw does (the same folds counted twice: two runs of one seed), a
task or model present in one draw and not another, draws of different samples or metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aam.evaluate.baselines import BASELINES
from aam.evaluate.cv import paired_tests
from aam.evaluate.leaderboard import task_id

Partition = frozenset[frozenset[str]]


def repeat_partitions(folds: pd.DataFrame) -> dict[int, Partition]:
    """Each repeat's partition of the samples into test folds, from a `cv/split/r<i>/folds.tsv`
    table (columns sample, repeat, fold, split): the set of each fold's test samples."""
    test = folds[folds["split"] == "test"]
    return {int(r): frozenset(frozenset(g["sample"].astype(str)) for _, g in by_repeat.groupby("fold"))
            for r, by_repeat in test.groupby("repeat")}


def check_distinct_draws(partitions: Mapping[str, Sequence[Partition]], task: str) -> None:
    """ValueError when a repeat of one draw partitions the task's samples as a repeat of another."""
    seen: dict[Partition, str] = {}
    for draw, parts in partitions.items():
        for part in parts:
            if part in seen and seen[part] != draw:
                raise ValueError(f"{task}: draws {seen[part]} and {draw} share a repeat's folds (the "
                                 "same seed run twice?); pooling them would count those folds twice")
            seen.setdefault(part, draw)


def pool_task(draws: Mapping[str, Mapping]) -> dict:
    """The cv-summary of one task whose folds are the folds of every draw (`draws`: label -> that
    draw's cv-summary of the task), in the form aam.evaluate.leaderboard reads."""
    labels = list(draws)
    if len(labels) < 2:
        raise ValueError("pooling needs at least two draws")
    first = draws[labels[0]]
    task = task_id(first)
    for label in labels[1:]:
        other = draws[label]
        for key in ("task", "metric", "n_samples"):
            if other.get(key) != first.get(key):
                raise ValueError(f"{task}: draws {labels[0]} and {label} differ in {key} "
                                 f"({first.get(key)!r} against {other.get(key)!r})")
        if set(other["models"]) != set(first["models"]):
            missing = sorted(set(first["models"]) ^ set(other["models"]))
            raise ValueError(f"{task}: models {missing} are not in every draw ({labels[0]}, {label})")
    per_fold = {m: {f"{label}:{fold}": score for label in labels
                    for fold, score in (draws[label]["models"][m].get("per_fold") or {}).items()}
                for m in first["models"]}
    ratios = [(d["test_train_ratio"], len(d["folds"])) for d in draws.values()
              if d.get("test_train_ratio") is not None]
    ratio = sum(r * n for r, n in ratios) / sum(n for _, n in ratios) if len(ratios) == len(labels) else None
    baselines = [b for b in BASELINES if b in per_fold]
    models = {}
    for m, scores in per_fold.items():
        finite = np.array([v for v in scores.values() if _finite(v)], dtype=np.float64)
        versus = {}
        for b in baselines:
            if b == m:
                continue
            common = [f for f in scores if _finite(scores[f]) and _finite(per_fold[b].get(f))]
            versus[b] = paired_tests([scores[f] - per_fold[b][f] for f in common], ratio)
        models[m] = {
            "kind": first["models"][m].get("kind"),
            "n_folds": int(finite.size),
            "mean": float(finite.mean()) if finite.size else None,
            "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
            "per_fold": scores,
            "secondary_means": _pooled_secondary(draws, m),
            "secondary_per_fold": _pooled_secondary_per_fold(draws, m),
            "versus": versus,
        }
    return {**{k: first.get(k) for k in ("dataset", "target", "classes", "task", "metric", "n_samples")},
            "draws": labels,
            "folds": [f"{label}:{fold}" for label in labels for fold in draws[label]["folds"]],
            "baselines": baselines, "test_train_ratio": ratio, "models": models}


def pool_draws(draws: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """Every task pooled over the draws (label -> that draw's cv-summaries), in the first draw's
    task order. ValueError for a task that is not in every draw."""
    by_draw = {label: {task_id(s): s for s in summaries} for label, summaries in draws.items()}
    labels = list(by_draw)
    tasks = list(by_draw[labels[0]]) if labels else []
    for label in labels[1:]:
        if set(by_draw[label]) != set(tasks):
            odd = sorted(set(tasks) ^ set(by_draw[label]))
            raise ValueError(f"tasks {odd} are not in every draw ({labels[0]}, {label})")
    return [pool_task({label: by_draw[label][t] for label in labels}) for t in tasks]


def _pooled_secondary(draws: Mapping[str, Mapping], model: str) -> dict:
    """Each secondary mean over the pooled folds: the draws' means weighted by their folds; a key
    that some draw lacks (or holds no finite mean for) is left out rather than pooled over fewer."""
    entries = [(d["models"][model].get("secondary_means") or {}, int(d["models"][model].get("n_folds") or 0))
               for d in draws.values()]
    keys = [k for k in entries[0][0] if all(_finite(means.get(k)) and n for means, n in entries)]
    return {k: sum(means[k] * n for means, n in entries) / sum(n for _, n in entries) for k in keys}


def _pooled_secondary_per_fold(draws: Mapping[str, Mapping], model: str) -> dict:
    """Each secondary metric's per-fold values, the folds named as in ``per_fold``; a metric that
    some draw's summary lacks per fold (one written before they were kept) is left out."""
    entries = {label: d["models"][model].get("secondary_per_fold") or {} for label, d in draws.items()}
    first = next(iter(entries.values()))
    return {name: {f"{label}:{fold}": v for label, per_fold in entries.items()
                   for fold, v in per_fold[name].items()}
            for name in first if all(name in per_fold for per_fold in entries.values())}


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)
