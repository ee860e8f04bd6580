"""The leaderboard: every model over every cross-validated task, ranked, with paired tests.

Input: the cv_summary JSON of each task (a dataset and target; aam.evaluate.cv.summarize), each
holding per model its mean and sd over the folds of the task's primary metric (AUROC, R^2: higher
is better) and its per-fold paired tests against each baseline.

Per task, models are ranked by their CV mean: rank 1 is the best, tied means share the average of
their ranks (scipy.stats.rankdata), and a model without a score on a task gets no rank there. A
model's **mean rank** is the mean of its ranks over the tasks where it has one.

Per model and baseline, over the tasks both have a score on, with D_t = mean_model,t - mean_base,t:

    wins / losses / ties        tasks with D_t > 0 / D_t < 0 / D_t = 0
    sign test p                 two-sided exact binomial p of the wins among wins + losses (p 1/2)
    Wilcoxon p                  two-sided Wilcoxon signed-rank test of the D_t over tasks (zeros
                                dropped); differences of AUROC and R^2 are ranked together
                                (Demsar 2006, J. Mach. Learn. Res. 7:1-30)
    significant wins / losses   tasks where the task's corrected repeated k-fold t-test (its
                                cv_summary's ``corrected_p``, aam.evaluate.cv) has p below 0.05,
                                with D_t > 0 / D_t < 0. Not the per-fold Wilcoxon test: its folds
                                share samples, so its p-values are too small (the more repeats,
                                the smaller).

and over all models and the tasks every model has a score on, Friedman's test
(scipy.stats.friedmanchisquare) of the ranks. With few tasks none of these p-values can be small;
the counts are the readable part.

Per model, the tasks where it **trails the best baseline** by more than issue 24's margins: a
classification task where the best baseline's mean AUROC exceeds the model's by more than
``SCORE_MARGIN`` (0.02), a regression task where the model's mean MAE exceeds the lowest mean MAE
of a baseline by more than ``MAE_MARGIN`` (5 %; a summary without MAE means is judged by the R²
margin instead). ``n_behind`` counts them and ``behind`` names each with its shortfall, so the
goal "no task more than 0.02 AUROC or 5 % MAE behind the best baseline" reads off one column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from aam.evaluate.baselines import BASELINES
from aam.evaluate.cv import paired_tests

SIGNIFICANT = 0.05
SCORE_MARGIN = 0.02  # AUROC (R² where a regression summary lacks MAE) behind the best baseline
MAE_MARGIN = 0.05  # a regression's MAE above the best baseline's, as a share of it
ROUNDING = 1e-9  # a shortfall of exactly the margin is within it, whatever the float rounding


def task_id(summary: Mapping) -> str:
    """A task's name: ``dataset/target``."""
    return f"{summary['dataset']}/{summary['target']}"


def task_kind(summary: Mapping) -> str:
    """binary, multi-class (k) or regression."""
    if summary["task"] == "regression":
        return "regression"
    classes = summary.get("classes") or []
    return "binary" if len(classes) == 2 else f"multi-class ({len(classes)})"


