"""Train / validation / test split, grouped (no group in two splits) and optionally stratified.

Seeded greedy assignment (the idea of scikit-learn's StratifiedGroupKFold, for unequal split
sizes): groups are shuffled with the seed, then taken largest first, and each goes to the split
where it most reduces the squared distance between what the splits hold and their targets:

    cost = sum_s ( (n_s - f_s N)^2 / N  +  sum_c (n_sc - f_s N_c)^2 / N_c )

with n_s the samples of split s, n_sc those of class c, f_s the split's fraction and N, N_c the
totals. Without stratification only the first term counts. A group is all samples that share a
value of the group column; a sample whose group is missing is a group of its own. For
stratification a missing class is a class of its own.

Pretraining (`pretrain_split`): every table sample, a grouped validation part, no test part.
Cross-validation (`cv_folds`): repeated K-fold test folds by whole groups, stratified, each with a
validation part carved from its training groups; `fold_splits` turns one fold into a splits.tsv.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aam.errors import InputError

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
    the name of a classification target (InputError for an unknown or regression target).
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
                raise InputError(f"split.stratify: target '{setting}' is a {kind}, not a classification")
            return target["column"]
    raise InputError(f"split.stratify: no target named '{setting}'")


def pretrain_split(
    samples: Sequence[str], groups: Sequence[object] | None, val_fraction: float, seed: int
) -> pd.DataFrame:
    """Self-supervised pretraining's own train/val split of every table sample (no test split).

    Pretraining reads no target, so it uses every sample of the table, also those without metadata
    (`groups` None/NaN there: each its own group); a seeded, grouped `val_fraction` of them only
    measures its validation losses. Not stratified: there is no target to balance.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"pretrain_val_fraction must lie in (0, 1), got {val_fraction!r}")
    if len({f"\0{s}" if g is None or _missing(g) else str(g) for s, g in
            zip(samples, groups if groups is not None else [None] * len(samples), strict=True)}) < 2:
        raise ValueError("pretraining needs at least 2 groups of samples (one for validation)")
    split = grouped_split(samples, groups, None, {"train": 1 - val_fraction, "val": val_fraction}, seed)
    return _at_least_one_val_group(split, seed)


def _at_least_one_val_group(split: pd.DataFrame, seed: int, strata: Sequence[object] | None = None) -> pd.DataFrame:
    """Make sure validation can do its job: at least one group, and every class of the training part.

    With few, large groups the greedy split can leave val empty (one group would overshoot its share
    more than nothing undershoots it), or, when each subject has one class, without some class, so
    that a validation AUROC is undefined and early stopping on it fails. For each class the training
    part holds in at least two groups but val lacks (or, without strata, when val is empty), the
    smallest such training group (ties in seeded order) moves to val.
    """
    keys = [f"\0{s}" if g is None else str(g) for s, g in zip(split["sample"], split["group"], strict=True)]
    labels = [None] * len(keys) if strata is None else [None if _missing(c) else str(c) for c in strata]
    out = split.copy()
    sizes = pd.Series(keys).value_counts()
    rng = np.random.default_rng(seed)

    def move_one(wanted: str | None) -> None:
        current = out["split"].to_numpy()
        candidates = sorted({k for k, sp, c in zip(keys, current, labels, strict=True)
                             if sp == "train" and (wanted is None or c == wanted)})
        train_groups = {k for k, sp in zip(keys, current, strict=True) if sp == "train"}
        if len(candidates) < 2 or len(train_groups) < 2:
            return  # moving it would empty the training part of that class (or of everything)
        order = rng.permutation(len(candidates))
        pick = min((candidates[i] for i in order), key=lambda k: sizes[k])
        out.loc[[k == pick for k in keys], "split"] = "val"

    if strata is not None:
        for cls in sorted({c for c in labels if c is not None}):
            current = out["split"].to_numpy()
            in_val = any(c == cls and sp == "val" for c, sp in zip(labels, current, strict=True))
            if not in_val:
                move_one(cls)
    if not (out["split"] == "val").any():
        move_one(None)
    return out


CV_COLUMNS = ("sample", "repeat", "fold", "split")


def fold_name(repeat: int, fold: int) -> str:
    """The `{fold}` wildcard of one (repeat, fold): ``r0f3`` is fold 3 of repeat 0."""
    return f"r{repeat}f{fold}"


def repeat_folder(repeat: int) -> str:
    """The folder under a dataset's results that one repeat's cv-split job owns (``cv/split/r1``)."""
    return f"cv/split/r{repeat}"


def fold_file(name: str) -> str:
    """Where a fold's splits.tsv lies under a dataset's results: in its repeat's folder
    (``r1f3`` -> ``cv/split/r1/r1f3.tsv``)."""
    return f"{repeat_folder(parse_fold_name(name)[0])}/{name}.tsv"


def fold_names(folds: int, repeats: int) -> list[str]:
    """Every fold's name, repeat by repeat (``r0f0 ... r0f{K-1}, r1f0, ...``)."""
    return [fold_name(r, f) for r in range(repeats) for f in range(folds)]


