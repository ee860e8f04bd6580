# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# summary: the results page that opens `snakemake --report` (workflow/report/workflow.rst embeds
# it): per dataset every AAM run beside the forest (and the cross-validation summary where
# comparison.tsv has one), the split before and after rarefaction, the dropped samples, Faith's PD;
# per sequence collection the models beside naive Bayes.
#
# Rerun scope: its inputs (the artifacts it reads) and the plan (which datasets, columns and runs).

import os


rule summary:
    """The report's results page: the tables a person reads first, from the stages' own outputs."""
    input:
        targets.summary_inputs(config),
    output:
        report(
            f"{RESULTS}/summary.html",
            caption="../report/summary.rst",
            category="Results",
            labels={"file": "summary.html"},
        ),
    params:
        settings=settings_arg(targets.summary_plan(config)),
        results=lambda wc, output: os.path.dirname(output[0]),
    log:
        log_file("summary.log"),
    benchmark:
        benchmark_file("summary.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged("aam summary --results {params.results:q} --settings {params.settings:q} --out {output:q}")
