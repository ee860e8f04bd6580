"""Scoring a DNA sequence model run on its held-out (test) split: the library of `aam seq-evaluate`.

Contrastive runs: k-nearest-neighbour taxonomy accuracy at each configured rank (cosine
similarity of the embeddings, neighbours from the train split, test sequences whose rank is
known) and the vote of `aam classify`, beside a k-mer naive Bayes classifier trained and tested on
the same sequences (the RDP / q2-feature-classifier recipe), so the model is always read against
the reference classifier of the field measured in the same run. And `aam classify`'s taxonomy cut
at its confidence threshold beside q2-feature-classifier's default naive Bayes at its 0.7:
precision, recall and F-measure per rank (tax-credit's definitions, `aam.evaluate.taxonomy_eval`)
at the default thresholds and over a grid of thresholds (the report's precision-recall curve).

VQ runs: on the test split's blocks, reconstruction accuracy (fraction of nucleotides whose
argmax matches), codebook usage (fraction of codes used), perplexity of the code distribution
(exp of its entropy).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam.data.seq_collection import blocks_from
from aam.errors import InputError
from aam.evaluate.taxonomy import RANKS, KnnSettings, KnnTaxonomyClassifier, knn_predict, naive_bayes_predict
from aam.evaluate.taxonomy_eval import random_fold_scores
from aam.evaluate.taxonomy_nb import Q2_CONFIDENCE, Q2NaiveBayes, RankCalls

log = logging.getLogger(__name__)


def evaluate_contrastive(frame: pd.DataFrame, ids, vectors: np.ndarray, settings: dict) -> dict:
    """kNN accuracy vs naive Bayes per rank on the test split (same train/test sequences)."""
    pos = pd.Series(np.arange(len(ids)), index=pd.Index(np.asarray(ids, dtype=str)))
    missing = ~frame["id"].astype(str).isin(pos.index)
    if missing.any():
        raise InputError(f"embeddings: no vector for sequence '{frame['id'][missing].iloc[0]}'")
    emb = vectors[pos.loc[frame["id"].astype(str)].to_numpy()]
    is_test = (frame["split"] == "test").to_numpy()
    out: dict = {"kind": "contrastive", "knn_k": int(settings["knn_k"]), "ranks": {}}
    if not any(r in frame.columns for r in RANKS):
        out["note"] = "no labels: kNN taxonomy accuracy is not evaluated"
        return out
    calls = _classifier_calls(frame, emb, is_test, settings.get("classify") or {})
    classified = np.full((len(frame), len(RANKS)), None, dtype=object)
    if calls is not None:
        classified[is_test] = calls.names
    for rank in settings["ranks"]:
        if rank not in frame.columns:
            raise InputError(f"seq-evaluate: rank '{rank}' is not in the prepared labels")
        y = frame[rank].to_numpy(dtype=object)
        known = pd.notna(frame[rank]).to_numpy()
        tr, te = ~is_test & known, is_test & known
        if tr.sum() == 0 or te.sum() == 0:
            out["ranks"][rank] = {"n_train": int(tr.sum()), "n_test": int(te.sum())}
            continue
        t0 = time.perf_counter()
        knn = knn_predict(emb[tr], y[tr], emb[te], int(settings["knn_k"]))
        t_knn = time.perf_counter() - t0
        seqs = frame["sequence"].to_numpy(dtype=object)
        t0 = time.perf_counter()
        nb = naive_bayes_predict(
            seqs[tr], y[tr], seqs[te], int(settings["nb_kmer"]), float(settings["nb_alpha"])
        )
        t_nb = time.perf_counter() - t0
        seen = np.isin(y[te], np.unique(y[tr].astype(str)))
        out["ranks"][rank] = {
            "n_train": int(tr.sum()),
            "n_test": int(te.sum()),
            "test_classes_seen_in_train": float(seen.mean()),
            "knn_accuracy": float((knn.astype(str) == y[te].astype(str)).mean()),
            # the vote of `aam classify` (all training sequences as reference, untruncated names)
            "classifier_accuracy": float((classified[te, RANKS.index(rank)] == y[te]).mean()),
            "naive_bayes_accuracy": float((nb.astype(str) == y[te].astype(str)).mean()),
            "knn_seconds": round(t_knn, 3),
            "naive_bayes_seconds": round(t_nb, 3),
        }
        log.info(
            "%s: kNN %.4f, classifier %.4f vs naive Bayes %.4f on %d test sequences",
            rank,
            out["ranks"][rank]["knn_accuracy"],
            out["ranks"][rank]["classifier_accuracy"],
            out["ranks"][rank]["naive_bayes_accuracy"],
            te.sum(),
        )
    if calls is not None:
        deepest = max(settings["ranks"], key=RANKS.index)
        out["taxonomy"] = taxonomy_scores(frame, calls, settings.get("classify") or {}, deepest)
    return out


def _classifier_calls(frame: pd.DataFrame, emb: np.ndarray, is_test: np.ndarray, settings: dict):
    """`aam classify`'s calls (RankCalls) on the test rows, the train rows as reference; None
    without train or test rows."""
    knn = _knn_settings(settings)
    lineage = _lineage(frame)
    seqs = frame["sequence"].tolist()
    train = np.flatnonzero(~is_test)
    test = np.flatnonzero(is_test)
    if not len(train) or not len(test):
        return None
    clf = KnnTaxonomyClassifier(emb[train], lineage[train], [seqs[i] for i in train], knn)
    return RankCalls(*clf.vote(emb[test], [seqs[i] for i in test]))


def _knn_settings(settings: dict) -> KnnSettings:
    try:
        return KnnSettings.from_dict(settings)
    except (TypeError, ValueError) as err:
        raise InputError(f"seq-evaluate classify settings: {err}") from err


def _lineage(frame: pd.DataFrame) -> np.ndarray:
    ranks = frame.reindex(columns=RANKS)
    return ranks.astype(object).where(ranks.notna(), None).to_numpy(dtype=object)


def taxonomy_scores(frame: pd.DataFrame, calls: RankCalls, settings: dict, rank: str) -> dict:
    """`aam classify` (its thresholds: species at a fraction of the others) beside q2's default naive
    Bayes (0.7) on the test split: per rank precision/recall/F at the defaults, and `rank`'s over
    thresholds 0, 0.05, ..., 1 (one for every rank)."""
    is_test = (frame["split"] == "test").to_numpy()
    lineage = _lineage(frame)
    seqs = frame["sequence"].to_numpy(dtype=object)
    t0 = time.perf_counter()
    nb = Q2NaiveBayes().fit(list(seqs[~is_test]), lineage[~is_test]).calls(list(seqs[is_test]))
    log.info("q2's naive Bayes trained and run in %.1f s", time.perf_counter() - t0)
    truth = lineage[is_test]
    r = RANKS.index(rank)
    out: dict = {"rank": rank}
    knn = _knn_settings(settings)
    for name, c, thresholds in (
        ("aam classify", calls, knn.rank_thresholds(len(RANKS))),
        ("naive Bayes, 7-mers (q2 default)", nb, np.full(len(RANKS), Q2_CONFIDENCE)),
    ):
        grid = np.round(np.arange(0.0, 1.0001, 0.05), 2)
        out[name] = {
            "threshold": float(thresholds[r]),  # at `rank`: where its default sits on the curve
            "ranks": dict(zip(RANKS, random_fold_scores(c, truth, thresholds), strict=True)),
            "curve": {f"{t:.2f}": random_fold_scores(c, truth, t)[r] for t in grid},
        }
    return out


def evaluate_vq(frame: pd.DataFrame, model_dir: Path, settings: dict) -> dict:
    """Reconstruction accuracy, codebook usage and perplexity on the test split's blocks."""
    import torch

    from aam.data.dna_tokenizers import load_tokenizer
    from aam.io.model_files import load_model
    from aam.models.vq import VQTransformer

    model, meta = load_model(model_dir)
    if not isinstance(model, VQTransformer):
        raise InputError(f"{model_dir}: not a VQ model")
    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    cfg = model.config
    test = frame[frame["split"] == "test"]["sequence"].tolist()
    blocks = blocks_from(test, cfg.block_len)[: int(settings["max_test_blocks"])]
    if len(blocks) == 0:
        raise InputError(f"seq-evaluate: no test block of {cfg.block_len} nucleotides")
    ids = torch.from_numpy(tokenizer.encode_codes(blocks))
    correct, total, codes = 0, 0, []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ids), 512):
            out = model(ids[i : i + 512])
            correct += int((out["logits"].argmax(-1) == ids[i : i + 512]).sum())
            total += ids[i : i + 512].numel()
            if out["codes"] is not None:
                codes.append(out["codes"].reshape(-1))
    metrics: dict = {
        "kind": "vq",
        "quantize": bool(cfg.quantize),
        "n_test_blocks": int(len(blocks)),
        "block_len": cfg.block_len,
        "reconstruction_accuracy": correct / total,
        "train": {k: meta.get(k) for k in ("epochs", "global_step", "n_parameters")},
    }
    if codes:
        c = torch.cat(codes)
        counts = torch.bincount(c, minlength=cfg.codebook_size).double()
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        metrics.update(
            codebook_size=cfg.codebook_size,
            codebook_usage=float((counts > 0).double().mean()),
            perplexity=float(np.exp(entropy)),
            bits_per_nucleotide=float(np.log2(cfg.codebook_size) / cfg.patch),
            restarts=int(model.quantizer.restarts),
        )
        metrics["code_counts"] = counts.long().tolist()
    log.info("VQ: %s", {k: v for k, v in metrics.items() if k != "train"})
    return metrics
