"""Representative sequences: feature ID -> DNA, from FASTA or a QIIME 2 FeatureData[Sequence] .qza.

Also `sequences_for`, which resolves the sequence of every table feature: from the given
representative sequences (None where they have none), or, without them, from the feature IDs
themselves (deblur / DADA2 IDs are the sequences). Sequences are upper-cased; the alphabet is the
IUPAC nucleotide codes, and U is read as T, as every DNA input of the package reads it
(`aam.io.dna_text`).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from aam.errors import InputError, setting_name
from aam.io import qza
from aam.io.dna_text import IUPAC
from aam.io.fasta import read_fasta

SEQUENCE_TYPES = ("FeatureData[Sequence]", "FeatureData[AlignedSequence]")
DNA = re.compile(f"^[{IUPAC}]+$")
_U_TO_T = str.maketrans("U", "T")

log = logging.getLogger(__name__)


def read_rep_seqs(path: str | os.PathLike) -> dict[str, str]:
    """{feature ID: upper-case sequence} from FASTA (plain or gzip) or a .qza archive."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if qza.is_zip(path):
        _, payload = qza.read_payload(path, SEQUENCE_TYPES, (".fasta", ".fa", ".fna"))
        # aam.io.fasta reads files; hand it the payload through a temporary file
        with tempfile.TemporaryDirectory() as tmp:
            fasta = Path(tmp) / "dna-sequences.fasta"
            fasta.write_bytes(payload)
            try:
                records = read_fasta(fasta)
            except InputError as err:
                raise InputError(f"{path}: {str(err).split(': ', 1)[-1]}") from None
    else:
        records = read_fasta(path)
    aligned = any("-" in s or "." in s for s in records.values())
    if aligned:
        records = {k: s.replace("-", "").replace(".", "") for k, s in records.items()}
    for rec_id, seq in records.items():
        if not DNA.match(seq):
            bad = sorted(set(re.sub(f"[{IUPAC}]", "", seq)))
            raise InputError(f"{path}: sequence '{rec_id}' is not DNA (characters {''.join(bad)!r})")
    return {rec_id: seq.translate(_U_TO_T) for rec_id, seq in records.items()}


def sequences_for(
    feature_ids: list[str],
    rep_seqs: dict[str, str] | None,
    *,
    table_path: str,
    seqs_path: str | None,
    sequences_key: str = "datasets.<name>.sequences",
) -> list[str | None]:
    """The DNA sequence of each feature, in order; None for a feature that `rep_seqs` lacks.

    Without `rep_seqs` every feature ID must itself be DNA; with them, at least one feature needs a
    sequence (the caller decides what to do with the rest). Either failure is one `InputError`
    naming the file, the count and examples, and the setting that gives sequences: the flag
    ``--sequences`` by hand, `sequences_key` in the workflow.
    """
    if rep_seqs is None:
        bad = [f for f in feature_ids if not DNA.match(f.upper())]
        if bad:
            examples = ", ".join(f"'{b}'" for b in bad[:3])
            raise InputError(
                f"{table_path}: {len(bad)} of {len(feature_ids)} feature IDs are not DNA sequences "
                f"(e.g. {examples}) and no representative sequences were given "
                f"({setting_name('--sequences', sequences_key)})"
            )
        return [f.upper().translate(_U_TO_T) for f in feature_ids]
    sequences = [rep_seqs.get(f) for f in feature_ids]
    if all(s is None for s in sequences):
        examples = ", ".join(f"'{f}'" for f in feature_ids[:3])
        raise InputError(
            f"{seqs_path}: no sequence for any of the {len(feature_ids)} table features of {table_path} "
            f"(table features e.g. {examples}; sequence IDs e.g. '{next(iter(rep_seqs), '')}')"
        )
    return sequences


def table_with_sequences(table_path: str, sequences_path: str | None):
    """(samples x features counts, sample IDs, feature IDs, sequences) of the table; features
    without reads or without a sequence are dropped (logged)."""
    from aam.io.biom import read_table, table_to_csr

    counts, sample_ids, feature_ids = table_to_csr(read_table(table_path))
    totals = np.asarray(counts.sum(axis=0)).ravel()
    rep = read_rep_seqs(sequences_path) if sequences_path else None
    sequences = sequences_for(feature_ids, rep, table_path=str(table_path), seqs_path=sequences_path,
                              sequences_key="predict.<name>.sequences")
    keep = (totals > 0) & np.fromiter((s is not None for s in sequences), dtype=bool, count=len(sequences))
    no_seq = int(sum(s is None for s in sequences))
    if no_seq:
        lost = totals[[s is None for s in sequences]].sum() / max(totals.sum(), 1)
        log.warning("%d of %d features have no sequence in %s and are left out (%.2f%% of the reads)",
                    no_seq, len(feature_ids), sequences_path, 100 * lost)
    counts = counts[:, np.flatnonzero(keep)]
    feature_ids = [f for f, k in zip(feature_ids, keep, strict=True) if k]
    sequences = [s for s, k in zip(sequences, keep, strict=True) if k]
    return counts.tocsr(), list(map(str, sample_ids)), feature_ids, sequences
