"""Helpers for the rule files (dataset and run lookups, paths, settings as JSON)."""

import hashlib
import json
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

from snakemake.logging import logger

from aam.data.split import fold_names

RESULTS = config["results"]
DATASETS = list(config["datasets"])
AAM_RUNS = config["aam"]["runs"]
SEQUENCE_SETS = config["sequences"]
SEQ_RUNS = config["seq_models"]["runs"]
PREDICT = config["predict"]
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
    and the run comparison; per sequence collection every sequence model's evaluation; the results page."""
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
        targets += qiime2_targets(dataset)
    for name in SEQUENCE_SETS:
        targets += sequence_targets(name) + qiime2_sequence_targets(name)
    targets += [out(entry["dataset"], f"predict/{name}/predictions.tsv") for name, entry in PREDICT.items()]
    targets += corpus_targets()
    if DATASETS or SEQUENCE_SETS:
        targets.append(f"{RESULTS}/summary.html")
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
    """Whether the AAM run starts from a pretrained encoder (else it fine-tunes from scratch)."""
    return bool(AAM_RUNS[run]["pretrain"]["enabled"])


def pretrain_source(run):
    """Where a run's encoder comes from: study (pretrained on the dataset), corpus or bundled."""
    return AAM_RUNS[run]["pretrain"].get("from", "study")


def continues_on_study(run):
    """Whether a run pretrains its corpus or bundled encoder further on the dataset itself."""
    return pretrain_source(run) != "study" and bool(AAM_RUNS[run]["pretrain"].get("continue_on_study"))


def source_encoder_dir(run):
    """The folder of a run's corpus or bundled encoder (None for from: study)."""
    pre = AAM_RUNS[run]["pretrain"]
    source = pretrain_source(run)
    if source == "corpus":
        return corpus_out(pre["corpus"], pre["run"])
    if source == "bundled":
        return bundled_dir(pre.get("bundled") or DEFAULT_BUNDLED)
    return None


def pretrained_dir(dataset, run):
    """The folder of the encoder a finetune job starts from (None: from scratch): the dataset's own
    pretraining (from: study, or a corpus/bundled encoder continued on the study), else the corpus
    or bundled encoder itself."""
    if not pretrain_enabled(run):
        return None
    if pretrain_source(run) == "study" or continues_on_study(run):
        return out(dataset, f"models/{run}/pretrain")
    return source_encoder_dir(run)


def init_inputs(wc):
    """The encoder files a pretrain job starts from (continue_on_study), else none."""
    return encoder_files(source_encoder_dir(wc.run)) if continues_on_study(wc.run) else []


def init_dir_arg(wc):
    """The pretrain stage's --init-dir argument (continue_on_study), else empty."""
    if not continues_on_study(wc.run):
        return ""
    return f"--init-dir {shlex.quote(str(source_encoder_dir(wc.run)))}"


def encoder_files(folder):
    """The files of an encoder folder that a job reads (none for no folder)."""
    if folder is None:
        return []
    return [f"{folder}/model.safetensors", f"{folder}/model.json"]


def pretrained_inputs(wc):
    """The pretrained encoder files a finetune job reads, if its run starts from one."""
    return encoder_files(pretrained_dir(wc.dataset, wc.run))


def pretrain_history_inputs(wc):
    """The pretraining's metrics.csv (learning curves in the evaluation), where the run has one."""
    folder = pretrained_dir(wc.dataset, wc.run)
    if folder is None or not (pretrain_source(wc.run) != "bundled" or Path(folder, "metrics.csv").exists()):
        return []
    return [f"{folder}/metrics.csv"]


def pretrain_dir_arg(wc):
    """The finetune stage's --pretrain-dir argument, if its run starts from an encoder."""
    folder = pretrained_dir(wc.dataset, wc.run)
    if folder is None:
        return ""
    return f"--pretrain-dir {shlex.quote(folder)}"


# --- pretraining across studies (pretrain_corpus) ---

CORPORA = config["pretrain_corpus"]
# Encoders shipped in the package (src/aam/pretrained/<name>/): `pretrain: {from: bundled}`.
BUNDLED_ROOT = Path(workflow.basedir).parent / "src" / "aam" / "pretrained"
DEFAULT_BUNDLED = "gg13_8_v4_small"


def bundled_dir(name):
    """The folder of a bundled encoder; a clear error when there is none of that name."""
    folder = BUNDLED_ROOT / name
    if not (folder / "model.json").exists():
        have = sorted(p.name for p in BUNDLED_ROOT.iterdir() if (p / "model.json").exists())
        raise ValueError(f"pretrain.bundled: no bundled encoder {name!r} (bundled: {have})")
    return str(folder)


def corpus_out(corpus, path):
    """Path of an artifact of a corpus under results/corpus/{corpus}/."""
    return f"{RESULTS}/corpus/{corpus}/{path}"


