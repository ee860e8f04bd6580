"""Stage `aam classify`: assign a taxonomy to DNA reads with a trained contrastive model.

Inputs: a model folder of `aam seq-train` (its weights, tokenizer and ``reference.parquet``: the
training sequences with their ranks and embeddings) and the reads, as FASTA or a QIIME 2
FeatureData[Sequence] .qza (`--reads`), or the test split of a ``prepared.parquet``
(`--prepared`). Each read is classified by a vote of its nearest references with a confidence per
rank, and its taxonomy is cut at the deepest rank whose confidence reaches the threshold
(`aam.evaluate.taxonomy` says how). The neighbours are found by k-mer sketches (`search: kmer`, the
default: the model's weights are not read) or by the model's embeddings (`search: embedding`).

Output: a taxonomy TSV in q2-feature-classifier's format, ``Feature ID<TAB>Taxon<TAB>Confidence``
(``k__Bacteria; p__Firmicutes; ...``; ``Unassigned`` when even the kingdom is below the
threshold), which QIIME 2 imports as FeatureData[Taxonomy]:

    qiime tools import --type 'FeatureData[Taxonomy]' --input-path taxonomy.tsv --output-path taxonomy.qza
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from aam.config import load_settings
from aam.errors import InputError
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="models/{run}/ folder of seq-train (contrastive)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--reads", help="reads to classify: FASTA (plain or gzip) or FeatureData[Sequence] .qza")
    src.add_argument("--prepared", help="prepared.parquet of seq-prepare: its test split is classified")
    parser.add_argument(
        "--settings",
        help="classifier settings as JSON or YAML: k, candidates, kmer_weight, kmer, temperature, threshold, "
        "search, sketch_dim",
    )
    parser.add_argument("--threshold", type=float, help="confidence threshold (overrides the settings)")
    parser.add_argument("--out", required=True, help="taxonomy.tsv to write")
    parser.add_argument("--batch-size", type=int, default=4096, help="reads classified at a time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> None:
    from aam.evaluate.taxonomy import KnnSettings

    raw = dict(load_settings(args.settings) or {})
    if args.threshold is not None:
        raw["threshold"] = args.threshold
    try:
        settings = KnnSettings.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise InputError(f"classify settings: {err}") from err
    from aam.threads import use_threads

    use_threads(args.threads or None)
    ids, seqs = read_reads(args.reads, args.prepared)
    table = classify(args.model_dir, ids, seqs, settings, args.batch_size)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    assigned = (table["Taxon"] != "Unassigned").mean() if len(table) else 0.0
    log.info(
        "wrote %s: %d reads (%.1f %% assigned at threshold %g)",
        args.out,
        len(table),
        100 * assigned,
        settings.threshold,
    )


def read_reads(reads: str | None, prepared: str | None) -> tuple[list[str], list[str]]:
    """(ids, sequences) of a FASTA / .qza file, or of a prepared collection's test split."""
    if prepared:
        from aam.stages.seq_prepare import read_prepared

        frame = read_prepared(prepared)
        test = frame[frame["split"] == "test"]
        if test.empty:
            raise InputError(f"{prepared}: no test sequences to classify")
        return test["id"].astype(str).tolist(), test["sequence"].tolist()
    from aam.io.rep_seqs import read_rep_seqs

    records = read_rep_seqs(reads)
    return list(records), list(records.values())


def load_classifier(model_dir: str, settings):
    """(model, tokenizer, KnnTaxonomyClassifier) of a contrastive run folder; model and tokenizer
    are None with `search: kmer`, which needs the reference only."""
    from aam.evaluate.taxonomy import KnnTaxonomyClassifier
    from aam.stages.embed import load_contrastive, read_reference

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
    import pandas as pd

    from aam.stages.embed import embed_sequences

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
        from aam.evaluate.taxonomy import TABLE_COLUMNS

        return pd.DataFrame(columns=TABLE_COLUMNS)
    return pd.concat(parts, ignore_index=True)
