"""Stage `aam versions`: the software this run uses (:mod:`aam.versions`) as a TSV.

    aam versions --out results/versions.tsv

Columns ``kind``, ``name``, ``version``; the results page shows it under "Software versions".
"""

from __future__ import annotations

import argparse
import logging

from aam.io.atomic import atomic_path
from aam.versions import software_versions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="versions.tsv to write")


def run(args: argparse.Namespace) -> None:
    table = software_versions()
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("wrote %s: %d rows", args.out, len(table))