def corpus_study(wc):
    """The study entry of the rule's {corpus} and {study}, the corpus's defaults filled in."""
    corpus = CORPORA[wc.corpus]
    study = dict(corpus["studies"][wc.study])
    for key in ("sequences", "tree", "depth"):
        if study.get(key) is None:
            study[key] = corpus[key]
    if study["tree"] is None:
        raise ValueError(f"pretrain_corpus.{wc.corpus}: study {wc.study} has no tree, and the corpus none")
    return study


def corpus_study_inputs(wc):
    study = corpus_study(wc)
    inputs = {"table": study["table"], "tree": study["tree"], "metadata": study["metadata"]}
    if study["sequences"]:
        inputs["sequences"] = study["sequences"]
    return inputs


def corpus_ingest_settings(corpus):
    """The ingest stage's settings for a corpus's studies."""
    c = CORPORA[corpus]
    return {key: c[key] for key in ("max_missing_tree_fraction", "max_missing_sequence_fraction")}


def corpus_run_studies(corpus, run):
    """The studies a corpus run trains on (the corpus's, less the run's `exclude`)."""
    studies = list(CORPORA[corpus]["studies"])
    exclude = CORPORA[corpus]["runs"][run]["exclude"]
    unknown = sorted(set(exclude) - set(studies))
    if unknown:
        raise ValueError(f"pretrain_corpus.{corpus}.runs.{run}.exclude: no studies {unknown}")
    kept = [s for s in studies if s not in exclude]
    if not kept:
        raise ValueError(f"pretrain_corpus.{corpus}.runs.{run}: exclude leaves no study")
    return kept


def corpus_pretrain_inputs(wc):
    return [
        corpus_out(wc.corpus, f"studies/{study}/tokens/{name}.parquet")
        for study in corpus_run_studies(wc.corpus, wc.run)
        for name in ("features", "samples")
    ]


def corpus_studies_arg(corpus, run):
    """The corpus-pretrain stage's --studies: name, token caches, tree and depth of each study."""
    entries = []
    for name in corpus_run_studies(corpus, run):
        study = corpus_study(SimpleNamespace(corpus=corpus, study=name))
        entries.append({"name": name, "tokens_dir": corpus_out(corpus, f"studies/{name}/tokens"),
                        "tree": study["tree"], "depth": study["depth"]})
    return entries


def corpus_trainer(wc):
    """The trainer settings of a corpus run (data-parallel layout, as aam_trainer)."""
    return CORPORA[wc.corpus]["runs"][wc.run]["pretrain"].get("trainer", {})


def corpus_run_settings(corpus, run):
    """The data, model and pretrain sections of a corpus run."""
    return {key: CORPORA[corpus]["runs"][run][key] for key in ("data", "model", "pretrain")}


def corpus_targets():
    """Every corpus run's encoder (the default target builds them)."""
    return [corpus_out(c, f"{run}/model.json") for c in CORPORA for run in CORPORA[c]["runs"]]


def check_pretrain_sources():
    """Runs that fine-tune from a corpus must name a corpus run of the config; continue_on_study
    needs an encoder to continue from."""
    for run, settings in AAM_RUNS.items():
        pre = settings["pretrain"]
        if pre.get("continue_on_study") and pre.get("from", "study") == "study":
            raise ValueError(f"aam.runs.{run}.pretrain: continue_on_study needs from: corpus or bundled")
        if not pre["enabled"] or pre.get("from", "study") != "corpus":
            continue
        corpus, crun = pre.get("corpus"), pre.get("run")
        if corpus not in CORPORA or crun not in CORPORA[corpus]["runs"]:
            raise ValueError(f"aam.runs.{run}.pretrain: from: corpus needs corpus and run naming an entry of "
                             f"pretrain_corpus (got corpus={corpus!r}, run={crun!r})")


check_pretrain_sources()
if "corpus" in config["datasets"]:
    raise ValueError("datasets: the name 'corpus' is taken by results/corpus/ (pretrain_corpus); rename it")


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


# --- predict: new tables through a fine-tuned model ---


def predict_entry(wc):
    """The `predict:` entry of {name}; its dataset must be the path's {dataset}."""
    entry = PREDICT[wc.name]
    if entry["dataset"] != wc.dataset:
        raise ValueError(f"predict/{wc.name} belongs to dataset {entry['dataset']}, not {wc.dataset}")
    return entry


def predict_model_dir(wc):
    entry = predict_entry(wc)
    return out(wc.dataset, f"models/{entry['run']}/finetune/{entry['target']}")


def predict_inputs(wc):
    entry = predict_entry(wc)
    files = {
        name: f"{predict_model_dir(wc)}/{name}"
        for name in ("model.safetensors", "model.json", "train_features.parquet")
    }
    files["table"] = entry["table"]
    if entry.get("sequences"):
        files["sequences"] = entry["sequences"]
    return files


def predict_sequences_arg(wc):
    sequences = predict_entry(wc).get("sequences")
    return f"--sequences {shlex.quote(sequences)}" if sequences else ""
