"""The random-forest baseline on real data: test AUROC on the workflow's split and grouped K-fold CV.

Usage (defaults: the IBD 2538 demo, target `ibd`, grouped by `host_subject_id`):

    .venv/bin/python scripts/bench_random_forest.py [--results results/ibd2538] [--folds 5]

It uses the workflow's artifacts where they exist (`rarefied/table.biom`, `split/splits.tsv`); without
them it rarefies the raw table itself (one seeded draw without replacement at --depth, samples
below it dropped) and reports only the cross-validation. The forest is aam.evaluate.baselines'
q2-sample-classifier recipe (500 trees on relative abundances). The split's forest trains on
train + val, as the evaluate stage does. Cross-validation: StratifiedGroupKFold (shuffled, seeded),
so no subject spans two folds; AUROC per fold, mean +- sample standard deviation, beside the
reference in DESIGN.md (0.66 +- 0.17), and the AUROC of all out-of-fold predictions pooled. With
~23 subjects the fold assignment dominates the variance (dropping 5 samples moves the CV mean by
0.1), so `--repeats` averages over several shuffles.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import biom
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from aam.evaluate.baselines import plain_forest, relative_abundance
from aam.evaluate.metrics import auroc

REFERENCE = (0.66, 0.17)  # DESIGN.md: RF, 5-fold CV grouped by subject, AUC for `ibd`


def rarefy(counts: np.ndarray, depth: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One multivariate hypergeometric draw of `depth` reads per sample; returns (kept rows, table)."""
    rng = np.random.default_rng(seed)
    totals = counts.sum(axis=1)
    keep = np.flatnonzero(totals >= depth)
    out = np.zeros((keep.size, counts.shape[1]), dtype=np.int64)
    for i, row in enumerate(keep):
        nz = np.flatnonzero(counts[row])
        out[i, nz] = rng.multivariate_hypergeometric(counts[row, nz].astype(np.int64), depth)
    return keep, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results/ibd2538", help="the workflow's results/{dataset}")
    p.add_argument("--table", default="data/demo/ibd2538/table.biom", help="raw table (fallback)")
    p.add_argument("--metadata", default="data/demo/ibd2538/metadata.tsv")
    p.add_argument("--target", default="ibd")
    p.add_argument("--group", default="host_subject_id")
    p.add_argument("--depth", type=int, default=5000, help="fallback rarefaction depth")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1, help="CV repeats with seeds seed, seed+1, ...")
    p.add_argument("--n-estimators", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    results = Path(args.results)
    rarefied = results / "rarefied" / "table.biom"
    if rarefied.exists():
        table = biom.load_table(str(rarefied))
        samples = np.array([str(s) for s in table.ids()], dtype=object)
        counts = table.matrix_data.T.toarray()
        source = str(rarefied)
    else:
        table = biom.load_table(args.table)
        keep, counts = rarefy(table.matrix_data.T.toarray(), args.depth, args.seed)
        samples = np.array([str(s) for s in table.ids()], dtype=object)[keep]
        source = f"{args.table} rarefied here to {args.depth} reads"
    meta = pd.read_csv(args.metadata, sep="\t", dtype=str, keep_default_na=False)
    meta = meta.set_index(meta.columns[0])
    y = meta[args.target].reindex(samples).to_numpy(dtype=object)
    groups = meta[args.group].reindex(samples).to_numpy(dtype=object)
    classes = sorted(set(y) - {None})
    if len(classes) != 2:
        raise SystemExit(f"expected a binary target, found classes {classes}")
    x = relative_abundance(counts)
    forest = {"n_estimators": args.n_estimators, "seed": args.seed, "n_jobs": args.threads,
              "classes": classes}
    print(f"table: {source}: {x.shape[0]} samples x {x.shape[1]} features; "
          f"{args.target}: {pd.Series(y).value_counts().to_dict()}; "
          f"{len(set(groups))} groups ({args.group})")
    print(f"forest: {args.n_estimators} trees on relative abundances, seed {args.seed}")

    splits_path = results / "split" / "splits.tsv"
    if splits_path.exists() and rarefied.exists():
        splits = pd.read_csv(splits_path, sep="\t", dtype=str, keep_default_na=False)
        split_of = dict(zip(splits["sample"], splits["split"], strict=True))
        part = np.array([split_of.get(s, "") for s in samples], dtype=object)
        train, test = np.isin(part, ["train", "val"]), part == "test"
        t0 = time.perf_counter()
        res = plain_forest(x[train], y[train], x[test], "classification", **forest)
        print(f"workflow split ({splits_path}): train+val {train.sum()}, test {test.sum()} samples, "
              f"{len(set(groups[test]))} test subjects: test AUROC {auroc(y[test], res.proba, classes):.3f} "
              f"(positive {classes[1]}; {time.perf_counter() - t0:.1f} s)")
    else:
        print(f"workflow split: {splits_path} or {rarefied} not found, skipped")

    all_scores, pooled_scores = [], []
    for r in range(args.repeats):
        cv = StratifiedGroupKFold(n_splits=args.folds, shuffle=True, random_state=args.seed + r)
        scores = []
        oof = np.zeros((len(y), len(classes)))  # out-of-fold probabilities, for a pooled AUROC
        t0 = time.perf_counter()
        for k, (tr, te) in enumerate(cv.split(x, y, groups)):
            res = plain_forest(x[tr], y[tr], x[te], "classification", **forest)
            oof[te] = res.proba
            score = auroc(y[te], res.proba, classes)
            scores.append(np.nan if score is None else score)
            print(f"  CV seed {args.seed + r} fold {k + 1}: train {len(tr)}, test {len(te)} "
                  f"({len(set(groups[te]))} subjects), AUROC {scores[-1]:.3f}")
        scores = np.array(scores)
        all_scores.append(scores)
        pooled_scores.append(auroc(y, oof, classes))
        print(f"{args.folds}-fold CV grouped by {args.group} (seed {args.seed + r}): AUROC "
              f"{np.nanmean(scores):.3f} +- {np.nanstd(scores, ddof=1):.3f} "
              f"(reference {REFERENCE[0]:.2f} +- {REFERENCE[1]:.2f}); pooled out-of-fold AUROC "
              f"{pooled_scores[-1]:.3f}; {time.perf_counter() - t0:.1f} s")
    if args.repeats > 1:
        means = np.array([np.nanmean(s) for s in all_scores])
        pooled = np.concatenate(all_scores)
        print(f"{args.repeats} repeats: mean AUROC {means.mean():.3f} (repeat means {means.min():.3f}"
              f"-{means.max():.3f}), fold sd {np.nanstd(pooled, ddof=1):.3f}; pooled out-of-fold AUROC "
              f"{np.mean(pooled_scores):.3f}")

if __name__ == "__main__":
    main()
