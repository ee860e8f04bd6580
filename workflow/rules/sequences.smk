# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# The DNA sequence branch: each `sequences:` collection (FASTA or plain text, optional labels) is
# validated and split (seq_prepare), every `seq_models.runs` entry is trained on it (seq_train),
# contrastive runs embed the collection (seq_embed) and every run is evaluated on the held-out split
# (seq_evaluate_contrastive: kNN taxonomy vs k-mer naive Bayes; seq_evaluate_vq: reconstruction,
# codebook usage, perplexity); contrastive runs on labelled collections classify the reads
# (seq_classify: `classify`, or else the test split) into a QIIME 2 taxonomy table.
# Results under results/sequences/{name}/.
#
# Rerun scope: seq_prepare's params are the collection's settings and the seed; seq_train's the run's
# settings (without `classify`) and the seed; seq_evaluate's the collection's evaluation ranks and the
# run's knn_k; seq_classify's the run's `classify` settings.


rule seq_prepare:
    """Validate a DNA collection (and its labels) and split it into train/test: prepared.parquet."""
    input:
        unpack(seq_prepare_inputs),
    output:
        seq_out("{name}", "prepared.parquet"),
    params:
        settings=lambda wc: settings_arg(sequences.prepare_settings(config, wc.name)),
        sources=lambda wc: sequences.prepare_sources_arg(config, wc.name),
        seed=config["seed"],
    log:
        log_file("sequences/{name}/prepare.log"),
    benchmark:
        benchmark_file("sequences/{name}/prepare.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam seq-prepare {params.sources} --settings {params.settings:q} --seed {params.seed}"
            " --out {output:q}"
        )


rule seq_train:
    """Train one sequence model run (VQ-Transformer; contrastive embedder below) on the train split."""
    input:
        prepared=seq_out("{name}", "prepared.parquet"),
    output:
        weights=seq_out("{name}", "models/{run}/model.safetensors"),
        model=seq_out("{name}", "models/{run}/model.json"),
        tokenizer=seq_out("{name}", "models/{run}/tokenizer.json"),
        history=seq_out("{name}", "models/{run}/history.csv"),
    params:
        settings=lambda wc: settings_arg(sequences.train_settings(config, wc.run)),
        seed=config["seed"],
        out_dir=lambda wc: seq_out(wc.name, f"models/{wc.run}"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "vq")),
    log:
        log_file("sequences/{name}/train/{run}.log"),
    benchmark:
        benchmark_file("sequences/{name}/train/{run}.tsv")
    threads: training_threads(seq_trainer)
    resources:
        **training_resource_params(seq_trainer),
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam seq-train --prepared {input.prepared:q} --settings {params.settings:q}"
            " --seed {params.seed} --threads {threads} --out-dir {params.out_dir:q}"
        )


# a contrastive run also stores its labelled reference (training sequences, ranks, embeddings)
use rule seq_train as seq_train_contrastive with:
    output:
        weights=seq_out("{name}", "models/{run}/model.safetensors"),
        model=seq_out("{name}", "models/{run}/model.json"),
        tokenizer=seq_out("{name}", "models/{run}/tokenizer.json"),
        history=seq_out("{name}", "models/{run}/history.csv"),
        reference=seq_out("{name}", "models/{run}/reference.parquet"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "contrastive")),


rule seq_embed:
    """Embed the collection's sequences (train and test) with a trained contrastive model:
    embeddings/{run}.parquet."""
    input:
        unpack(seq_model_files),
        prepared=seq_out("{name}", "prepared.parquet"),
    output:
        seq_out("{name}", "embeddings/{run}.parquet"),
    params:
        model_dir=lambda wc: seq_out(wc.name, f"models/{wc.run}"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "contrastive")),
    log:
        log_file("sequences/{name}/embed/{run}.log"),
    benchmark:
        benchmark_file("sequences/{name}/embed/{run}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam embed --model-dir {params.model_dir:q} --prepared {input.prepared:q} --out {output:q}"
            " --threads {threads}"
        )


