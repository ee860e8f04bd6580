"""Stage `aam classify`: assign a taxonomy to DNA reads against a labelled reference.

Inputs: a model folder of `aam seq-train` (its weights, tokenizer and ``reference.parquet``: the
training sequences with their ranks and embeddings), or a labelled reference as the two files
q2-feature-classifier's fit-classifier-naive-bayes takes (`--reference` reads and
`--reference-taxonomy`; nothing is trained), and the reads, as FASTA or a QIIME 2
FeatureData[Sequence] .qza (`--reads`), or the test split of a ``prepared.parquet``
(`--prepared`). Each read is classified by a vote of its nearest references with a confidence per
rank, and its taxonomy is cut at the deepest rank whose confidence reaches the threshold
(`aam.evaluate.taxonomy` says how). The neighbours are found by k-mer sketches (`search: kmer`, the
default: the model's weights are not read) or by the model's embeddings (`search: embedding`).

Output: a taxonomy TSV in q2-feature-classifier's format, ``Feature ID<TAB>Taxon<TAB>Confidence``
(``k__Bacteria; p__Firmicutes; ...``; ``Unassigned`` when even the kingdom is below the
threshold), which QIIME 2 imports as FeatureData[Taxonomy]:

    qiime tools import --type 'FeatureData[Taxonomy]' --input-path taxonomy.tsv --output-path taxonomy.qza

With ``--out`` ending in ``.qza`` the stage writes that artifact itself (what `aam export-qza
--type FeatureData[Taxonomy]` writes from the TSV, its provenance naming this stage's settings), so a
QIIME 2 user goes .qza in, .qza out without the import step.
"""

from __future__ import annotations

import argparse
import logging

from aam.config import load_settings
from aam.errors import InputError
from aam.evaluate.classify_reads import classify, read_reads
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ref = parser.add_mutually_exclusive_group(required=True)
    ref.add_argument("--model-dir", help="models/{run}/ folder of seq-train (contrastive): its reference")
    ref.add_argument(
        "--reference",
        help="reference reads (FASTA or FeatureData[Sequence] .qza) with --reference-taxonomy, instead of a "
        "model folder: nothing to train (search: kmer)",
    )
    parser.add_argument(
        "--reference-taxonomy",
        help="taxonomy of --reference: TSV (Feature ID, Taxon) or FeatureData[Taxonomy] .qza",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--reads", help="reads to classify: FASTA (plain or gzip) or FeatureData[Sequence] .qza")
    src.add_argument("--prepared", help="prepared.parquet of seq-prepare: its test split is classified")
    parser.add_argument(
        "--settings",
        help="classifier settings as JSON or YAML: k, candidates, kmer_weight, kmer, align, genus_identity, "
        "genus_floor_margin, genus_floor_scale, bayes_temperature, temperature, temperature_length, "
        "threshold, species_threshold_scale, search, sketch_dim, ann_above, ann_lists, ann_probe",
    )
    parser.add_argument("--threshold", type=float, help="confidence threshold (overrides the settings)")
    parser.add_argument("--out", required=True,
                        help="taxonomy.tsv to write, or taxonomy.qza (FeatureData[Taxonomy]) for QIIME 2")
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

    if bool(args.reference) != bool(args.reference_taxonomy):
        raise InputError("classify: --reference and --reference-taxonomy go together")
    use_threads(args.threads or None)
    ids, seqs = read_reads(args.reads, args.prepared)
    reference = (args.reference, args.reference_taxonomy) if args.reference else None
    table = classify(args.model_dir, ids, seqs, settings, args.batch_size, reference)
    if str(args.out).endswith(".qza"):
        _write_qza(table, args, settings)
    else:
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    assigned = (table["Taxon"] != "Unassigned").mean() if len(table) else 0.0
    log.info(
        "wrote %s: %d reads (%.1f %% assigned at threshold %g; species at %g)",
        args.out,
        len(table),
        100 * assigned,
        settings.threshold,
        settings.threshold * settings.species_threshold_scale,
    )


def _write_qza(table, args: argparse.Namespace, settings) -> None:
    """The taxonomy table as a FeatureData[Taxonomy] artifact, as `aam export-qza` writes one (checked
    as q2-types' TSVTaxonomyFormat, written atomically)."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from aam.io.qza_payloads import write_artifact
    from aam.provenance import provenance

    inputs = {"reads": args.reads or args.prepared, "model_dir": args.model_dir, "reference": args.reference,
              "reference_taxonomy": args.reference_taxonomy}
    # file names only: paths a user gave stay out of an artifact they may share
    record = provenance({"type": "FeatureData[Taxonomy]", "stage": "classify",
                         **{k: Path(v).name for k, v in inputs.items() if v},
                         "classifier": dataclasses.asdict(settings)})
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "taxonomy.tsv"
        table.to_csv(tsv, sep="\t", index=False, float_format="%.6g")
        try:
            write_artifact(args.out, "FeatureData[Taxonomy]", tsv, record)
        except InputError as err:  # the check names the temporary file; name the output instead
            reason = str(err).split(": ", 1)[-1]
            raise InputError(f"{args.out}: not a valid FeatureData[Taxonomy]: {reason}; --out a .tsv "
                             "keeps the table") from None