def cv_folds(
    samples: pd.DataFrame,
    group_column: str | None,
    stratify: str | None,
    folds: int,
    repeats: int,
    seed: int,
    val_fraction: float = 0.15,
    first_repeat: int = 0,
) -> pd.DataFrame:
    """Repeated, grouped, stratified K-fold assignment: columns ``sample, repeat, fold, split``.

    One row per sample per (repeat, fold), with ``split`` in train/val/test. In each repeat every
    sample is in the test split of exactly one fold; the other folds' samples are the training part,
    from which `val_fraction` of the samples is carved as validation (by `grouped_split`, so by
    whole groups and stratified too; at least one group, however large, so that fine-tuning has
    early stopping). A group (a value of `group_column`; a sample whose value is
    missing is a group of its own) never sits in two of train/val/test within a fold.

    Test folds come from scikit-learn's StratifiedGroupKFold, shuffled with a seed derived from
    (`seed`, repeat), so a repeat's folds do not depend on how many repeats are made: repeats
    `first_repeat` ... `first_repeat` + `repeats` - 1 are those of a run of more repeats (the
    workflow makes each repeat in a job of its own, so that more repeats add jobs and redo none).
    It is used without stratification too, with one class for all samples: it then
    puts each group, in seeded order, into the fold with the fewest samples, whereas GroupKFold's
    shuffle mode balances the number of groups per fold, not of samples (subjects have 1 to dozens
    of samples). Validation uses `grouped_split` because scikit-learn has no grouped, stratified
    split for one unequal fraction. Raises ValueError with one line for settings that cannot work.
    """
    if "sample" not in samples.columns:
        raise ValueError("cv: the samples table has no 'sample' column")
    for role, column in (("group column", group_column), ("stratify column", stratify)):
        if column and column not in samples.columns:
            raise ValueError(f"cv: the samples table has no {role} '{column}'")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"cv: folds must be an integer >= 2, got {folds!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"cv: repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(first_repeat, bool) or not isinstance(first_repeat, int) or first_repeat < 0:
        raise ValueError(f"cv: the first repeat must be an integer >= 0, got {first_repeat!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"cv: val_fraction must lie in [0, 1), got {val_fraction!r}")
    names = [str(s) for s in samples["sample"]]
    if len(set(names)) != len(names):
        raise ValueError("cv: duplicate sample names in the samples table")
    groups = samples[group_column].tolist() if group_column else [None] * len(names)
    group_keys = [f"\0{s}" if _missing(g) else str(g) for s, g in zip(names, groups, strict=True)]
    n_groups = len(set(group_keys))
    if folds > n_groups:
        what = f"groups ('{group_column}')" if group_column else "samples"
        raise ValueError(f"cv: {folds} folds but only {n_groups} {what}; use at most {n_groups} folds")
    strata = samples[stratify].tolist() if stratify else None
    classes = (
        np.zeros(len(names), dtype=np.int64)
        if strata is None
        else pd.factorize(pd.Series([MISSING_CLASS if _missing(c) else str(c) for c in strata]), sort=True)[0]
    )

    from sklearn.model_selection import StratifiedGroupKFold  # import here: a slow import

    group_codes = pd.factorize(pd.Series(group_keys), sort=True)[0]
    parts = []
    for repeat in range(first_repeat, first_repeat + repeats):
        state = int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])
        kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=state)
        with warnings.catch_warnings():  # "least populated class has fewer members than folds": fine
            warnings.simplefilter("ignore", UserWarning)
            tests = [test for _, test in kfold.split(np.zeros(len(names)), classes, group_codes)]
        for fold, test in enumerate(tests):
            if len(test) == 0:
                raise ValueError(f"cv: repeat {repeat} fold {fold} got no test samples; use fewer folds")
            split = np.full(len(names), "train", dtype=object)
            split[test] = "test"
            if val_fraction > 0:
                split = _carve_val(split, names, groups, strata, val_fraction, [seed, repeat, fold])
            parts.append(pd.DataFrame({"sample": names, "repeat": repeat, "fold": fold, "split": split}))
    return pd.concat(parts, ignore_index=True)[list(CV_COLUMNS)]


def _carve_val(split, names, groups, strata, val_fraction, seed_parts) -> np.ndarray:
    """Move `val_fraction` of the training samples, by whole groups and stratified, to ``val``."""
    train = np.flatnonzero(split == "train")
    groups_train = [groups[i] for i in train]
    if len({f"\0{names[i]}" if _missing(groups[i]) else str(groups[i]) for i in train}) < 2:
        raise ValueError("cv: a fold's training part has fewer than 2 groups; no validation can be carved")
    seed = int(np.random.SeedSequence(seed_parts).generate_state(1)[0])
    inner = grouped_split(
        [names[i] for i in train],
        groups_train,
        None if strata is None else [strata[i] for i in train],
        {"train": 1 - val_fraction, "val": val_fraction},
        seed,
    )
    inner = _at_least_one_val_group(inner, seed, None if strata is None else [strata[i] for i in train])
    out = split.copy()
    out[train] = inner["split"].to_numpy()
    return out


def fold_splits(assignments: pd.DataFrame, samples: pd.DataFrame, group_column: str | None, name: str) -> pd.DataFrame:
    """One fold's splits.tsv frame (``sample, split, group``, as the split stage writes) from `cv_folds`.

    `name` is the fold's wildcard (``r0f3``); rows follow the order of `samples`.
    """
    repeat, fold = parse_fold_name(name)
    part = assignments[(assignments["repeat"] == repeat) & (assignments["fold"] == fold)]
    if part.empty:
        raise ValueError(f"cv: no fold {name} in the fold assignments")
    by_sample = dict(zip(part["sample"], part["split"], strict=True))
    names = [str(s) for s in samples["sample"]]
    groups = samples[group_column].tolist() if group_column else [None] * len(names)
    return pd.DataFrame(
        {
            "sample": names,
            "split": [by_sample[s] for s in names],
            "group": [None if _missing(g) else str(g) for g in groups],
        }
    )


def parse_fold_name(name: str) -> tuple[int, int]:
    """``r0f3`` -> (0, 3) (ValueError for anything else)."""
    match = re.fullmatch(r"r(\d+)f(\d+)", name)
    if match is None:
        raise ValueError(f"cv: bad fold name {name!r}; expected e.g. r0f3")
    return int(match.group(1)), int(match.group(2))
