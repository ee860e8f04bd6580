"""Taxonomy classifiers on new reads as Bokulich et al. 2018 (tax-credit) evaluate them: `aam classify`
beside q2-feature-classifier's default naive Bayes (7-mers) and the 8-mer per-rank naive Bayes.

Protocols (`aam.evaluate.taxonomy_eval` defines folds and scores): K-fold cross-validation over the
reference with random folds, and novel-taxa folds in which whole genera (and, separately, whole
species) are left out of training. Every classifier is trained and tested on the same folds. Scores:
precision, recall and F-measure per rank, pooled over the folds' test reads, at each classifier's
default confidence thresholds (aam: `KnnSettings().rank_thresholds()`, species at a fraction of the
others; both naive Bayes: q2's 0.7) and over a grid of thresholds, one for every rank (the
precision-recall curves, `pr_curve.png`). Speed: training seconds and classification reads/s of
each classifier on one thread, summed over every fold of the run, and their ratios to q2's naive
Bayes, all measured in this run.

    .venv/bin/python scripts/eval_taxonomy.py --out-dir eval_taxonomy        # 20k reads, 5 folds
    .venv/bin/python scripts/eval_taxonomy.py --n-reads 5000 --folds 3 --out-dir e5k   # ~10 min

`--tune` evaluates on a sample drawn from the reads *outside* the `--n-reads` sample of `--seed`
(so it needs `--n-reads` at most half the reference): the split on which aam's default threshold
was chosen, never the one that scores it.

`--test-fasta/--test-labels` (an external test set: `new_reads_gg13_8.py` builds Greengenes reads
disjoint from the reference) replaces the folds: every classifier is trained once on the whole
reference, less any sequence identical to a test read (their number is printed), and tested once
on a `--seed`ed sample of `--n-test` test reads, at its default threshold (nothing is chosen on
them). Scored as the random folds, and as novel taxa on the test reads whose genus (species) the
reference lacks while holding its family (genus); besides, each rank's accuracy of the best call
and at the default threshold, on all reads naming the rank and on those whose taxon training holds.

    .venv/bin/python scripts/eval_taxonomy.py --test-fasta new_reads/reads.fasta \
        --test-labels new_reads/taxonomy.tsv --n-test 10000 --out-dir eval_new_reads

Every protocol also gives the paired bootstrap over test reads (2,000 resamples) of aam's genus F
(novel taxa: F) minus each naive Bayes's. Outputs under `--out-dir`: `metrics.json`, `tables.md`,
`pr_curve.png`. Results: README.md (Taxonomy), docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gg13_8_v4"
RANK_NAMES = ["kingdom", "phylum", "class", "order", "family", "genus", "species"]
CLASSIFIERS = {"aam": "aam classify", "nb7": "naive Bayes, 7-mers (q2 default)", "nb8": "naive Bayes, 8-mers"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fasta", default=str(DATA / "v4_20k.fasta"))
    p.add_argument("--labels", default=str(DATA / "v4_20k.taxonomy.tsv"))
    p.add_argument("--n-reads", type=int, default=0, help="reads sampled from the reference (0: all)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--novel-ranks", nargs="*", default=["genus", "species"], choices=RANK_NAMES[1:])
    p.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS), choices=list(CLASSIFIERS))
    p.add_argument("--aam-settings", default="{}", help="KnnSettings of aam classify as JSON")
    p.add_argument("--tune", action="store_true", help="evaluate on reads outside the --seed sample")
    p.add_argument("--test-fasta", help="an external test set's reads: trained once on all of --fasta")
    p.add_argument("--test-labels", help="their taxonomy (with --test-fasta)")
    p.add_argument("--n-test", type=int, default=0, help="test reads sampled from --test-fasta (0: all)")
    p.add_argument("--out-dir", required=True)
    args = p.parse_args()
    if args.test_fasta and (not args.test_labels or args.tune):
        p.error("--test-fasta needs --test-labels, and excludes --tune (nothing is tuned on a test set)")
    inputs = {"--fasta": args.fasta, "--labels": args.labels}
    if args.test_fasta:
        inputs |= {"--test-fasta": args.test_fasta, "--test-labels": args.test_labels}
    skip_if_absent(__file__, inputs)

    from aam.evaluate.taxonomy import KnnSettings
    from aam.evaluate.taxonomy_nb import Q2_CONFIDENCE
    from aam.threads import use_threads

    use_threads(1)
    settings = KnnSettings.from_dict(json.loads(args.aam_settings))
    seqs, lineage = _sample(args.fasta, args.labels, args.n_reads, args.seed, args.tune)
    thresholds = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    defaults = {"aam": settings.rank_thresholds(len(RANK_NAMES)), "nb7": Q2_CONFIDENCE, "nb8": Q2_CONFIDENCE}
    results: dict = {"args": vars(args), "aam_settings": vars(settings), "n_reads": len(seqs)}
    results["protocols"] = {}
    speed = {name: {"fit_s": 0.0, "predict_s": 0.0, "reads": 0} for name in args.classifiers}
    if args.test_fasta:
        results |= _external(seqs, lineage, args, settings, speed, thresholds, defaults)
    else:
        tuning = " (tuning sample)" if args.tune else ""
        print(f"{len(seqs)} reads, {args.folds} folds, seed {args.seed}{tuning}")
    for protocol, folds in [] if args.test_fasta else _protocols(lineage, args):
        calls, truth = _run_folds(seqs, lineage, folds, args.classifiers, settings, speed)
        res = _score(calls, truth, _novel_rank(protocol), thresholds, defaults, [len(t) for t, _ in folds])
        if folds[0][1] is not None:
            res["left_out_taxa"] = int(sum(len(taxa) for _, taxa in folds))
        results["protocols"][protocol] = res
        print(_table(protocol, res, args.classifiers), flush=True)
    results["speed"] = _speed(speed)
    print(_speed_table(results["speed"]))
    _write(args.out_dir, results, args.classifiers)


def _sample(fasta: str, labels_tsv: str, n: int, seed: int, tune: bool) -> tuple[list[str], np.ndarray]:
    """The reads (with a kingdom) and their (n, 7) lineages: all, or a seeded sample."""
    from aam.data.seq_collection import read_labels
    from aam.io.fasta import read_fasta

    records = read_fasta(fasta)
    labels = read_labels(labels_tsv).reindex(columns=RANK_NAMES)
    ids = [i for i in records if i in labels.index and labels.at[i, "kingdom"] is not None]
    ids = sorted(ids)
    if n:
        if tune and 2 * n > len(ids):
            sys.exit(f"--tune needs --n-reads <= {len(ids) // 2} (half of the {len(ids)} labelled reads)")
        order = np.random.default_rng(seed).permutation(len(ids))
        pick = order[n : 2 * n] if tune else order[:n]
        ids = [ids[i] for i in np.sort(pick)]
    lineage = labels.loc[ids].astype(object).where(labels.loc[ids].notna(), None).to_numpy(dtype=object)
    return [records[i] for i in ids], lineage


def _protocols(lineage: np.ndarray, args):
    """(name, [(test indices, left-out taxa or None)]) of every protocol of the run."""
    from aam.evaluate.taxonomy_eval import novel_taxa_folds, random_folds

    yield "random", [(test, None) for test in random_folds(len(lineage), args.folds, args.seed)]
    for rank in args.novel_ranks:
        yield f"novel {rank}", novel_taxa_folds(lineage, RANK_NAMES.index(rank), args.folds, args.seed)


def _novel_rank(protocol: str) -> int | None:
    """The left-out rank of a novel-taxa protocol ("novel genus", "new reads: genus unseen")."""
    return next((RANK_NAMES.index(r) for r in RANK_NAMES[1:] if f" {r}" in protocol), None)


def _external(ref_seqs, ref_lineage, args, settings, speed, thresholds, defaults) -> dict:
    """The external test set's protocols: trained once on the reference less the sequences
    identical to a test read, tested once on the sampled test reads (see the docstring)."""
    from aam.evaluate.taxonomy_eval import identical_to_any, taxa_in_training

    test_seqs, test_lineage = _sample(args.test_fasta, args.test_labels, args.n_test, args.seed, False)
    keep = ~identical_to_any(ref_seqs, test_seqs)
    train_seqs, train_lineage = [s for s, k in zip(ref_seqs, keep, strict=True) if k], ref_lineage[keep]
    print(f"{len(test_seqs)} test reads (seed {args.seed}); training on {len(train_seqs)} reference reads "
          f"({int((~keep).sum())} identical to a test read dropped)", flush=True)
    test = np.arange(len(train_seqs), len(train_seqs) + len(test_seqs))
    calls, truth = _run_folds([*train_seqs, *test_seqs], np.concatenate([train_lineage, test_lineage]),
                              [(test, None)], args.classifiers, settings, speed)
    res = _score(calls, truth, None, thresholds, defaults, [len(test)])
    res["accuracy"] = _accuracy(calls, truth, train_lineage, defaults)
    protocols = {"new reads": res}
    for rank in args.novel_ranks:
        r = RANK_NAMES.index(rank)
        unseen = taxa_in_training(train_lineage, truth, r)[1]
        sub = {n: _rows(c, unseen) for n, c in calls.items()}
        protocols[f"new reads: {rank} unseen"] = _score(sub, truth[unseen], r, thresholds, defaults,
                                                        [int(unseen.sum())])
        paths = {tuple(row[: r + 1]) for row in truth[unseen]}
        protocols[f"new reads: {rank} unseen"]["left_out_taxa"] = len(paths)
    for protocol, p in protocols.items():
        print(_table(protocol, p, args.classifiers), flush=True)
    counts = {"train_reads": len(train_seqs), "dropped_identical": int((~keep).sum())}
    return {"external": counts | {"test_reads": len(test)}, "protocols": protocols}


def _rows(calls, rows):
    """The calls of some reads (a mask or indices)."""
    from aam.evaluate.taxonomy_nb import RankCalls

    return RankCalls(*(a[rows] for a in calls))


def _accuracy(calls, truth, train_lineage, defaults) -> dict:
    """Per classifier and rank: right / reads naming the rank, of the best call (threshold 0) and at
    the default threshold, on all test reads and on those whose taxon at the rank training holds."""
    from aam.evaluate.taxonomy_eval import random_fold_scores, taxa_in_training

    seen_at = {r: taxa_in_training(train_lineage, truth, r)[0] for r in range(1, len(RANK_NAMES))}
    out: dict = {}
    for name, c in calls.items():
        out[name] = {}
        for r, rank in enumerate(RANK_NAMES[1:], 1):
            seen = seen_at[r]
            out[name][rank] = {
                f"{subset} at {label}": random_fold_scores(_rows(c, rows), truth[rows], t)[r]["recall"]
                for subset, rows in (("all", slice(None)), ("seen", seen))
                for label, t in (("0", 0.0), ("default", defaults[name]))
            } | {"reads": int(sum(v is not None for v in truth[:, r])), "seen_reads": int(seen.sum())}
    return out


def _classifier(name: str, settings):
    from aam.evaluate.taxonomy import KnnTaxonomyClassifier
    from aam.evaluate.taxonomy_nb import PerRankNaiveBayes, Q2NaiveBayes, RankCalls

    if name == "nb7":
        return Q2NaiveBayes()
    if name == "nb8":
        return PerRankNaiveBayes()

    class Aam:  # `aam classify` without a model: `search: kmer` needs the reference only
        def fit(self, seqs, lineage):
            self.knn = KnnTaxonomyClassifier(None, lineage, seqs, settings)
            return self

        def calls(self, seqs):
            parts = [self.knn.vote(None, seqs[i : i + 2048]) for i in range(0, len(seqs), 2048)]
            return RankCalls(*(np.concatenate(p) for p in zip(*parts, strict=True)))

    return Aam()


def _run_folds(seqs, lineage, folds, names, settings, speed):
    """Each classifier's calls on every fold's test reads (pooled in fold order), and the truth."""
    from aam.evaluate.taxonomy_nb import RankCalls

    calls = {name: [] for name in names}
    for test, _ in folds:
        train = np.setdiff1d(np.arange(len(seqs)), test)
        train_seqs, test_seqs = [seqs[i] for i in train], [seqs[i] for i in test]
        for name in names:
            t0 = time.perf_counter()
            clf = _classifier(name, settings).fit(train_seqs, lineage[train])
            t1 = time.perf_counter()
            calls[name].append(clf.calls(test_seqs))
            speed[name]["fit_s"] += t1 - t0
            speed[name]["predict_s"] += time.perf_counter() - t1
            speed[name]["reads"] += len(test)
            del clf
    truth = lineage[np.concatenate([test for test, _ in folds])]
    pooled = {n: RankCalls(*(np.concatenate(p) for p in zip(*c, strict=True))) for n, c in calls.items()}
    return pooled, truth


def _score(calls, truth, rank, thresholds, defaults, sizes) -> dict:
    """Scores at the defaults and over the thresholds, per fold, and the bootstrap of aam's lead:
    per rank (`rank` None) or as novel taxa left out at `rank`."""
    from aam.evaluate.taxonomy_eval import (
        bootstrap_f_difference,
        novel_taxa_scores,
        random_fold_scores,
        read_hits,
    )

    out: dict = {"folds": len(sizes), "test_reads": len(truth)}
    for name, c in calls.items():

        def at(t, c=c):
            if rank is None:
                return dict(zip(RANK_NAMES, random_fold_scores(c, truth, t), strict=True))
            return novel_taxa_scores(c, truth, rank, t)

        out[name] = {
            "threshold": _threshold_text(defaults[name]),
            "rank_thresholds": np.broadcast_to(defaults[name], len(RANK_NAMES)).tolist(),
            "default": at(defaults[name]),
            "curve": {f"{t:.2f}": at(t) for t in thresholds},
            "fold_f": _fold_f(c, truth, rank, defaults[name], sizes),
        }
    if "aam" in calls and len(truth):

        def hits(name):
            at_rank = RANK_NAMES.index("genus") if rank is None else rank
            return read_hits(calls[name], truth, at_rank, defaults[name], novel=rank is not None)

        out["aam_minus"] = {n: bootstrap_f_difference(hits("aam"), hits(n)) for n in calls if n != "aam"}
    return out


def _threshold_text(threshold) -> str:
    """A classifier's default threshold as the tables show it: "0.7", or "0.25; species 0.15"."""
    t = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    if len(t) == 1 or np.all(t == t[0]):
        return f"{t[0]:g}"
    species = RANK_NAMES.index("species")
    return f"{t[0]:g}; species {t[species]:g}"


