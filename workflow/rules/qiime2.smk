# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# qza_*: with `qiime2.export`, the results as QIIME 2 artifacts (`aam export-qza`) under
# results/{dataset}/qiime2/ and results/sequences/{name}/qiime2/, named as QIIME 2's
# core-metrics-phylogenetic names its outputs (config/README.md, `qiime2`). Predictions,
# probabilities and embeddings come from an evaluation (qiime2/eval/{run}/{target}/) or a predict
# entry (qiime2/predict/{name}/): {source} is that path.
#
# Rerun scope: each rule's inputs are the file it exports and the provenance file it records;
# nothing else reruns them.

wildcard_constraints:
    source=r"eval/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|predict/[A-Za-z0-9_.-]+",


rule qza_rarefied_table:
    """The rarefied table as FeatureTable[Frequency]."""
    input:
        source=out("{dataset}", "rarefied/table.biom"),
    output:
        out("{dataset}", "qiime2/rarefied_table.qza"),
    log:
        log_file("{dataset}/qiime2/rarefied_table.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/rarefied_table.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("FeatureTable[Frequency]")


rule qza_distance_matrix:
    """One UniFrac distance matrix as DistanceMatrix."""
    input:
        source=out("{dataset}", "unifrac/{metric}.tsv"),
    output:
        out("{dataset}", "qiime2/{metric}_unifrac_distance_matrix.qza"),
    log:
        log_file("{dataset}/qiime2/{metric}_unifrac_distance_matrix.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/{metric}_unifrac_distance_matrix.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("DistanceMatrix")


rule qza_pcoa:
    """One UniFrac PCoA as PCoAResults (qiime emperor plot shows it)."""
    input:
        source=out("{dataset}", "unifrac/pcoa_{metric}.txt"),
    output:
        out("{dataset}", "qiime2/{metric}_unifrac_pcoa_results.qza"),
    log:
        log_file("{dataset}/qiime2/{metric}_unifrac_pcoa_results.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/{metric}_unifrac_pcoa_results.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("PCoAResults")


rule qza_faith_pd:
    """Faith's PD as SampleData[AlphaDiversity]."""
    input:
        source=out("{dataset}", "unifrac/faith_pd.tsv"),
    output:
        out("{dataset}", "qiime2/faith_pd_vector.qza"),
    log:
        log_file("{dataset}/qiime2/faith_pd_vector.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/faith_pd_vector.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("SampleData[AlphaDiversity]")


rule qza_predictions:
    """An evaluation's test predictions (AAM) or a predict entry's predictions, with the provenance
    of the evaluation or prediction."""
    input:
        unpack(qza_prediction_files),
    output:
        out("{dataset}", "qiime2/{source}/predictions.qza"),
    params:
        kind=qza_prediction_type,
    log:
        log_file("{dataset}/qiime2/{source}/predictions.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/{source}/predictions.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("{params.kind}", "--source-provenance {input.provenance:q}")


rule qza_probabilities:
    """The class probabilities of the same predictions (classification targets)."""
    input:
        unpack(qza_prediction_files),
    output:
        out("{dataset}", "qiime2/{source}/probabilities.qza"),
    log:
        log_file("{dataset}/qiime2/{source}/probabilities.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/{source}/probabilities.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("SampleData[Probabilities]", "--source-provenance {input.provenance:q}")


rule qza_embeddings:
    """The sample embeddings of the fine-tuned model (every split) or of a predict entry, as QIIME 2
    metadata, with the model's provenance."""
    input:
        unpack(qza_embedding_files),
    output:
        out("{dataset}", "qiime2/{source}/embeddings.qza"),
    log:
        log_file("{dataset}/qiime2/{source}/embeddings.log"),
    benchmark:
        benchmark_file("{dataset}/qiime2/{source}/embeddings.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("ImmutableMetadata", "--source-provenance {input.provenance:q}")


rule qza_taxonomy:
    """A contrastive run's read taxonomy as FeatureData[Taxonomy]."""
    input:
        source=seq_out("{name}", "classify/{run}/taxonomy.tsv"),
    output:
        seq_out("{name}", "qiime2/classify/{run}/taxonomy.qza"),
    log:
        log_file("sequences/{name}/qiime2/classify/{run}/taxonomy.log"),
    benchmark:
        benchmark_file("sequences/{name}/qiime2/classify/{run}/taxonomy.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        qza_export("FeatureData[Taxonomy]")