def task_table(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """One row per task and model: task, dataset, target, kind, metric, n_samples, n_folds, model,
    kind of model (aam, combined: a run's mean with a baseline or with runs, or baseline), mean, sd,
    rank within the task."""
    rows = []
    seen = set()
    for s in summaries:
        task = task_id(s)
        if task in seen:
            raise ValueError(f"task {task} is given twice")
        seen.add(task)
        means = {m: v["mean"] for m, v in s["models"].items()}
        scored = [m for m, v in means.items() if v is not None and math.isfinite(v)]
        ranks = dict(zip(scored, stats.rankdata([-means[m] for m in scored]), strict=True))
        for model, v in s["models"].items():
            rows.append({
                "task": task, "dataset": s["dataset"], "target": s["target"], "kind": task_kind(s),
                "metric": s["metric"], "n_samples": s.get("n_samples"), "n_folds": v["n_folds"],
                "model": model, "model_kind": _model_kind(model, v),
                "mean": v["mean"], "sd": v["sd"], "rank": float(ranks[model]) if model in ranks else None,
            })
    return pd.DataFrame(rows)


def versus_baselines(summaries: Sequence[Mapping], tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, baseline): wins, losses, ties over tasks, the sign and Wilcoxon p over
    tasks, and the tasks where the corrected t-test over the task's folds is significant either way.
    ValueError for a summary written before that test (no ``corrected_p``)."""
    means = tasks.pivot(index="task", columns="model", values="mean").astype(float)
    fold_p = {}
    for s in summaries:
        for m, v in s["models"].items():
            for b, t in v.get("versus", {}).items():
                if "corrected_p" not in t:
                    raise ValueError(f"the cross-validation summary of {task_id(s)} has no corrected "
                                     "t-test (written by an older version); rerun it: "
                                     "snakemake --forcerun cv_summary")
                fold_p[(task_id(s), m, b)] = t["corrected_p"]
    rows = []
    baselines = [b for b in BASELINES if b in means.columns]
    for model in _model_order(tasks):
        for baseline in baselines:
            if model == baseline:
                continue
            both = means[[model, baseline]].dropna()
            d = (both[model] - both[baseline])
            tests = paired_tests(d.tolist())
            significant = [(t, diff) for t, diff in d.items()
                           if (p := fold_p.get((t, model, baseline))) is not None and p < SIGNIFICANT]
            rows.append({
                "model": model, "baseline": baseline, "n_tasks": tests["n"], "wins": tests["wins"],
                "losses": tests["losses"], "ties": tests["ties"], "mean_difference": tests["mean"],
                "sign_p": tests["sign_p"], "wilcoxon_p": tests["wilcoxon_p"],
                "significant_wins": sum(diff > 0 for _, diff in significant),
                "significant_losses": sum(diff < 0 for _, diff in significant),
            })
    return pd.DataFrame(rows)


def shortfalls(summaries: Sequence[Mapping]) -> dict[str, list[str]]:
    """Per model, the tasks where it trails the best baseline beyond the margins (module docstring),
    each as ``task −0.042`` (the metric's difference) or ``task MAE +9.3 %``, in task order."""
    out: dict[str, list[str]] = {}
    for s in summaries:
        for model, shortfall in task_shortfalls(s).items():
            out.setdefault(model, []).append(f"{task_id(s)} {shortfall}")
    return out


def task_shortfalls(summary: Mapping) -> dict[str, str]:
    """The models of one task's summary that trail its best baseline beyond the margins, each with
    its shortfall (``−0.042`` or ``MAE +9.3 %``); none where the task has no baseline."""
    models = summary["models"]
    baselines = [b for b in BASELINES if b in models and _finite(models[b]["mean"])]
    if not baselines:
        return {}
    out = {}
    mae = {m: (v.get("secondary_means") or {}).get("mae") for m, v in models.items()}
    by_mae = summary["task"] == "regression" and all(_finite(mae[b]) for b in baselines)
    best_mean = max(models[b]["mean"] for b in baselines)
    best_mae = min(mae[b] for b in baselines) if by_mae else None
    for model, v in models.items():
        if by_mae:
            excess = mae[model] / best_mae - 1 if _finite(mae[model]) and best_mae > 0 else 0.0
            if excess > MAE_MARGIN + ROUNDING:
                out[model] = f"MAE +{100 * excess:.1f} %"
        elif _finite(v["mean"]) and best_mean - v["mean"] > SCORE_MARGIN + ROUNDING:
            out[model] = f"−{best_mean - v['mean']:.3f}"
    return out


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def leaderboard(summaries: Sequence[Mapping]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """The leaderboard (one row per model, best mean rank first), the task table, the pairs table,
    and the Friedman test (statistic, p, n_tasks, n_models; None values with < 2 tasks or models)."""
    if not summaries:
        raise ValueError("no cross-validation summaries to rank")
    tasks = task_table(summaries)
    pairs = versus_baselines(summaries, tasks)
    rows = []
    means = tasks.pivot(index="task", columns="model", values="mean")
    task_order = list(dict.fromkeys(tasks["task"]))
    behind = shortfalls(summaries)
    for model in _model_order(tasks):
        sub = tasks[tasks["model"] == model]
        ranked = sub["rank"].dropna()
        row = {"model": model, "model_kind": sub["model_kind"].iloc[0],
               "mean_rank": float(ranked.mean()) if ranked.size else None, "n_tasks": int(ranked.size)}
        row.update({task: _none(means.loc[task, model]) for task in task_order})
        for p in pairs[pairs["model"] == model].to_dict("records") if len(pairs) else []:
            for key in ("wins", "losses", "ties", "sign_p", "wilcoxon_p", "significant_wins",
                        "significant_losses"):
                row[f"vs_{p['baseline']}_{key}"] = p[key]
        row["n_behind"] = len(behind.get(model, []))
        row["behind"] = "; ".join(behind.get(model, []))
        rows.append(row)
    board = pd.DataFrame(rows).sort_values(["mean_rank", "model"], kind="stable", na_position="last")
    return board.reset_index(drop=True), tasks, pairs, friedman(tasks)


def friedman(tasks: pd.DataFrame) -> dict:
    """Friedman's test of the models' ranks over the tasks where every model has a score."""
    wide = tasks.pivot(index="task", columns="model", values="mean").astype(float).dropna()
    out = {"statistic": None, "p": None, "n_tasks": int(len(wide)), "n_models": int(wide.shape[1])}
    if wide.shape[0] >= 2 and wide.shape[1] >= 3:
        result = stats.friedmanchisquare(*[-wide[m].to_numpy() for m in wide.columns])
        out["statistic"], out["p"] = _none(result.statistic), _none(result.pvalue)
    return out


def _model_kind(model: str, summary: Mapping) -> str:
    """baseline, combined (a run's mean with a baseline or runs: the cv summary's kind) or aam."""
    if model in BASELINES:
        return "baseline"
    return "combined" if summary.get("kind") == "combined" else "aam"


def _model_order(tasks: pd.DataFrame) -> list[str]:
    """AAM runs in the order met, then the combinations, then the baselines in BASELINES order."""
    kind = dict(zip(tasks["model"], tasks["model_kind"], strict=False))
    return ([m for m in kind if kind[m] == "aam"] + [m for m in kind if kind[m] == "combined"]
            + [b for b in BASELINES if b in kind])


def _none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value