def _fold_f(calls, truth, rank, threshold, sizes) -> list[float]:
    """Genus F (novel taxa: F) of each fold at the threshold: the spread the pooled scores hide."""
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores

    out, start = [], 0
    for n in sizes:
        part, true = _rows(calls, slice(start, start + n)), truth[start : start + n]
        if rank is None:
            out.append(random_fold_scores(part, true, threshold)[RANK_NAMES.index("genus")]["f"])
        else:
            out.append(novel_taxa_scores(part, true, rank, threshold)["f"])
        start += n
    return out


def _speed(speed: dict) -> dict:
    out = {}
    for name, s in speed.items():
        rate = s["reads"] / s["predict_s"] if s["predict_s"] else 0.0
        out[name] = {"fit_s": s["fit_s"], "reads_per_s": rate}
    if "nb7" in out:
        ref = out["nb7"]
        for s in out.values():
            s["fit_time_vs_nb7"] = s["fit_s"] / ref["fit_s"]
            s["speed_vs_nb7"] = s["reads_per_s"] / ref["reads_per_s"]
    return out


def _table(protocol: str, res: dict, names) -> str:
    split = f"over {res['folds']} folds" if res["folds"] > 1 else "(one train/test split)"
    lines = [f"\n{protocol}: {res['test_reads']} test reads {split}"]
    if "left_out_taxa" not in res:
        lines.append("| classifier (threshold) | rank | reads | precision | recall | F |")
        lines.append("|---|---|---|---|---|---|")
        for name in names:
            for rank in RANK_NAMES[1:]:
                s = res[name]["default"][rank]
                label = f"{CLASSIFIERS[name]} ({res[name]['threshold']})"
                prf = f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f']:.3f}"
                lines.append(f"| {label} | {rank} | {s['reads']} | {prf} |")
        return "\n".join([*lines, _accuracy_table(res, names), _fold_line(res, names, "genus F")])
    lines[0] += f", {res['left_out_taxa']} taxa left out"
    lines.append(
        "| classifier (threshold) | precision | recall | F | match | over | under | mis |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for name in names:
        s = res[name]["default"]
        n = max(s["reads"], 1)
        rates = " | ".join(
            f"{s[k] / n:.3f}"
            for k in ("match", "overclassification", "underclassification", "misclassification")
        )
        label = f"{CLASSIFIERS[name]} ({res[name]['threshold']})"
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f']:.3f} | {rates} |")
    return "\n".join([*lines, _fold_line(res, names, "F")])


def _fold_line(res: dict, names, what: str) -> str:
    per = "; ".join(f"{CLASSIFIERS[n]} " + " / ".join(f"{f:.3f}" for f in res[n]["fold_f"]) for n in names)
    boots = res.get("aam_minus", {}).items()
    lead = "; ".join(f"vs {n} {b['diff']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}]" for n, b in boots)
    if lead:
        lead = f"\naam's {what} lead (95 % paired bootstrap over reads): {lead}"
    return f"\n{what} per fold: {per}{lead}"


def _accuracy_table(res: dict, names) -> str:
    """An external test set's accuracy: right / reads naming the rank (see `_accuracy`)."""
    if "accuracy" not in res:
        return ""
    lines = [
        "\nAccuracy (right / reads naming the rank): best call (threshold 0), at the default threshold:",
        "| classifier | rank | reads | best call | at default | taxon in training | best call | at default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for rank, a in res["accuracy"][name].items():
            all_ = f"{a['reads']} | {a['all at 0']:.3f} | {a['all at default']:.3f}"
            seen = f"{a['seen_reads']} | {a['seen at 0']:.3f} | {a['seen at default']:.3f}"
            lines.append(f"| {CLASSIFIERS[name]} | {rank} | {all_} | {seen} |")
    return "\n".join(lines)


def _speed_table(speed: dict) -> str:
    lines = ["\n| classifier | training s | x q2 NB | reads/s | x q2 NB |\n|---|---|---|---|---|"]
    for name, s in speed.items():
        lines.append(
            f"| {CLASSIFIERS[name]} | {s['fit_s']:.1f} | {s.get('fit_time_vs_nb7', float('nan')):.2f} | "
            f"{s['reads_per_s']:,.0f} | {s.get('speed_vs_nb7', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def _write(out_dir: str, results: dict, names) -> None:
    from aam.io.atomic import publish_together

    files = ["metrics.json", "tables.md", "pr_curve.png"]
    with publish_together(out_dir, files) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
        tables = [_table(p, r, names) for p, r in results["protocols"].items()]
        (tmp / "tables.md").write_text("\n".join([*tables, _speed_table(results["speed"])]) + "\n")
        _plot(results, names, tmp / "pr_curve.png")
    print(f"wrote {out_dir}/" + ", ".join(files))


def _plot(results: dict, names, path: Path) -> None:
    """Genus precision against recall over the thresholds, one panel per protocol."""
    from aam.evaluate.seq_plots import plot_threshold_pr

    panels = {}
    for protocol in (p for p in results["protocols"] if "species" not in p):
        res = results["protocols"][protocol]
        per_rank = "left_out_taxa" not in res
        genus = (lambda s: s["genus"]) if per_rank else (lambda s: s)
        what = "genus" if per_rank else "genus left out: family, stopping there"
        panels[f"{protocol} ({res['test_reads']} reads): {what}"] = {
            CLASSIFIERS[n]: {
                "curve": [genus(s) for s in res[n]["curve"].values()],
                "default": genus(res[n]["default"]),
                "threshold": res[n]["rank_thresholds"][RANK_NAMES.index("genus")],
            }
            for n in names
        }
    plot_threshold_pr(panels, path, "Precision and recall over confidence thresholds 0-1 (step 0.05)")


if __name__ == "__main__":
    main()
