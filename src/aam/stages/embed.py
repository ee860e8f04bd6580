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

from aam.errors import InputError
from aam.evaluate.seq_embeddings import embed_sequences, load_contrastive
from aam.io.embeddings import write_embeddings

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
        from aam.data.seq_collection import read_prepared

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
