"""Choose `aam classify`'s genus floors (`genus_floor_margin`, `genus_floor_scale`) on the tuning
side of the Greengenes reference, never on the reads that score them.

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

Each split's neighbours are found once (`KnnTaxonomyClassifier.neighbours`) and voted under every
setting of the grid (`vote_neighbours`). The default is the setting with the largest smallest lead
over naive Bayes across the three dense protocols at the default threshold; the table prints every
setting with its leads. About 6 minutes on one core.

    .venv/bin/python scripts/tune_genus_floors.py --out tune_genus_floors.tsv
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
    p.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.005, 0.01, 0.02])
    p.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.15])
    p.add_argument("--out", required=True, help="TSV of every setting's F and lead per protocol")
    args = p.parse_args()
    skip_if_absent(__file__, {"--fasta": args.fasta, "--labels": args.labels})

    from aam.threads import use_threads

    use_threads(1)
    splits = list(_dense_splits(args)) + list(_tuning_sample_splits(args))
    settings = [(None, 0.0)] + [(m, c) for m in args.margins for c in args.scales]
    rows = []
    for margin, scale in settings:
        f, lead = _score(splits, margin, scale)
        rows.append((margin, scale, f, lead))
    best = max(rows[1:], key=lambda r: min(r[3][p] for p in DENSE))
    _write(args.out, rows, best)


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
    from aam.evaluate.taxonomy import KnnSettings, KnnTaxonomyClassifier
    from aam.evaluate.taxonomy_nb import Q2NaiveBayes

    train_seqs = [seqs[i] for i in train]
    knn = KnnTaxonomyClassifier(None, lineage[train], train_seqs, KnnSettings())
    nb = Q2NaiveBayes().fit(train_seqs, lineage[train])
    for protocol, test in tests.items():
        test_seqs = [seqs[i] for i in test]
        sim, idx = knn.neighbours(None, test_seqs)
        yield protocol, (sim, idx), knn, lineage[test], nb.calls(test_seqs)


def _score(splits, margin, scale) -> tuple[dict, dict]:
    """Mean genus F of aam under (margin, scale) and its mean lead over naive Bayes, per protocol
    (the tuning sample's folds pooled, as eval_taxonomy.py pools them)."""
    from aam.evaluate.taxonomy_nb import RankCalls

    f: dict[str, list] = {p: [] for p in PROTOCOLS}
    lead: dict[str, list] = {p: [] for p in PROTOCOLS}
    pooled: dict[str, list] = {}
    for protocol, (sim, idx), knn, truth, nb_calls in splits:
        base = knn.settings
        knn.settings = dataclasses.replace(base, genus_floor_margin=margin, genus_floor_scale=scale)
        calls = RankCalls(*knn.vote_neighbours(sim, idx))
        knn.settings = base
        if protocol.startswith("tuning sample"):
            pooled.setdefault(protocol, []).append((calls, nb_calls, truth, base.threshold))
            continue
        a, b = _genus_f(protocol, calls, truth, base.threshold), _genus_f(protocol, nb_calls, truth, 0.7)
        f[protocol].append(a)
        lead[protocol].append(a - b)
    for protocol, parts in pooled.items():
        calls, nb_calls = (RankCalls(*(np.concatenate(x) for x in zip(*c, strict=True)))
                           for c in zip(*[(a, b) for a, b, _, _ in parts], strict=True))
        truth = np.concatenate([t for _, _, t, _ in parts])
        threshold = parts[0][3]
        a, b = _genus_f(protocol, calls, truth, threshold), _genus_f(protocol, nb_calls, truth, 0.7)
        f[protocol].append(a)
        lead[protocol].append(a - b)
    return {p: float(np.mean(v)) for p, v in f.items()}, {p: float(np.mean(v)) for p, v in lead.items()}


def _genus_f(protocol: str, calls, truth, threshold: float) -> float:
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores

    if protocol.endswith("random"):
        return random_fold_scores(calls, truth, threshold)[GENUS]["f"]
    return novel_taxa_scores(calls, truth, GENUS, threshold)["f"]


def _write(out: str, rows, best) -> None:
    header = ["margin", "scale", *(f"{p} {k}" for p in PROTOCOLS for k in ("F", "lead"))]
    lines = ["\t".join(header)]
    for margin, scale, f, lead in rows:
        cells = ["none" if margin is None else f"{margin:g}", f"{scale:g}"]
        cells += [f"{v:.4f}" for p in PROTOCOLS for v in (f[p], lead[p])]
        lines.append("\t".join(cells))
        shown = " ".join(f"{p} {f[p]:.3f} ({lead[p]:+.3f})" for p in PROTOCOLS)
        print(f"margin {cells[0]} + {cells[1]} / n: {shown}")
    tmp = Path(f"{out}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    print(f"largest smallest lead across {', '.join(DENSE)}: margin {best[0]:g} + {best[1]:g} / n; "
          f"wrote {out}")


if __name__ == "__main__":
    main()
