# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# predict: the `predict:` section's tables, each through one dataset/run/target's fine-tuned model
# (`aam predict`): results/{dataset}/predict/{name}/. The table and the model are inputs, so a
# retrained model or a changed table reruns it; the seed reaches it through params.


rule predict:
    """Predictions and sample embeddings of a new table by one run's fine-tuned model (new ASVs are
    read from their sequences; the log says how many training never saw)."""
    input:
        unpack(predict_inputs),
    output:
        predictions=out("{dataset}", "predict/{name}/predictions.tsv"),
        embeddings=out("{dataset}", "predict/{name}/embeddings.parquet"),
        summary=out("{dataset}", "predict/{name}/predict.json"),
    params:
        model_dir=lambda wc: targets.predict_model_dir(config, wc.name, wc.dataset),
        sequences=lambda wc: commands.predict_sequences_arg(config, wc.name, wc.dataset),
        seed=lambda wc: targets.predict_seed(config, wc.name, wc.dataset),
        warn_unseen=lambda wc: targets.predict_entry(config, wc.name, wc.dataset)["warn_unseen_fraction"],
        out_dir=lambda wc: out(wc.dataset, f"predict/{wc.name}"),
    threads: 2
    resources:
        gpu=inference_gpu,
    log:
        log_file("{dataset}/predict/{name}.log"),
    benchmark:
        benchmark_file("{dataset}/predict/{name}.tsv")
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam predict --model-dir {params.model_dir:q} --table {input.table:q} {params.sequences}"
            " --seed {params.seed} --warn-unseen-fraction {params.warn_unseen} --threads {threads}"
            " --out-dir {params.out_dir:q}"
        )