rule seq_classify:
    """Classify reads with a contrastive run (kNN vote over its reference, confidence per rank):
    classify/{run}/taxonomy.tsv in q2-feature-classifier's format (FeatureData[Taxonomy])."""
    input:
        unpack(seq_model_files),
        unpack(seq_classify_reads),
        reference=lambda wc: sequences.reference_file(config, wc.name, wc.run),
    output:
        report(
            seq_out("{name}", "classify/{run}/taxonomy.tsv"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "taxonomy.tsv"},
        ),
    params:
        settings=lambda wc: settings_arg(sequences.classify_settings(config, wc.run)),
        source=lambda wc: sequences.classify_source_arg(config, wc.name),
        model_dir=lambda wc: seq_out(wc.name, f"models/{wc.run}"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "contrastive")),
    log:
        log_file("sequences/{name}/classify/{run}.log"),
    benchmark:
        benchmark_file("sequences/{name}/classify/{run}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam classify --model-dir {params.model_dir:q} {params.source} --settings {params.settings:q}"
            " --threads {threads} --out {output:q}"
        )


rule seq_evaluate_contrastive:
    """kNN taxonomy accuracy of the embeddings beside k-mer naive Bayes on the test split, `aam
    classify`'s precision and recall beside q2's naive Bayes over confidence thresholds, a PCA of
    the embeddings and the loss history."""
    input:
        unpack(seq_model_files),
        prepared=seq_out("{name}", "prepared.parquet"),
        embeddings=seq_out("{name}", "embeddings/{run}.parquet"),
    output:
        metrics=report(
            seq_out("{name}", "eval/{run}/metrics.json"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "metrics.json"},
        ),
        projection=report(
            seq_out("{name}", "eval/{run}/projection.png"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "projection.png"},
        ),
        history=report(
            seq_out("{name}", "eval/{run}/history.png"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "history.png"},
        ),
        taxonomy_pr=report(
            seq_out("{name}", "eval/{run}/taxonomy_pr.png"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "taxonomy_pr.png"},
        ),
    params:
        settings=lambda wc: settings_arg(sequences.eval_settings(config, wc.name, wc.run)),
        model_dir=lambda wc: seq_out(wc.name, f"models/{wc.run}"),
        out_dir=lambda wc: seq_out(wc.name, f"eval/{wc.run}"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "contrastive")),
    log:
        log_file("sequences/{name}/evaluate/{run}.log"),
    benchmark:
        benchmark_file("sequences/{name}/evaluate/{run}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam seq-evaluate --prepared {input.prepared:q} --model-dir {params.model_dir:q}"
            " --embeddings {input.embeddings:q} --settings {params.settings:q}"
            " --out-dir {params.out_dir:q}"
        )


rule seq_evaluate_vq:
    """Reconstruction accuracy, codebook usage and perplexity on the test split's blocks, the code
    usage histogram and the loss history."""
    input:
        unpack(seq_model_files),
        prepared=seq_out("{name}", "prepared.parquet"),
    output:
        metrics=report(
            seq_out("{name}", "eval/{run}/metrics.json"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "metrics.json"},
        ),
        codes=report(
            seq_out("{name}", "eval/{run}/codebook.png"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "codebook.png"},
        ),
        history=report(
            seq_out("{name}", "eval/{run}/history.png"),
            caption="../report/sequences.rst",
            category="DNA sequence models",
            subcategory="{name}",
            labels={"run": "{run}", "file": "history.png"},
        ),
    params:
        settings=lambda wc: settings_arg(sequences.eval_settings(config, wc.name, wc.run)),
        model_dir=lambda wc: seq_out(wc.name, f"models/{wc.run}"),
        out_dir=lambda wc: seq_out(wc.name, f"eval/{wc.run}"),
    wildcard_constraints:
        run=sequences.run_regex(sequences.runs_of_kind(config, "vq")),
    log:
        log_file("sequences/{name}/evaluate/{run}.log"),
    benchmark:
        benchmark_file("sequences/{name}/evaluate/{run}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam seq-evaluate --prepared {input.prepared:q} --model-dir {params.model_dir:q}"
            " --settings {params.settings:q} --out-dir {params.out_dir:q}"
        )
