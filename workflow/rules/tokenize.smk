# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.


rule tokenize:
    """Nucleotide tokens of every feature and each sample's features by abundance, as Parquet caches
    that AAM training memory-maps (settings and an input hash in their metadata)."""
    input:
        features=out("{dataset}", "ingest/features.parquet"),
        counts=out("{dataset}", "ingest/counts.parquet"),
        rarefied=out("{dataset}", "rarefied/table.biom"),
    output:
        features=out("{dataset}", "tokens/features.parquet"),
        samples=out("{dataset}", "tokens/samples.parquet"),
    params:
        settings=lambda wc: settings_arg(config["tokenize"]),
        out_dir=lambda wc: out(wc.dataset, "tokens"),
    log:
        log_file("{dataset}/tokenize.log"),
    benchmark:
        benchmark_file("{dataset}/tokenize.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam tokenize --features {input.features:q} --counts {input.counts:q}"
            " --rarefied {input.rarefied:q} --out-dir {params.out_dir:q}"
            " --settings {params.settings:q}"
        )
