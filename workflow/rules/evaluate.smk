# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# evaluate: each run's fine-tuned model on the test split beside a random forest on the same samples.
# compare: every run and target of a dataset in one table and one bar chart (with the CV columns
# when evaluate.cv is set).
#
# Rerun scope: evaluate's params are the `evaluate:` section (without random_forest.n_jobs, which
# changes no result and reaches the stage as the rule's threads), the seed and the target's column,
# type and positive_class; its inputs the run's fine-tuned model files, the pretraining history where the run
# pretrains, the rarefied table, the split and the metadata.


rule evaluate:
    """Test-split metrics, predictions and plots of one run's model for one target, beside a random
    forest (q2-sample-classifier recipe) trained on train + val of the rarefied table."""
    input:
        model=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/model.json"),
        predictions=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/predictions.tsv"),
        history=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/metrics.csv"),
        embeddings=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/embeddings.parquet"),
        pretrain_history=pretrain_history_inputs,
        rarefied=out("{dataset}", "rarefied/table.biom"),
        splits=splits_file,
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        metrics=report(
            out("{dataset}", "eval/{run}/{target}/metrics.json"),
            caption="../report/evaluate_metrics.rst",
            category="Evaluation",
            subcategory="{dataset}: {target}",
            labels={"run": "{run}", "file": "metrics.json"},
        ),
        predictions=out("{dataset}", "eval/{run}/{target}/predictions.tsv"),
        plots=report(
            directory(out("{dataset}", "eval/{run}/{target}/plots")),
            patterns=["{figure}.png"],
            caption="../report/evaluate_plots.rst",
            category="Evaluation",
            subcategory="{dataset}: {target}",
            labels={"run": "{run}", "file": "{figure}"},
        ),
    params:
        settings=settings_arg(settings.evaluate_settings(config)),
        seed=config["seed"],
        column=lambda wc: target_config(wc)["column"],
        task=lambda wc: target_config(wc)["type"],
        positive=lambda wc: target_config(wc).get("positive_class") or "",
        finetune_dir=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}"),
        pretrain=pretrain_dir_arg,
        out_dir=lambda wc: scoped(wc, f"eval/{wc.run}/{wc.target}"),
        fold=fold_arg,
    log:
        log_file("{dataset}/evaluate/{run}/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/evaluate/{run}/{target}.tsv")
    threads: config["evaluate"]["random_forest"]["n_jobs"]
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam evaluate --finetune-dir {params.finetune_dir:q} {params.pretrain}"
            " --rarefied {input.rarefied:q} --splits {input.splits:q} --samples {input.samples:q}"
            " --target-column {params.column:q} --task {params.task} --target {wildcards.target:q}"
            " --positive-class {params.positive:q}"
            " --run {wildcards.run:q} --dataset {wildcards.dataset:q} {params.fold} --seed {params.seed}"
            " --settings {params.settings:q} --threads {threads} --out-dir {params.out_dir:q}"
        )


rule compare:
    """One table and one bar chart of every run and target of a dataset, the forest beside each."""
    input:
        metrics=lambda wc: targets.evaluation_targets(config, wc.dataset),
        cv=lambda wc: cv_summary_targets(wc.dataset),
    output:
        table=report(
            out("{dataset}", "comparison/comparison.tsv"),
            caption="../report/evaluate_comparison.rst",
            category="Evaluation",
            subcategory="{dataset}: all runs",
            labels={"file": "comparison.tsv"},
        ),
        plot=report(
            out("{dataset}", "comparison/comparison.png"),
            caption="../report/evaluate_comparison.rst",
            category="Evaluation",
            subcategory="{dataset}: all runs",
            labels={"file": "comparison.png"},
        ),
    log:
        log_file("{dataset}/compare.log"),
    benchmark:
        benchmark_file("{dataset}/compare.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam compare --metrics {input.metrics:q} --cv-summaries {input.cv:q}"
            " --out {output.table:q} --plot {output.plot:q}"
        )
