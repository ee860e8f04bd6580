"""The ingest stage on the small valid dataset of tests/data/prepare (table, tree, metadata)."""

from __future__ import annotations

import json
from pathlib import Path

from aam.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "prepare"
TARGETS = [{"name": "dx", "column": "diagnosis", "type": "classification"}]


def run_ingest(
    data: Path, *extra: str, targets=TARGETS, table="table.tsv", tree="tree.nwk", meta="metadata.tsv"
):
    """`aam ingest` on the files of `data` (a copy of FIXTURES, perhaps broken), into `data`/out."""
    argv = [
        "ingest",
        "--table",
        str(data / table),
        "--tree",
        str(data / tree),
        "--metadata",
        str(data / meta),
        "--group-column",
        "host_subject_id",
        "--targets",
        json.dumps(targets),
        "--out-dir",
        str(data / "out"),
        *extra,
    ]
    return main(argv)
