# Rules of this phase; see workflow/rules/common.smk for helpers.
# evaluate: each run's fine-tuned model on the test split beside a random forest on the same samples.
# compare: every run and target of a dataset in one table and one bar chart.

import shlex


def evaluate_settings_json():
    """The `evaluate` section as JSON, without random_forest.n_jobs: cores do not change the results,
    so changing them reruns nothing (they reach the stage as the rule's threads)."""
    section = config["evaluate"]
    forest = {k: v for k, v in section.get("random_forest", {}).items() if k != "n_jobs"}
    return to_json({**section, "random_forest": forest})


def run_pretrains(run):
    """Whether an AAM run has a pretraining stage (its learning curves join the plots)."""
    return bool(AAM_RUNS[run].get("pretrain", {}).get("enabled", False))


def finetune_file(name):
    return lambda wc: out(wc.dataset, f"models/{wc.run}/finetune/{wc.target}/{name}")


def pretrain_history(wc):
    return [out(wc.dataset, f"models/{wc.run}/pretrain/metrics.csv")] if run_pretrains(wc.run) else []


def pretrain_arg(wc):
    if not run_pretrains(wc.run):
        return ""
    pretrain_dir = shlex.quote(out(wc.dataset, f"models/{wc.run}/pretrain"))
    return f"--pretrain-dir {pretrain_dir}"


def evaluated_metrics(wc):
    """metrics.json of every run and target of the rule's dataset."""
    return [
        out(wc.dataset, f"eval/{run}/{target['name']}/metrics.json")
        for run in AAM_RUNS
        for target in dataset_targets(wc.dataset)
    ]


rule evaluate:
    """Test-split metrics, predictions and plots of one run's model for one target, beside a random
    forest (q2-sample-classifier recipe) trained on train + val of the rarefied table."""
    input:
        model=finetune_file("model.json"),
        predictions=finetune_file("predictions.tsv"),
        history=finetune_file("metrics.csv"),
        embeddings=finetune_file("embeddings.parquet"),
        pretrain_history=pretrain_history,
        rarefied=out("{dataset}", "rarefied/table.biom"),
        splits=out("{dataset}", "splits.tsv"),
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
        settings=lambda wc: evaluate_settings_json(),
        seed=config["seed"],
        column=lambda wc: target_config(wc)["column"],
        task=lambda wc: target_config(wc)["type"],
        finetune_dir=lambda wc: out(wc.dataset, f"models/{wc.run}/finetune/{wc.target}"),
        pretrain=pretrain_arg,
        out_dir=lambda wc: out(wc.dataset, f"eval/{wc.run}/{wc.target}"),
    log:
        "logs/{dataset}/evaluate/{run}/{target}.log",
    benchmark:
        "benchmarks/{dataset}/evaluate/{run}/{target}.tsv"
    threads: config["evaluate"]["random_forest"]["n_jobs"]
    shell:
        "aam evaluate --finetune-dir {params.finetune_dir:q} {params.pretrain}"
        " --rarefied {input.rarefied:q} --splits {input.splits:q} --samples {input.samples:q}"
        " --target-column {params.column:q} --task {params.task} --target {wildcards.target:q}"
        " --run {wildcards.run:q} --dataset {wildcards.dataset:q} --seed {params.seed}"
        " --settings {params.settings:q} --n-jobs {threads} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule compare:
    """One table and one bar chart of every run and target of a dataset, the forest beside each."""
    input:
        evaluated_metrics,
    output:
        table=report(
            out("{dataset}", "comparison.tsv"),
            caption="../report/evaluate_comparison.rst",
            category="Evaluation",
            subcategory="{dataset}: all runs",
            labels={"file": "comparison.tsv"},
        ),
        plot=report(
            out("{dataset}", "comparison.png"),
            caption="../report/evaluate_comparison.rst",
            category="Evaluation",
            subcategory="{dataset}: all runs",
            labels={"file": "comparison.png"},
        ),
    log:
        "logs/{dataset}/compare.log",
    benchmark:
        "benchmarks/{dataset}/compare.tsv"
    threads: 1
    shell:
        "aam compare --metrics {input:q} --out-tsv {output.table:q} --out-png {output.plot:q} > {log:q} 2>&1"
