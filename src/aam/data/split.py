"""Train / validation / test split, grouped (no group in two splits) and optionally stratified.

Seeded greedy assignment (the idea of scikit-learn's StratifiedGroupKFold, for unequal split
sizes): groups are shuffled with the seed, then taken largest first, and each goes to the split
where it most reduces the squared distance between what the splits hold and their targets:

    cost = sum_s ( (n_s - f_s N)^2 / N  +  sum_c (n_sc - f_s N_c)^2 / N_c )

with n_s the samples of split s, n_sc those of class c, f_s the split's fraction and N, N_c the
totals. Without stratification only the first term counts. A group is all samples that share a
value of the group column; a sample whose group is missing is a group of its own. For
stratification a missing class is a class of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
MISSING_CLASS = "<missing>"


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Fractions for train/val/test in [0, 1] that sum to 1, train > 0 (ValueError otherwise)."""
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; use {', '.join(SPLITS)}")
    out = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    if any(not 0 <= f <= 1 for f in out.values()):
        raise ValueError(f"split fractions must lie in [0, 1], got {out}")
    if abs(sum(out.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {sum(out.values()):g}")
    if out["train"] <= 0:
        raise ValueError("the train fraction must be positive")
    return out


def grouped_split(
    samples: Sequence[str],
    groups: Sequence[object] | None,
    strata: Sequence[object] | None,
    fractions: Mapping[str, float],
    seed: int,
) -> pd.DataFrame:
    """Assign each sample to train/val/test; returns columns ``sample``, ``split``, ``group``.

    `groups` and `strata` align with `samples`; None/NaN entries mean "no group" (the sample is
    its own group) and "missing class". `groups=None` makes every sample its own group,
    `strata=None` turns stratification off.
    """
    fractions = check_fractions(fractions)
    n = len(samples)
    if n == 0:
        raise ValueError("no samples to split")
    samples = [str(s) for s in samples]
    group_keys = [
        f"\0{s}" if groups is None or _missing(g) else str(g)
        for s, g in zip(samples, groups if groups is not None else [None] * n, strict=True)
    ]
    group_codes, group_names = pd.factorize(pd.Series(group_keys), sort=False)
    if strata is None:
        class_codes = np.zeros(n, dtype=np.int64)
        n_classes = 1
    else:
        classes = [MISSING_CLASS if _missing(c) else str(c) for c in strata]
        class_codes, class_names = pd.factorize(pd.Series(classes), sort=True)
        n_classes = len(class_names)
    n_groups = len(group_names)
    # class counts per group: [groups, classes]
    per_group = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(per_group, (group_codes, class_codes), 1)
    sizes = per_group.sum(axis=1)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties in seeded order

    open_splits = [i for i, s in enumerate(SPLITS) if fractions[s] > 0]
    target_frac = np.array([fractions[s] for s in SPLITS])
    class_totals = per_group.sum(axis=0).astype(np.float64)
    held = np.zeros((len(SPLITS), n_classes), dtype=np.float64)  # samples per split and class
    assignment = np.empty(n_groups, dtype=np.int64)
    for g in order:
        vec = per_group[g]
        best, best_cost = open_splits[0], np.inf
        for s in open_splits:
            held[s] += vec
            cost = _cost(held, target_frac, class_totals, n, strata is not None)
            held[s] -= vec
            if cost < best_cost - 1e-12:
                best, best_cost = s, cost
        held[best] += vec
        assignment[g] = best
    split_names = np.array(SPLITS)[assignment[group_codes]]
    group_out = [None if k.startswith("\0") else k for k in group_keys]
    return pd.DataFrame({"sample": samples, "split": split_names, "group": group_out})


def _cost(held, target_frac, class_totals, n, stratify) -> float:
    sizes = held.sum(axis=1)
    cost = float(np.sum((sizes - target_frac * n) ** 2) / n)
    if stratify:
        diff = held - target_frac[:, None] * class_totals[None, :]
        cost += float(np.sum(diff**2 / np.maximum(class_totals, 1)[None, :]))
    return cost


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def split_summary(splits: pd.DataFrame, strata: Sequence[object] | None) -> pd.DataFrame:
    """Counts per split (and per class when stratified): columns split, class, samples, groups.

    The class ``all`` row of each split counts every sample in it.
    """
    frame = splits.copy()
    frame["group_key"] = [
        f"\0{s}" if _missing(g) else str(g) for s, g in zip(frame["sample"], frame["group"], strict=True)
    ]
    frame["class"] = "all" if strata is None else [MISSING_CLASS if _missing(c) else str(c) for c in strata]
    rows = []
    for split in SPLITS:
        part = frame[frame["split"] == split]
        n_groups = part["group_key"].nunique()
        rows.append({"split": split, "class": "all", "samples": len(part), "groups": n_groups})
        if strata is not None:
            for cls in sorted(frame["class"].unique()):
                sub = part[part["class"] == cls]
                rows.append(
                    {"split": split, "class": cls, "samples": len(sub), "groups": sub["group_key"].nunique()}
                )
    return pd.DataFrame(rows, columns=["split", "class", "samples", "groups"])


def stratify_column(split_settings: Mapping, targets: Sequence[Mapping]) -> str | None:
    """The metadata column to stratify by, from the config's ``split.stratify`` and a dataset's targets.

    ``"auto"`` (default): the first classification target's column, or none; null: none; otherwise
    the name of a classification target (ValueError for an unknown or regression target).
    """
    setting = split_settings.get("stratify", "auto")
    if setting is None:
        return None
    if setting == "auto":
        return next((t["column"] for t in targets if t["type"] == "classification"), None)
    for target in targets:
        if target["name"] == setting:
            if target["type"] != "classification":
                kind = target["type"]
                raise ValueError(f"split.stratify: target '{setting}' is a {kind}, not a classification")
            return target["column"]
    raise ValueError(f"split.stratify: no target named '{setting}'")
