"""Cross-validated comparison: per-fold scores, mean +- sd per model, paired tests against the forest.

Every fold's ``metrics.json`` (`aam evaluate --fold r0f3`) holds one AAM run and the random forest
scored on the same test samples, so the fold is the unit of pairing. For each model, over its folds:

    mean, sd (sample standard deviation, ddof = 1)

For each AAM run, with d_k = AAM_k - forest_k the paired difference on fold k:

    Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided): zero differences are dropped
        (Wilcoxon's method); exact null distribution for small n without ties, normal otherwise.
    sign test: the number of positive d_k among the non-zero ones ~ Binomial(n, 1/2) under the null
        of no difference; two-sided exact p (scipy.stats.binomtest).

With n folds neither p can be smaller than 2 / 2^n: 5 folds give at best 0.0625, so 5 folds alone
cannot reach p < 0.05; repeats add pairs, though folds of different repeats share samples and are
not independent. A fold whose metric is undefined (AUROC with one class among the test samples) is
left out of that model's mean and of the paired tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from aam.data.split import parse_fold_name
from aam.evaluate.metrics import PRIMARY_METRIC, secondary_metrics

FOREST = "random_forest"


def paired_tests(differences: Sequence[float]) -> dict:
    """Paired comparison of per-fold differences (AAM - forest): counts, mean, sd and two p-values.

    ``wilcoxon_p`` and ``sign_p`` are 1.0 when every difference is zero and None without any pair.
    """
    d = np.asarray([x for x in differences if x is not None and math.isfinite(x)], dtype=np.float64)
    nonzero = d[d != 0]
    out = {
        "n": int(d.size),
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
        "mean": float(d.mean()) if d.size else None,
        "sd": float(d.std(ddof=1)) if d.size > 1 else None,
        "wilcoxon_p": None,
        "sign_p": None,
    }
    if d.size == 0:
        return out
    if nonzero.size == 0:
        out["wilcoxon_p"] = out["sign_p"] = 1.0
        return out
    out["wilcoxon_p"] = float(stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
    out["sign_p"] = float(stats.binomtest(int((nonzero > 0).sum()), int(nonzero.size), 0.5).pvalue)
    return out


def fold_scores(records: Iterable[Mapping]) -> tuple[pd.DataFrame, str]:
    """Long table of test scores from fold metrics.json records: one row per (fold, model).

    Columns: fold, model (the run name, or ``random_forest``), every test metric of the task,
    ``degenerate`` (the AAM run's degenerate_predictions, else None). The forest is trained once per
    run on the same fold with the same seed, so its scores repeat across runs; they must agree
    (ValueError otherwise: the runs were not evaluated on identical folds). Returns the task too.
    """
    rows, forest_rows, task = [], {}, None
    for m in records:
        if m.get("fold") is None:
            raise ValueError(f"metrics of run {m.get('run')!r} name no fold; not a cross-validation result")
        if task is None:
            task = m["task"]
        elif m["task"] != task:
            raise ValueError(f"folds disagree on the task ({task} vs {m['task']})")
        ours, forest = m["test"]["aam"], m["test"]["random_forest"]
        rows.append(
            {
                "fold": m["fold"],
                "model": m["run"],
                **_scores(ours, task),
                "n_test": m.get("n_test"),
                "degenerate": m.get("degenerate_predictions"),
            }
        )
        forest_row = {
            "fold": m["fold"],
            "model": FOREST,
            **_scores(forest, task),
            "n_test": m.get("n_test"),
            "degenerate": None,
        }
        seen = forest_rows.setdefault(m["fold"], forest_row)
        if not _same(seen, forest_row):
            raise ValueError(
                f"fold {m['fold']}: the forest scores differ between runs "
                f"({seen[PRIMARY_METRIC[task]]} vs {forest_row[PRIMARY_METRIC[task]]}); "
                "were the runs evaluated on the same fold?"
            )
    if task is None:
        raise ValueError("no fold metrics to summarize")
    table = pd.DataFrame(rows + list(forest_rows.values()))
    if table.duplicated(["fold", "model"]).any():
        fold, model = table.loc[table.duplicated(["fold", "model"]), ["fold", "model"]].iloc[0]
        raise ValueError(f"two metrics files for fold {fold} and run {model}")
    return table, task


def _scores(metrics: Mapping, task: str) -> dict:
    names = (PRIMARY_METRIC[task], *secondary_metrics(task))
    return {name: metrics.get(name) for name in names}


def _same(a: Mapping, b: Mapping) -> bool:
    for key, value in a.items():
        other = b.get(key)
        if isinstance(value, float) and isinstance(other, float):
            if not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif value != other:
            return False
    return True


def summarize(scores: pd.DataFrame, task: str) -> tuple[pd.DataFrame, dict]:
    """Per-model mean +- sd over folds and each run's paired tests against the forest.

    Returns the summary table (one row per model, runs first then the forest; columns model, metric,
    n_folds, mean, sd, one column per fold, the paired statistics for runs, the secondary means,
    degenerate_folds) and the same as a JSON-ready dict with the per-fold values.
    """
    metric = PRIMARY_METRIC[task]
    folds = sorted(scores["fold"].unique(), key=_fold_key)
    models = [m for m in dict.fromkeys(scores["model"]) if m != FOREST] + [FOREST]
    wide = scores.pivot(index="fold", columns="model", values=metric).reindex(index=folds, columns=models)
    wide = wide.astype(float)
    rows, models_json = [], {}
    for model in models:
        values = wide[model]
        present = values.dropna()
        sub = scores[scores["model"] == model]
        row = {
            "model": model,
            "metric": metric,
            "n_folds": int(present.size),
            "mean": float(present.mean()) if present.size else None,
            "sd": float(present.std(ddof=1)) if present.size > 1 else None,
        }
        row.update({fold: _none(values[fold]) for fold in folds})
        if model != FOREST:
            tests = paired_tests((wide[model] - wide[FOREST]).tolist())
            row.update(
                {
                    "difference_mean": tests["mean"],
                    "difference_sd": tests["sd"],
                    "wins": tests["wins"],
                    "losses": tests["losses"],
                    "wilcoxon_p": tests["wilcoxon_p"],
                    "sign_p": tests["sign_p"],
                }
            )
        for name in secondary_metrics(task):
            vals = pd.to_numeric(sub[name], errors="coerce").dropna()
            row[f"mean_{name}"] = float(vals.mean()) if vals.size else None
        degenerate = sorted(sub.loc[sub["degenerate"].notna(), "fold"], key=_fold_key)
        row["degenerate_folds"] = len(degenerate)
        rows.append(row)
        models_json[model] = {
            "n_folds": row["n_folds"],
            "mean": row["mean"],
            "sd": row["sd"],
            "per_fold": {fold: _none(values[fold]) for fold in folds},
            "secondary_means": {name: row[f"mean_{name}"] for name in secondary_metrics(task)},
            "degenerate_folds": {f: sub.set_index("fold").loc[f, "degenerate"] for f in degenerate},
        }
        if model != FOREST:
            models_json[model]["versus_forest"] = tests
    summary = pd.DataFrame(rows)
    for column in ("n_folds", "wins", "losses", "degenerate_folds"):  # counts stay integers beside NaN
        if column in summary:
            summary[column] = summary[column].astype("Int64")
    result = {"task": task, "metric": metric, "folds": folds, "models": models_json}
    return summary, result


def _none(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fold_key(name: str) -> tuple[int, int]:
    return parse_fold_name(name)
