"""Where the workflow's artifacts live, and which of them the default target builds.

Every artifact of a dataset sits under ``{results}/{dataset}/``, of a DNA sequence collection under
``{results}/sequences/{name}/``, of a pretraining corpus under ``{results}/corpus/{corpus}/``; logs
and benchmarks under ``{results}/logs/`` and ``{results}/benchmarks/``, so that two configs with
different ``results:`` never share a file.
"""

from __future__ import annotations

import functools
import re

from aam.data.split import fold_file, fold_names, repeat_folder, stratify_column
from aam.errors import InputError
from aam.io.distance_matrix import SUFFIX, format_for_table


def out(config: dict, dataset: str, path: str) -> str:
    """Path of an artifact under results/{dataset}/."""
    return f"{config['results']}/{dataset}/{path}"


def seq_out(config: dict, name: str, path: str) -> str:
    """Path of an artifact of a DNA sequence collection under results/sequences/{name}/."""
    return f"{config['results']}/sequences/{name}/{path}"


def corpus_out(config: dict, corpus: str, path: str) -> str:
    """Path of an artifact of a corpus under results/corpus/{corpus}/."""
    return f"{config['results']}/corpus/{corpus}/{path}"


def log_file(config: dict, path: str) -> str:
    """Path of a rule's log under results/logs/: two configs with different `results:` never share logs."""
    return f"{config['results']}/logs/{path}"


def benchmark_file(config: dict, path: str) -> str:
    """Path of a rule's benchmark under results/benchmarks/."""
    return f"{config['results']}/benchmarks/{path}"


def scoped(config: dict, dataset: str, fold: str | None, path: str) -> str:
    """Path of an artifact of a dataset: under results/{dataset}/ for the split, under
    results/{dataset}/cv/{fold}/ for a cross-validation job (a fold). The finetune and evaluate rules
    name their per-split files with it, so that their CV variants (workflow/rules/cv.smk) reuse them
    with other outputs only."""
    return out(config, dataset, f"cv/{fold}/{path}" if fold else path)


def splits_file(config: dict, dataset: str, fold: str | None) -> str:
    """The splits.tsv that a fine-tuning or evaluation job reads: the split stage's, or one fold's of
    cv-split, in its repeat's folder. Each multi-output stage owns a folder (split/, cv/split/r0/),
    so that it publishes its outputs all or none (aam.io.atomic)."""
    return out(config, dataset, fold_file(fold) if fold else "split/splits.tsv")


# --- datasets and their targets ---


def dataset_targets(config: dict, dataset: str) -> list[dict]:
    """The target entries ({name, column, type, ...}) of one dataset."""
    return config["datasets"][dataset]["targets"]


def target_config(config: dict, dataset: str, target: str) -> dict:
    """The target entry named `target` of a dataset."""
    for entry in dataset_targets(config, dataset):
        if entry["name"] == target:
            return entry
    raise InputError(f"dataset {dataset} has no target named {target}")


def rarefy_depth(config: dict, dataset: str) -> int | str:
    """A dataset's rarefaction depth: its own rarefy_depth, else the global rarefy.depth."""
    depth = config["datasets"][dataset].get("rarefy_depth")
    return config["rarefy"]["depth"] if depth is None else depth


def dataset_stratify_column(config: dict, dataset: str) -> str | None:
    """The column a dataset's split and folds are stratified by (none: unstratified)."""
    return stratify_column(config["split"], dataset_targets(config, dataset))


def cv_folds(config: dict) -> list[str]:
    """The cross-validation folds' names (none when `evaluate.cv` is absent)."""
    cv = config["evaluate"].get("cv")
    return fold_names(cv["folds"], cv["repeats"]) if cv else []


def has_evaluations(config: dict, dataset: str) -> bool:
    """Whether a dataset's single split is evaluated: it has targets, the config AAM runs, and no
    cross-validation (with `evaluate.cv` the folds are the results)."""
    single = not config["evaluate"].get("cv")
    return bool(single and config["aam"]["runs"] and dataset_targets(config, dataset))


