# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# Pretraining across studies (config `pretrain_corpus:`): each study of a corpus is ingested and
# tokenized by the stages of a single dataset (aam ingest, aam tokenize), then `corpus_pretrain`
# fans in every study's token caches and trains one named encoder per corpus run:
# results/corpus/{corpus}/{run}/model.safetensors + model.json. Runs fine-tune from it with
# `pretrain: {from: corpus, corpus: ..., run: ...}`.


rule corpus_ingest:
    """One study of a corpus: table, sequences, tree and metadata to the ingest Parquet caches
    (features without a sequence or a tip are dropped with a warning giving their share of reads)."""
    input:
        unpack(corpus_study_inputs),
    output:
        features=corpus_out("{corpus}", "studies/{study}/ingest/features.parquet"),
        counts=corpus_out("{corpus}", "studies/{study}/ingest/counts.parquet"),
        samples=corpus_out("{corpus}", "studies/{study}/ingest/samples.parquet"),
        tree=corpus_out("{corpus}", "studies/{study}/ingest/tree.nwk"),
    params:
        sequences=lambda wc: sources.corpus_study(config, wc.corpus, wc.study)["sequences"] or "",
        settings=lambda wc: to_json(sources.corpus_ingest_settings(config, wc.corpus)),
        out_dir=lambda wc: corpus_out(wc.corpus, f"studies/{wc.study}/ingest"),
    log:
        log_file("corpus/{corpus}/{study}/ingest.log"),
    benchmark:
        benchmark_file("corpus/{corpus}/{study}/ingest.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam ingest --table {input.table:q} --sequences {params.sequences:q} --tree {input.tree:q}"
            " --metadata {input.metadata:q} --settings {params.settings:q} --out-dir {params.out_dir:q}"
        )


rule corpus_tokenize:
    """Token caches of one study of a corpus (the corpus's max_bp)."""
    input:
        features=corpus_out("{corpus}", "studies/{study}/ingest/features.parquet"),
        counts=corpus_out("{corpus}", "studies/{study}/ingest/counts.parquet"),
    output:
        features=corpus_out("{corpus}", "studies/{study}/tokens/features.parquet"),
        samples=corpus_out("{corpus}", "studies/{study}/tokens/samples.parquet"),
    params:
        settings=lambda wc: to_json(sources.corpus_tokenize_settings(config, wc.corpus)),
        out_dir=lambda wc: corpus_out(wc.corpus, f"studies/{wc.study}/tokens"),
    log:
        log_file("corpus/{corpus}/{study}/tokenize.log"),
    benchmark:
        benchmark_file("corpus/{corpus}/{study}/tokenize.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam tokenize --features {input.features:q} --counts {input.counts:q}"
            " --out-dir {params.out_dir:q} --settings {params.settings:q}"
        )


rule corpus_pretrain:
    """One encoder on all the corpus's studies (but the run's `exclude`): batches from one study at
    a time, re-rarefied per epoch, UniFrac on the fly, ASVs cropped to random prefix lengths."""
    input:
        tokens=corpus_pretrain_inputs,
        trees=lambda wc: sources.corpus_trees(config, wc.corpus, wc.run),
    output:
        model=corpus_out("{corpus}", "{run}/model.safetensors"),
        config=corpus_out("{corpus}", "{run}/model.json"),
        history=corpus_out("{corpus}", "{run}/metrics.csv"),
    params:
        studies=lambda wc: settings_arg(sources.corpus_studies(config, wc.corpus, wc.run)),
        settings=lambda wc: settings_arg(sources.corpus_run_settings(config, wc.corpus, wc.run)),
        val_fraction=lambda wc: config["pretrain_corpus"][wc.corpus]["val_fraction"],
        seed=config["seed"],
        out_dir=lambda wc: corpus_out(wc.corpus, wc.run),
    resources:
        **training_resource_params(corpus_trainer),
    threads: training_threads(corpus_trainer)
    log:
        log_file("corpus/{corpus}/{run}/pretrain.log"),
    benchmark:
        benchmark_file("corpus/{corpus}/{run}/pretrain.tsv")
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam corpus-pretrain --studies {params.studies:q} --settings {params.settings:q}"
            " --val-fraction {params.val_fraction} --seed {params.seed} --threads {threads}"
            " --out-dir {params.out_dir:q}"
        )
