"""Choose `aam classify`'s naive Bayes check (`bayes_temperature`), its genus floors
(`genus_floor_margin`, `genus_floor_scale`) and its `threshold` on the tuning side of the Greengenes
reference, never on the reads that score them.

The reads: the 20,000 of `../shared/data/gg13_8_v4` less the 5,000 that `eval_taxonomy.py
--n-reads 5000` (seed 0) evaluates, so that evaluation stays apart; the new reads of
`new_reads_gg13_8.py` are not read at all. Protocols, each against q2-feature-classifier's naive Bayes
(`Q2NaiveBayes`, 0.7) on the same split, genus F-measure scored as `eval_taxonomy.py` does:

- dense references (about 13,200 reads), `--seeds` draws each: *random*, 1,500 held-out reads;
  *left-out genera*, one twelfth of the branching genera (whose family has two or more) left out
  whole; *left-out small genera*, 150 branching genera of one or two reads left out whole (the
  unseen genera of new reads are such: 235 reads of 166 genera);
- the former tuning sample (`eval_taxonomy.py --tune --n-reads 5000 --folds 3`): random and
  novel-genus folds, references of 3,333 reads.

Each split's neighbours and their lineages' naive Bayes log-likelihoods are found once
(`KnnTaxonomyClassifier.neighbours`, `lineage_log_likelihood`) and voted under every setting of the
grid (`vote_neighbours`): no floors or each (margin, scale), times no naive Bayes check or each
temperature, times each threshold. The default is the setting with the largest smallest lead over
naive Bayes across the three dense protocols; the table prints every setting with its leads. About
6 minutes on one core.

    .venv/bin/python scripts/tune_classify.py --out tune_classify.tsv

The default temperature was then chosen by the same rule over both amplicons' tables: this one and
the V3-V4 tuning reference's (`amplicon_gg13_8.py --seed 1 --exclude` the test draw), whose 5,000
"evaluation" reads are left out as here though nothing evaluates them:

    .venv/bin/python scripts/tune_classify.py --fasta gg13_8_v34_tune/reference.fasta \
        --labels gg13_8_v34_tune/taxonomy.tsv --seeds 4 --bayes-temperatures 1 2 4 8 16 \
        --thresholds 0.15 0.2 0.25 0.3 --out tune_v34.tsv --also tune_classify.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gg13_8_v4"
EVAL_READS = 5000  # the sample that eval_taxonomy.py --n-reads 5000 scores (seed 0)
GENUS = 5
DENSE = ("random", "left-out genera", "left-out small genera")
PROTOCOLS = (*DENSE, "tuning sample random", "tuning sample novel genus")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fasta", default=str(DATA / "v4_20k.fasta"))
    p.add_argument("--labels", default=str(DATA / "v4_20k.taxonomy.tsv"))
    p.add_argument("--seeds", type=int, default=8, help="draws of each dense protocol")
    # the floors' own grid, as they were chosen: --margins 0 0.005 0.01 0.02 --scales 0 0.02 0.05 0.1 0.15
    p.add_argument("--margins", type=float, nargs="+", default=[0.0])
    p.add_argument("--scales", type=float, nargs="+", default=[0.02])
    p.add_argument("--bayes-temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.25, 0.3])
    p.add_argument("--out", required=True, help="TSV of every setting's F and lead per protocol")
    p.add_argument("--also", nargs="*", default=[],
                   help="tables this script wrote for other references (another amplicon): the rule then "
                        "takes the smallest dense lead over them too, among the settings every table holds")
    args = p.parse_args()
    skip_if_absent(__file__, {"--fasta": args.fasta, "--labels": args.labels,
                              **{f"--also #{i + 1}": path for i, path in enumerate(args.also)}})

    from aam.threads import use_threads

    use_threads(1)
    splits = list(_dense_splits(args)) + list(_tuning_sample_splits(args))
    floors = [(None, 0.0)] + [(m, c) for m in args.margins for c in args.scales]
    rows = []
    for bayes in (None, *args.bayes_temperatures):
        for margin, scale in floors:
            for threshold in args.thresholds:
                setting = {"bayes_temperature": bayes, "genus_floor_margin": margin,
                           "genus_floor_scale": scale, "threshold": threshold}
                rows.append((setting, *_score(splits, setting)))
    _write(args.out, rows, choose(rows, [dense_leads(path) for path in args.also]), len(args.also))


def dense_leads(path: str) -> dict[tuple[str, ...], list[float]]:
    """{setting's cells (as `_described` writes them): its leads on the dense protocols} of a table
    this script wrote."""
    import csv

    with open(path, newline="") as fh:
        try:
            return {(r["bayes_temperature"], r["genus_floor_margin"], r["genus_floor_scale"], r["threshold"]):
                    [float(r[f"{p} lead"]) for p in DENSE] for r in csv.DictReader(fh, delimiter="\t")}
        except (KeyError, TypeError, ValueError) as err:
            raise SystemExit(f"{path}: not a table of tune_classify.py ({type(err).__name__}: {err})") \
                from None


def choose(rows, others: list[dict[tuple[str, ...], list[float]]]):
    """The row (setting, F, lead) with the largest smallest lead on the dense protocols, of its own
    table and of every table in `others` (`dense_leads`); a setting some other table lacks is not
    eligible. The first of ties, in grid order."""
    def smallest(row) -> float:
        key = tuple(_described(row[0]))
        return min([row[2][p] for p in DENSE] + [v for other in others for v in other[key]])

    eligible = [r for r in rows if all(tuple(_described(r[0])) in other for other in others)]
    if not eligible:
        raise SystemExit("--also: no setting of this grid is in every other table")
    return max(eligible, key=smallest)


def _dense_splits(args):
    """(protocol, test reads' neighbours, classifier, truth, naive Bayes calls) of the dense draws."""
    from eval_taxonomy import _sample

    from aam.evaluate.taxonomy_eval import branching_taxa, lineage_paths

    seqs, lineage = _sample(args.fasta, args.labels, 0, 0, False)  # every read of the reference
    evaluated = set(np.random.default_rng(0).permutation(len(seqs))[:EVAL_READS].tolist())
    tuning = np.array(sorted(set(range(len(seqs))) - evaluated))
    paths = lineage_paths(lineage, GENUS)
    branching = branching_taxa(paths)
    size: dict[tuple, int] = {}
    for i in tuning:
        if paths[i] is not None:
            size[paths[i]] = size.get(paths[i], 0) + 1
    small = [g for g in branching if 0 < size.get(g, 0) <= 2]
    for seed in range(args.seeds):
        for protocol, pool, n_out in (("left-out genera", branching, len(branching) // 12),
                                      ("left-out small genera", small, 150)):
            rng = np.random.default_rng(100 + seed)
            left_out = {pool[i] for i in rng.permutation(len(pool))[:n_out]}
            novel = np.array([i for i in tuning if paths[i] in left_out])
            rest = np.setdiff1d(tuning, novel)
            held_out = np.sort(rng.choice(rest, 1500, replace=False))
            train = np.setdiff1d(rest, held_out)
            tests = {protocol: novel}
            if protocol == "left-out genera":
                tests["random"] = held_out
            print(f"seed {seed}, {protocol}: {len(left_out)} genera, {len(novel)} reads", flush=True)
            yield from _split(seqs, lineage, train, tests)


def _tuning_sample_splits(args):
    """The same for the former tuning sample's random and novel-genus folds."""
    from eval_taxonomy import _sample

    from aam.evaluate.taxonomy_eval import novel_taxa_folds, random_folds

    seqs, lineage = _sample(args.fasta, args.labels, EVAL_READS, 0, True)
    folds = [("tuning sample random", t) for t in random_folds(len(seqs), 3, 0)]
    folds += [("tuning sample novel genus", t) for t, _ in novel_taxa_folds(lineage, GENUS, 3, 0)]
    for protocol, test in folds:
        print(f"{protocol}: {len(test)} reads", flush=True)
        yield from _split(seqs, lineage, np.setdiff1d(np.arange(len(seqs)), test), {protocol: test})


def _split(seqs, lineage, train, tests):
    from aam.evaluate.taxonomy import KnnSettings, KnnTaxonomyClassifier, read_lengths
    from aam.evaluate.taxonomy_nb import Q2NaiveBayes

    train_seqs = [seqs[i] for i in train]
    # floors computed (margin 0) and the naive Bayes check fitted, so that the grid can vote with either
    knn = KnnTaxonomyClassifier(None, lineage[train], train_seqs, KnnSettings(genus_floor_margin=0.0))
    nb = Q2NaiveBayes().fit(train_seqs, lineage[train])
    for protocol, test in tests.items():
        test_seqs = [seqs[i] for i in test]
        sim, idx = knn.neighbours(None, test_seqs)
        neighbours = (sim, idx, knn.lineage_log_likelihood(test_seqs, idx), read_lengths(test_seqs))
        yield protocol, neighbours, knn, lineage[test], nb.calls(test_seqs)


def _score(splits, setting: dict) -> tuple[dict, dict]:
    """Mean genus F of aam under `setting` (KnnSettings fields) and its mean lead over naive Bayes,
    per protocol (the tuning sample's folds pooled, as eval_taxonomy.py pools them)."""
    from aam.evaluate.taxonomy_nb import RankCalls

    f: dict[str, list] = {p: [] for p in PROTOCOLS}
    lead: dict[str, list] = {p: [] for p in PROTOCOLS}
    pooled: dict[str, list] = {}
    threshold = setting["threshold"]
    for protocol, (sim, idx, lineage_ll, lengths), knn, truth, nb_calls in splits:
        base = knn.settings
        knn.settings = dataclasses.replace(base, **setting)
        calls = RankCalls(*knn.vote_neighbours(sim, idx, lineage_ll=lineage_ll, lengths=lengths))
        knn.settings = base
        if protocol.startswith("tuning sample"):
            pooled.setdefault(protocol, []).append((calls, nb_calls, truth))
            continue
        a, b = _genus_f(protocol, calls, truth, threshold), _genus_f(protocol, nb_calls, truth, 0.7)
        f[protocol].append(a)
        lead[protocol].append(a - b)
    for protocol, parts in pooled.items():
        calls, nb_calls = (RankCalls(*(np.concatenate(x) for x in zip(*c, strict=True)))
                           for c in zip(*[(a, b) for a, b, _ in parts], strict=True))
        truth = np.concatenate([t for _, _, t in parts])
        a, b = _genus_f(protocol, calls, truth, threshold), _genus_f(protocol, nb_calls, truth, 0.7)
        f[protocol].append(a)
        lead[protocol].append(a - b)
    return {p: float(np.mean(v)) for p, v in f.items()}, {p: float(np.mean(v)) for p, v in lead.items()}


def _genus_f(protocol: str, calls, truth, threshold: float) -> float:
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores

    if protocol.endswith("random"):
        return random_fold_scores(calls, truth, threshold)[GENUS]["f"]
    return novel_taxa_scores(calls, truth, GENUS, threshold)["f"]


def _described(setting: dict) -> list[str]:
    """A setting's cells: naive Bayes temperature, floor margin, floor scale, threshold."""
    bayes, margin = setting["bayes_temperature"], setting["genus_floor_margin"]
    return ["none" if bayes is None else f"{bayes:g}", "none" if margin is None else f"{margin:g}",
            "-" if margin is None else f"{setting['genus_floor_scale']:g}", f"{setting['threshold']:g}"]


def _write(out: str, rows, best, n_other_tables: int = 0) -> None:
    header = ["bayes_temperature", "genus_floor_margin", "genus_floor_scale", "threshold",
              *(f"{p} {k}" for p in PROTOCOLS for k in ("F", "lead"))]
    lines = ["\t".join(header)]
    for setting, f, lead in rows:
        cells = _described(setting) + [f"{v:.4f}" for p in PROTOCOLS for v in (f[p], lead[p])]
        lines.append("\t".join(cells))
        shown = " ".join(f"{p} {f[p]:.3f} ({lead[p]:+.3f})" for p in PROTOCOLS)
        print(f"bayes {cells[0]}, floors {cells[1]} + {cells[2]} / n, threshold {cells[3]}: {shown}")
    tmp = Path(f"{out}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    bayes, margin, scale, threshold = _described(best[0])
    tables = f" of this and {n_other_tables} other table(s)" if n_other_tables else ""
    print(f"largest smallest lead across {', '.join(DENSE)}{tables}: bayes_temperature {bayes}, floors "
          f"{margin} + {scale} / n, threshold {threshold}; wrote {out}")


if __name__ == "__main__":
    main()