def runless_targets_warning(config: dict) -> str | None:
    """Targets without model runs and without cross-validation plan no training and no evaluation
    (the baselines are scored beside each run): the warning that says so, rather than finishing
    quietly with only the data preparation and UniFrac done; None when there is nothing to say. With
    cross-validation the baselines alone are cross-validated."""
    with_targets = [d for d in config["datasets"] if dataset_targets(config, d)]
    if config["aam"]["runs"] or config["evaluate"].get("cv") or not with_targets:
        return None
    return (
        "WARNING: the config has targets (datasets: " + ", ".join(with_targets) + ") but no aam.runs "
        "and no evaluate.cv: no model is trained or evaluated, and no baseline either. "
        "Add a run under aam.runs (config/config.yaml has some; config/README.md, section aam)."
    )


# --- DNA sequence collections ---


def seq_run_kind(config: dict, run: str) -> str:
    """A sequence model run's kind: contrastive (the default) or vq."""
    return config["seq_models"]["runs"][run].get("kind", "contrastive")


def seq_runs_for(config: dict, name: str) -> list[str]:
    """The sequence model runs that apply to one collection: VQ runs always, contrastive runs on
    FASTA input."""
    has_fasta = bool(config["sequences"][name].get("fasta"))
    return [run for run in config["seq_models"]["runs"] if seq_run_kind(config, run) == "vq" or has_fasta]


def sequence_targets(config: dict, name: str) -> list[str]:
    """Final outputs of one DNA sequence collection: every run's evaluation and, for labelled
    collections, every contrastive run's taxonomy of the reads to classify."""
    targets = [seq_out(config, name, f"eval/{run}/metrics.json") for run in seq_runs_for(config, name)]
    if config["sequences"][name].get("labels"):
        targets += [
            seq_out(config, name, f"classify/{run}/taxonomy.tsv")
            for run in seq_runs_for(config, name)
            if seq_run_kind(config, run) == "contrastive"
        ]
    return targets


# --- the default target ---


def unifrac_metrics(config: dict) -> list[str]:
    """The UniFrac metrics the config asks for."""
    return list(config["unifrac"]["metrics"])


def unifrac_format(config: dict, dataset: str) -> str:
    """tsv or hdf5: `unifrac.format`, with `auto` decided by the sample count of the dataset's table
    (read from its header when the DAG is built, so that the matrix file's name is known)."""
    settings = config["unifrac"]
    return _table_format(settings["format"], str(config["datasets"][dataset]["table"]),
                         int(settings["binary_min_samples"]))


@functools.lru_cache(maxsize=256)
def _table_format(setting: str, table: str, binary_min_samples: int) -> str:
    return format_for_table(setting, table, binary_min_samples)


def unifrac_datasets(config: dict, fmt: str) -> str:
    """A wildcard constraint matching the datasets whose matrices are written as `fmt`."""
    names = [re.escape(d) for d in config["datasets"] if unifrac_format(config, d) == fmt]
    return "|".join(names) if names else "(?!)"


def unifrac_matrix_file(config: dict, dataset: str, metric: str, relative: bool = False) -> str:
    """The distance matrix of one dataset and metric: unifrac/{metric}.tsv or .h5 (under the
    dataset's folder, or relative to it)."""
    path = f"unifrac/{metric}{SUFFIX[unifrac_format(config, dataset)]}"
    return path if relative else out(config, dataset, path)


def unifrac_part_files(config: dict, dataset: str) -> list[str]:
    """The files of the row-block jobs (unifrac.parts > 1) that rule unifrac merges; none for one job."""
    parts = int(config["unifrac"]["parts"])
    if parts <= 1:
        return []
    return [out(config, dataset, f"unifrac_parts/{m}.part{i}.h5")
            for m in unifrac_metrics(config) for i in range(parts)]


def unifrac_targets(config: dict, dataset: str) -> list[str]:
    """Final UniFrac outputs of one dataset."""
    targets = [unifrac_matrix_file(config, dataset, m) for m in unifrac_metrics(config)]
    targets += [out(config, dataset, f"unifrac/pcoa_{m}.png") for m in unifrac_metrics(config)]
    if config["unifrac"]["faith_pd"]:
        targets.append(out(config, dataset, "unifrac/faith_pd.tsv"))
    return targets


