"""Cross-validated comparison: per-fold scores, mean +- sd per model, paired tests against each baseline.

Per fold, each AAM run's ``metrics.json`` (`aam evaluate --fold r0f3`) and the fold's baselines
(`aam baselines`: random forest, CLR + L2 linear model, HistGradientBoosting, fit once per fold)
are scored on the same test samples (their ``test_samples`` fingerprints must agree), so the fold
is the unit of pairing. A run's evaluation may hold combinations of the run with a baseline (the
mean of their predictions, aam.evaluate.combine), and runs may be averaged after training
(aam.evaluate.average_runs): each is one more model, ``<run>+<baseline> (mean)`` or ``<run>+<run>
(mean)``, of the same fold and test samples. For each model, over its folds:

    mean, sd (sample standard deviation, ddof = 1)

For each model and each baseline, with d_k = model_k - baseline_k the paired difference on fold k:

    Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided): zero differences are dropped
        (Wilcoxon's method); exact null distribution for small n without ties, normal otherwise.
    sign test: the number of positive d_k among the non-zero ones ~ Binomial(n, 1/2) under the null
        of no difference; two-sided exact p (scipy.stats.binomtest).

With n folds neither p can be smaller than 2 / 2^n: 5 folds give at best 0.0625, so 5 folds alone
cannot reach p < 0.05. Repeats add pairs, but folds share training samples (every two folds of a
5-fold split share 3/4 of theirs) and folds of different repeats share test samples, so the
differences are correlated and both tests above treat them as independent: their p-values are too
small, the more so the more repeats. Hence a third test, the one the leaderboard counts:

    corrected repeated k-fold t-test (Nadeau & Bengio 2003, Machine Learning 52:239-281, in the
        form of Bouckaert & Frank 2004, PAKDD, LNCS 3056:3-12): with n = k x r differences, mean
        m, sample variance s^2 (ddof = 1) and n2 / n1 the ratio of test to training samples,
            t = m / sqrt((1/n + n2/n1) s^2),   two-sided p from Student's t with n - 1 df.
        n2/n1 widens the variance for the overlap of the training sets (1/4 for 5 folds); with
        n2/n1 = 0 it is the ordinary one-sample t-test. p is 1 when every difference is 0 and 0 when
        they are all equal and non-zero.

A fold whose metric is undefined (AUROC with one class among the test samples) is left out of that
model's mean and of the paired tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from aam.data.split import parse_fold_name
from aam.evaluate.baselines import BASELINES
from aam.evaluate.combine import row_name
from aam.evaluate.fold_samples import fold_mismatch
from aam.evaluate.metrics import PRIMARY_METRIC, secondary_metrics

PAIRED_COLUMNS = ("difference", "wins", "losses", "wilcoxon_p", "sign_p", "corrected_p")


def paired_tests(differences: Sequence[float], test_train_ratio: float | None = None) -> dict:
    """Paired comparison of per-fold differences (AAM - forest): counts, mean, sd and three p-values.

    ``wilcoxon_p`` and ``sign_p`` are 1.0 when every difference is zero and None without any pair;
    ``corrected_p`` (module docstring) needs `test_train_ratio` (n2 / n1 of the folds) and two
    differences, else it is None.
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
        "corrected_p": corrected_t_test(d, test_train_ratio) if test_train_ratio is not None else None,
    }
    if d.size == 0:
        return out
    if nonzero.size == 0:
        out["wilcoxon_p"] = out["sign_p"] = 1.0
        return out
    out["wilcoxon_p"] = float(stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
    out["sign_p"] = float(stats.binomtest(int((nonzero > 0).sum()), int(nonzero.size), 0.5).pvalue)
    return out


def corrected_t_test(differences: np.ndarray, test_train_ratio: float) -> float | None:
    """Two-sided p of the corrected repeated k-fold t-test (module docstring); None below 2 folds.

    Written here because neither SciPy nor scikit-learn has it; with a ratio of 0 it equals
    scipy.stats.ttest_1samp (tested).
    """
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio}")
    n = differences.size
    if n < 2:
        return None
    mean, variance = float(differences.mean()), float(differences.var(ddof=1))
    if variance == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / math.sqrt((1 / n + test_train_ratio) * variance)
    return float(2 * stats.t.sf(abs(t), df=n - 1))


