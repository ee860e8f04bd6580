"""Stage `aam predict`: apply a fine-tuned AAM model to the samples of a new table.

Inputs: a model folder of `aam finetune` (``model.safetensors``, ``model.json``, and
``train_features.parquet`` for the unseen-feature report) and a feature table (.biom HDF5/JSON,
.qza or TSV; the format is read from the content). Feature IDs must be DNA sequences, or
``--sequences`` (FASTA or .qza FeatureData[Sequence]) gives each feature its sequence.

New features are fine: the encoder reads each feature's nucleotides, not its ID, so an ASV that
training never saw is embedded like any other. But a model applied to reads it never saw
predicts from sequence alone, so the share matters: predict.json records how many features of the
predicted samples, and what fraction of their reads, training never saw (by sequence, as the model
reads it: cut to ``max_bp``); above ``--warn-unseen-fraction`` of the reads (default 0.5) that is a
WARNING, and a table sharing no feature with training at all (another amplicon region, another
marker gene) is an error.

Rarefaction, as the model's training did for its validation and test samples: each sample is
rarefied once, without replacement, to the depth the model was trained at (``depth`` in
model.json), with the evaluation stream of :mod:`aam.data.datasets`, keyed by ``--seed`` (default:
the seed the model was trained with) and the sample ID, and its ``asv_limit`` most abundant
features are kept (or a random subset, as the model's ``data.selection`` says). A sample of the
training table therefore gets exactly the input fine-tuning gave it. Samples with fewer reads than
the depth are left out, as training left them out (the log names them).

Outputs in ``--out-dir`` (all or none):

``predictions.tsv``
    ``sample``, ``y_pred`` (regression: in the target's units; classification: the most probable
    class) and, for classification, ``prob_<class>`` per class (the model's class order).
``embeddings.parquet``
    The sample encoder's pooled vector per sample, in the one layout of :mod:`aam.io.embeddings`
    (``id``, ``embedding``).
``predict.json``
    Counts (samples predicted and left out, features of the predicted samples and those unseen in
    training, ``unseen_read_fraction``: their share of the reads, null without the model's training
    list), the warning threshold, the depth, ``linear_member_read_fraction`` and
    ``forest_member_read_fraction`` (a model with a linear or forest member,
    ``finetune.linear_member`` / ``forest_member``: the share of the reads in features it knows by
    ID; a warning where it knows none), and the provenance (package version, git commit, the
    model's provenance, the seed).

The feature table is read with the ingest stage's readers, tokenized with the tokenize stage's
code, and batched with the training data code.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from aam.data.token_caches import table_caches
from aam.errors import InputError
from aam.evaluate.predict import load_finetuned
from aam.io.rep_seqs import table_with_sequences
from aam.threads import use_threads

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="models/{run}/finetune/{target}/ of aam finetune")
    parser.add_argument("--table", required=True, help="feature table: BIOM (HDF5/JSON), .qza or TSV")
    parser.add_argument("--sequences", default=None,
                        help="representative sequences (FASTA or .qza) when feature IDs are not DNA")
    parser.add_argument("--seed", type=int, default=None,
                        help="rarefaction seed (default: the seed the model was trained with)")
    parser.add_argument("--warn-unseen-fraction", type=float, default=0.5,
                        help="warn above this share of the reads from features training never saw "
                             "(default 0.5); a table sharing no feature with training is an error")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out-dir", required=True, help="folder for predictions.tsv, embeddings.parquet")


def run(args: argparse.Namespace) -> None:
    if not 0 <= args.warn_unseen_fraction <= 1:
        raise InputError(f"--warn-unseen-fraction: must lie in [0, 1], got {args.warn_unseen_fraction}")
    use_threads(args.threads or None)
    model, meta = load_finetuned(args.model_dir)
    max_bp = int(meta["config"]["max_bp"])

    counts, sample_ids, feature_ids, sequences = table_with_sequences(args.table, args.sequences)
    with tempfile.TemporaryDirectory(prefix="aam-predict-") as tmp:
        features, samples = table_caches(counts, sample_ids, feature_ids, sequences, max_bp, Path(tmp))
        _predict(args, model, meta, features, samples, sample_ids)


def _predict(args, model, meta: dict, features, samples, sample_ids: list[str]) -> None:
    from aam.data.train_features import feature_reads, tabular_member_reads, unseen_features
    from aam.evaluate.predict import predict_new_samples
    from aam.io.atomic import atomic_dir
    from aam.io.embeddings import write_embeddings
    from aam.provenance import provenance

    model_dir = Path(args.model_dir)
    model_prov = meta.get("provenance") or {}
    seed = args.seed if args.seed is not None else int(model_prov.get("seed", 42))
    depth = int(meta["depth"])
    batch_size = int(args.batch_size or meta["data"].get("batch_size", 8))
    deep = samples.totals >= depth
    rows = np.flatnonzero(deep)
    shallow = [str(s) for s in samples.sample_ids[~deep]]
    no_reads = sorted(set(sample_ids) - set(map(str, samples.sample_ids)))
    if shallow or no_reads:
        log.warning("%d of %d samples have fewer than %d reads (the model's depth) and are left out "
                    "(e.g. %s)", len(shallow) + len(no_reads), len(sample_ids), depth,
                    (shallow + no_reads)[0])
    if not rows.size:
        raise InputError(f"{args.table}: no sample reaches the model's rarefaction depth {depth}")
    reads = feature_reads(features, samples, rows)  # per feature, over the predicted samples
    unseen = unseen_features(model_dir, features, reads, args.table, args.warn_unseen_fraction)

    table, embeddings = predict_new_samples(model, meta, features, samples, rows, seed, batch_size)
    summary = {
        "model_dir": str(model_dir),
        "table": str(args.table),
        "task": meta["task"],
        "target": meta.get("target"),
        "depth": depth,
        "n_samples": len(sample_ids),
        "n_predicted": int(rows.size),
        "left_out": shallow + no_reads,
        **unseen,
        "warn_unseen_fraction": args.warn_unseen_fraction,
        **tabular_member_reads(model, features, reads),
        "provenance": provenance(seed=seed, model=model_prov),
    }
    with atomic_dir(args.out_dir) as out:
        table.to_csv(out / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
        write_embeddings(out / "embeddings.parquet", table["sample"].tolist(), embeddings)
        (out / "predict.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s: predictions.tsv, embeddings.parquet, predict.json", args.out_dir)