def evaluation_targets(config: dict, dataset: str) -> list[str]:
    """Every run's evaluation of every target of a dataset (metrics.json)."""
    return [
        out(config, dataset, f"eval/{run}/{target['name']}/metrics.json")
        for run in config["aam"]["runs"]
        for target in dataset_targets(config, dataset)
    ]


def cv_summary_targets(config: dict, dataset: str) -> list[str]:
    """The cross-validation summaries of one dataset (one per target), if CV is configured (with or
    without AAM runs: the baselines are cross-validated either way)."""
    if not config["evaluate"].get("cv"):
        return []
    return [out(config, dataset, f"cv_summary/{t['name']}/summary.json")
            for t in dataset_targets(config, dataset)]


def all_cv_summaries(config: dict) -> list[str]:
    """Every dataset's cross-validation summaries: the leaderboard's inputs."""
    return [path for dataset in config["datasets"] for path in cv_summary_targets(config, dataset)]


def leaderboard_file(config: dict, name: str = "leaderboard.tsv") -> str:
    """A file of the leaderboard (rule leaderboard) under results/benchmark/."""
    return f"{config['results']}/benchmark/{name}"


def cv_fold_evaluations(config: dict, dataset: str, target: str) -> list[str]:
    """Every fold's evaluation of every run for one target (inputs of its CV summary)."""
    return [
        out(config, dataset, f"cv/{fold}/eval/{run}/{target}/metrics.json")
        for fold in cv_folds(config)
        for run in config["aam"]["runs"]
    ]


def cv_fold_baselines(config: dict, dataset: str, target: str) -> list[str]:
    """Every fold's baselines for one target (inputs of its CV summary): one job per fold."""
    return [out(config, dataset, f"cv/{fold}/baselines/{target}/metrics.json") for fold in cv_folds(config)]


def corpus_targets(config: dict) -> list[str]:
    """Every corpus run's encoder (the default target builds them)."""
    corpora = config["pretrain_corpus"]
    return [corpus_out(config, c, f"{run}/model.json") for c in corpora for run in corpora[c]["runs"]]


def predict_targets(config: dict) -> list[str]:
    """The predictions of every `predict:` entry."""
    return [
        out(config, entry["dataset"], f"predict/{name}/predictions.tsv")
        for name, entry in config["predict"].items()
    ]


def final_targets(config: dict) -> list[str]:
    """Everything the default target asks for - per dataset the prepared data, UniFrac, every run's
    evaluation and the run comparison (or, with cross-validation, every target's CV summary and the
    leaderboard); per sequence collection every sequence model's evaluation; every `predict:` entry,
    every corpus encoder; the QIIME 2 artifacts (qiime2.export); the results page."""
    from aam.workflow import qiime2  # it builds on this module's paths

    targets = []
    for dataset in config["datasets"]:
        targets.append(out(config, dataset, "rarefied/table.biom"))
        targets += unifrac_targets(config, dataset)
        if has_evaluations(config, dataset):
            targets += evaluation_targets(config, dataset)
            targets.append(out(config, dataset, "comparison/comparison.tsv"))
        targets += cv_summary_targets(config, dataset)
        targets += qiime2.dataset_artifacts(config, dataset)
    for name in config["sequences"]:
        targets += sequence_targets(config, name) + qiime2.sequence_artifacts(config, name)
    targets += predict_targets(config)
    targets += corpus_targets(config)
    if all_cv_summaries(config):
        targets.append(leaderboard_file(config))
    if config["datasets"] or config["sequences"]:
        targets.append(f"{config['results']}/summary.html")
    return targets


