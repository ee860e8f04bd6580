# Rules of this phase; see workflow/rules/common.smk for helpers.
# summary: the results page that opens `snakemake --report` (workflow/report/workflow.rst embeds
# it): per dataset every AAM run beside the forest (and the cross-validation summary where
# comparison.tsv has one), the split before and after rarefaction, the dropped samples, Faith's PD;
# per sequence collection the models beside naive Bayes.
#
# Rerun scope: its inputs (the artifacts it reads) and the plan (which datasets, columns and runs).

from aam.data.split import stratify_column


def summary_class_column(dataset):
    """The column whose classes the split summary counts: the stratify column, else the first
    classification target's."""
    targets = dataset_targets(dataset)
    column = stratify_column(config["split"], targets)
    classification = [t["column"] for t in targets if t["type"] == "classification"]
    return column or (classification[0] if classification else None)


def summary_plan():
    """What the summary page covers, as JSON for the stage (see aam.stages.summary)."""
    return to_json(
        {
            "datasets": {
                d: {
                    "class_column": summary_class_column(d),
                    "comparison": bool(AAM_RUNS and dataset_targets(d)),
                    "faith_pd": bool(config["unifrac"]["faith_pd"]),
                }
                for d in DATASETS
            },
            "sequences": {name: list(SEQ_RUNS) for name in SEQUENCE_SETS},
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
    for name in SEQUENCE_SETS:
        files += [seq_out(name, f"eval/{run}/metrics.json") for run in SEQ_RUNS]
    return files


rule summary:
    """The report's results page: the tables a person reads first, from the stages' own outputs."""
    input:
        summary_inputs,
    output:
        report(
            f"{RESULTS}/summary.html",
            caption="../report/summary.rst",
            category="Results",
            labels={"file": "summary.html"},
        ),
    params:
        plan=summary_plan(),
        results=RESULTS,
    log:
        log_file("summary.log"),
    benchmark:
        benchmark_file("summary.tsv")
    threads: 1
    conda:
        "../../envs/aam.yaml"
    shell:
        logged("aam summary --results {params.results:q} --plan {params.plan:q} --out {output:q}")