def fold_test_train_ratio(n_test: pd.Series, n_samples: int) -> float | None:
    """n2 / n1 of the corrected t-test from each fold's test samples (`n_test`, by fold): the mean
    over folds of the test samples over the rest (training and validation: everything a model or
    baseline of the fold may learn from). None where the folds' test sizes are unknown."""
    n_test = pd.to_numeric(n_test, errors="coerce").dropna()
    if n_test.empty or n_samples <= 0 or (n_test >= n_samples).any():
        return None
    return float((n_test / (n_samples - n_test)).mean())


def fold_scores(
    records: Iterable[Mapping], baseline_records: Iterable[Mapping] = (), averages: Iterable[Mapping] = ()
) -> tuple[pd.DataFrame, str]:
    """Long table of test scores: one row per (fold, model).

    `records`: the AAM runs' fold metrics.json (`aam evaluate --fold`); `baseline_records`: the
    folds' `aam baselines` metrics.json; `averages`: runs averaged after training
    (aam.evaluate.average_runs.averaged_records). Columns: fold, model (the run name, a
    combination's ``<run>+<baseline>[+<baseline>] (mean)``, an average's ``<run>+<run> (mean)``, or the
    baseline's), kind (aam, combined: a combination or an average, baseline), every test
    metric of the task, n_test, ``degenerate`` (an AAM run's or a combination's
    degenerate_predictions, else None). ValueError where two models of a fold were tested on
    different samples (their ``test_samples`` fingerprints differ) or trained or validated on
    different samples (their ``fold_samples``, where both files have them), a fold is given twice,
    or the tasks disagree.
    """
    rows, task, tested, trained = [], None, {}, {}

    def add(fold, model, kind, metrics, m, degenerate):
        nonlocal task
        if fold is None:
            raise ValueError(f"metrics of {model!r} name no fold; not a cross-validation result")
        if task is None:
            task = m["task"]
        elif m["task"] != task:
            raise ValueError(f"folds disagree on the task ({task} vs {m['task']})")
        fingerprint = m.get("test_samples")
        seen = tested.setdefault(fold, (model, fingerprint))
        if fingerprint != seen[1]:
            raise ValueError(f"fold {fold}: {model!r} and {seen[0]!r} were tested on different samples; "
                             "were they made from the same splits.tsv?")
        if m.get("fold_samples"):
            first = trained.setdefault(fold, (model, m["fold_samples"]))
            split = fold_mismatch(m["fold_samples"], first[1])
            if split:
                raise ValueError(f"fold {fold}: {model!r} and {first[0]!r} had different {split} samples; "
                                 "were they made from the same splits.tsv?")
        rows.append({"fold": fold, "model": model, "kind": kind, **_scores(metrics, m["task"]),
                     "n_test": m.get("n_test"), "degenerate": degenerate})

    for m in records:
        add(m.get("fold"), m["run"], "aam", m["test"]["aam"], m, m.get("degenerate_predictions"))
        for key, c in (m.get("combined") or {}).items():
            add(m.get("fold"), row_name(m["run"], c["members"], c["method"]), "combined", m["test"][key], m,
                c.get("degenerate_predictions"))
    for a in averages:
        add(a["fold"], a["model"], "combined", a["test"], a, a["degenerate"])
    for m in baseline_records:
        for name in [b for b in BASELINES if b in m["models"]]:
            add(m.get("fold"), name, "baseline", m["models"][name]["test"], m, None)
    if task is None:
        raise ValueError("no fold metrics to summarize")
    table = pd.DataFrame(rows)
    if table.duplicated(["fold", "model"]).any():
        fold, model = table.loc[table.duplicated(["fold", "model"]), ["fold", "model"]].iloc[0]
        raise ValueError(f"two metrics files for fold {fold} and model {model}")
    return table, task


def _scores(metrics: Mapping, task: str) -> dict:
    names = (PRIMARY_METRIC[task], *secondary_metrics(task))
    return {name: metrics.get(name) for name in names}


