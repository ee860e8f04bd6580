"""Cut a labelled reference collection into an external train/test pair of FASTA + labels files.

Taxon-aware: sequences are held out, not taxa. Each stratum (the taxonomy string down to the
genus, so sequences without a genus label are stratified by their family lineage) sends a seeded
`--test-fraction` of its members to the test set, rounded, and always keeps at least one member in
the training set (strata of one sequence stay whole in training). Most test genera are therefore
seen in training, as in a user's reads classified against a reference database.

    python scripts/split_reference.py --out-dir split/                # the shared 20k, 80/20, seed 42

writes train.fasta, train.taxonomy.tsv, test.fasta, test.taxonomy.tsv: the `fasta`/`labels` and
`test: {fasta, labels}` of a `sequences:` entry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gg13_8_v4"


def stratified_holdout(strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask: round(fraction * n) of each stratum, at most n - 1, seeded."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(strata), dtype=bool)
    codes = pd.factorize(pd.Series(strata))[0]
    for code in range(codes.max() + 1):
        members = np.flatnonzero(codes == code)
        n_test = min(int(round(len(members) * fraction)), len(members) - 1)
        if n_test > 0:
            test[rng.permutation(members)[:n_test]] = True
    return test


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fasta", default=str(DATA / "v4_20k.fasta"))
    p.add_argument("--labels", default=str(DATA / "v4_20k.taxonomy.tsv"))
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out-dir", required=True)
    args = p.parse_args()

    from aam.io.atomic import write_text
    from aam.io.fasta import read_fasta

    records = read_fasta(args.fasta)
    labels = pd.read_csv(args.labels, sep="\t", dtype=str, keep_default_na=False)
    id_col, tax_col = labels.columns[0], labels.columns[1]
    labels = labels[labels[id_col].isin(records)].reset_index(drop=True)
    # the lineage down to the genus: "k__...; ...; f__X; g__Y" (or "g__" when the genus is unknown)
    strata = labels[tax_col].map(lambda t: ";".join(p.strip() for p in t.split(";")[:6])).to_numpy()
    test = stratified_holdout(strata, args.test_fraction, args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, mask in (("train", ~test), ("test", test)):
        part = labels[mask]
        write_text(out / f"{name}.fasta", "".join(f">{i}\n{records[i]}\n" for i in part[id_col]))
        write_text(out / f"{name}.taxonomy.tsv", part.to_csv(sep="\t", index=False))
        print(f"{name}: {int(mask.sum())} sequences -> {out / name}.fasta, {out / name}.taxonomy.tsv")


if __name__ == "__main__":
    main()
