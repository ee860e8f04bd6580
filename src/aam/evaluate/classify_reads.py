"""Classify DNA reads against a contrastive run's reference: the library of `aam classify`.

Each read is classified by a vote of its nearest references (``reference.parquet``: the run's
training sequences), found by k-mer sketches (`search: kmer`, the default: the model's weights are
not read) or by the run's embeddings (`search: embedding`, :mod:`aam.evaluate.seq_embeddings`),
with a confidence per rank (:class:`aam.evaluate.taxonomy.KnnTaxonomyClassifier` says how). Reads go in
batches, so memory stays flat however many there are, and progress is logged per batch.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from aam.data.seq_collection import RANKS, read_labels, read_prepared
from aam.errors import InputError
from aam.evaluate.seq_embeddings import embed_sequences, load_contrastive, read_reference
from aam.evaluate.taxonomy import TABLE_COLUMNS, KnnTaxonomyClassifier
from aam.io import qza
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


def reference_classifier(reference: str, taxonomy: str, settings) -> KnnTaxonomyClassifier:
    """The classifier of a labelled reference given as files (`search: kmer`: no model): reads as
    FASTA or FeatureData[Sequence] .qza, their taxonomy as TSV or FeatureData[Taxonomy] .qza, the
    two files that q2-feature-classifier's fit-classifier-naive-bayes takes."""
    if settings.search != "kmer":
        raise InputError("classify: --reference needs search: kmer (search: embedding needs --model-dir)")
    records = read_rep_seqs(reference)
    labels = _read_taxonomy(taxonomy).reindex(columns=RANKS)
    missing = [rid for rid in records if rid not in labels.index]
    if missing:
        n = len(missing)
        raise InputError(f"{reference}: sequence '{missing[0]}' has no taxonomy in {taxonomy} ({n} without)")
    ids = list(records)
    lineage = labels.loc[ids].astype(object).where(labels.loc[ids].notna(), None).to_numpy(dtype=object)
    if not any(v is not None for v in lineage.ravel()):
        raise InputError(f"{taxonomy}: no taxonomy names for the reference's sequences")
    return KnnTaxonomyClassifier(None, lineage, [records[i] for i in ids], settings)


def _read_taxonomy(path: str) -> pd.DataFrame:
    """Taxonomy TSV (Feature ID, Taxon) or FeatureData[Taxonomy] .qza -> one column per rank."""
    if not Path(path).exists():
        raise InputError(f"{path}: file not found")
    if not qza.is_zip(path):
        return read_labels(path)
    _, payload = qza.read_payload(path, ("FeatureData[Taxonomy]",), (".tsv",))
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "taxonomy.tsv"
        tsv.write_bytes(payload)
        try:
            return read_labels(str(tsv))
        except InputError as err:
            raise InputError(f"{path}: {str(err).split(': ', 1)[-1]}") from None


def classify(
    model_dir: str | None,
    ids: list[str],
    seqs: list[str],
    settings,
    batch_size: int = 4096,
    reference: tuple[str, str] | None = None,
):
    """The taxonomy table (Feature ID, Taxon, Confidence) of the reads, in their order, against a
    run's reference (`model_dir`) or a (reads, taxonomy) pair of files (`reference`)."""
    if reference is not None:
        model, tokenizer, classifier = None, None, reference_classifier(*reference, settings)
    else:
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
