# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# summary: the results page that opens `snakemake --report` (workflow/report/workflow.rst embeds
# it): per dataset every AAM run beside the forest (and the cross-validation summary where
# comparison.tsv has one), the split before and after rarefaction, the dropped samples, Faith's PD;
# per sequence collection the models beside naive Bayes. versions: results/versions.tsv. At the end
# of a run (onsuccess, onerror) the stages' warnings of this run are printed from their logs.
#
# Rerun scope: its inputs (the artifacts it reads) and the plan (which datasets, columns and runs);
# versions' params are the installed versions and the git commit (aam.versions.declared_versions).

import os

from aam.versions import declared_versions


onsuccess:
    print_stage_warnings()


onerror:
    print_stage_warnings()


rule versions:
    """The Python, package, CUDA and GPU versions of this run (results/versions.tsv); the results
    page shows them. Rerun when an installed package or the git commit changes (its params)."""
    output:
        report(
            f"{RESULTS}/versions.tsv",
            caption="../report/versions.rst",
            category="Results",
            labels={"file": "versions.tsv"},
        ),
    params:
        versions=declared_versions(),
    log:
        log_file("versions.log"),
    benchmark:
        benchmark_file("versions.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged("aam versions --out {output:q}")


rule summary:
    """The report's results page: the tables a person reads first, from the stages' own outputs."""
    input:
        files=targets.summary_inputs(config),
        versions=f"{RESULTS}/versions.tsv",
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
        logged(
            "aam summary --results {params.results:q} --settings {params.settings:q}"
            " --versions {input.versions:q} --out {output:q}"
        )
