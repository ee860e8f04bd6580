# Helpers of the results page (workflow/rules/report.smk): what it covers and reads.

import os
import time

from aam.data.split import stratify_column
from aam.stage_warnings import report as stage_warnings_report
from aam.versions import declared_versions


def summary_class_column(dataset):
    """The column whose classes the split summary counts: the stratify column, else the first
    classification target's."""
    targets = dataset_targets(dataset)
    column = stratify_column(config["split"], targets)
    classification = [t["column"] for t in targets if t["type"] == "classification"]
    return column or (classification[0] if classification else None)


def summary_plan():
    """What the summary page covers, for the stage's --settings (see aam.stages.summary)."""
    return settings_arg(
        {
            "datasets": {
                d: {
                    "class_column": summary_class_column(d),
                    "comparison": bool(AAM_RUNS and dataset_targets(d)),
                    "evaluations": [[run, t["name"]] for run in AAM_RUNS for t in dataset_targets(d)],
                    "faith_pd": bool(config["unifrac"]["faith_pd"]),
                }
                for d in DATASETS
            },
            "sequences": {name: seq_runs_for(name) for name in SEQUENCE_SETS},
        }
    )


def summary_inputs(wildcards):
    """Every artifact the summary page reads."""
    files = []
    for d in DATASETS:
        files += [
            out(d, "splits.tsv"),
            out(d, "ingest/samples.parquet"),
            out(d, "rarefied/table.biom"),
            out(d, "rarefied/dropped.tsv"),
        ]
        if config["unifrac"]["faith_pd"]:
            files.append(out(d, "unifrac/faith_pd.tsv"))
        if AAM_RUNS and dataset_targets(d):
            files.append(out(d, "comparison.tsv"))
            files += [
                out(d, f"eval/{run}/{t['name']}/metrics.json") for run in AAM_RUNS for t in dataset_targets(d)
            ]
    for name in SEQUENCE_SETS:
        files += [seq_out(name, f"eval/{run}/metrics.json") for run in seq_runs_for(name)]
    return files


RUN_STARTED = time.time()


def print_stage_warnings():
    """The stages' warnings of this run (e.g. a model that predicts one class), at its end."""
    text = stage_warnings_report(f"{RESULTS}/logs", RUN_STARTED)
    if text:
        print(text, file=sys.stderr)
