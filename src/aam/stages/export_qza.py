"""Stage `aam export-qza`: one of the workflow's files as a QIIME 2 artifact (.qza), without QIIME 2.

    aam export-qza --type DistanceMatrix --input results/ibd2538/unifrac/unweighted.tsv \\
        --out unweighted_distance_matrix.qza

Types and the files they come from (:mod:`aam.io.qza_payloads`): FeatureTable[Frequency] (a
table), DistanceMatrix (lsmat TSV), PCoAResults (scikit-bio ordination file),
SampleData[AlphaDiversity] (sample + value TSV), FeatureData[Taxonomy] (``aam classify``'s
taxonomy.tsv), SampleData[ClassifierPredictions] / SampleData[RegressorPredictions] /
SampleData[Probabilities] (a predictions.tsv of evaluate, finetune or predict; ``--column
rf_pred`` takes the random forest's), ImmutableMetadata (an embeddings .parquet).

The archive follows QIIME 2's archive format 5 (:mod:`aam.io.qza_write`): its provenance is an
import with the payload's checksums, and records under ``action: aam:`` this package's version
and commit, the export's settings (type, source file, column) and, with ``--source-provenance``
(a model.json or metrics.json), the provenance of the model that made the data. QIIME 2 gives
every artifact a new UUID, so two exports differ in their UUIDs and times; their ``data/`` do not.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aam.errors import InputError
from aam.io.qza_payloads import TYPES, write_artifact
from aam.provenance import provenance

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", required=True, choices=sorted(TYPES), metavar="TYPE",
                        help=f"QIIME 2 semantic type, one of: {', '.join(sorted(TYPES))}")
    parser.add_argument("--input", required=True, help="the file to export")
    parser.add_argument("--column", default=None,
                        help="predictions: the prediction column (default y_pred or aam_pred; rf_pred: the "
                             "forest's); alpha diversity: the value column (default: the second)")
    parser.add_argument("--source-provenance", default=None,
                        help="a JSON file (model.json, metrics.json) whose 'provenance' is recorded too")
    parser.add_argument("--out", required=True, help="the .qza to write")


def _source_provenance(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(doc, dict) or "provenance" not in doc:
        raise InputError(f"{path}: has no 'provenance' block (expected a model.json or metrics.json)")
    return doc["provenance"]


def run(args: argparse.Namespace) -> None:
    if not str(args.out).endswith(".qza"):
        raise InputError(f"--out {args.out}: a QIIME 2 artifact's name ends in .qza")
    source = Path(args.input)
    settings = {"type": args.type, "input": source.name, "column": args.column}
    record = provenance(settings, source=_source_provenance(args.source_provenance))
    uuid = write_artifact(args.out, args.type, source, record, args.column)
    log.info("wrote %s (%s, %s, UUID %s)", args.out, args.type, TYPES[args.type].directory_format, uuid)
