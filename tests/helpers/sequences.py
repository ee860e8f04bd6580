"""A small labelled DNA collection (FASTA + taxonomy TSV) for the sequence stages' tests."""

from __future__ import annotations

import numpy as np

TAX = "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Lachnospiraceae; g__{g}; s__"


def write_labelled_set(tmp_path, n=40, seed=0, genera=("Blautia", "Dorea")):
    """seqs.fasta and tax.tsv: n 80-nt sequences, mutated copies (10 %) of one root per genus."""
    rng = np.random.default_rng(seed)
    roots = ["".join(rng.choice(list("ACGT"), 80)) for _ in genera]
    fasta, rows = [], ["feature_id\ttaxonomy"]
    for i in range(n):
        c = i % len(genera)
        seq = np.array(list(roots[c]))
        hit = rng.random(80) < 0.1
        seq[hit] = rng.choice(list("ACGT"), hit.sum())
        fasta.append(f">s{i}\n{''.join(seq)}")
        rows.append(f"s{i}\t{TAX.format(g=genera[c])}")
    (tmp_path / "seqs.fasta").write_text("\n".join(fasta) + "\n")
    (tmp_path / "tax.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "seqs.fasta", tmp_path / "tax.tsv"
