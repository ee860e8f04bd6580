"""Evaluation plots (matplotlib, Agg backend, PNG written atomically).

Each `plot_*` function draws one figure and writes it to `path`; "models" arguments are ordered
dicts name -> values so that our model and the baselines share an axes with one legend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from aam.evaluate.baselines import BASELINES, LABELS  # noqa: E402
from aam.evaluate.metrics import PRIMARY_METRIC, macro_roc_points, roc_points  # noqa: E402
from aam.io.atomic import atomic_path  # noqa: E402

DPI = 120
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Write `fig` as PNG via a temporary file and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def plot_pred_vs_true(
    y_true: Sequence[float],
    predictions: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    target: str = "target",
    scores: Mapping[str, dict] | None = None,
) -> None:
    """Predicted vs true scatter, one colour per model, with the y = x line."""
    y_true = np.asarray(y_true, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    values = [y_true]
    for k, (name, pred) in enumerate(predictions.items()):
        pred = np.asarray(pred, dtype=float)
        values.append(pred)
        label = name
        if scores and name in scores:
            s = scores[name]
            label += f" (R² {_fmt(s.get('r2'))}, MAE {_fmt(s.get('mae'))})"
        ax.scatter(y_true, pred, s=18, alpha=0.7, color=COLORS[k % len(COLORS)], label=label)
    lo = float(min(v.min() for v in values))
    hi = float(max(v.max() for v in values))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1, ls="--", label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(f"{target}: predicted vs true (test, n={y_true.size})")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]],
    classes: Sequence[str],
    path: str | os.PathLike,
    target: str = "target",
) -> None:
    """One confusion matrix (rows true, columns predicted) per model, side by side."""
    n = len(matrices)
    size = max(3.5, 0.6 * len(classes) + 2.5)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False, layout="constrained")
    for ax, (name, cm) in zip(axes[0], matrices.items(), strict=True):
        cm = np.asarray(cm, dtype=int)
        ax.imshow(cm, cmap="Blues", vmin=0)
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > threshold else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
    fig.suptitle(f"{target}: confusion matrices (test)")
    save_figure(fig, path)


def plot_roc_curves(
    y_true: Sequence[str],
    probabilities: Mapping[str, np.ndarray],
    classes: Sequence[str],
    path: str | os.PathLike,
    target: str = "target",
    scores: Mapping[str, dict] | None = None,
) -> None:
    """ROC curves of all models on one axes: binary for classes[1]; macro one-vs-rest otherwise."""
    classes = list(classes)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, (name, proba) in enumerate(probabilities.items()):
        proba = np.asarray(proba, dtype=float)
        if len(classes) == 2:
            fpr, tpr = roc_points(y_true, proba[:, 1], classes[1])
        else:
            fpr, tpr = macro_roc_points(y_true, proba, classes)
        label = name
        if scores and name in scores:
            label += f" (AUROC {_fmt(scores[name].get('auroc'))})"
        ax.plot(fpr, tpr, color=COLORS[k % len(COLORS)], lw=2, label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    kind = f"positive class {classes[1]}" if len(classes) == 2 else "macro one-vs-rest"
    ax.set_title(f"{target}: ROC on test ({kind})")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)


def epoch_history(metrics: pd.DataFrame) -> pd.DataFrame:
    """Lightning CSVLogger rows (train and val logged on separate rows) to one row per epoch."""
    if "epoch" not in metrics.columns:
        raise ValueError("metrics.csv has no 'epoch' column")
    numeric = metrics.apply(pd.to_numeric, errors="coerce")
    numeric = numeric.dropna(subset=["epoch"])
    return numeric.groupby("epoch", sort=True).last().reset_index()


def plot_learning_curves(
    histories: Mapping[str, pd.DataFrame], path: str | os.PathLike, title: str = "learning curves"
) -> None:
    """One panel per stage (e.g. pretrain, finetune): train and validation loss per epoch."""
    n = max(1, len(histories))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    if not histories:
        axes[0, 0].text(0.5, 0.5, "no training history", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, (stage, raw) in zip(axes[0], histories.items(), strict=False):
        hist = epoch_history(raw)
        drawn = False
        for k, col in enumerate(("train/loss", "val/loss")):
            if col in hist.columns and hist[col].notna().any():
                ok = hist[col].notna()
                ax.plot(hist.loc[ok, "epoch"], hist.loc[ok, col], marker="o", ms=3,
                        color=COLORS[k], label=col)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no loss columns", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(stage)
        if drawn:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def pcoa_coordinates(embeddings: np.ndarray, n_axes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean PCoA of the rows of `embeddings` (equal to PCA of the centred embeddings).

    Returns the coordinates (n, n_axes) and the fraction of variance each axis explains.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(n_axes, vt.shape[0])
    coords = x @ vt[:k].T
    total = float((s**2).sum())
    explained = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    if k < n_axes:
        coords = np.hstack([coords, np.zeros((x.shape[0], n_axes - k))])
        explained = np.concatenate([explained, np.zeros(n_axes - k)])
    return coords, explained


def plot_embedding_pcoa(
    embeddings: np.ndarray,
    labels: Sequence,
    task: str,
    path: str | os.PathLike,
    splits: Sequence[str] | None = None,
    target: str = "target",
) -> None:
    """PCoA (Euclidean) of learned sample embeddings, coloured by target, marker by split."""
    coords, explained = pcoa_coordinates(embeddings)
    labels = pd.Series(list(labels), dtype=object)
    splits = pd.Series(list(splits) if splits is not None else ["all"] * len(labels), dtype=object)
    markers = dict(zip(sorted(splits.unique()), "osD^v<>", strict=False))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if task == "regression":
        values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
        mappable = None
        for split, marker in markers.items():
            m = (splits == split).to_numpy()
            mappable = ax.scatter(coords[m, 0], coords[m, 1], c=values[m], cmap="viridis", marker=marker,
                                  s=20, alpha=0.8, vmin=np.nanmin(values), vmax=np.nanmax(values),
                                  label=split)
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, label=target)
    else:
        for k, cls in enumerate(sorted(labels.astype(str).unique())):
            for split, marker in markers.items():
                m = ((labels.astype(str) == cls) & (splits == split)).to_numpy()
                if m.any():
                    ax.scatter(coords[m, 0], coords[m, 1], color=COLORS[k % len(COLORS)], marker=marker,
                               s=20, alpha=0.8, label=f"{cls} ({split})" if len(markers) > 1 else cls)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f} %)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f} %)")
    ax.set_title(f"PCoA of learned sample embeddings, coloured by {target}")
    ax.legend(fontsize=7, loc="best")
    save_figure(fig, path)


def plot_comparison(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Bar chart of the primary metric per run, our model beside each baseline, one panel per target.

    `table` is compare's table: columns target, task, run, metric, aam and one per baseline.
    """
    models = ["aam"] + [b for b in BASELINES if b in table.columns]
    targets = list(dict.fromkeys(table["target"])) if len(table) else []
    n = max(1, len(targets))
    width = 0.8 / len(models)
    panel = max(4.5, 0.5 * len(models) * table["run"].nunique() + 2.5)
    fig, axes = plt.subplots(1, n, figsize=(panel * n, 4.4), squeeze=False, layout="constrained")
    if not targets:
        axes[0, 0].text(0.5, 0.5, "no evaluated runs", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, target in zip(axes[0], targets, strict=False):
        sub = table[table["target"] == target]
        x = np.arange(len(sub))
        for k, model in enumerate(models):
            values = pd.to_numeric(sub[model], errors="coerce").to_numpy(dtype=float)
            offset = (k - (len(models) - 1) / 2) * width
            ax.bar(x + offset, np.nan_to_num(values), width, color=COLORS[k % len(COLORS)],
                   label="AAM" if model == "aam" else LABELS[model])
            for xi, v in zip(x, values, strict=True):
                ax.text(xi + offset, max(v, 0) if np.isfinite(v) else 0, _fmt(v if np.isfinite(v) else None),
                        ha="center", va="bottom", fontsize=6, rotation=90)
        task = sub["task"].iloc[0]
        metric = sub["metric"].iloc[0] if "metric" in sub else PRIMARY_METRIC.get(task, "")
        if task == "classification":
            ax.axhline(0.5, color="grey", lw=1, ls="--")
            ax.set_ylim(0, 1.15)
        ax.set_xticks(x, sub["run"], rotation=30, ha="right")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(f"{target} ({task})")
    if targets:
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=len(models), fontsize=8)
    fig.suptitle("runs vs baselines (same test split)")
    save_figure(fig, path)


