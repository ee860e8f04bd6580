"""Synthetic studies for pretraining across studies: random trees, token caches, a dataset."""

from __future__ import annotations

import biom
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aam.data.token_caches import build

LETTERS = np.array(list("ACGT"))


def random_tree(tips: list[str], rng: np.random.Generator) -> str:
    """A random rooted binary Newick tree over `tips`."""
    nodes = [f"{t}:{rng.uniform(0.01, 0.3):.4f}" for t in tips]
    while len(nodes) > 1:
        a, b = (nodes.pop(int(rng.integers(len(nodes)))) for _ in range(2))
        nodes.append(f"({a},{b}):{rng.uniform(0.0, 0.2):.4f}")
    return nodes[0].rsplit(":", 1)[0] + ";"


def write_study(folder, feature_ids, n_samples, rng, length=(24, 32), prefix="s"):
    """A study's token caches: random sequences of the given lengths, random counts."""
    folder.mkdir(parents=True)
    seqs = ["".join(rng.choice(LETTERS, size=rng.integers(*length))) for _ in feature_ids]
    pq.write_table(pa.table({"feature_id": feature_ids, "sequence": seqs}), folder / "features.parquet")
    samples, feats, counts = [], [], []
    for s in range(n_samples):
        present = rng.choice(len(feature_ids), size=rng.integers(4, len(feature_ids)), replace=False)
        samples += [f"{prefix}.{s}"] * present.size
        feats += [feature_ids[i] for i in present]
        counts += rng.integers(1, 30, size=present.size).tolist()
    pq.write_table(pa.table({"sample": samples, "feature": feats, "count": counts}),
                   folder / "counts.parquet")
    build(folder / "features.parquet", folder / "counts.parquet", None,
          folder / "tokens" / "features.parquet", folder / "tokens" / "samples.parquet", max_bp=32)
    return folder / "tokens"


def write_dataset(folder, n_samples, rng, length, max_bp, cache="cache"):
    """One dataset's token caches as the workflow builds them (rarefied at depth 40): the cache
    folder and the sample IDs ``d.0 ... d.{n-1}``."""
    write_study(folder, [f"asv{i}" for i in range(30)], n_samples, rng, length=length, prefix="d")
    ids = [f"d.{s}" for s in range(n_samples)]
    rarefied = biom.Table(np.full((1, n_samples), 40.0), ["f"], ids)  # what build reads: samples, depth
    with biom.util.biom_open(str(folder / "rarefied.biom"), "w") as handle:
        rarefied.to_hdf5(handle, "test")
    build(folder / "features.parquet", folder / "counts.parquet", folder / "rarefied.biom",
          folder / cache / "features.parquet", folder / cache / "samples.parquet", max_bp=max_bp)
    return folder / cache, ids
