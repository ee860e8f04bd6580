"""Taxonomy classifiers on new reads as Bokulich et al. 2018 (tax-credit) evaluate them: `aam classify`
beside q2-feature-classifier's default naive Bayes (7-mers) and the 8-mer per-rank naive Bayes.

Protocols (`aam.evaluate.taxonomy_eval` defines folds and scores): K-fold cross-validation over the
reference with random folds, and novel-taxa folds in which whole genera (and, separately, whole
species) are left out of training. Every classifier is trained and tested on the same folds. Scores:
precision, recall and F-measure per rank, pooled over the folds' test reads, at each classifier's
default confidence threshold (aam: `KnnSettings().threshold`; both naive Bayes: q2's 0.7) and over a
grid of thresholds (the precision-recall curves, `pr_curve.png`). Speed: training seconds and
classification reads/s of each classifier on one thread, summed over every fold of the run, and
their ratios to q2's naive Bayes, all measured in this run.

    .venv/bin/python scripts/eval_taxonomy.py --out-dir eval_taxonomy        # 20k reads, 5 folds
    .venv/bin/python scripts/eval_taxonomy.py --n-reads 5000 --folds 3 --out-dir e5k   # ~10 min

`--tune` evaluates on a sample drawn from the reads *outside* the `--n-reads` sample of `--seed`
(so it needs `--n-reads` at most half the reference): the split on which aam's default threshold
was chosen, never the one that scores it. Outputs under `--out-dir`: `metrics.json`, `tables.md`,
`pr_curve.png`. Results: README.md (Taxonomy).
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
    p.add_argument("--out-dir", required=True)
    args = p.parse_args()
    skip_if_absent(__file__, {"--fasta": args.fasta, "--labels": args.labels})

    from aam.evaluate.taxonomy import KnnSettings
    from aam.evaluate.taxonomy_nb import Q2_CONFIDENCE
    from aam.threads import use_threads

    use_threads(1)
    settings = KnnSettings.from_dict(json.loads(args.aam_settings))
    seqs, lineage = _sample(args)
    print(f"{len(seqs)} reads, {args.folds} folds, seed {args.seed}{' (tuning sample)' if args.tune else ''}")
    thresholds = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    defaults = {"aam": settings.threshold, "nb7": Q2_CONFIDENCE, "nb8": Q2_CONFIDENCE}
    results: dict = {"args": vars(args), "aam_settings": vars(settings), "n_reads": len(seqs)}
    results["protocols"] = {}
    speed = {name: {"fit_s": 0.0, "predict_s": 0.0, "reads": 0} for name in args.classifiers}
    for protocol, folds in _protocols(lineage, args):
        calls, truth = _run_folds(seqs, lineage, folds, args.classifiers, settings, speed)
        results["protocols"][protocol] = _score(protocol, calls, truth, thresholds, defaults, folds)
        print(_table(protocol, results["protocols"][protocol], args.classifiers), flush=True)
    results["speed"] = _speed(speed)
    print(_speed_table(results["speed"]))
    _write(args.out_dir, results, args.classifiers)


def _sample(args) -> tuple[list[str], np.ndarray]:
    """The reads (with a kingdom) and their (n, 7) lineages: all, or a seeded sample."""
    from aam.data.seq_collection import read_labels
    from aam.io.fasta import read_fasta

    records = read_fasta(args.fasta)
    labels = read_labels(args.labels).reindex(columns=RANK_NAMES)
    ids = [i for i in records if i in labels.index and labels.at[i, "kingdom"] is not None]
    ids = sorted(ids)
    if args.n_reads:
        if args.tune and 2 * args.n_reads > len(ids):
            sys.exit(f"--tune needs --n-reads <= {len(ids) // 2} (half of the {len(ids)} labelled reads)")
        order = np.random.default_rng(args.seed).permutation(len(ids))
        pick = order[args.n_reads : 2 * args.n_reads] if args.tune else order[: args.n_reads]
        ids = [ids[i] for i in np.sort(pick)]
    lineage = labels.loc[ids].astype(object).where(labels.loc[ids].notna(), None).to_numpy(dtype=object)
    return [records[i] for i in ids], lineage


def _protocols(lineage: np.ndarray, args):
    """(name, [(test indices, left-out taxa or None)]) of every protocol of the run."""
    from aam.evaluate.taxonomy_eval import novel_taxa_folds, random_folds

    yield "random", [(test, None) for test in random_folds(len(lineage), args.folds, args.seed)]
    for rank in args.novel_ranks:
        yield f"novel {rank}", novel_taxa_folds(lineage, RANK_NAMES.index(rank), args.folds, args.seed)


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


def _score(protocol, calls, truth, thresholds, defaults, folds) -> dict:
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores

    out: dict = {"folds": len(folds), "test_reads": len(truth)}
    if protocol != "random":
        out["left_out_taxa"] = int(sum(len(taxa) for _, taxa in folds))
    rank = None if protocol == "random" else RANK_NAMES.index(protocol.split()[1])
    for name, c in calls.items():

        def at(t, c=c):
            if rank is None:
                return dict(zip(RANK_NAMES, random_fold_scores(c, truth, t), strict=True))
            return novel_taxa_scores(c, truth, rank, t)

        out[name] = {
            "threshold": defaults[name],
            "default": at(defaults[name]),
            "curve": {f"{t:.2f}": at(t) for t in thresholds},
            "fold_f": _fold_f(c, truth, rank, defaults[name], [len(test) for test, _ in folds]),
        }
    return out


def _fold_f(calls, truth, rank, threshold, sizes) -> list[float]:
    """Genus F (novel taxa: F) of each fold at the threshold: the spread the pooled scores hide."""
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores
    from aam.evaluate.taxonomy_nb import RankCalls

    out, start = [], 0
    for n in sizes:
        part, true = RankCalls(*(a[start : start + n] for a in calls)), truth[start : start + n]
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
    lines = [f"\n{protocol}: {res['test_reads']} test reads over {res['folds']} folds"]
    if protocol == "random":
        lines.append("| classifier (threshold) | rank | reads | precision | recall | F |")
        lines.append("|---|---|---|---|---|---|")
        for name in names:
            for rank in RANK_NAMES[1:]:
                s = res[name]["default"][rank]
                label = f"{CLASSIFIERS[name]} ({res[name]['threshold']:g})"
                prf = f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f']:.3f}"
                lines.append(f"| {label} | {rank} | {s['reads']} | {prf} |")
        return "\n".join([*lines, _fold_line(res, names, "genus F")])
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
        label = f"{CLASSIFIERS[name]} ({res[name]['threshold']:g})"
        lines.append(f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f']:.3f} | {rates} |")
    return "\n".join([*lines, _fold_line(res, names, "F")])


def _fold_line(res: dict, names, what: str) -> str:
    per = "; ".join(f"{CLASSIFIERS[n]} " + " / ".join(f"{f:.3f}" for f in res[n]["fold_f"]) for n in names)
    return f"\n{what} per fold: {per}"


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
    for protocol in (p for p in results["protocols"] if p in ("random", "novel genus")):
        res = results["protocols"][protocol]
        genus = (lambda s: s["genus"]) if protocol == "random" else (lambda s: s)
        what = "genus" if protocol == "random" else "genus left out: family, stopping there"
        panels[f"{protocol} folds ({res['test_reads']} reads): {what}"] = {
            CLASSIFIERS[n]: {
                "curve": [genus(s) for s in res[n]["curve"].values()],
                "default": genus(res[n]["default"]),
                "threshold": res[n]["threshold"],
            }
            for n in names
        }
    plot_threshold_pr(panels, path, "Precision and recall over confidence thresholds 0-1 (step 0.05)")


if __name__ == "__main__":
    main()
