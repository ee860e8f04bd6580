"""Stage `aam embed`: embed DNA sequences (FASTA) with a trained contrastive model.

Input: a FASTA file (or a ``prepared.parquet`` of `aam seq-prepare`: all its sequences, the
external test set included) and a model folder of `aam seq-train` (``model.safetensors``, ``model.json``,
``tokenizer.json``). Output: ``embeddings.parquet`` in the one layout of :mod:`aam.io.embeddings`
(``id``, ``embedding``: fixed-size list of float32, the pooled representation the kNN evaluation
uses), the layout of AAM's sample embeddings too.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from aam.errors import InputError
from aam.io.embeddings import read_embeddings, write_embeddings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="models/{run}/ folder of seq-train")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", help="sequences to embed (FASTA, plain or gzip)")
    src.add_argument("--prepared", help="prepared.parquet of seq-prepare: all its sequences")
    parser.add_argument("--out", required=True, help="embeddings.parquet to write")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> None:
    from aam.io.dna_text import dna_records
    from aam.io.fasta import read_fasta
    from aam.threads import use_threads

    use_threads(args.threads or None)
    model, tokenizer = load_contrastive(args.model_dir)
    if args.prepared:
        from aam.stages.seq_prepare import read_prepared

        frame = read_prepared(args.prepared)
        records = dict(zip(frame["id"].astype(str), frame["sequence"], strict=True))
    else:
        if not Path(args.fasta).exists():
            raise InputError(f"{args.fasta}: no such file")
        records = read_fasta(args.fasta)
    ids = list(records)
    # the same alphabet rule as seq-prepare, so a sequence embeds as it was trained
    records = dict(zip(ids, dna_records(ids, list(records.values()), args.fasta), strict=True))
    n_cut = sum(tokenizer.n_tokens(len(s)) + 2 > model.config.max_len for s in records.values())
    if n_cut:
        log.warning(
            "%d sequences are longer than the model's %d positions and are cut", n_cut, model.config.max_len
        )
    vectors = embed_sequences(model, tokenizer, [records[i] for i in ids], args.batch_size)
    write_embeddings(args.out, ids, vectors)
    log.info("wrote %s: %d sequences x %d dimensions", args.out, *vectors.shape)


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
    from aam.stages.seq_prepare import RANKS

    vectors = embed_sequences(model, tokenizer, train["sequence"].tolist(), batch_size)
    extra = {"sequence": train["sequence"].tolist()}
    for rank in RANKS:
        values = train[rank] if rank in train.columns else [None] * len(train)
        extra[rank] = [v if isinstance(v, str) and v else None for v in values]
    write_embeddings(out, train["id"].astype(str).tolist(), vectors, extra=extra)


def read_reference(model_dir: str):
    """(ids, sequences, (n, 7) lineage names with None, (n, dim) vectors) of a model's reference."""
    from aam.stages.seq_prepare import RANKS

    path = Path(model_dir) / "reference.parquet"
    ids, _, vectors = read_embeddings(path)
    frame = pq.read_table(path, columns=["sequence", *RANKS]).to_pandas()
    lineage = frame[RANKS].astype(object).where(frame[RANKS].notna(), None).to_numpy(dtype=object)
    if not any(v is not None for v in lineage.ravel()):
        raise InputError(f"{path}: the reference has no taxonomy labels; train the run on labelled sequences")
    return ids, frame["sequence"].tolist(), lineage, vectors
