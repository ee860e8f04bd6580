"""Helpers of the rule files, as bindings of aam.workflow's functions to this run's `config` and to
the wildcards. All logic lives (and is tested) in the package aam.workflow: keep this file to bindings."""

from functools import partial

from snakemake.logging import logger

import time

from aam.workflow import commands, qiime2, resources, sequences, settings, sources, targets
from aam.workflow import warnings as stage_warnings

RESULTS = config["results"]
AAM_RUNS = config["aam"]["runs"]
SEQUENCE_SETS = config["sequences"]
SEQ_RUNS = config["seq_models"]["runs"]
CV = config["evaluate"].get("cv")  # absent: no cross-validation
CV_K = CV["folds"] if CV else 0  # folds per repeat

if warning := targets.runless_targets_warning(config):
    logger.warning(warning)

# --- paths (aam.workflow.targets) ---
out = partial(targets.out, config)
seq_out = partial(targets.seq_out, config)
corpus_out = partial(targets.corpus_out, config)
log_file = partial(targets.log_file, config)
benchmark_file = partial(targets.benchmark_file, config)
final_targets = partial(targets.final_targets, config)
unifrac_metrics = partial(targets.unifrac_metrics, config)
unifrac_datasets = partial(targets.unifrac_datasets, config)
cv_summary_targets = partial(targets.cv_summary_targets, config)

# --- settings (aam.workflow.settings) ---
to_json = settings.to_json
settings_arg = partial(settings.settings_arg, config)
logged = commands.logged


def aam_run_settings(run, *sections):
    return settings_arg(settings.aam_run_settings(config, run, *sections))


# --- functions of the rules' wildcards ---


def dataset_config(wc):
    return config["datasets"][wc.dataset]


def target_config(wc):
    return targets.target_config(config, wc.dataset, wc.target)


def unifrac_part_files(wc):
    return targets.unifrac_part_files(config, wc.dataset)


def unifrac_parts_arg(wc):
    return commands.unifrac_parts_arg(config, wc.dataset)


def rarefy_depth(wc):
    return targets.rarefy_depth(config, wc.dataset)


def stratify_arg(wc):
    return targets.dataset_stratify_column(config, wc.dataset) or ""


def scoped(wc, path):
    return targets.scoped(config, wc.dataset, getattr(wc, "fold", None), path)


def splits_file(wc):
    return targets.splits_file(config, wc.dataset, getattr(wc, "fold", None))


def combine_arg(wc):
    return commands.combine_arg(config)


def average_arg(wc):
    return commands.average_arg(config)


def fold_arg(wc):
    return commands.fold_arg(getattr(wc, "fold", None))


def init_inputs(wc):
    return sources.init_inputs(config, wc.run)


def init_dir_arg(wc):
    return commands.init_dir_arg(config, wc.run)


def pretrained_inputs(wc):
    return sources.pretrained_inputs(config, wc.dataset, wc.run)


def pretrain_history_inputs(wc):
    return sources.pretrain_history_inputs(config, wc.dataset, wc.run)


def pretrain_dir_arg(wc):
    return commands.pretrain_dir_arg(config, wc.dataset, wc.run)


def corpus_study_inputs(wc):
    return sources.corpus_study_inputs(config, wc.corpus, wc.study)


def corpus_pretrain_inputs(wc):
    return sources.corpus_pretrain_inputs(config, wc.corpus, wc.run)


def predict_inputs(wc):
    return targets.predict_inputs(config, wc.name, wc.dataset)


def seq_prepare_inputs(wc):
    return sequences.prepare_inputs(config, wc.name)


def seq_model_files(wc):
    return sequences.model_files(config, wc.name, wc.run)


def seq_classify_reads(wc):
    return sequences.classify_reads(config, wc.name)


# --- training jobs (aam.workflow.resources) ---
training_resource_params = partial(resources.resource_params, config)
training_threads = partial(resources.threads_param, config)
inference_gpu = resources.inference_gpu(config)


def aam_trainer_of(stage):
    return lambda wc: resources.aam_trainer(config, wc.run, stage)


def corpus_trainer(wc):
    return resources.corpus_trainer(config, wc.corpus, wc.run)


def seq_trainer(wc):
    return resources.seq_trainer(config, wc.run)


# --- QIIME 2 export (aam.workflow.qiime2) ---


def qza_export(kind, extra=""):
    return logged(qiime2.export_command(kind, extra))


def qza_prediction_files(wc):
    return qiime2.prediction_files(config, wc.dataset, wc.source)


def qza_embedding_files(wc):
    return qiime2.embedding_files(config, wc.dataset, wc.source)


def qza_prediction_type(wc):
    return qiime2.prediction_type(config, wc.dataset, wc.source)


# --- the end of a run: the stages' warnings of this run, from their logs (aam.workflow.warnings) ---
RUN_STARTED = time.time()


def print_stage_warnings():
    text = stage_warnings.report(log_file(""), RUN_STARTED)
    if text:
        print(text, file=sys.stderr)