def summary_inputs(config: dict) -> list[str]:
    """Every artifact the results page (rule summary) reads."""
    files = []
    for d in config["datasets"]:
        files += [
            splits_file(config, d, None),
            out(config, d, "ingest/samples.parquet"),
            out(config, d, "rarefied/table.biom"),
            out(config, d, "rarefied/dropped.tsv"),
        ]
        if config["unifrac"]["faith_pd"]:
            files.append(out(config, d, "unifrac/faith_pd.tsv"))
        files += [unifrac_matrix_file(config, d, m) for m in unifrac_metrics(config)]
        files += [out(config, d, f"unifrac/pcoa_{m}.tsv") for m in unifrac_metrics(config)]
        if has_evaluations(config, d):
            files.append(out(config, d, "comparison/comparison.tsv"))
            files += evaluation_targets(config, d)
        if config["evaluate"].get("cv") and dataset_targets(config, d):
            files += [out(config, d, f"{repeat_folder(r)}/summary.tsv")  # the folds, beside their scores
                      for r in range(config["evaluate"]["cv"]["repeats"])]
        files += [out(config, d, f"cv_summary/{t['name']}/summary.tsv") for t in dataset_targets(config, d)
                  if config["evaluate"].get("cv")]
    if all_cv_summaries(config):
        files.append(leaderboard_file(config, "leaderboard.html"))
    for name in config["sequences"]:
        files += [seq_out(config, name, f"eval/{run}/metrics.json")
                  for run in seq_runs_for(config, name)]
    return files


def summary_plan(config: dict) -> dict:
    """What the results page covers, for the summary stage's --settings (see aam.stages.summary)."""
    runs = config["aam"]["runs"]
    cv = bool(config["evaluate"].get("cv"))
    return {
        "leaderboard": bool(all_cv_summaries(config)),
        "datasets": {
            d: {
                "class_column": summary_class_column(config, d),
                "comparison": has_evaluations(config, d),
                "evaluations": [[run, t["name"]] for run in runs for t in dataset_targets(config, d)]
                if has_evaluations(config, d) else [],
                "cv": [t["name"] for t in dataset_targets(config, d)] if cv else [],
                "cv_repeats": config["evaluate"]["cv"]["repeats"] if cv else 0,
                "faith_pd": bool(config["unifrac"]["faith_pd"]),
                "matrices": {m: unifrac_matrix_file(config, d, m, relative=True)
                             for m in unifrac_metrics(config)},
            }
            for d in config["datasets"]
        },
        "sequences": {name: seq_runs_for(config, name) for name in config["sequences"]},
    }


def summary_class_column(config: dict, dataset: str) -> str | None:
    """The column whose classes the split summary counts: the stratify column, else the first
    classification target's."""
    targets = dataset_targets(config, dataset)
    classification = [t["column"] for t in targets if t["type"] == "classification"]
    return dataset_stratify_column(config, dataset) or (classification[0] if classification else None)


# --- predict: new tables through a fine-tuned model ---


def predict_entry(config: dict, name: str, dataset: str) -> dict:
    """The `predict:` entry `name`; its dataset must be the path's {dataset}."""
    entry = config["predict"][name]
    if entry["dataset"] != dataset:
        raise InputError(f"predict/{name} belongs to dataset {entry['dataset']}, not {dataset}")
    return entry


def predict_model_dir(config: dict, name: str, dataset: str) -> str:
    """The folder of the fine-tuned model a `predict:` entry applies."""
    entry = predict_entry(config, name, dataset)
    return out(config, dataset, f"models/{entry['run']}/finetune/{entry['target']}")


def predict_inputs(config: dict, name: str, dataset: str) -> dict[str, str]:
    """The files a predict job reads: the model's, the new table and its sequences if given."""
    entry = predict_entry(config, name, dataset)
    model_dir = predict_model_dir(config, name, dataset)
    files = {f: f"{model_dir}/{f}" for f in ("model.safetensors", "model.json", "train_features.parquet")}
    files["table"] = entry["table"]
    if entry.get("sequences"):
        files["sequences"] = entry["sequences"]
    return files


def predict_seed(config: dict, name: str, dataset: str) -> int:
    """A predict job's seed: the entry's own, else the config's."""
    seed = predict_entry(config, name, dataset).get("seed")
    return config["seed"] if seed is None else seed
