"""The features a fine-tuned model's training samples had, and the share of a new table's reads
that comes from features training never saw.

`aam finetune` writes ``train_features.parquet`` beside the model (feature_id, and the sequence as
the model read it, cut to max_bp); `aam predict` compares a new table's features with it by
sequence, since the encoder reads nucleotides, not IDs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aam.data.nucleotides import NucleotideTokenizer

from aam.errors import InputError
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)


TRAIN_FEATURES = "train_features.parquet"


def write_train_features(dm, path: Path) -> None:
    """The features of the training samples (feature_id, and the sequence as the model read it,
    cut to max_bp; the val samples' too where the model trained on them): `aam predict` counts the
    features of a new table that training never saw."""
    rows = dm.fit_dataset.rows
    present = [dm.samples.row(int(r))[0] for r in rows]
    feats = np.unique(np.concatenate(present)) if present else np.zeros(0, dtype=np.int64)
    table = pa.table({
        "feature_id": pa.array([str(f) for f in dm.feature_ids[feats]], pa.string()),
        "sequence": pa.array(NucleotideTokenizer.decode(dm.features.tokens[feats]) if feats.size else [],
                             pa.string()),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def feature_reads(features, samples, rows: np.ndarray) -> np.ndarray:
    """Reads per feature of the caches ``features`` summed over the samples ``rows``."""
    reads = np.zeros(len(features), dtype=np.float64)
    for r in rows:
        feats, counts = samples.row(int(r))
        np.add.at(reads, feats, counts)
    return reads


def unseen_features(model_dir: Path, features, reads: np.ndarray, table: str, warn_fraction: float) -> dict:
    """Features (and their share of the reads, ``reads``: per feature over the predicted samples,
    :func:`feature_reads`) that no training sample had, compared by sequence as the model reads it. None of them seen is an `InputError`; a share of the
    reads above `warn_fraction` a warning. Without the model's training list the counts are None."""
    path = model_dir / TRAIN_FEATURES
    if not path.exists():
        log.warning("%s: not found; cannot say which features training never saw", path)
        return {"n_features": None, "n_unseen_features": None, "unseen_read_fraction": None}
    seen = set(pq.read_table(path, columns=["sequence"]).column("sequence").to_pylist())
    present = np.flatnonzero(reads > 0)
    decoded = NucleotideTokenizer.decode(features.tokens[present]) if present.size else []
    new = np.array([s not in seen for s in decoded], dtype=bool)
    out = {
        "n_features": int(present.size),
        "n_unseen_features": int(new.sum()),
        "unseen_read_fraction": float(reads[present[new]].sum() / max(reads.sum(), 1)),
    }
    if present.size and new.all():
        raise InputError(
            f"{table}: none of its {present.size} features was in any training sample of {model_dir} "
            "(compared by sequence, as the model reads it); is it another amplicon region or marker?"
        )
    share = 100 * out["unseen_read_fraction"]
    if out["unseen_read_fraction"] > warn_fraction:
        log.warning("%.1f%% of the reads (%d of %d features) come from features no training sample had "
                    "(more than %s: --warn-unseen-fraction %g); the model predicts them from sequence "
                    "alone", share, out["n_unseen_features"], out["n_features"], f"{100 * warn_fraction:g}%",
                    warn_fraction)
    else:
        log.info("%d of %d features of the predicted samples (%.2f%% of their reads) were not in any "
                 "training sample; the encoder reads their sequences", out["n_unseen_features"],
                 out["n_features"], share)
    return out


def tabular_member_reads(model, features, reads: np.ndarray) -> dict:
    """The share of the predicted samples' reads in features the model's linear member
    (``finetune.linear_member``) has a coefficient for, and where it has one, in features its
    forest member (``finetune.forest_member``) splits on, matched by feature ID as they match them;
    a warning where a member knows none, as when a table names its features otherwise than the
    training table did (hashes against sequences). Empty for a model without either."""
    from aam.data.datasets import feature_id_keys

    out = {}
    for name, label in (("linear", "linear member (CLR + L2"), ("forest", "forest member (random forest")):
        member = getattr(model, name, None)
        if member is None:
            continue
        known = np.isin(feature_id_keys(features.feature_ids), member.keys.cpu().numpy())
        out[f"{name}_member_read_fraction"] = float(reads[known].sum() / max(reads.sum(), 1))
        if not known[reads > 0].any():
            log.warning("the model's %s, weight %g) knows none of this table's feature IDs: it matches "
                        "features by ID, so name them as the training table did (its share of the "
                        "prediction then rests on no feature)", label, getattr(model.config, f"{name}_weight"))
    return out
