"""Helpers for the rule files (dataset and run lookups, paths, settings as JSON)."""

import hashlib
import json
import os
import shlex

from snakemake.logging import logger

from aam.data.split import fold_names

RESULTS = config["results"]
DATASETS = list(config["datasets"])
AAM_RUNS = config["aam"]["runs"]
SEQUENCE_SETS = config["sequences"]
SEQ_RUNS = config["seq_models"]["runs"]
CV = config["evaluate"].get("cv")  # absent: no cross-validation
CV_FOLDS = fold_names(CV["folds"], CV["repeats"]) if CV else []

# Targets without model runs plan no training and no evaluation (the forest is scored beside each
# run): say so rather than finish quietly with only the data preparation and UniFrac done.
if not AAM_RUNS and any(config["datasets"][d]["targets"] for d in DATASETS):
    logger.warning(
        "WARNING: the config has targets (datasets: "
        + ", ".join(d for d in DATASETS if config["datasets"][d]["targets"])
        + ") but no aam.runs: no model is trained or evaluated, and no random forest either. "
        "Add a run under aam.runs (config/config.yaml has two; config/README.md, section aam)."
    )


def dataset_config(wildcards):
    """The `datasets:` entry of the rule's {dataset}."""
    return config["datasets"][wildcards.dataset]


def dataset_targets(dataset):
    """The target entries ({name, column, type}) of one dataset."""
    return config["datasets"][dataset]["targets"]


def rarefy_depth(wildcards):
    """The dataset's rarefaction depth: its own rarefy_depth, else the global rarefy.depth."""
    depth = dataset_config(wildcards).get("rarefy_depth")
    return config["rarefy"]["depth"] if depth is None else depth


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


SETTINGS_INLINE_MAX = 100  # characters of JSON shown inline on the shell line; longer goes to a file


def settings_arg(obj):
    """A stage's `--settings` for `params:`: the canonical JSON itself when short, else the path of a
    file holding it, named by the JSON's SHA-256 under results/.settings/.

    Either way the value changes exactly when a setting does, so Snakemake's params trigger reruns
    the stage, while the shell line that `printshellcmds` shows stays short (a training run's
    settings are ~1,000 characters). The file is written when the DAG is built (also in a dry run);
    content-addressed, it is never rewritten with other content.
    """
    text = to_json(obj)
    if len(text) <= SETTINGS_INLINE_MAX:
        return text
    path = f"{RESULTS}/.settings/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(f"{text}\n")
        os.replace(tmp, path)
    return path


def out(dataset, path):
    """Path of an artifact under results/{dataset}/."""
    return f"{RESULTS}/{dataset}/{path}"


def seq_out(name, path):
    """Path of an artifact of a DNA sequence collection under results/sequences/{name}/."""
    return f"{RESULTS}/sequences/{name}/{path}"


def log_file(path):
    """Path of a rule's log under results/logs/: two configs with different `results:` never share logs."""
    return f"{RESULTS}/logs/{path}"


def benchmark_file(path):
    """Path of a rule's benchmark under results/benchmarks/."""
    return f"{RESULTS}/benchmarks/{path}"


def logged(command):
    """A rule's shell command with its output sent to the rule's log.

    On failure the log's last line (the stage's one-line error, or a traceback's last line) is printed
    to Snakemake's own output as well, so the user sees what went wrong without opening the log; the
    command's exit status is kept. Every rule's `shell:` goes through this.
    """
    return f"{command} > {{log:q}} 2>&1" " || {{ status=$?; tail -n 1 {log:q} >&2; exit $status; }}"


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


def scoped(wc, path):
    """Path of an artifact of the rule's {dataset}: under results/{dataset}/ for the split, under
    results/{dataset}/cv/{fold}/ for a cross-validation job (whose wildcards have a fold). The
    finetune and evaluate rules name their per-split files with it, so that their CV variants
    (workflow/rules/cv.smk) reuse them with other outputs only."""
    fold = getattr(wc, "fold", None)
    return out(wc.dataset, f"cv/{fold}/{path}" if fold else path)


def fold_arg(wc):
    """The evaluate stage's --fold argument for a cross-validation job."""
    fold = getattr(wc, "fold", None)
    return f"--fold {fold}" if fold else ""


def evaluate_settings():
    """The `evaluate:` section as a rule's params: without random_forest.n_jobs (it changes no result
    and reaches the stage as threads) and without cv (which folds exist is the DAG's business)."""
    section = {k: v for k, v in config["evaluate"].items() if k != "cv"}
    section["random_forest"] = {k: v for k, v in section["random_forest"].items() if k != "n_jobs"}
    return settings_arg(section)


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
    """The sections of an AAM run that a stage reads, as a `--settings` argument (settings_arg)."""
    return settings_arg({section: AAM_RUNS[run][section] for section in sections})


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


# --- data-parallel training (trainer: devices, num_nodes) ---


def training_layout(trainer):
    """(nodes, processes per node) of a trainer section; data-parallel when their product is > 1.
    `devices: auto` counts as one process per node here (under SLURM, give an integer)."""
    devices = trainer.get("devices", "auto")
    return int(trainer.get("num_nodes", 1)), devices if isinstance(devices, int) else 1


def training_resources(trainer):
    """Resources of a training job. `gpu`: GPUs in all (a local profile's limit; `--gpus` on SLURM);
    `nodes` and `tasks_per_node`: one task per process, which SLURM starts through the rule's own
    `srun` (resource `mpi` present, so the SLURM executor does not wrap the job in a one-task step;
    "srun" for several processes, 0 for one, which the executor requires)."""
    nodes, per_node = training_layout(trainer)
    parallel = nodes * per_node > 1
    return {
        "gpu": nodes * per_node,
        "nodes": nodes,
        "tasks_per_node": per_node,
        "tasks_per_gpu": 1,
        "mpi": "srun" if parallel else 0,
    }


def training_launcher(trainer, cpus):
    """The prefix of a training command. Under SLURM (a job's SLURM_JOB_ID) training runs as a job
    step, `srun` with one task per process: Lightning reads the ranks from SLURM, and the step gets
    the profile's `--signal` (SIGUSR1 before the time limit: checkpoint and requeue). Run elsewhere,
    the command runs as it is and Lightning starts the processes of one node itself. `cpus`: per
    process (the job's cpus_per_task, else the rule's threads)."""
    nodes, per_node = training_layout(trainer)
    srun = f"srun --nodes={nodes} --ntasks-per-node={per_node} --cpus-per-task={cpus} --kill-on-bad-exit=1"
    return f'$([ -n "${{SLURM_JOB_ID:-}}" ] && echo "{srun}") '


def aam_trainer(run, stage):
    """The trainer settings of an AAM run's stage (pretrain or finetune)."""
    return AAM_RUNS[run][stage].get("trainer", {})


def training_launch_param(trainer_of):
    """A training rule's `launch` param; `trainer_of(wildcards)` gives the run's trainer settings."""
    return lambda wildcards, threads, resources: training_launcher(
        trainer_of(wildcards), resources.get("cpus_per_task", threads)
    )


def training_resource_params(trainer_of):
    """A training rule's resources (training_resources), each a function of the wildcards."""
    keys = ("gpu", "nodes", "tasks_per_node", "tasks_per_gpu", "mpi")
    return {key: (lambda wildcards, key=key: training_resources(trainer_of(wildcards))[key]) for key in keys}
