"""Figures of `aam seq-evaluate`: embeddings projected by PCA, the loss history, codebook use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def plot_projection(frame, ids, vectors, color_rank: str | None, path: Path, max_points: int = 4000) -> None:
    """2-D PCA of (at most `max_points`, seeded) embeddings, coloured by the 10 commonest names of a rank."""
    from sklearn.decomposition import PCA

    from aam.evaluate.plots import plt, save_figure

    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(vectors))[:max_points])
    xy = PCA(n_components=2, random_state=0).fit_transform(vectors[pick])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    labels = None
    if color_rank and color_rank in frame.columns:
        lab = frame.set_index(frame["id"].astype(str))[color_rank]
        labels = lab.reindex(np.asarray(ids, dtype=str)[pick]).fillna("(unknown)").to_numpy()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    else:
        top = pd.Series(labels).value_counts().index[:10]
        for name in top:
            m = labels == name
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.7, label=str(name))
        rest = ~np.isin(labels, top)
        if rest.any():
            ax.scatter(xy[rest, 0], xy[rest, 1], s=3, alpha=0.4, c="lightgrey", label="other")
        ax.legend(fontsize=7, markerscale=3, loc="best", title=color_rank)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Sequence embeddings (PCA), {len(pick)} sequences")
    save_figure(fig, path)


def plot_history(history_csv: Path, path: Path, title: str = "") -> None:
    """Training and validation loss per epoch (an empty frame when the run wrote no history)."""
    from aam.evaluate.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    if history_csv.exists():
        h = pd.read_csv(history_csv)
        for col in ("train/loss", "val/loss"):
            if col in h.columns and h[col].notna().any():
                ax.plot(h["epoch"] + 1, h[col], marker="o", label=col)
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss history")
    save_figure(fig, path)


def plot_codebook(counts: list[int] | None, path: Path) -> None:
    """Code use on the test blocks, codes sorted by frequency (empty for a plain autoencoder)."""
    from aam.evaluate.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    if counts:
        c = np.sort(np.asarray(counts, dtype=float))[::-1]
        ax.bar(np.arange(len(c)), c / max(c.sum(), 1.0), width=1.0)
        ax.set_title(f"codebook use: {(c > 0).sum()} of {len(c)} codes")
    else:
        ax.set_title("quantizer off (plain autoencoder): no codes")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("fraction of test latents")
    save_figure(fig, path)


def plot_threshold_pr(panels: dict[str, dict[str, dict]], path: Path, suptitle: str = "") -> None:
    """Precision against recall over confidence thresholds, one panel per title.

    panels: title -> classifier label -> {"curve": [{"precision", "recall"}, ...] in threshold order,
    "default": {"precision", "recall", "f"} at the classifier's default threshold, "threshold"}.
    A threshold at which no read is assigned (precision and recall both 0) has no precision and is
    left out, so that the curve does not drop to the origin.
    """
    from aam.evaluate.plots import COLORS, plt, save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.6), squeeze=False)
    for ax, (title, classifiers) in zip(axes[0], panels.items(), strict=True):
        for color, (label, c) in zip(COLORS, classifiers.items(), strict=False):
            curve = [q for q in c["curve"] if q["precision"] > 0 or q["recall"] > 0]
            ax.plot([q["recall"] for q in curve], [q["precision"] for q in curve], "-",
                    color=color, alpha=0.8, label=label)
            d = c["default"]
            ax.plot(d["recall"], d["precision"], "o", color=color, markersize=8,
                    label=f"at {c['threshold']:g}: F {d['f']:.3f}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    save_figure(fig, path)
