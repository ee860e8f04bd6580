"""Helpers shared by every rule file: dataset and run lookups, paths, settings as JSON."""

import json

RESULTS = config["results"]
DATASETS = list(config["datasets"])
AAM_RUNS = config["aam"]["runs"]
SEQUENCE_SETS = config["sequences"]
SEQ_RUNS = config["seq_models"]["runs"]


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    run="[A-Za-z0-9_.-]+",
    target="[A-Za-z0-9_.-]+",
    metric="[a-z_]+",
    name="[A-Za-z0-9_.-]+",


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
    """Everything `rule all` asks for: per dataset the prepared data, UniFrac, every run's evaluation
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
    for name in SEQUENCE_SETS:
        targets += sequence_targets(name)
    return targets
