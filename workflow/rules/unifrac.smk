# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# unifrac: distance matrices, PCoA (+ plot for the report) and Faith's PD of the rarefied table.
# The matrices are {metric}.tsv (scikit-bio / QIIME 2) or {metric}.h5 (biocore unifrac's HDF5):
# unifrac.format, `auto` decided per dataset from its table's sample count (unifrac_format), so
# rule unifrac writes TSV datasets and its twin unifrac_hdf5 the HDF5 ones. With unifrac.parts > 1
# the matrices are computed by that many unifrac_part jobs (row blocks of tiles: on SLURM, parallel
# jobs) and merged by rule unifrac.
# Rerun scope: the `unifrac:` section and the dataset's color_column (params), the rarefied table,
# the pruned tree and the sample metadata (inputs).


rule unifrac_part:
    """One row-block job of a fanned-out UniFrac matrix (unifrac.parts > 1): its share of the
    matrix's tiles, in an HDF5 file of the matrix's shape that rule unifrac merges (then deleted)."""
    input:
        table=out("{dataset}", "rarefied/table.biom"),
        tree=out("{dataset}", "ingest/tree.nwk"),
    output:
        temp(out("{dataset}", "unifrac_parts/{metric}.part{part}.h5")),
    wildcard_constraints:
        metric="|".join(unifrac_metrics()),
        part=r"\d+",
    params:
        settings=lambda wc: settings_arg(config["unifrac"]),
        parts=config["unifrac"]["parts"],
    log:
        log_file("{dataset}/unifrac_parts/{metric}.part{part}.log"),
    benchmark:
        benchmark_file("{dataset}/unifrac_parts/{metric}.part{part}.tsv")
    threads: 8  # capped by --cores
    conda:
        "../envs/unifrac.yaml"
    shell:
        logged(
            "aam unifrac-part --table {input.table:q} --tree {input.tree:q} --metric {wildcards.metric}"
            " --part {wildcards.part} --parts {params.parts} --settings {params.settings:q}"
            " --threads {threads} --out {output:q}"
        )


rule unifrac:
    """UniFrac distance matrices of the rarefied table (scikit-bio / QIIME 2 TSV), their PCoA
    (coordinates, ordination file, plot coloured by the dataset's color_column) and Faith's PD."""
    input:
        table=out("{dataset}", "rarefied/table.biom"),
        tree=out("{dataset}", "ingest/tree.nwk"),
        samples=out("{dataset}", "ingest/samples.parquet"),
        parts=unifrac_part_files,
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
    wildcard_constraints:
        dataset=unifrac_datasets("tsv"),
    params:
        out_dir=lambda wc: out(wc.dataset, "unifrac"),
        color=lambda wc: dataset_config(wc)["color_column"] or "",
        settings=lambda wc: settings_arg(config["unifrac"]),
        format="tsv",
        parts=unifrac_parts_arg,
        seed=config["seed"],
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
            " --format {params.format} --seed {params.seed} {params.parts} --out-dir {params.out_dir:q}"
        )


use rule unifrac as unifrac_hdf5 with:
    output:
        matrices=expand(out("{{dataset}}", "unifrac/{metric}.h5"), metric=unifrac_metrics()),
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
    wildcard_constraints:
        dataset=unifrac_datasets("hdf5"),
    params:
        out_dir=lambda wc: out(wc.dataset, "unifrac"),
        color=lambda wc: dataset_config(wc)["color_column"] or "",
        settings=lambda wc: settings_arg(config["unifrac"]),
        format="hdf5",
        parts=unifrac_parts_arg,
        seed=config["seed"],
