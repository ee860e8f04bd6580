"""Stage `aam seq-prepare`: validate a DNA sequence collection and split it into train/test.

Inputs: a FASTA file (`--fasta`) or a plain-text DNA file (`--text`, cut into records of
`chunk_len` characters), and optionally a labels TSV (`--labels`) with an ID column and either a
taxonomy string column (Greengenes / SILVA style, ``k__Bacteria; p__...; g__; s__``) or one
column per rank. Output: ``prepared.parquet`` with columns ``id``, ``sequence``, ``split``
(train/test, seeded) and, with labels, one column per rank (kingdom phylum class order family
genus species; an empty rank such as ``g__`` is missing, i.e. null).

An external test set (`--test-fasta`, `--test-labels`: the config's ``test: {fasta, labels}``)
replaces the random split. Reading, checking, labelling and splitting are
:mod:`aam.data.seq_collection`'s; bad input stops the stage with one `InputError` line naming the
file and ID, and writes nothing.
"""

from __future__ import annotations

import argparse
import logging

from aam.config import load_settings
from aam.data.seq_collection import prepare, write_prepared
from aam.errors import InputError

log = logging.getLogger(__name__)

DEFAULTS = {
    "fasta": None,
    "text": None,
    "labels": None,
    "test": None,
    "id_column": None,
    "taxonomy_column": None,
    "test_fraction": 0.2,
    "chunk_len": 1024,
    "ranks": ["family", "genus"],
    "color_rank": "phylum",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--fasta", help="sequences as FASTA (plain or gzip)")
    src.add_argument("--text", help="plain-text DNA (whitespace ignored), cut into chunk_len records")
    parser.add_argument("--labels", help="labels TSV: an ID column and a taxonomy or per-rank columns")
    parser.add_argument("--test-fasta", help="external test sequences (FASTA) instead of a random split")
    parser.add_argument("--test-labels", help="labels TSV of the external test sequences")
    parser.add_argument("--settings", help="the `sequences.<name>` entry as JSON or a YAML file")
    parser.add_argument("--seed", type=int, default=42, help="split seed (the config's seed)")
    parser.add_argument("--out", required=True, help="prepared.parquet to write")


def run(args: argparse.Namespace) -> None:
    settings = {**DEFAULTS, **load_settings(args.settings)}
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InputError(f"seq-prepare settings: unknown keys {sorted(unknown)}")
    fasta = args.fasta or (None if args.text else settings["fasta"])
    text = args.text or (None if args.fasta else settings["text"])
    labels = args.labels or settings["labels"]
    test = settings["test"] or {}
    unknown = set(test) - {"fasta", "labels"}
    if unknown:
        raise InputError(f"seq-prepare settings: unknown keys {sorted(unknown)} in test")
    test_fasta = args.test_fasta or test.get("fasta")
    test_labels = args.test_labels or test.get("labels")
    frame = prepare(
        fasta=fasta,
        text=text,
        labels=labels,
        id_column=settings["id_column"],
        taxonomy_column=settings["taxonomy_column"],
        test_fraction=float(settings["test_fraction"]),
        chunk_len=int(settings["chunk_len"]),
        seed=args.seed,
        ranks=settings["ranks"] + ([settings["color_rank"]] if settings["color_rank"] else []),
        test_fasta=test_fasta,
        test_labels=test_labels,
    )
    write_prepared(frame, args.out, {"settings": settings, "seed": args.seed})
    n_test = int((frame["split"] == "test").sum())
    log.info("wrote %s: %d sequences (%d train, %d test)", args.out, len(frame), len(frame) - n_test, n_test)
