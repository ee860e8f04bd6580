"""Stage `aam tokenize`: ingested features and counts to the token caches of AAM training.

Inputs: ``ingest/features.parquet`` (feature_id, sequence), ``ingest/counts.parquet`` (sample,
feature, count; long), optionally ``rarefied/table.biom`` (which samples reach the rarefaction
depth, and the depth). Outputs in ``--out-dir``: ``features.parquet`` and ``samples.parquet``
(format in :mod:`aam.io.parquet_cache`), both or neither, built by :mod:`aam.data.token_caches`
(which keeps caches that are current: same settings, same inputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aam.config import load_settings
from aam.data.token_caches import build
from aam.errors import InputError

DEFAULTS = {"max_bp": 150}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", required=True, help="ingest/features.parquet (feature_id, sequence)")
    parser.add_argument("--counts", required=True, help="ingest/counts.parquet (sample, feature, count)")
    parser.add_argument("--rarefied", help="rarefied/table.biom: marks the samples that reach the depth")
    parser.add_argument("--out-dir", required=True, help="tokens/ folder: features.parquet, samples.parquet")
    parser.add_argument("--settings", help="the config's `tokenize:` section as JSON or a YAML file")
    parser.add_argument("--force", action="store_true", help="rebuild even if the caches are current")


def run(args: argparse.Namespace) -> None:
    settings = {**DEFAULTS, **load_settings(args.settings)}
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InputError(f"tokenize settings: unknown keys {sorted(unknown)}")
    build(
        args.features, args.counts, args.rarefied, Path(args.out_dir) / "features.parquet",
        Path(args.out_dir) / "samples.parquet",
        max_bp=int(settings["max_bp"]), force=args.force,
    )


