"""Stage `aam summary`: the results page that opens the Snakemake report (summary.html).

With cross-validation: the leaderboard (benchmark/leaderboard.html) first, then per dataset and
target every AAM run and baseline over the folds (cv_summary/{target}/summary.tsv: mean ± sd, paired
differences to each baseline). Without: per dataset every AAM run beside the baselines on the test
split (headline table) and every test metric of each model. Then per dataset the samples and groups
(subjects) per split and class before and after rarefaction with the groups that lost every sample,
the samples rarefaction dropped, and Faith's PD per split and class. Per DNA sequence collection:
each model beside its reference (kNN taxonomy accuracy of the embeddings beside k-mer naive Bayes;
reconstruction and codebook figures of VQ runs).

Inputs are read under --results by the workflow's layout (benchmark/leaderboard.html;
{dataset}/comparison/comparison.tsv, cv_summary/{target}/summary.tsv, cv/split/r{repeat}/summary.tsv,
split/splits.tsv, ingest/samples.parquet, rarefied/dropped.tsv and table.biom,
unifrac/faith_pd.tsv; sequences/{name}/eval/{run}/metrics.json);
--settings says which exist (JSON, or a file of it): ``{"leaderboard": bool, "datasets": {name:
{"class_column": str|null, "comparison": bool, "evaluations": [[run, target], ...], "cv": [target,
...], "cv_repeats": int, "faith_pd": bool, "matrices": {metric: path under the dataset}}},
"sequences": {name: [run, ...]}}`` (evaluations: the eval/{run}/{target}/metrics.json files shown
as tables; cv: the targets with a cross-validation summary; cv_repeats: the repeats whose folds are
listed; matrices: the UniFrac distance matrices, TSV or HDF5, listed with their size and PCoA). The
output is an HTML fragment (styles inline), written atomically; the report's front page embeds it,
and it is also a report item of its own. The page is laid out by
:mod:`aam.evaluate.results_page`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aam.config import load_settings
from aam.evaluate.results_page import build
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, help="the results folder (config: results)")
    parser.add_argument("--settings", required=True,
                        help="the datasets and sequence runs to summarize (JSON text or a JSON/YAML file)")
    parser.add_argument("--versions", default=None,
                        help="versions.tsv (aam versions): shown as the page's last section")
    parser.add_argument("--out", required=True, help="summary.html to write")


def run(args: argparse.Namespace) -> None:
    plan = load_settings(args.settings)
    page = build(Path(args.results), plan, Path(args.versions) if args.versions else None)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    log.info("wrote %s", args.out)
