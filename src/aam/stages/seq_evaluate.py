"""Stage `aam seq-evaluate`: evaluate a DNA sequence model run on the held-out (test) split.

Contrastive runs: k-nearest-neighbour taxonomy accuracy at each configured rank (cosine
similarity of the embeddings, neighbours from the train split, test sequences whose rank is
known), beside a k-mer naive Bayes classifier trained and tested on the same sequences (the RDP /
q2-feature-classifier recipe: 8-mer presence, multinomial naive Bayes, alpha 0.001, uniform
prior); a 2-D PCA of the embeddings coloured by a rank; the loss history.

VQ runs: on the test split's blocks, reconstruction accuracy (fraction of nucleotides whose
argmax matches), codebook usage (fraction of codes used), perplexity of the code distribution
(exp of its entropy) and the loss history.

Outputs under ``eval/{run}/`` (a folder of its own, all of them or none): ``metrics.json``,
``history.png`` and, for contrastive runs, ``projection.png``, for VQ runs ``codebook.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam.config import load_settings
from aam.errors import InputError
from aam.evaluate.taxonomy import knn_predict, naive_bayes_predict
from aam.io.atomic import publish_together
from aam.provenance import provenance

log = logging.getLogger(__name__)

DEFAULTS = {
    "ranks": ["family", "genus"],
    "color_rank": "phylum",
    "knn_k": 1,
    "classify": {},
    "nb_kmer": 8,
    "nb_alpha": 0.001,
    "max_test_blocks": 20000,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prepared", required=True, help="prepared.parquet of seq-prepare")
    parser.add_argument("--model-dir", required=True, help="models/{run}/ of seq-train")
    parser.add_argument("--embeddings", help="embeddings/{run}.parquet (contrastive runs)")
    parser.add_argument(
        "--settings", help="evaluation settings as JSON: ranks, color_rank, knn_k, nb_kmer, ..."
    )
    parser.add_argument("--out-dir", required=True, help="eval/{run}/ to write")


def run(args: argparse.Namespace) -> None:
    from aam.stages.seq_prepare import check_ranks, read_prepared

    settings = {**DEFAULTS, **load_settings(args.settings)}
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InputError(f"seq-evaluate settings: unknown keys {sorted(unknown)}")
    check_ranks(settings["ranks"], "seq-evaluate ranks")
    if settings["color_rank"]:
        check_ranks([settings["color_rank"]], "seq-evaluate color_rank")
    model_dir = Path(args.model_dir)
    try:
        meta = json.loads((model_dir / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{model_dir / 'model.json'}: cannot read: {err}") from err
    frame = read_prepared(args.prepared)
    history = model_dir / "history.csv"
    vq = meta.get("kind") == "vq"
    if vq:
        metrics = evaluate_vq(frame, model_dir, settings)
    else:
        if not args.embeddings:
            raise InputError("seq-evaluate: a contrastive run needs --embeddings")
        from aam.io.embeddings import read_embeddings

        ids, _, vectors = read_embeddings(args.embeddings)
        metrics = evaluate_contrastive(frame, ids, vectors, settings)
        metrics["train"] = {
            k: meta.get(k) for k in ("epochs", "global_step", "n_parameters")
        }
    metrics["run"] = model_dir.name
    metrics["provenance"] = provenance(settings, model=meta.get("provenance"))
    names = ["metrics.json", "history.png", "codebook.png" if vq else "projection.png"]
    with publish_together(args.out_dir, names, owned=r"codebook\.png|projection\.png") as out_dir:
        if vq:
            plot_codebook(metrics.pop("code_counts", None), out_dir / "codebook.png")
        else:
            plot_projection(frame, ids, vectors, settings["color_rank"], out_dir / "projection.png")
        plot_history(history, out_dir / "history.png", title=f"{model_dir.name} ({meta.get('kind')})")
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    log.info("wrote %s", Path(args.out_dir) / "metrics.json")


def evaluate_contrastive(frame: pd.DataFrame, ids, vectors: np.ndarray, settings: dict) -> dict:
    """kNN accuracy vs naive Bayes per rank on the test split (same train/test sequences)."""
    pos = pd.Series(np.arange(len(ids)), index=pd.Index(np.asarray(ids, dtype=str)))
    missing = ~frame["id"].astype(str).isin(pos.index)
    if missing.any():
        raise InputError(f"embeddings: no vector for sequence '{frame['id'][missing].iloc[0]}'")
    emb = vectors[pos.loc[frame["id"].astype(str)].to_numpy()]
    is_test = (frame["split"] == "test").to_numpy()
    out: dict = {"kind": "contrastive", "knn_k": int(settings["knn_k"]), "ranks": {}}
    from aam.stages.seq_prepare import RANKS

    if not any(r in frame.columns for r in RANKS):
        out["note"] = "no labels: kNN taxonomy accuracy is not evaluated"
        return out
    classified = _classifier_names(frame, emb, is_test, settings.get("classify") or {})
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
    return out


def _classifier_names(frame: pd.DataFrame, emb: np.ndarray, is_test: np.ndarray, settings: dict):
    """(n, 7) names the classifier of `aam classify` gives the test rows (None elsewhere)."""
    from aam.evaluate.taxonomy import RANKS, KnnSettings, KnnTaxonomyClassifier

    try:
        knn = KnnSettings.from_dict(settings)
    except (TypeError, ValueError) as err:
        raise InputError(f"seq-evaluate classify settings: {err}") from err
    ranks = frame.reindex(columns=RANKS)
    lineage = ranks.astype(object).where(ranks.notna(), None).to_numpy(dtype=object)
    names = np.full((len(frame), len(RANKS)), None, dtype=object)
    seqs = frame["sequence"].tolist()
    train = np.flatnonzero(~is_test)
    test = np.flatnonzero(is_test)
    if len(train) and len(test):
        clf = KnnTaxonomyClassifier(emb[train], lineage[train], [seqs[i] for i in train], knn)
        names[test], _ = clf.predict(emb[test], [seqs[i] for i in test])
    return names


# ------------------------------------------------------------------------------------------- VQ
def evaluate_vq(frame: pd.DataFrame, model_dir: Path, settings: dict) -> dict:
    import torch

    from aam.data.dna_tokenizers import load_tokenizer
    from aam.io.model_files import load_model
    from aam.models.vq import VQTransformer
    from aam.stages.seq_train import blocks_from

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


# ----------------------------------------------------------------------------------------- plots
def plot_projection(frame, ids, vectors, color_rank: str | None, path: Path, max_points: int = 4000) -> None:
    from sklearn.decomposition import PCA

    from aam.evaluate.plots import plt, save_figure

    rng = np.random.default_rng(0)
    pick = np.sort(rng.permutation(len(vectors))[:max_points])
    xy = PCA(n_components=2, random_state=0).fit_transform(vectors[pick])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    labels = None
    if color_rank and color_rank in frame.columns:
        lab = frame.set_index(frame["id"].astype(str))[color_rank]
        labels = lab.reindex(np.asarray(ids, dtype=str)[pick]).fillna("(unknown)").to_numpy()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6)
    else:
        top = pd.Series(labels).value_counts().index[:10]
        for name in top:
            m = labels == name
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.7, label=str(name))
        rest = ~np.isin(labels, top)
        if rest.any():
            ax.scatter(xy[rest, 0], xy[rest, 1], s=3, alpha=0.4, c="lightgrey", label="other")
        ax.legend(fontsize=7, markerscale=3, loc="best", title=color_rank)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Sequence embeddings (PCA), {len(pick)} sequences")
    save_figure(fig, path)


def plot_history(history_csv: Path, path: Path, title: str = "") -> None:
    from aam.evaluate.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    if history_csv.exists():
        h = pd.read_csv(history_csv)
        for col in ("train/loss", "val/loss"):
            if col in h.columns and h[col].notna().any():
                ax.plot(h["epoch"] + 1, h[col], marker="o", label=col)
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss history")
    save_figure(fig, path)


def plot_codebook(counts: list[int] | None, path: Path) -> None:
    """Code use on the test blocks, codes sorted by frequency (empty for a plain autoencoder)."""
    from aam.evaluate.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    if counts:
        c = np.sort(np.asarray(counts, dtype=float))[::-1]
        ax.bar(np.arange(len(c)), c / max(c.sum(), 1.0), width=1.0)
        ax.set_title(f"codebook use: {(c > 0).sum()} of {len(c)} codes")
    else:
        ax.set_title("quantizer off (plain autoencoder): no codes")
    ax.set_xlabel("code (sorted by use)")
    ax.set_ylabel("fraction of test latents")
    save_figure(fig, path)
