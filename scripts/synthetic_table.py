"""Seeded synthetic 16S tables of any size, modelled on the pretraining corpus (for scale benchmarks).

    python scripts/synthetic_table.py --samples 50000 --out-dir /tmp/syn50k [--seed 42]

Writes ``table.biom`` (BIOM HDF5, features x samples) and ``metadata.tsv`` (sample_name, study,
host_subject_id, richness, depth) into ``--out-dir``; the tree and the sequences are the corpus's
own (``gg13_8_97_otus.tree.nwk``, ``gg13_8_97_otus.v4_150nt.fasta``), which ``aam ingest`` prunes.

How a sample is made, so that the table has the corpus's structure rather than uniform noise:

- a *template* sample of the corpus is drawn at random (studies weighted by their sample counts);
  the synthetic sample takes its (richness, depth) pair, so both follow the corpus's joint
  distribution (8 studies, 6,317 samples: median richness 104-555, median depth 2,398-53,978);
- its features are Greengenes 97 % OTUs with a V4 sequence: with probability ``--novel`` (0.1) a
  draw is any such tip of the tree, uniformly; otherwise it follows the prevalence of the OTUs in the
  template's study. Draws are made one at a time without replacement (successive sampling), so
  common OTUs of a study are shared by many samples and rare ones by few, as in the corpus: that
  sharing pattern sets the cost of UniFrac (branches held by many samples vs by few);
- counts: 1 read per feature plus a multinomial draw of the remaining reads with weights
  ``lognormal(0, 1.5) x (1 + prevalence)^0.5`` (heavy-tailed rank abundance; common OTUs abundant).

The ``study`` column names the template's study (a PCoA colour); ``host_subject_id`` groups
consecutive samples by three (a grouped split has groups to keep together).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aam.io.biom import csr_to_table, read_table, table_to_csr, write_biom  # noqa: E402
from aam.io.fasta import iter_fasta  # noqa: E402
from aam.io.newick import read_tree  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "pretrain_corpus"
TREE = "gg13_8_97_otus.tree.nwk"
SEQUENCES = "gg13_8_97_otus.v4_150nt.fasta"


class Corpus:
    """What the generator takes from the corpus: features, per-study prevalence, (richness, depth)."""

    def __init__(self, folder: Path):
        tips = {name for name in read_tree(folder / TREE).tip_names() if name}
        with_sequence = [fid for fid, _ in iter_fasta(folder / SEQUENCES) if fid in tips]
        self.features = np.array(sorted(with_sequence), dtype=object)
        index = {f: i for i, f in enumerate(self.features)}
        self.studies: list[str] = []
        self.prevalence: list[np.ndarray] = []
        pairs = []
        for table_path in sorted(folder.glob("*/table.biom")):
            counts, _, feature_ids = table_to_csr(read_table(table_path))
            present = (counts > 0).tocsc()
            prevalence = np.zeros(len(self.features))
            for j, fid in enumerate(feature_ids):
                if fid in index:
                    prevalence[index[fid]] = present.indptr[j + 1] - present.indptr[j]
            richness = np.diff((counts > 0).tocsr().indptr)
            depth = np.asarray(counts.sum(1)).ravel()
            self.studies.append(table_path.parent.name)
            self.prevalence.append(prevalence)
            pairs.append(np.column_stack([np.full(len(depth), len(self.studies) - 1), richness, depth]))
        self.templates = np.concatenate(pairs).astype(np.int64)  # (study, richness, depth) per sample


def draw_distinct(rng: np.random.Generator, cumulative: np.ndarray, n_features: int, novel: float,
                  k: int) -> np.ndarray:
    """k distinct features by successive sampling from the mixture (1 - novel) x prevalence +
    novel x uniform: draws with replacement in batches, keeping the first occurrence of each."""
    chosen: list[int] = []
    seen: set[int] = set()
    total = cumulative[-1]
    while len(chosen) < k:
        m = 2 * (k - len(chosen)) + 8
        uniform = rng.random(m) < novel
        draws = np.where(uniform, rng.integers(0, n_features, m),
                         np.searchsorted(cumulative, rng.random(m) * total, side="right"))
        for f in draws.tolist():
            if f not in seen:
                seen.add(f)
                chosen.append(f)
                if len(chosen) == k:
                    break
    return np.array(chosen, dtype=np.int64)


def generate(corpus: Corpus, n_samples: int, seed: int, novel: float = 0.1):
    """(samples x features CSR counts over corpus.features, metadata DataFrame)."""
    rng = np.random.default_rng(seed)
    n_features = len(corpus.features)
    cumulative = [np.cumsum(p) for p in corpus.prevalence]
    templates = corpus.templates[rng.integers(0, len(corpus.templates), n_samples)]
    indptr = np.zeros(n_samples + 1, dtype=np.int64)
    cols, vals = [], []
    for i, (study, richness, depth) in enumerate(templates.tolist()):
        k = int(min(max(richness, 1), depth, n_features))
        feats = draw_distinct(rng, cumulative[study], n_features, novel, k)
        weights = rng.lognormal(0.0, 1.5, k) * np.sqrt(1.0 + corpus.prevalence[study][feats])
        counts = 1 + rng.multinomial(depth - k, weights / weights.sum())
        order = np.argsort(feats)
        cols.append(feats[order])
        vals.append(counts[order])
        indptr[i + 1] = indptr[i] + k
    matrix = sp.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr),
                           shape=(n_samples, n_features))
    ids = [f"syn.{i:07d}" for i in range(n_samples)]
    metadata = pd.DataFrame({
        "sample_name": ids,
        "study": [corpus.studies[s] for s in templates[:, 0]],
        "host_subject_id": [f"subject.{i // 3:07d}" for i in range(n_samples)],
        "richness": np.diff(indptr),
        "depth": np.asarray(matrix.sum(1)).ravel(),
    })
    return matrix, ids, metadata


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--novel", type=float, default=0.1, help="share of uniform draws over all tips")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="the pretrain_corpus folder")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    corpus = Corpus(Path(args.corpus))
    matrix, ids, metadata = generate(corpus, args.samples, args.seed, args.novel)
    keep = np.flatnonzero(np.diff(matrix.tocsc().indptr) > 0)  # features that occur
    matrix = matrix[:, keep].tocsr()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_biom(csr_to_table(matrix, ids, list(corpus.features[keep])), out / "table.biom",
               generated_by=f"scripts/synthetic_table.py (seed {args.seed})")
    metadata.to_csv(out / "metadata.tsv", sep="\t", index=False)
    print(f"{args.samples} samples x {len(keep)} features ({matrix.nnz} non-zeros, median richness "
          f"{int(np.median(metadata['richness']))}, median depth {int(np.median(metadata['depth']))}) "
          f"in {time.perf_counter() - t0:.1f} s -> {out}; tree {Path(args.corpus) / TREE}, "
          f"sequences {Path(args.corpus) / SEQUENCES}")


if __name__ == "__main__":
    main()
