"""Helpers for the rule files (dataset and run lookups, paths, settings as JSON)."""

import json
import shlex

from aam.data.split import fold_names

RESULTS = config["results"]
DATASETS = list(config["datasets"])
AAM_RUNS = config["aam"]["runs"]
SEQUENCE_SETS = config["sequences"]
SEQ_RUNS = config["seq_models"]["runs"]
CV = config["evaluate"].get("cv")  # absent: no cross-validation
CV_FOLDS = fold_names(CV["folds"], CV["repeats"]) if CV else []


def dataset_config(wildcards):
    """The `datasets:` entry of the rule's {dataset}."""
    return config["datasets"][wildcards.dataset]


def dataset_targets(dataset):
    """The target entries ({name, column, type}) of one dataset."""
    return config["datasets"][dataset]["targets"]


def target_config(wildcards):
    """The target entry of the rule's {dataset} and {target}."""
    for target in dataset_targets(wildcards.dataset):
        if target["name"] == wildcards.target:
            return target
    raise ValueError(f"dataset {wildcards.dataset} has no target named {wildcards.target}")


def to_json(obj):
    """Settings as canonical JSON for `params:`; pass to the shell as `{params.name:q}`.

    Sorted keys make the string stable, so Snakemake reruns a stage only when a value changes.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def out(dataset, path):
    """Path of an artifact under results/{dataset}/."""
    return f"{RESULTS}/{dataset}/{path}"


def seq_out(name, path):
    """Path of an artifact of a DNA sequence collection under results/sequences/{name}/."""
    return f"{RESULTS}/sequences/{name}/{path}"


def final_targets():
    """Everything the default target asks for - per dataset the prepared data, UniFrac, every run's evaluation
    and the run comparison; per sequence collection every sequence model's evaluation."""
    targets = []
    for dataset in DATASETS:
        targets.append(out(dataset, "rarefied/table.biom"))
        targets += unifrac_targets(dataset)
        if AAM_RUNS and dataset_targets(dataset):
            targets += [
                out(dataset, f"eval/{run}/{target['name']}/metrics.json")
                for run in AAM_RUNS
                for target in dataset_targets(dataset)
            ]
            targets.append(out(dataset, "comparison.tsv"))
            targets += cv_summary_targets(dataset)
    for name in SEQUENCE_SETS:
        targets += sequence_targets(name)
    return targets


def cv_summary_targets(dataset):
    """The cross-validation summaries of one dataset (one per target), if CV is configured."""
    if not (CV and AAM_RUNS):
        return []
    return [out(dataset, f"cv_summary/{t['name']}.json") for t in dataset_targets(dataset)]


def cv_out(wc, path):
    """Path of an artifact of the rule's {dataset} and cross-validation {fold}."""
    return out(wc.dataset, f"cv/{wc.fold}/{path}")


def evaluate_settings():
    """The `evaluate:` section as a rule's params: without random_forest.n_jobs (it changes no result
    and reaches the stage as threads) and without cv (which folds exist is the DAG's business)."""
    section = {k: v for k, v in config["evaluate"].items() if k != "cv"}
    section["random_forest"] = {k: v for k, v in section["random_forest"].items() if k != "n_jobs"}
    return to_json(section)


# --- UniFrac ---


def unifrac_metrics():
    """The UniFrac metrics the config asks for."""
    return list(config["unifrac"]["metrics"])


def unifrac_targets(dataset):
    """Final UniFrac outputs of one dataset (the default target)."""
    targets = [out(dataset, f"unifrac/{m}.tsv") for m in unifrac_metrics()]
    targets += [out(dataset, f"unifrac/pcoa_{m}.png") for m in unifrac_metrics()]
    if config["unifrac"]["faith_pd"]:
        targets.append(out(dataset, "unifrac/faith_pd.tsv"))
    return targets


# --- AAM runs ---


def aam_run_settings(run, *sections):
    """The sections of an AAM run that a stage reads, as canonical JSON."""
    return to_json({section: AAM_RUNS[run][section] for section in sections})


def pretrain_enabled(run):
    """Whether the AAM run pretrains its encoder (else it fine-tunes from scratch)."""
    return bool(AAM_RUNS[run]["pretrain"]["enabled"])


def pretrained_inputs(wc):
    """The pretrained encoder files a finetune job reads, if its run pretrains."""
    if not pretrain_enabled(wc.run):
        return []
    return [
        out(wc.dataset, f"models/{wc.run}/pretrain/model.safetensors"),
        out(wc.dataset, f"models/{wc.run}/pretrain/model.json"),
    ]


def pretrain_dir_arg(wc):
    """The finetune stage's --pretrain-dir argument, if its run pretrains."""
    if not pretrain_enabled(wc.run):
        return ""
    return f"--pretrain-dir {shlex.quote(out(wc.dataset, f'models/{wc.run}/pretrain'))}"
