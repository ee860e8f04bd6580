"""Tiny synthetic AAM batches in the DataModule's batch format (see aam.data.datasets)."""

from __future__ import annotations

import numpy as np
import torch


def make_batch(samples: list[list[int]], counts: list[list[float]] | None = None, n_features: int = 12,
               length: int = 12, seed: int = 0, target=None, pad_row: bool = False) -> dict:
    """samples: per sample, global feature indices sorted by count (may be empty).

    Every feature f has a fixed random sequence of 6..length nucleotides (seeded). ``pad_row`` adds
    an all-padding token row that no slot uses.
    """
    rng = np.random.default_rng(seed)
    seq_tokens = np.zeros((n_features, length), dtype=np.int64)
    for f in range(n_features):
        n = rng.integers(6, length + 1)
        seq_tokens[f, :n] = rng.integers(1, 6, size=n)
    b = len(samples)
    k = max(1, max(len(s) for s in samples))
    used = sorted({f for s in samples for f in s})
    uniq = np.array(used, dtype=np.int64)
    pos = {f: i for i, f in enumerate(used)}
    tokens = seq_tokens[uniq] if uniq.size else np.zeros((0, length), dtype=np.int64)
    if pad_row:
        tokens = np.concatenate([tokens, np.zeros((1, length), dtype=np.int64)])
    asv_index = np.zeros((b, k), dtype=np.int64)
    asv_mask = np.zeros((b, k), dtype=bool)
    asv_counts = np.zeros((b, k), dtype=np.float32)
    unifrac_counts = np.zeros((b, max(1, len(used))), dtype=np.float32)
    for i, s in enumerate(samples):
        c = counts[i] if counts is not None else [float(len(s) - j) * 3 for j in range(len(s))]
        for j, f in enumerate(s):
            asv_index[i, j] = pos[f]
            asv_mask[i, j] = True
            asv_counts[i, j] = c[j]
            unifrac_counts[i, pos[f]] = c[j]
    batch = {
        "tokens": torch.from_numpy(tokens),
        "feature_idx": torch.from_numpy(uniq),
        "asv_index": torch.from_numpy(asv_index),
        "asv_mask": torch.from_numpy(asv_mask),
        "asv_counts": torch.from_numpy(asv_counts),
        "unifrac_feature_idx": torch.from_numpy(uniq if uniq.size else np.zeros(1, dtype=np.int64)),
        "unifrac_counts": torch.from_numpy(unifrac_counts),
        "sample_index": torch.arange(b),
    }
    if target is not None:
        batch["target"] = torch.as_tensor(target)
    return batch


def balanced_newick(n: int) -> str:
    """A rooted binary tree over tips f0..f{n-1} with varied branch lengths."""
    nodes = [f"f{i}:{0.1 + 0.05 * (i % 5):.2f}" for i in range(n)]
    level = 0
    while len(nodes) > 1:
        level += 1
        nxt = [f"({nodes[i]},{nodes[i + 1]}):{0.2 * level:.2f}" for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
    return nodes[0].rsplit(":", 1)[0] + ";"


def write_study(folder, n_samples: int = 40, n_features: int = 40, depth: int = 100, seed: int = 7,
                n_train: int = 24, n_val: int = 10) -> None:
    """A small study on disk, as the tokenize stage leaves it: ``tokens/`` caches, ``splits.tsv``
    (the first ``n_train`` samples train, the next ``n_val`` validate, the rest test), ``metadata.tsv``
    (``disease``: Crohns / Control; ``age``) and ``tree.nwk`` over the features ``asv0..``. Every
    sample has at least ``depth`` reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aam.data.token_caches import build

    rng = np.random.default_rng(seed)
    letters = np.array(list("ACGT"))
    seqs = ["".join(rng.choice(letters, size=rng.integers(20, 30))) for _ in range(n_features)]
    fids = [f"asv{i}" for i in range(n_features)]
    pq.write_table(pa.table({"feature_id": fids, "sequence": seqs}), folder / "features.parquet")
    ids = [f"2538.{1000 + s}" for s in range(n_samples)]
    samples, feats, counts = [], [], []
    for s in range(n_samples):
        present = rng.choice(n_features, size=rng.integers(8, 30), replace=False)
        c = rng.integers(15, 40, size=present.size)
        samples += [ids[s]] * present.size
        feats += [fids[i] for i in present]
        counts += c.tolist()
    table = pa.table({"sample": samples, "feature": feats, "count": counts})
    pq.write_table(table, folder / "counts.parquet")
    build(folder / "features.parquet", folder / "counts.parquet", None,
          folder / "tokens" / "features.parquet", folder / "tokens" / "samples.parquet", max_bp=32)
    split = ["train"] * n_train + ["val"] * n_val + ["test"] * (n_samples - n_train - n_val)
    (folder / "splits.tsv").write_text(
        "\n".join(["sample\tsplit"] + [f"{i}\t{s}" for i, s in zip(ids, split, strict=True)]) + "\n")
    meta = ["sample_name\tdisease\tage"] + [
        f"{i}\t{'Crohns' if rng.random() < 0.4 else 'Control'}\t{20 + k}" for k, i in enumerate(ids)]
    (folder / "metadata.tsv").write_text("\n".join(meta) + "\n")
    (folder / "tree.nwk").write_text(balanced_newick(n_features).replace("f", "asv") + "\n")
