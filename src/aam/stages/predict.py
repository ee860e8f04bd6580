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
    list), the warning threshold, the depth, and the provenance (package version, git commit, the
    model's provenance, the seed).

The feature table is read with the ingest stage's readers, tokenized with the tokenize stage's
code, and batched with the training data code.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError
from aam.threads import use_threads

log = logging.getLogger(__name__)

MODEL_FILES = ("model.json", "model.safetensors")


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


# ------------------------------------------------------------------------------------------ model
def read_model(model_dir: str | Path):
    """(model, meta) of a fine-tuned AAM model folder; anything else is one InputError."""
    from aam.io.model_files import load_model

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such model folder")
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise InputError(f"{model_dir}: no {' or '.join(missing)}; not a model folder of aam finetune")
    try:
        meta = json.loads((model_dir / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{model_dir / 'model.json'}: cannot read: {err}") from err
    if meta.get("stage") != "finetune":
        raise InputError(f"{model_dir}: a model of stage {meta.get('stage')!r}, not of aam finetune")
    for key in ("task", "depth", "data"):
        if key not in meta:
            raise InputError(f"{model_dir / 'model.json'}: no {key!r}; not written by aam finetune")
    try:
        model, meta = load_model(model_dir)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{model_dir}: cannot load the model: {str(err).splitlines()[0]}") from err
    return model, meta


# ------------------------------------------------------------------------------------------ table
def read_new_table(table_path: str, sequences_path: str | None):
    """(samples x features counts, sample IDs, feature IDs, sequences) of the table; features
    without reads or without a sequence are dropped (logged)."""
    from aam.io.biom import read_table, table_to_csr
    from aam.io.rep_seqs import read_rep_seqs, sequences_for

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


def token_caches(counts, sample_ids, feature_ids, sequences, max_bp: int, folder: Path):
    """The tokenize stage's caches of the table, built with its own code (in ``folder``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aam.data.token_caches import build
    from aam.io.parquet_cache import read_features, read_samples

    coo = counts.tocoo()
    order = np.lexsort((coo.col, coo.row))  # samples in table order, features in table order
    pq.write_table(pa.table({"feature_id": pa.array(feature_ids, pa.string()),
                             "sequence": pa.array(sequences, pa.string())}), folder / "features.parquet")
    pq.write_table(pa.table({
        "sample": pa.array([sample_ids[i] for i in coo.row[order]], pa.string()),
        "feature": pa.array([feature_ids[j] for j in coo.col[order]], pa.string()),
        "count": pa.array(coo.data[order].astype(np.int64), pa.int64()),
    }), folder / "counts.parquet")
    tokens = folder / "tokens"
    tokens.mkdir()
    quiet = logging.getLogger("aam.data.token_caches")  # its cache report means nothing here
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        build(folder / "features.parquet", folder / "counts.parquet", None, tokens / "features.parquet",
              tokens / "samples.parquet", max_bp=max_bp, force=True)
    finally:
        quiet.setLevel(level)
    log.info("read %d samples x %d features (max_bp %d)", len(sample_ids), len(feature_ids), max_bp)
    return read_features(tokens / "features.parquet"), read_samples(tokens / "samples.parquet")


# -------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> None:
    if not 0 <= args.warn_unseen_fraction <= 1:
        raise InputError(f"--warn-unseen-fraction: must lie in [0, 1], got {args.warn_unseen_fraction}")
    use_threads(args.threads or None)
    model, meta = read_model(args.model_dir)
    max_bp = int(meta["config"]["max_bp"])

    counts, sample_ids, feature_ids, sequences = read_new_table(args.table, args.sequences)
    with tempfile.TemporaryDirectory(prefix="aam-predict-") as tmp:
        features, samples = token_caches(counts, sample_ids, feature_ids, sequences, max_bp, Path(tmp))
        _predict(args, model, meta, features, samples, sample_ids)


def _predict(args, model, meta: dict, features, samples, sample_ids: list[str]) -> None:
    import torch
    from torch.utils.data import DataLoader

    from aam.data.datasets import Collate, RarefiedSamples
    from aam.data.train_features import unseen_features
    from aam.evaluate.predict import predict
    from aam.io.atomic import atomic_dir
    from aam.io.embeddings import write_embeddings
    from aam.provenance import provenance

    model_dir = Path(args.model_dir)
    model_prov = meta.get("provenance") or {}
    seed = args.seed if args.seed is not None else int(model_prov.get("seed", 42))
    depth, data = int(meta["depth"]), meta["data"]
    asv_limit = int(meta["config"]["asv_limit"])
    batch_size = int(args.batch_size or data.get("batch_size", 8))
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
    unseen = unseen_features(model_dir, features, samples, rows, args.table, args.warn_unseen_fraction)

    selection = data.get("selection", "abundance")
    log.info("rarefying %d samples to %d reads (seed %d, evaluation stream), %s %d features each",
             rows.size, depth, seed, selection, asv_limit)
    dataset = RarefiedSamples(samples, rows, depth, asv_limit, selection, seed, False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=Collate(features.tokens))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    pred = predict(model, loader, device)
    log.info("predicted %d samples in %.1f s on %s", rows.size, time.perf_counter() - start, device.type)

    ids = [str(samples.sample_ids[int(r)]) for r in pred["row"]]
    table = pd.DataFrame({"sample": ids})
    if meta["task"] == "regression":
        table["y_pred"] = pred["output"].reshape(-1).astype(np.float64) * float(meta["target_std"]) + float(
            meta["target_mean"])
    else:
        classes = list(meta["classes"])
        probs = torch.softmax(torch.from_numpy(pred["output"]), dim=-1).numpy()
        table["y_pred"] = np.asarray(classes, dtype=object)[probs.argmax(1)]
        for i, c in enumerate(classes):
            table[f"prob_{c}"] = probs[:, i]
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
        "provenance": provenance(seed=seed, model=model_prov),
    }
    with atomic_dir(args.out_dir) as out:
        table.to_csv(out / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
        write_embeddings(out / "embeddings.parquet", ids, pred["embedding"])
        (out / "predict.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %s: predictions.tsv, embeddings.parquet, predict.json", args.out_dir)