def plot_cv_folds(
    wide: pd.DataFrame, metric: str, task: str, path: str | os.PathLike, title: str = ""
) -> None:
    """One point per fold per model, a grey line joining the same fold across models.

    `wide`: rows = folds, columns = models (the AAM runs, then the baselines), values = the test
    metric; NaN where undefined. Each model's mean is drawn as a short black bar.
    """
    models = list(wide.columns)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(models) + 2.0), 4.2), layout="constrained")
    x = np.arange(len(models))
    for fold, values in wide.iterrows():
        ys = values.to_numpy(dtype=float)
        ax.plot(x, ys, color="grey", lw=0.8, alpha=0.6, zorder=1)
        if np.isfinite(ys[0]):
            ax.text(x[0] - 0.08, ys[0], str(fold), ha="right", va="center", fontsize=7, color="grey")
    for j, model in enumerate(models):
        values = wide[model].to_numpy(dtype=float)
        ax.scatter(np.full(values.size, x[j]), values, color=COLORS[j % len(COLORS)], s=28, zorder=2)
        if np.isfinite(values).any():
            mean = float(np.nanmean(values))
            ax.hlines(mean, x[j] - 0.25, x[j] + 0.25, color="black", lw=2, zorder=3)
            ax.text(x[j] + 0.28, mean, _fmt(mean), va="center", fontsize=8)
    if task == "classification":
        ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(x, [m.replace("_", " ") for m in models], rotation=20, ha="right")
    ax.set_xlim(-0.7, len(models) - 0.3)
    ax.set_ylabel(f"test {metric}")
    ax.set_title(title or f"{metric} per fold ({len(wide)} folds; lines join a fold)", fontsize=10)
    save_figure(fig, path)


def plot_leaderboard(tasks: pd.DataFrame, labels: Sequence[str], path: str | os.PathLike,
                     order: Sequence[str]) -> None:
    """Rank of each model (rows, in `order`, shown as `labels`) on each task (columns), coloured
    from best (dark) to worst, with the CV mean written in each cell."""
    names = list(dict.fromkeys(tasks["task"]))
    ranks = tasks.pivot(index="model", columns="task", values="rank").reindex(index=order, columns=names)
    means = tasks.pivot(index="model", columns="task", values="mean").reindex(index=order, columns=names)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 3.0), max(2.5, 0.5 * len(order) + 1.8)),
                           layout="constrained")
    ax.imshow(ranks.to_numpy(dtype=float), cmap="Blues_r", vmin=1, vmax=max(2, len(order)), aspect="auto")
    for i in range(len(order)):
        for j in range(len(names)):
            value = means.iat[i, j]
            ax.text(j, i, "" if pd.isna(value) else f"{value:.3f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.set_title("rank per task (dark = best); CV mean of AUROC or R²", fontsize=10)
    save_figure(fig, path)
