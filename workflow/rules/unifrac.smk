# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# unifrac: distance matrices, PCoA (+ plot for the report) and Faith's PD of the rarefied table.
# Rerun scope: the `unifrac:` section and the dataset's color_column (params), the rarefied table,
# the pruned tree and the sample metadata (inputs).


rule unifrac:
    """UniFrac distance matrices of the rarefied table (scikit-bio / QIIME 2 TSV), their PCoA
    (coordinates, ordination file, plot coloured by the dataset's color_column) and Faith's PD."""
    input:
        table=out("{dataset}", "rarefied/table.biom"),
        tree=out("{dataset}", "ingest/tree.nwk"),
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        matrices=expand(out("{{dataset}}", "unifrac/{metric}.tsv"), metric=unifrac_metrics()),
        pcoa=expand(out("{{dataset}}", "unifrac/pcoa_{metric}.tsv"), metric=unifrac_metrics()),
        ordination=expand(out("{{dataset}}", "unifrac/pcoa_{metric}.txt"), metric=unifrac_metrics()),
        plots=report(
            expand(out("{{dataset}}", "unifrac/pcoa_{metric}.png"), metric=unifrac_metrics()),
            caption="../report/unifrac_pcoa.rst",
            category="UniFrac",
            subcategory="{dataset}",
        ),
        faith_pd=(
            [
                report(
                    out("{dataset}", "unifrac/faith_pd.tsv"),
                    caption="../report/faith_pd.rst",
                    category="UniFrac",
                    subcategory="{dataset}",
                )
            ]
            if config["unifrac"]["faith_pd"]
            else []
        ),
    params:
        out_dir=lambda wc: out(wc.dataset, "unifrac"),
        color=lambda wc: dataset_config(wc)["color_column"] or "",
        settings=lambda wc: settings_arg(config["unifrac"]),
    log:
        log_file("{dataset}/unifrac.log"),
    benchmark:
        benchmark_file("{dataset}/unifrac.tsv")
    threads: 8  # capped by --cores
    conda:
        "../envs/unifrac.yaml"
    shell:
        logged(
            "aam unifrac --table {input.table:q} --tree {input.tree:q} --samples {input.samples:q}"
            " --color-column {params.color:q} --settings {params.settings:q} --threads {threads}"
            " --out-dir {params.out_dir:q}"
        )
