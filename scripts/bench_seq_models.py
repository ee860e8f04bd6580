"""The contrastive DNA embedder as a taxonomy classifier vs k-mer naive Bayes, on an external split of
the 20,000 Greengenes 13_8 V4 sequences.

The split is `scripts/split_reference.py`'s (seed 42, 80/20, stratified by lineage down to the
genus: sequences are held out, not genera), given to `aam seq-prepare` as an external test set,
which drops the training sequences identical to a test sequence (identical V4 reads of different
97 % OTUs; about 950). A contrastive embedder is trained on the rest with the code of
`aam seq-train` (supervised contrastive on family + genus, 6-mer tokens, 128-d, no transformer
layer, mean pooling, --max-steps optimizer steps of 256 sequences x 2 views; default 600). The test
reads are then classified by each variant of `aam classify`'s kNN vote (`aam.evaluate.taxonomy`)
and by a k-mer naive Bayes classifier (the RDP / q2-feature-classifier recipe: 8-mer presence,
MultinomialNB alpha 0.001, uniform prior), trained per rank on the same training sequences. Scored:
test sequences whose rank is known; a wrong or missing name counts as wrong. Speed: test reads per
second of classification from the sequences (ours: tokenizing, embedding, neighbour search and
vote, all seven ranks at once; naive Bayes: 8-mer counting and prediction of the genus alone),
measured in the same run, on one thread. A row of 8-mer cosine kNN against every reference (no
embedding) shows what the embedding's candidate search buys.

    .venv/bin/python scripts/bench_seq_models.py                    # ~40 min on 2 busy cores
    .venv/bin/python scripts/bench_seq_models.py --model-dir M      # reuse a model trained on the split
    .venv/bin/python scripts/bench_seq_models.py --nb-full-lineage  # + naive Bayes as classify-sklearn

Results (seed 42: 15,209 training / 3,847 test sequences, 2,676 with a family and 1,289 with a
genus; 600 steps): docs/results.md (Taxonomy), the embedding ablation. The embedding rows use the
classifier's former defaults (k 20, 50 candidates, k-mer weight 0.8, temperature 0.05), chosen on
this split with a 150-step model, so this split flatters them; `aam classify`'s present defaults
and its comparison with q2-feature-classifier on new reads: scripts/eval_taxonomy.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gg13_8_v4"

# (name, kNN settings): the ablation, each row adding one idea to the one above
# (the embedding rows are the classifier of `aam classify` before `search: kmer` became its default,
# without the alignment identity that came later: pinned, so that they stay the embedding's rows)
EMBEDDING = {"search": "embedding", "k": 20, "candidates": 50, "threshold": 0.7}
EMBEDDING |= {"temperature": 0.05, "align": 0}
VARIANTS = [
    ("embedding, 1-NN", {**EMBEDDING, "k": 1, "candidates": 1, "kmer_weight": 0.0}),
    ("embedding, 20-NN vote", {**EMBEDDING, "candidates": 20, "kmer_weight": 0.0, "temperature": 0.02}),
    ("+ 8-mer re-scoring of 50 candidates", {**EMBEDDING, "kmer_weight": 0.8}),
    ("8-mer cosine alone on the 50 candidates", {**EMBEDDING, "kmer_weight": 1.0}),
    ("8-mer sketch search, no embedding (aam classify default)", {}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fasta", default=str(DATA / "v4_20k.fasta"))
    p.add_argument("--labels", default=str(DATA / "v4_20k.taxonomy.tsv"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-steps", type=int, default=600, help="optimizer steps of contrastive training")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--k", type=int, default=6, help="k-mer length of the tokenizer")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--model-dir", help="a model already trained on this split: skip training")
    p.add_argument(
        "--nb-full-lineage",
        action="store_true",
        help="also naive Bayes over whole lineages, as classify-sklearn trains it (slow: ~2,200 classes)",
    )
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    skip_if_absent(__file__, {"--fasta": args.fasta, "--labels": args.labels})
    logging.basicConfig(level=logging.WARNING)

    import torch

    from aam.data.seq_collection import prepare, write_prepared
    from aam.evaluate.seq_embeddings import embed_sequences, load_contrastive
    from aam.evaluate.taxonomy import RANKS, KnnSettings, KnnTaxonomyClassifier, kmer_matrix
    from aam.training.seq_train import train_run

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_seq_"))
    split = tmp / "split"
    cmd = [sys.executable, str(REPO / "scripts" / "split_reference.py"), "--fasta", args.fasta]
    cmd += ["--labels", args.labels, "--seed", str(args.seed), "--out-dir", str(split)]
    subprocess.run(cmd, check=True, capture_output=True)
    frame = prepare(
        fasta=str(split / "train.fasta"),
        labels=str(split / "train.taxonomy.tsv"),
        test_fasta=str(split / "test.fasta"),
        test_labels=str(split / "test.taxonomy.tsv"),
        ranks=["family", "genus"],
    )
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    print(f"{len(train)} training and {len(test)} test sequences")
    results: dict = {"args": vars(args), "n_train": len(train), "n_test": len(test), "rows": []}

    model_dir = args.model_dir
    if model_dir is None:
        model_dir = str(tmp / "model")
        prepared = tmp / "prepared.parquet"
        write_prepared(frame, str(prepared), {"bench": True})
        t0 = time.perf_counter()
        fit = train_run(str(prepared), _run(args), model_dir, seed=args.seed, frame=frame)
        results["train_s"] = time.perf_counter() - t0
        print(f"trained {fit.global_step} steps in {results['train_s']:.0f} s")
    model, tokenizer = load_contrastive(model_dir)
    ref_vectors = embed_sequences(model, tokenizer, train.sequence.tolist(), 512)
    lineage = train[RANKS].astype(object).where(train[RANKS].notna(), None).to_numpy(dtype=object)
    seqs = test.sequence.tolist()

    def score(names: np.ndarray) -> dict:
        out = {}
        for rank in ("family", "genus"):
            y = test[rank].to_numpy(dtype=object)
            known = pd.notna(y)
            out[rank] = float((names[known, RANKS.index(rank)] == y[known]).mean())
        return out

    # naive Bayes per rank; its speed is that of the genus alone (the larger class set)
    from sklearn.naive_bayes import MultinomialNB

    nb_names = np.full((len(test), len(RANKS)), None, dtype=object)
    x_train = kmer_matrix(train.sequence.tolist(), 8)
    for rank in ("family", "genus"):
        known = train[rank].notna().to_numpy()
        nb = MultinomialNB(alpha=0.001, fit_prior=False).fit(x_train[known], train[rank][known].to_numpy())
        t0 = time.perf_counter()
        nb_names[:, RANKS.index(rank)] = nb.predict(kmer_matrix(seqs, 8))
        nb_s = time.perf_counter() - t0
    rows = [("naive Bayes, 8-mers (per rank)", score(nb_names), len(seqs) / nb_s)]
    if args.nb_full_lineage:
        full = train[RANKS].fillna("").agg(";".join, axis=1).to_numpy()
        nb = MultinomialNB(alpha=0.001, fit_prior=False).fit(x_train, full)
        t0 = time.perf_counter()
        pred = nb.predict(kmer_matrix(seqs, 8))
        nb_s = time.perf_counter() - t0
        names = np.array([[v or None for v in p.split(";")] for p in pred], dtype=object)
        name = "naive Bayes, 8-mers (whole lineages, as classify-sklearn)"
        rows.append((name, score(names), len(seqs) / nb_s))

    name = "8-mer cosine against every reference, 20-NN vote (no embedding)"
    rows.append((name, *_kmer_knn(train, test, score)))
    for name, settings in VARIANTS:
        knn = KnnSettings(**settings)
        embedded = knn.search == "embedding"
        clf = KnnTaxonomyClassifier(ref_vectors if embedded else None, lineage, train.sequence.tolist(), knn)
        t0 = time.perf_counter()
        names, _ = clf.predict(embed_sequences(model, tokenizer, seqs, 128) if embedded else None, seqs)
        rows.append((name, score(names), len(seqs) / (time.perf_counter() - t0)))

    print("| variant | family | genus | reads/s |\n|---|---|---|---|")
    for name, acc, speed in rows:
        print(f"| {name} | {acc['family']:.3f} | {acc['genus']:.3f} | {speed:,.0f} |")
        results["rows"].append({"variant": name, **acc, "reads_per_s": speed})
    n_fam, n_gen = (int(test[r].notna().sum()) for r in ("family", "genus"))
    print(f"({n_fam} test sequences with a family, {n_gen} with a genus)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=float) + "\n")


def _kmer_knn(train, test, score) -> tuple[dict, float]:
    """The vote of the default classifier on exact 8-mer cosine similarities to all references: what
    the embedding's candidate search saves. Returns (accuracies, reads/s)."""
    import torch

    from aam.evaluate.taxonomy import RANKS, KnnSettings, kmer_matrix, lineage_codes, rank_vote

    s = KnnSettings(k=20)  # the vote of the embedding rows
    lineage = train[RANKS].astype(object).where(train[RANKS].notna(), None).to_numpy(dtype=object)
    codes, prefixes = lineage_codes(lineage)
    ref = kmer_matrix(train.sequence.tolist(), s.kmer)
    ref = ref.multiply(1.0 / np.sqrt(ref.sum(axis=1))).T.tocsr()
    t0 = time.perf_counter()
    query = kmer_matrix(test.sequence.tolist(), s.kmer)
    query = query.multiply(1.0 / np.sqrt(query.sum(axis=1))).tocsr()
    sims, idxs = [], []
    for i in range(0, query.shape[0], 256):
        sim, idx = torch.from_numpy((query[i : i + 256] @ ref).toarray()).topk(s.k, dim=1)
        sims.append(sim.numpy())
        idxs.append(idx.numpy())
    sim, idx = np.concatenate(sims), np.concatenate(idxs)
    chosen, _ = rank_vote(np.exp((sim - sim[:, :1]) / s.temperature), codes[idx])
    seconds = time.perf_counter() - t0
    names = np.full(chosen.shape, None, dtype=object)
    for r in range(chosen.shape[1]):
        hit = chosen[:, r] >= 0
        names[hit, r] = [prefixes[c][r] for c in chosen[hit, r]]
    return score(names), len(test) / seconds


def _run(args) -> dict:
    """The `seq_models.runs` entry the benchmark trains."""
    return {
        "kind": "contrastive",
        "tokenizer": {"type": "kmer", "k": args.k, "stride": 1},
        "model": {
            "backbone": "transformer",
            "pooling": "mean",
            "dim": args.dim,
            "layers": 0,
            "heads": 4,
            "ff_dim": 2 * args.dim,
            "dropout": 0.1,
            "proj_hidden": args.dim,
            "proj_dim": 64,
        },
        "loss": "supcon",
        "label_ranks": ["family", "genus"],
        "temperature": 0.1,
        "val_fraction": 0.02,
        "trainer": {
            "max_epochs": 1000,
            "max_steps": args.max_steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup_steps": 20,
            "patience": None,
            "progress_bar": False,
            "num_threads": 1,
            "log_every_n_steps": 50,
            # kNN quality is not what the validation loss measures: keep the last weights, and let
            # the large, sparse k-mer embedding gradients through unclipped
            "gradient_clip_val": None,
            "restore_best": False,
        },
    }


if __name__ == "__main__":
    main()
