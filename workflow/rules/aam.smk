# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# pretrain: the AAM SequenceEncoder on UniFrac + masked nucleotides (runs with pretrain.enabled, from:
# study, or a corpus/bundled encoder with continue_on_study, which it starts from), once per dataset
# and run, on every table sample (pretrain_splits.tsv: self-supervised, no target is read; the
# finetune jobs of the split and of every CV fold start from it).
# finetune: one model per run and target; from the pretrained encoder, or from scratch.
# Both train on a GPU where there is one (locally resource gpu = the run's devices where the machine
# has GPUs, else 0 so that jobs run side by side; on SLURM, gres gpu:<devices> per node and one task
# per process, which the stage starts itself with srun: aam.workflow.resources, aam.slurm).
# Checkpoints and logs sit beside the declared outputs and are not outputs themselves, so Snakemake
# leaves them in place and a restarted job resumes from last.ckpt.


rule pretrain:
    """Pretrain one run's encoder: each batch re-rarefied per epoch, its UniFrac targets computed on
    the fly; masked-nucleotide objective on the batch's distinct ASVs."""
    input:
        features=out("{dataset}", "tokens/features.parquet"),
        samples=out("{dataset}", "tokens/samples.parquet"),
        splits=out("{dataset}", "pretrain_splits.tsv"),
        tree=out("{dataset}", "ingest/tree.nwk"),
        init=init_inputs,
    output:
        model=out("{dataset}", "models/{run}/pretrain/model.safetensors"),
        config=out("{dataset}", "models/{run}/pretrain/model.json"),
        history=out("{dataset}", "models/{run}/pretrain/metrics.csv"),
    params:
        settings=lambda wc: aam_run_settings(wc.run, "data", "model", "pretrain"),
        seed=config["seed"],
        tokens_dir=lambda wc: out(wc.dataset, "tokens"),
        out_dir=lambda wc: out(wc.dataset, f"models/{wc.run}/pretrain"),
        init=init_dir_arg,
    resources:
        **training_resource_params(aam_trainer_of("pretrain")),
    threads: training_threads(aam_trainer_of("pretrain"))
    log:
        log_file("{dataset}/pretrain/{run}.log"),
    conda:
        "../envs/aam.yaml"
    benchmark:
        benchmark_file("{dataset}/pretrain/{run}.tsv")
    shell:
        logged(
            "aam pretrain --tokens-dir {params.tokens_dir:q} --splits {input.splits:q} --tree {input.tree:q}"
            " --settings {params.settings:q} --seed {params.seed} --threads {threads}"
            " --out-dir {params.out_dir:q} {params.init}"
        )


rule finetune:
    """Fine-tune one run's model on one target (regression or classification): target + count
    losses; writes weights, per-epoch metrics, val/test predictions and sample embeddings."""
    input:
        features=out("{dataset}", "tokens/features.parquet"),
        samples=out("{dataset}", "tokens/samples.parquet"),
        splits=splits_file,
        metadata=out("{dataset}", "ingest/samples.parquet"),
        pretrained=pretrained_inputs,
    output:
        model=out("{dataset}", "models/{run}/finetune/{target}/model.safetensors"),
        config=out("{dataset}", "models/{run}/finetune/{target}/model.json"),
        history=out("{dataset}", "models/{run}/finetune/{target}/metrics.csv"),
        predictions=out("{dataset}", "models/{run}/finetune/{target}/predictions.tsv"),
        embeddings=out("{dataset}", "models/{run}/finetune/{target}/embeddings.parquet"),
        train_features=out("{dataset}", "models/{run}/finetune/{target}/train_features.parquet"),
    params:
        settings=lambda wc: aam_run_settings(wc.run, "data", "model", "finetune"),
        seed=config["seed"],
        column=lambda wc: target_config(wc)["column"],
        task=lambda wc: target_config(wc)["type"],
        classes=lambda wc: settings.classes_arg(target_config(wc)),
        pretrain=pretrain_dir_arg,
        tokens_dir=lambda wc: out(wc.dataset, "tokens"),
        out_dir=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}"),
    resources:
        **training_resource_params(aam_trainer_of("finetune")),
    threads: training_threads(aam_trainer_of("finetune"))
    log:
        log_file("{dataset}/finetune/{run}/{target}.log"),
    conda:
        "../envs/aam.yaml"
    benchmark:
        benchmark_file("{dataset}/finetune/{run}/{target}.tsv")
    shell:
        logged(
            "aam finetune --tokens-dir {params.tokens_dir:q} --splits {input.splits:q}"
            " --samples {input.metadata:q} --target-column {params.column:q} --task {params.task}"
            " --target {wildcards.target:q} --classes {params.classes:q} {params.pretrain}"
            " --settings {params.settings:q}"
            " --seed {params.seed} --threads {threads} --out-dir {params.out_dir:q}"
        )
