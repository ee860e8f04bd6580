"""Stage `aam seq-evaluate`: evaluate a DNA sequence model run on the held-out (test) split.

Contrastive runs: k-nearest-neighbour taxonomy accuracy at each configured rank (cosine
similarity of the embeddings, neighbours from the train split, test sequences whose rank is
known), beside a k-mer naive Bayes classifier trained and tested on the same sequences (the RDP /
q2-feature-classifier recipe: 8-mer presence, multinomial naive Bayes, alpha 0.001, uniform
prior); a 2-D PCA of the embeddings coloured by a rank; the loss history.

VQ runs: on the test split's blocks, reconstruction accuracy (fraction of nucleotides whose
argmax matches), codebook usage (fraction of codes used), perplexity of the code distribution
(exp of its entropy) and the loss history.

Contrastive runs also score `aam classify`'s taxonomy, cut at its confidence threshold, beside
q2-feature-classifier's default naive Bayes (precision, recall, F-measure per rank;
`aam.evaluate.seq_metrics.taxonomy_scores`), and plot both over confidence thresholds.

Outputs under ``eval/{run}/`` (a folder of its own, all of them or none): ``metrics.json``,
``history.png`` and, for contrastive runs, ``projection.png`` and ``taxonomy_pr.png``, for VQ runs
``codebook.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aam.config import load_settings
from aam.data.seq_collection import check_ranks, read_prepared
from aam.errors import InputError
from aam.evaluate.seq_metrics import evaluate_contrastive, evaluate_vq
from aam.evaluate.seq_plots import plot_codebook, plot_history, plot_projection, plot_threshold_pr
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
    plots = ["codebook.png"] if vq else ["projection.png", "taxonomy_pr.png"]
    names = ["metrics.json", "history.png", *plots]
    owned = r"codebook\.png|projection\.png|taxonomy_pr\.png"
    with publish_together(args.out_dir, names, owned=owned) as out_dir:
        if vq:
            plot_codebook(metrics.pop("code_counts", None), out_dir / "codebook.png")
        else:
            plot_projection(frame, ids, vectors, settings["color_rank"], out_dir / "projection.png")
            plot_taxonomy(metrics.get("taxonomy"), out_dir / "taxonomy_pr.png")
        plot_history(history, out_dir / "history.png", title=f"{model_dir.name} ({meta.get('kind')})")
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    log.info("wrote %s", Path(args.out_dir) / "metrics.json")


def plot_taxonomy(taxonomy: dict | None, path: Path) -> None:
    """Precision-recall over thresholds at the deepest evaluated rank (an empty panel without labels)."""
    if not taxonomy:
        plot_threshold_pr({"no labelled test split: taxonomy not evaluated": {}}, path)
        return
    rank = taxonomy["rank"]
    classifiers = {
        name: {"curve": list(v["curve"].values()), "default": v["ranks"][rank], "threshold": v["threshold"]}
        for name, v in taxonomy.items()
        if name != "rank"
    }
    title = f"{rank} on the test split, thresholds 0-1 (step 0.05)"
    plot_threshold_pr({title: classifiers}, path)
