# Helpers of the results page (workflow/rules/report.smk): what it covers and reads.

import os

from aam.data.split import stratify_column


def summary_class_column(dataset):
    """The column whose classes the split summary counts: the stratify column, else the first
    classification target's."""
    targets = dataset_targets(dataset)
    column = stratify_column(config["split"], targets)
    classification = [t["column"] for t in targets if t["type"] == "classification"]
    return column or (classification[0] if classification else None)


def summary_plan():
    """What the summary page covers, for the stage's --settings (see aam.stages.summary)."""
    single = not CV  # with cross-validation the folds are the results, not the single split
    return settings_arg(
        {
            "leaderboard": bool(all_cv_summaries()),
            "datasets": {
                d: {
                    "class_column": summary_class_column(d),
                    "comparison": bool(single and AAM_RUNS and dataset_targets(d)),
                    "evaluations": [[run, t["name"]] for run in AAM_RUNS for t in dataset_targets(d)] if single else [],
                    "cv": [t["name"] for t in dataset_targets(d)] if CV else [],
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
        files += [out(d, f"cv_summary/{t['name']}.tsv") for t in dataset_targets(d)] if CV else []
        if AAM_RUNS and dataset_targets(d) and not CV:
            files.append(out(d, "comparison.tsv"))
            files += [
                out(d, f"eval/{run}/{t['name']}/metrics.json") for run in AAM_RUNS for t in dataset_targets(d)
            ]
    if all_cv_summaries():
        files.append(f"{RESULTS}/benchmark/leaderboard.html")
    for name in SEQUENCE_SETS:
        files += [seq_out(name, f"eval/{run}/metrics.json") for run in seq_runs_for(name)]
    return files
