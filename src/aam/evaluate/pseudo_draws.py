"""How often one draw of the benchmark finds each model within issue 24's margins on every task.

Why: the goal's third part ("no task more than 0.02 AUROC or 5 % MAE behind the best baseline") is
judged on one draw of folds, and on the small studies one draw moves a task's mean by more than the
margin (docs/benchmark.md, "New folds and seeds"). Pooling draws (aam.evaluate.pooled_draws)
estimates each gap more precisely; it does not say how often a single run of the benchmark would
see the margin met. This module does, by resampling the repeats already run.

Each repeat of a task is an independent random grouped partition of its samples with its own
training seeds, so any ``r`` of the R repeats of several draws make a draw of ``r`` repeats the
benchmark could have made: a *pseudo-draw*. There are C(R, r) of them, the actual draws among them.
For each, every task's summary is cut to those repeats' folds (the means of the primary metric and
of MAE over them) and judged by aam.evaluate.leaderboard.task_shortfalls, as a draw's leaderboard
judges it. Per model: the share of pseudo-draws in which it trails no task beyond the margins, and
per task the share in which it is within the margin there.

The pseudo-draws share repeats, so the shares are a resampling estimate (every combination
enumerated, no random draw), not counts of independent trials. A regression task is judged by MAE,
so its summaries must keep MAE per fold (``secondary_per_fold``: cv-summaries written since
they do); one without is refused rather than judged by R² instead.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aam.data.split import parse_fold_name
from aam.evaluate.leaderboard import task_id, task_shortfalls


def repeat_of(fold: str) -> str:
    """The repeat a fold belongs to: ``r1f3`` -> ``r1``; a pooled fold ``s2026:r1f3`` -> ``s2026:r1``."""
    draw, _, name = fold.rpartition(":")
    repeat = f"r{parse_fold_name(name)[0]}"
    return f"{draw}:{repeat}" if draw else repeat


def restrict(summary: Mapping, folds: Sequence[str]) -> dict:
    """A task's summary cut to some of its folds: each model's per-fold scores, mean and secondary
    means over those folds only (what task_shortfalls reads). ValueError for a regression summary
    without MAE per fold."""
    keep = set(folds)
    models = {}
    for model, v in summary["models"].items():
        per_fold = {f: x for f, x in (v.get("per_fold") or {}).items() if f in keep}
        secondary = v.get("secondary_per_fold") or {}
        if summary["task"] == "regression" and "mae" not in secondary:
            raise ValueError(f"{task_id(summary)}: {model!r} has no MAE per fold (a cv-summary written "
                             "before they were kept: run `aam cv-summary` again)")
        models[model] = {**v, "per_fold": per_fold, "mean": _mean(per_fold.values()),
                         "secondary_means": {name: _mean(x for f, x in values.items() if f in keep)
                                             for name, values in secondary.items()}}
    return {**summary, "folds": [f for f in summary["folds"] if f in keep], "models": models}


def margin_shares(summaries: Sequence[Mapping], repeats_per_draw: int = 2) -> pd.DataFrame:
    """One row per model: ``pseudo_draws`` (how many), ``within_every_task`` (the share of
    pseudo-draws in which it trails no task beyond the margins), ``actual_draws`` and
    ``actual_within`` (the same count over the pseudo-draws that are whole draws: all repeats of
    one draw, when each draw ran ``repeats_per_draw``), and per task the share within its margin.
    Every task must hold the same repeats; ValueError otherwise, or with fewer repeats than
    ``repeats_per_draw``."""
    if not summaries:
        raise ValueError("no cross-validation summaries to judge")
    repeats = _repeats(summaries[0])
    for s in summaries[1:]:
        if _repeats(s) != repeats:
            raise ValueError(f"{task_id(s)} holds repeats {sorted(_repeats(s))}, "
                             f"{task_id(summaries[0])} {sorted(repeats)}: pseudo-draws need the same")
    if repeats_per_draw < 1 or len(repeats) < repeats_per_draw:
        raise ValueError(f"{len(repeats)} repeats cannot make draws of {repeats_per_draw}")
    draw_sizes = Counter(r.rpartition(":")[0] for r in repeats)
    models = list(dict.fromkeys(m for s in summaries for m in s["models"]))
    present = {task_id(s): set(s["models"]) for s in summaries}
    within: dict[str, dict[str, list[bool]]] = {
        m: {t: [] for t in present if m in present[t]} for m in models}
    every, actual = {m: [] for m in models}, {m: [] for m in models}
    folds_of = [{r: [f for f in s["folds"] if repeat_of(f) == r] for r in repeats} for s in summaries]
    for chosen in itertools.combinations(sorted(repeats), repeats_per_draw):
        draws = {r.rpartition(":")[0] for r in chosen}
        whole = len(draws) == 1 and draw_sizes[next(iter(draws))] == repeats_per_draw
        behind = {task_id(s): task_shortfalls(restrict(s, [f for r in chosen for f in folds[r]]))
                  for s, folds in zip(summaries, folds_of, strict=True)}
        for m in models:
            for t, judged in within[m].items():
                judged.append(m not in behind[t])
            ok = all(judged[-1] for judged in within[m].values())
            every[m].append(ok)
            if whole:
                actual[m].append(ok)
    rows = []
    for m in models:
        row = {"model": m, "pseudo_draws": len(every[m]), "within_every_task": float(np.mean(every[m])),
               "actual_draws": len(actual[m]), "actual_within": int(sum(actual[m]))}
        row.update({t: float(np.mean(within[m][t])) if t in within[m] else None for t in present})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("within_every_task", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def _repeats(summary: Mapping) -> set[str]:
    return {repeat_of(f) for f in summary["folds"]}


def _mean(values) -> float | None:
    finite = [float(x) for x in values if x is not None and math.isfinite(x)]
    return sum(finite) / len(finite) if finite else None
