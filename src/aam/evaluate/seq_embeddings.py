"""Contrastive DNA models at inference: load a run folder, embed sequences, and the labelled reference.

`aam embed`, `aam classify`, seq-train (which writes the reference) and the benchmarks share these;
reading a model folder goes through :mod:`aam.io.model_files`, so none of them imports Lightning.
The reference (``reference.parquet`` beside the weights) is what `aam classify` votes over: the
training sequences, their ranks and their embeddings, in the one layout of :mod:`aam.io.embeddings`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from aam.data.seq_collection import RANKS
from aam.errors import InputError
from aam.io.embeddings import read_embeddings, write_embeddings


def load_contrastive(model_dir: str):
    """(model, tokenizer) of a contrastive run folder; anything else is an InputError."""
    from aam.data.dna_tokenizers import load_tokenizer
    from aam.io.model_files import load_model
    from aam.models.contrastive import ContrastiveEmbedder

    model_dir = Path(model_dir)
    for name in ("model.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).exists():
            raise InputError(f"{model_dir}: no {name}; not a seq-train model folder")
    model, meta = load_model(model_dir)
    if not isinstance(model, ContrastiveEmbedder):
        raise InputError(
            f"{model_dir}: a {meta.get('kind', meta['model_class'])} model, not a contrastive one"
        )
    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise InputError(f"{model_dir}: tokenizer.json does not match the model's vocabulary")
    return model, tokenizer


def embed_sequences(model, tokenizer, seqs: list[str], batch_size: int = 512) -> np.ndarray:
    """Pooled embeddings (n, dim) float32, in eval mode without gradients."""
    import torch

    model.eval()
    max_len = model.config.max_len
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            enc = tokenizer.batch_encode(seqs[i : i + batch_size], max_length=max_len)
            ids, mask = (torch.from_numpy(enc[key]).to(device) for key in ("input_ids", "attention_mask"))
            out.append(model.embed(ids, mask).float().cpu().numpy())
    dim = model.config.dim
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


def write_reference(model, tokenizer, train, out: str, batch_size: int = 512) -> None:
    """The labelled reference `aam classify` votes over: the training sequences, their ranks and
    their embeddings by the trained model (``reference.parquet`` beside the weights)."""
    vectors = embed_sequences(model, tokenizer, train["sequence"].tolist(), batch_size)
    extra = {"sequence": train["sequence"].tolist()}
    for rank in RANKS:
        values = train[rank] if rank in train.columns else [None] * len(train)
        extra[rank] = [v if isinstance(v, str) and v else None for v in values]
    write_embeddings(out, train["id"].astype(str).tolist(), vectors, extra=extra)


def read_reference(model_dir: str):
    """(ids, sequences, (n, 7) lineage names with None, (n, dim) vectors) of a model's reference."""
    path = Path(model_dir) / "reference.parquet"
    ids, _, vectors = read_embeddings(path)
    frame = pq.read_table(path, columns=["sequence", *RANKS]).to_pandas()
    lineage = frame[RANKS].astype(object).where(frame[RANKS].notna(), None).to_numpy(dtype=object)
    if not any(v is not None for v in lineage.ravel()):
        raise InputError(f"{path}: the reference has no taxonomy labels; train the run on labelled sequences")
    return ids, frame["sequence"].tolist(), lineage, vectors
