# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# ingest: table + sequences + tree + metadata -> Parquet caches and the pruned tree.
# split: grouped, stratified train/val/test assignment. pretrain_split: every table sample for the
# self-supervised pretraining, with its own val part. rarefy: one seeded draw to a fixed depth.
#
# Rerun scope: ingest's params are the dataset's definition (sequences, group column and targets,
# which it checks against the metadata) and the `ingest:` section; split's the `split:` section,
# the group and stratify columns and the seed; rarefy's the `rarefy:` section (the depth: the
# dataset's rarefy_depth where it has one) and the seed. So a
# new depth reruns rarefy and its dependents only, new fractions split and its dependents only.
# Optional values travel as '' (the stages read an empty string as "none").


rule ingest:
    """Read the feature table, sequences, tree and metadata; check them; write Parquet caches and the
    tree pruned to the table's features (features missing from the tree dropped with a warning)."""
    input:
        table=lambda wc: dataset_config(wc)["table"],
        tree=lambda wc: dataset_config(wc)["tree"],
        metadata=lambda wc: dataset_config(wc)["metadata"],
        sequences=lambda wc: dataset_config(wc)["sequences"] or [],
    output:
        features=out("{dataset}", "ingest/features.parquet"),
        counts=out("{dataset}", "ingest/counts.parquet"),
        samples=out("{dataset}", "ingest/samples.parquet"),
        tree=out("{dataset}", "ingest/tree.nwk"),
    params:
        out_dir=lambda wc: out(wc.dataset, "ingest"),
        sequences=lambda wc: dataset_config(wc)["sequences"] or "",
        group=lambda wc: dataset_config(wc)["group_column"] or "",
        targets=lambda wc: to_json(dataset_config(wc)["targets"]),
        settings=lambda wc: settings_arg(config["ingest"]),
    log:
        log_file("{dataset}/ingest.log"),
    benchmark:
        benchmark_file("{dataset}/ingest.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam ingest --table {input.table:q} --tree {input.tree:q} --metadata {input.metadata:q}"
            " --sequences {params.sequences:q} --group-column {params.group:q}"
            " --targets {params.targets:q} --settings {params.settings:q}"
            " --out-dir {params.out_dir:q}"
        )


rule split:
    """Assign samples to train/val/test: no group (e.g. subject) in two splits, classes of the
    stratify target balanced, seeded."""
    input:
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        splits=out("{dataset}", "split/splits.tsv"),
        summary=report(
            out("{dataset}", "split/summary.tsv"),
            caption="../report/split_summary.rst",
            category="Data",
            subcategory="{dataset}",
        ),
    params:
        group=lambda wc: dataset_config(wc)["group_column"] or "",
        stratify=stratify_arg,
        settings=lambda wc: settings_arg(settings.split_settings(config)),
        seed=config["seed"],
    log:
        log_file("{dataset}/split.log"),
    benchmark:
        benchmark_file("{dataset}/split.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam split --samples {input.samples:q} --group-column {params.group:q}"
            " --stratify-column {params.stratify:q} --settings {params.settings:q} --seed {params.seed}"
            " --out {output.splits:q} --summary {output.summary:q}"
        )


rule pretrain_split:
    """Every table sample for self-supervised pretraining (also those without metadata), a seeded
    share of them, by whole groups, held out for its validation losses."""
    input:
        counts=out("{dataset}", "ingest/counts.parquet"),
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        splits=out("{dataset}", "pretrain_splits.tsv"),
    params:
        group=lambda wc: dataset_config(wc)["group_column"] or "",
        val_fraction=config["split"]["pretrain_val_fraction"],
        seed=config["seed"],
    log:
        log_file("{dataset}/pretrain_split.log"),
    benchmark:
        benchmark_file("{dataset}/pretrain_split.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam pretrain-split --counts {input.counts:q} --samples {input.samples:q}"
            " --group-column {params.group:q} --val-fraction {params.val_fraction} --seed {params.seed}"
            " --out {output.splits:q}"
        )


rule rarefy:
    """Rarefy every sample to one depth without replacement (seeded); samples below it are dropped
    and listed in dropped.tsv."""
    input:
        counts=out("{dataset}", "ingest/counts.parquet"),
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        table=out("{dataset}", "rarefied/table.biom"),
        dropped=report(
            out("{dataset}", "rarefied/dropped.tsv"),
            caption="../report/rarefy_dropped.rst",
            category="Data",
            subcategory="{dataset}",
        ),
    params:
        depth=rarefy_depth,
        min_sample_fraction=config["rarefy"]["min_sample_fraction"],
        seed=config["seed"],
    log:
        log_file("{dataset}/rarefy.log"),
    benchmark:
        benchmark_file("{dataset}/rarefy.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam rarefy --table {input.counts:q} --samples {input.samples:q} --depth {params.depth}"
            " --min-sample-fraction {params.min_sample_fraction} --seed {params.seed}"
            " --out {output.table:q} --dropped {output.dropped:q}"
        )
