"""Choose `aam classify`'s `species_threshold_scale` (species kept at `threshold` x the scale) on
the tuning sides of one or more references, never on the reads that score it.

Why species needs its own cut: most references name no species (5 % of the 20,000 Greengenes 13_8
V4 reads of `../shared`), and a rank's vote share counts every neighbour, so a species that all of
a read's species-naming neighbours agree on still scores far below its genus (`rank_vote`).

The reads of each reference: all of it less the 5,000 that `eval_taxonomy.py --n-reads 5000`
(seed 0) evaluates, as `tune_classify.py` leaves them out. Per `--seeds` draw, two protocols, each
against q2-feature-classifier's naive Bayes (`Q2NaiveBayes`, 0.7) on the same split, species scored
as `eval_taxonomy.py` scores it:

- *held-out reads*: species F over 1,500 reads drawn from those outside the left-out species;
- *left-out species*: a quarter of the branching species (whose genus has two or more) left out
  whole; F as novel taxa (the right answer stops at the genus).

Each split's neighbours are found once and voted at the defaults (`KnnSettings()`); only the cut
changes with the scale. The choice: the scale with the largest smallest species F lead over q2 across
both protocols of every reference. Genus and the ranks above are cut at `threshold` whatever the
scale, so nothing else moves.

    .venv/bin/python scripts/tune_species_threshold.py --out tune_species.tsv \\
        --reference ../shared/data/gg13_8_v4/v4_20k.fasta ../shared/data/gg13_8_v4/v4_20k.taxonomy.tsv \\
        --reference gg13_8_v34_tune/reference.fasta gg13_8_v34_tune/taxonomy.tsv

(`amplicon_gg13_8.py --seed 1 --exclude` the V3-V4 test draw builds the second; about 2 minutes per
reference on one core.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

SPECIES = 6
PROTOCOLS = ("held-out reads", "left-out species")
SCALES = [1.0, 0.8, 0.6, 0.4, 0.28, 0.2]  # x 0.25: 0.25, 0.2, 0.15, 0.1, 0.07, 0.05


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", nargs=2, action="append", required=True, metavar=("FASTA", "LABELS"))
    p.add_argument("--seeds", type=int, default=8, help="draws of each protocol per reference")
    p.add_argument("--scales", type=float, nargs="+", default=SCALES)
    p.add_argument("--out", required=True,
                   help="TSV of every scale's mean F and lead per reference and protocol")
    args = p.parse_args()
    skip_if_absent(__file__, {f"--reference #{i + 1} {kind}": path for i, ref in enumerate(args.reference)
                              for kind, path in zip(("FASTA", "LABELS"), ref, strict=True)})

    import pandas as pd

    from aam.threads import use_threads

    use_threads(1)
    rows = []
    for fasta, labels in args.reference:
        for seed, protocol, calls, truth, q2 in _splits(fasta, labels, args.seeds):
            for scale in args.scales:
                rows.append({"reference": fasta, "seed": seed, "protocol": protocol, "scale": scale,
                             "F": (f := _species_f(protocol, calls, truth, scale)), "lead": f - q2})
    table = pd.DataFrame(rows).groupby(["reference", "protocol", "scale"], sort=False)[["F", "lead"]].mean()
    table = table.reset_index()
    tmp = Path(f"{args.out}.tmp")
    table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    tmp.replace(args.out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    best, smallest = choose(table)
    print(f"largest smallest species F lead over q2 across {len(args.reference)} reference(s) x "
          f"{', '.join(PROTOCOLS)}: species_threshold_scale {best:g} ({smallest:+.4f}); wrote {args.out}")


def choose(table) -> tuple[float, float]:
    """(scale, its smallest lead): the scale whose smallest mean lead over every reference and
    protocol of `table` (columns scale, lead) is largest; the first of ties, in table order."""
    smallest = table.groupby("scale", sort=False)["lead"].min()
    return float(smallest.idxmax()), float(smallest.max())


def _splits(fasta: str, labels: str, seeds: int):
    """(seed, protocol, aam's calls at the defaults, truth, q2's species F) of every draw."""
    from eval_taxonomy import _sample
    from tune_classify import EVAL_READS, _split

    from aam.evaluate.taxonomy import KnnSettings
    from aam.evaluate.taxonomy_eval import branching_taxa, lineage_paths
    from aam.evaluate.taxonomy_nb import RankCalls

    seqs, lineage = _sample(fasta, labels, 0, 0, False)
    evaluated = set(np.random.default_rng(0).permutation(len(seqs))[:EVAL_READS].tolist())
    tuning = np.array(sorted(set(range(len(seqs))) - evaluated))
    paths = lineage_paths(lineage, SPECIES)
    in_tuning = {paths[i] for i in tuning if paths[i] is not None}
    branching = [s for s in branching_taxa(paths) if s in in_tuning]
    for seed in range(seeds):
        rng = np.random.default_rng(200 + seed)
        left_out = {branching[i] for i in rng.permutation(len(branching))[: len(branching) // 4]}
        novel = np.array([i for i in tuning if paths[i] in left_out])
        rest = np.setdiff1d(tuning, novel)
        held_out = np.sort(rng.choice(rest, 1500, replace=False))
        train = np.setdiff1d(rest, held_out)
        print(f"{fasta}, seed {seed}: {len(left_out)} species left out ({len(novel)} reads)", flush=True)
        tests = {"held-out reads": held_out, "left-out species": novel}
        for protocol, (sim, idx, ll, lengths), knn, truth, nb_calls in _split(seqs, lineage, train, tests):
            knn.settings = KnnSettings()
            calls = RankCalls(*knn.vote_neighbours(sim, idx, lineage_ll=ll, lengths=lengths))
            yield seed, protocol, calls, truth, _species_f(protocol, nb_calls, truth, None)


def _species_f(protocol: str, calls, truth, scale: float | None) -> float:
    """Species F of aam's calls cut at the defaults with `scale`, or (None) q2's at its 0.7."""
    from aam.evaluate.taxonomy import KnnSettings
    from aam.evaluate.taxonomy_eval import novel_taxa_scores, random_fold_scores
    from aam.evaluate.taxonomy_nb import Q2_CONFIDENCE

    if scale is None:
        thresholds = Q2_CONFIDENCE
    else:
        thresholds = KnnSettings(species_threshold_scale=scale).rank_thresholds()
    if protocol == "held-out reads":
        return random_fold_scores(calls, truth, thresholds)[SPECIES]["f"]
    return novel_taxa_scores(calls, truth, SPECIES, thresholds)["f"]


if __name__ == "__main__":
    main()