def summarize(scores: pd.DataFrame, task: str) -> tuple[pd.DataFrame, dict]:
    """Per-model mean +- sd over folds and every model's paired tests against each baseline.

    Returns the summary table (one row per model, the runs first, then the combinations, then the
    baselines; columns
    model, metric, n_folds, mean, sd, one column per fold, per baseline b the paired statistics
    vs_<b>_difference, _wins, _losses, _wilcoxon_p, _sign_p, _corrected_p, the secondary means,
    degenerate_folds)
    and the same as a JSON-ready dict with the per-fold values, the primary metric's and each secondary
    metric's (``secondary_per_fold``), and ``versus``: baseline -> tests.
    """
    metric = PRIMARY_METRIC[task]
    folds = sorted(scores["fold"].unique(), key=_fold_key)
    kind = dict(zip(scores["model"], scores["kind"], strict=True))
    baselines = [b for b in BASELINES if b in kind]
    models = [m for m in kind if kind[m] == "aam"] + [m for m in kind if kind[m] == "combined"] + baselines
    wide = scores.pivot(index="fold", columns="model", values=metric).reindex(index=folds, columns=models)
    wide = wide.astype(float)
    n_test = scores.groupby("fold")["n_test"].first()  # every model of a fold tested the same samples
    n_samples = int(n_test[[parse_fold_name(f)[0] == 0 for f in n_test.index]].fillna(0).sum())
    ratio = fold_test_train_ratio(n_test, n_samples)
    rows, models_json = [], {}
    for model in models:
        values = wide[model]
        kept = values.dropna()
        sub = scores[scores["model"] == model]
        row = {
            "model": model,
            "metric": metric,
            "n_folds": int(kept.size),
            "mean": float(kept.mean()) if kept.size else None,
            "sd": float(kept.std(ddof=1)) if kept.size > 1 else None,
        }
        row.update({fold: _none(values[fold]) for fold in folds})
        versus = {}
        for baseline in baselines:
            if baseline == model:
                continue
            tests = paired_tests((wide[model] - wide[baseline]).tolist(), ratio)
            versus[baseline] = tests
            values_of = {"difference": tests["mean"], **{k: tests[k] for k in PAIRED_COLUMNS[1:]}}
            row.update({f"vs_{baseline}_{key}": value for key, value in values_of.items()})
        secondary = {name: pd.to_numeric(sub.set_index("fold")[name], errors="coerce")
                     for name in secondary_metrics(task)}
        for name, per_fold in secondary.items():
            vals = per_fold.dropna()
            row[f"mean_{name}"] = float(vals.mean()) if vals.size else None
        degenerate = sorted(sub.loc[sub["degenerate"].notna(), "fold"], key=_fold_key)
        row["degenerate_folds"] = len(degenerate)
        rows.append(row)
        models_json[model] = {
            "kind": kind[model],
            "n_folds": row["n_folds"],
            "mean": row["mean"],
            "sd": row["sd"],
            "per_fold": {fold: _none(values[fold]) for fold in folds},
            "secondary_means": {name: row[f"mean_{name}"] for name in secondary_metrics(task)},
            # per fold too, so that a subset of the folds (aam.evaluate.pseudo_draws) has its MAE
            "secondary_per_fold": {name: {fold: _none(per_fold.get(fold)) for fold in folds}
                                   for name, per_fold in secondary.items()},
            "degenerate_folds": {f: sub.set_index("fold").loc[f, "degenerate"] for f in degenerate},
            "versus": versus,
        }
    summary = pd.DataFrame(rows)
    counts = [c for c in summary.columns if c.endswith(("_wins", "_losses"))]
    for column in ["n_folds", "degenerate_folds", *counts]:  # counts stay integers beside NaN
        summary[column] = summary[column].astype("Int64")
    result = {"task": task, "metric": metric, "folds": folds, "baselines": baselines, "n_samples": n_samples,
              "test_train_ratio": ratio, "models": models_json}
    return summary, result


def _none(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fold_key(name: str) -> tuple[int, int]:
    return parse_fold_name(name)
