"""Classify DNA reads against a contrastive run's reference: the library of `aam classify`.

Each read is classified by a vote of its nearest references (``reference.parquet``: the run's
training sequences), found by k-mer sketches (`search: kmer`, the default: the model's weights are
not read) or by the run's embeddings (`search: embedding`, :mod:`aam.evaluate.seq_embeddings`),
with a confidence per rank (:class:`aam.evaluate.taxonomy.KnnTaxonomyClassifier` says how). Reads go in
batches, so memory stays flat however many there are, and progress is logged per batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from aam.data.seq_collection import read_prepared
from aam.errors import InputError
from aam.evaluate.seq_embeddings import embed_sequences, load_contrastive, read_reference
from aam.evaluate.taxonomy import TABLE_COLUMNS, KnnTaxonomyClassifier
from aam.io.rep_seqs import read_rep_seqs

log = logging.getLogger(__name__)


def read_reads(reads: str | None, prepared: str | None) -> tuple[list[str], list[str]]:
    """(ids, sequences) of a FASTA / .qza file, or of a prepared collection's test split."""
    if prepared:
        frame = read_prepared(prepared)
        test = frame[frame["split"] == "test"]
        if test.empty:
            raise InputError(f"{prepared}: no test sequences to classify")
        return test["id"].astype(str).tolist(), test["sequence"].tolist()
    records = read_rep_seqs(reads)
    return list(records), list(records.values())


def load_classifier(model_dir: str, settings):
    """(model, tokenizer, KnnTaxonomyClassifier) of a contrastive run folder; model and tokenizer
    are None with `search: kmer`, which needs the reference only."""
    if not (Path(model_dir) / "reference.parquet").exists():
        raise InputError(f"{model_dir}: no reference.parquet; retrain the run with this version of seq-train")
    _, ref_seqs, lineage, vectors = read_reference(model_dir)
    if settings.search == "kmer":
        return None, None, KnnTaxonomyClassifier(None, lineage, ref_seqs, settings)
    model, tokenizer = load_contrastive(model_dir)
    if vectors.shape[1] != model.config.dim:
        raise InputError(f"{model_dir}: reference.parquet does not match the model's dimension")
    return model, tokenizer, KnnTaxonomyClassifier(vectors, lineage, ref_seqs, settings)


def classify(model_dir: str, ids: list[str], seqs: list[str], settings, batch_size: int = 4096):
    """The taxonomy table (Feature ID, Taxon, Confidence) of the reads, in their order."""
    model, tokenizer, classifier = load_classifier(model_dir, settings)
    t0 = time.perf_counter()
    parts = []
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i : i + batch_size]
        vectors = None  # search: kmer sketches the reads itself
        if model is not None:
            vectors = embed_sequences(model, tokenizer, chunk, 128)  # small batches stay in cache
        parts.append(classifier.classify(ids[i : i + batch_size], vectors, chunk))
        done = min(i + batch_size, len(seqs))
        rate = done / (time.perf_counter() - t0)
        log.info("classified %d of %d reads (%.0f reads/s)", done, len(seqs), rate)
    if not parts:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    return pd.concat(parts, ignore_index=True)
