# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# baselines: once per split and target, the baselines of evaluate.baselines (random forest, CLR + L2
# linear model, HistGradientBoosting), each tuned by grouped inner CV on the training samples, on the
# rarefied table; every run's evaluate job reads them (none refits a baseline).
# evaluate: each run's fine-tuned model on the test split beside the baselines on the same samples,
#   and the mean of its and each evaluate.combine baseline's predictions as one more model.
# compare: every run and target of a dataset in one table and one bar chart.
#
# Rerun scope: baselines' params are the evaluate.baselines section (without n_jobs, which changes
# no result and reaches the stage as the rule's threads), the seed and the target's column, type,
# classes and positive_class; evaluate's params are evaluate.combine and the target's settings, its
# inputs the run's fine-tuned model files, the pretraining history where the run pretrains, the
# baselines, the split and the metadata (a new evaluate.combine reruns every evaluate job, no training).


rule baselines:
    """The baselines of one split and target, hyperparameters chosen by nested grouped CV: fit once,
    read by every run's evaluation."""
    input:
        rarefied=out("{dataset}", "rarefied/table.biom"),
        splits=splits_file,
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        metrics=out("{dataset}", "baselines/{target}/metrics.json"),
        predictions=out("{dataset}", "baselines/{target}/predictions.tsv"),
    params:
        settings=settings_arg(settings.baseline_settings(config)),
        seed=config["seed"],
        column=lambda wc: target_config(wc)["column"],
        task=lambda wc: target_config(wc)["type"],
        classes=lambda wc: settings.classes_arg(target_config(wc)),
        positive=lambda wc: target_config(wc).get("positive_class") or "",
        out_dir=lambda wc: scoped(wc, f"baselines/{wc.target}"),
        fold=fold_arg,
    log:
        log_file("{dataset}/baselines/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/baselines/{target}.tsv")
    threads: config["evaluate"]["baselines"]["n_jobs"]
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam baselines --rarefied {input.rarefied:q} --splits {input.splits:q} --samples {input.samples:q}"
            " --target-column {params.column:q} --task {params.task} --target {wildcards.target:q}"
            " --classes {params.classes:q} --positive-class {params.positive:q}"
            " --dataset {wildcards.dataset:q} {params.fold} --seed {params.seed}"
            " --settings {params.settings:q} --threads {threads} --out-dir {params.out_dir:q}"
        )


rule evaluate:
    """Test-split metrics, predictions and plots of one run's model for one target, beside the
    baselines fit on the same split (rule baselines) and scored on the same samples."""
    input:
        model=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/model.json"),
        predictions=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/predictions.tsv"),
        history=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/metrics.csv"),
        embeddings=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}/embeddings.parquet"),
        pretrain_history=pretrain_history_inputs,
        baselines=lambda wc: scoped(wc, f"baselines/{wc.target}/predictions.tsv"),
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
        column=lambda wc: target_config(wc)["column"],
        task=lambda wc: target_config(wc)["type"],
        positive=lambda wc: target_config(wc).get("positive_class") or "",
        finetune_dir=lambda wc: scoped(wc, f"models/{wc.run}/finetune/{wc.target}"),
        pretrain=pretrain_dir_arg,
        baselines=lambda wc: scoped(wc, f"baselines/{wc.target}"),
        out_dir=lambda wc: scoped(wc, f"eval/{wc.run}/{wc.target}"),
        fold=fold_arg,
        combine=combine_arg,
    log:
        log_file("{dataset}/evaluate/{run}/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/evaluate/{run}/{target}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam evaluate --finetune-dir {params.finetune_dir:q} {params.pretrain}"
            " --baselines {params.baselines:q} --splits {input.splits:q} --samples {input.samples:q}"
            " --target-column {params.column:q} --task {params.task} --target {wildcards.target:q}"
            " --positive-class {params.positive:q} {params.combine}"
            " --run {wildcards.run:q} --dataset {wildcards.dataset:q} {params.fold} --out-dir {params.out_dir:q}"
        )


rule compare:
    """One table and one bar chart of every run and target of a dataset, the baselines beside each."""
    input:
        metrics=lambda wc: targets.evaluation_targets(config, wc.dataset),
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
            "aam compare --metrics {input.metrics:q} --out {output.table:q} --plot {output.plot:q}"
        )
