# Rules of this phase; see workflow/rules/common.smk for helpers.
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
        model_dir=predict_model_dir,
        sequences=predict_sequences_arg,
        seed=lambda wc: config["seed"] if predict_entry(wc).get("seed") is None else predict_entry(wc)["seed"],
        out_dir=lambda wc: out(wc.dataset, f"predict/{wc.name}"),
    threads: 2
    resources:
        gpu=1,
    log:
        log_file("{dataset}/predict/{name}.log"),
    benchmark:
        benchmark_file("{dataset}/predict/{name}.tsv")
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam predict --model-dir {params.model_dir:q} --table {input.table:q} {params.sequences}"
            " --seed {params.seed} --threads {threads} --out-dir {params.out_dir:q}"
        )
