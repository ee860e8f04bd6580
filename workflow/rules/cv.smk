# Rules of this phase; helpers: workflow/rules/common.smk, which binds the package aam.workflow.
# Active when `evaluate.cv` is set.
# cv_split: the folds of one repeat of a dataset, each as a splits.tsv
#   (results/{dataset}/cv/split/r{repeat}/{fold}.tsv).
# finetune_cv, evaluate_cv, baselines_cv: the finetune, evaluate and baselines rules on one fold's
#   splits.tsv, under results/{dataset}/cv/{fold}/ (same commands, settings and pretrained encoder:
#   those rules name their per-split inputs and folders with scoped(), so only outputs, log and
#   benchmark differ here; every fold is its own job, so folds run in parallel and a finished fold is
#   never retrained). The baselines of a fold are fit once, whatever the number of runs.
# cv_summary: per dataset and target, every run beside every baseline over the folds.
# leaderboard: every model ranked over every dataset and target (results/benchmark/).
#
# Pretraining is not per fold: it is self-supervised (no target is read) and runs once per dataset
# and run on every table sample (rule pretrain_split); every fold fine-tunes from it.
# Rerun scope: cv_split's params are the number of folds, val_fraction, the group and stratify
# columns and the seed: a change reruns the folds and their models, nothing before them. Each repeat
# is a job of its own whose folds do not depend on the number of repeats (aam.data.split.cv_folds),
# so more repeats add the new repeats' jobs and rerun nothing; fewer leave the others' files unused.


rule cv_split:
    """Cross-validation folds of one repeat: grouped (no group in two of train/val/test), stratified,
    seeded by the seed and the repeat; every sample tested once per repeat; validation carved from
    each fold's training groups."""
    input:
        samples=out("{dataset}", "ingest/samples.parquet"),
    output:
        folds=out("{dataset}", "cv/split/r{repeat}/folds.tsv"),
        splits=[out("{dataset}", f"cv/split/r{{repeat}}/r{{repeat}}f{k}.tsv") for k in range(CV_K)],
        summary=report(
            out("{dataset}", "cv/split/r{repeat}/summary.tsv"),
            caption="../report/cv_summary.rst",
            category="Cross-validation",
            subcategory="{dataset}: folds",
        ),
    wildcard_constraints:
        repeat=r"\d+",
    params:
        group=lambda wc: dataset_config(wc)["group_column"] or "",
        stratify=stratify_arg,
        folds=CV_K,
        val_fraction=CV["val_fraction"] if CV else 0,
        seed=config["seed"],
        out_dir=lambda wc: out(wc.dataset, f"cv/split/r{wc.repeat}"),
    log:
        log_file("{dataset}/cv_split/r{repeat}.log"),
    benchmark:
        benchmark_file("{dataset}/cv_split/r{repeat}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam cv-split --samples {input.samples:q} --group-column {params.group:q}"
            " --stratify-column {params.stratify:q} --folds {params.folds}"
            " --repeats 1 --first-repeat {wildcards.repeat}"
            " --val-fraction {params.val_fraction} --seed {params.seed} --out-dir {params.out_dir:q}"
        )


use rule finetune as finetune_cv with:
    output:
        model=out("{dataset}", "cv/{fold}/models/{run}/finetune/{target}/model.safetensors"),
        config=out("{dataset}", "cv/{fold}/models/{run}/finetune/{target}/model.json"),
        history=out("{dataset}", "cv/{fold}/models/{run}/finetune/{target}/metrics.csv"),
        predictions=out("{dataset}", "cv/{fold}/models/{run}/finetune/{target}/predictions.tsv"),
        embeddings=out("{dataset}", "cv/{fold}/models/{run}/finetune/{target}/embeddings.parquet"),
    log:
        log_file("{dataset}/cv/{fold}/finetune/{run}/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/cv/{fold}/finetune/{run}/{target}.tsv")


use rule baselines as baselines_cv with:
    output:
        metrics=out("{dataset}", "cv/{fold}/baselines/{target}/metrics.json"),
        predictions=out("{dataset}", "cv/{fold}/baselines/{target}/predictions.tsv"),
    log:
        log_file("{dataset}/cv/{fold}/baselines/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/cv/{fold}/baselines/{target}.tsv")


use rule evaluate as evaluate_cv with:
    output:
        metrics=out("{dataset}", "cv/{fold}/eval/{run}/{target}/metrics.json"),
        predictions=out("{dataset}", "cv/{fold}/eval/{run}/{target}/predictions.tsv"),
        plots=directory(out("{dataset}", "cv/{fold}/eval/{run}/{target}/plots")),
    log:
        log_file("{dataset}/cv/{fold}/evaluate/{run}/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/cv/{fold}/evaluate/{run}/{target}.tsv")


rule cv_summary:
    """Every AAM run beside every baseline over the folds: mean +- sd, the paired per-fold
    differences with Wilcoxon signed-rank and sign-test p-values, one point per fold per model.
    Runs of evaluate.average_runs are also averaged here, from their evaluations' predictions.tsv
    (written with the metrics.json of the same jobs)."""
    input:
        metrics=lambda wc: targets.cv_fold_evaluations(config, wc.dataset, wc.target),
        baselines=lambda wc: targets.cv_fold_baselines(config, wc.dataset, wc.target),
    output:
        table=report(
            out("{dataset}", "cv_summary/{target}/summary.tsv"),
            caption="../report/cv_summary.rst",
            category="Cross-validation",
            subcategory="{dataset}: {target}",
            labels={"file": "summary table"},
        ),
        json=out("{dataset}", "cv_summary/{target}/summary.json"),
        plot=report(
            out("{dataset}", "cv_summary/{target}/summary.png"),
            caption="../report/cv_summary.rst",
            category="Cross-validation",
            subcategory="{dataset}: {target}",
            labels={"file": "per-fold plot"},
        ),
    params:
        average=average_arg,
    log:
        log_file("{dataset}/cv_summary/{target}.log"),
    benchmark:
        benchmark_file("{dataset}/cv_summary/{target}.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged(
            "aam cv-summary --metrics {input.metrics:q} --baselines {input.baselines:q} --out {output.table:q}"
            " --json {output.json:q} --plot {output.plot:q} {params.average}"
        )


rule leaderboard:
    """The benchmark page: every model (AAM runs and baselines) ranked over every dataset and target
    of the config, with its wins and losses against each baseline and paired tests."""
    input:
        targets.all_cv_summaries(config),
    output:
        table=targets.leaderboard_file(config, "leaderboard.tsv"),
        tasks=targets.leaderboard_file(config, "tasks.tsv"),
        pairs=targets.leaderboard_file(config, "pairs.tsv"),
        json=targets.leaderboard_file(config, "leaderboard.json"),
        page=report(
            targets.leaderboard_file(config, "leaderboard.html"),
            caption="../report/leaderboard.rst",
            category="Benchmark",
            labels={"file": "leaderboard"},
        ),
        plot=report(
            targets.leaderboard_file(config, "leaderboard.png"),
            caption="../report/leaderboard.rst",
            category="Benchmark",
            labels={"file": "ranks per task"},
        ),
    params:
        out_dir=lambda wc, output: os.path.dirname(output.table),
    log:
        log_file("leaderboard.log"),
    benchmark:
        benchmark_file("leaderboard.tsv")
    threads: 1
    conda:
        "../envs/aam.yaml"
    shell:
        logged("aam leaderboard --summaries {input:q} --out-dir {params.out_dir:q}")
