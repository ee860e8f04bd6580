"""Where an AAM run's encoder comes from, and what a pretraining corpus's runs train on.

A run's `pretrain:` section says: from scratch (`enabled: false`, or neither `enabled` nor `from`:
the default), from its own dataset (`enabled: true`, `from: study`), from a corpus run of the config
(`from: corpus`) or from an encoder shipped in the package (`from: bundled`); `continue_on_study`
pretrains a corpus or bundled encoder further on the dataset first. The config checks of these
choices are in :func:`aam.config.check_config`.
"""

from __future__ import annotations

from pathlib import Path

from aam import pretrained
from aam.errors import InputError
from aam.workflow.targets import corpus_out, out

ENCODER_FILES = ("model.safetensors", "model.json")


def pretrain_enabled(config: dict, run: str) -> bool:
    """Whether the AAM run starts from a pretrained encoder (else it fine-tunes from scratch)."""
    return run_pretrains(config["aam"]["runs"][run]["pretrain"])


def run_pretrains(pre: dict) -> bool:
    """A run's `pretrain:` section asks for a pretrained encoder: `enabled`, or when absent, whether
    `from` names one. Scratch is the default because it is the configuration measured across the
    benchmark's studies (docs/benchmark.md, Defaults); study pretraining moved nothing there."""
    return bool(pre.get("enabled", "from" in pre))


def pretrain_source(config: dict, run: str) -> str:
    """Where a run's encoder comes from: study (pretrained on the dataset), corpus or bundled."""
    return config["aam"]["runs"][run]["pretrain"].get("from", "study")


def continues_on_study(config: dict, run: str) -> bool:
    """Whether a run pretrains its corpus or bundled encoder further on the dataset itself."""
    pre = config["aam"]["runs"][run]["pretrain"]
    return pretrain_source(config, run) != "study" and bool(pre.get("continue_on_study"))


def source_encoder_dir(config: dict, run: str) -> str | None:
    """The folder of a run's corpus or bundled encoder (None for from: study)."""
    pre = config["aam"]["runs"][run]["pretrain"]
    source = pretrain_source(config, run)
    if source == "corpus":
        return corpus_out(config, pre["corpus"], pre["run"])
    if source == "bundled":
        return str(pretrained.bundled_dir(pre.get("bundled")))
    return None


def pretrained_dir(config: dict, dataset: str, run: str) -> str | None:
    """The folder of the encoder a finetune job starts from (None: from scratch): the dataset's own
    pretraining (from: study, or a corpus/bundled encoder continued on the study), else the corpus
    or bundled encoder itself."""
    if not pretrain_enabled(config, run):
        return None
    if pretrain_source(config, run) == "study" or continues_on_study(config, run):
        return out(config, dataset, f"models/{run}/pretrain")
    return source_encoder_dir(config, run)


def encoder_files(folder: str | None) -> list[str]:
    """The files of an encoder folder that a job reads (none for no folder)."""
    return [] if folder is None else [f"{folder}/{name}" for name in ENCODER_FILES]


def init_inputs(config: dict, run: str) -> list[str]:
    """The encoder files a pretrain job starts from (continue_on_study), else none."""
    return encoder_files(source_encoder_dir(config, run)) if continues_on_study(config, run) else []


def pretrained_inputs(config: dict, dataset: str, run: str) -> list[str]:
    """The pretrained encoder files a finetune job reads, if its run starts from one."""
    return encoder_files(pretrained_dir(config, dataset, run))


def pretrain_history_inputs(config: dict, dataset: str, run: str) -> list[str]:
    """The pretraining's metrics.csv (learning curves in the evaluation), where the run has one (a
    bundled encoder may ship without)."""
    folder = pretrained_dir(config, dataset, run)
    if folder is None:
        return []
    bundled_itself = pretrain_source(config, run) == "bundled" and not continues_on_study(config, run)
    if bundled_itself and not Path(folder, "metrics.csv").exists():
        return []
    return [f"{folder}/metrics.csv"]


# --- pretraining across studies (pretrain_corpus) ---


def corpus_study(config: dict, corpus: str, study: str) -> dict:
    """A study entry of a corpus, the corpus's defaults (sequences, tree, depth) filled in."""
    entry = config["pretrain_corpus"][corpus]
    resolved = dict(entry["studies"][study])
    for key in ("sequences", "tree", "depth"):
        if resolved.get(key) is None:
            resolved[key] = entry[key]
    if resolved["tree"] is None:
        raise InputError(f"pretrain_corpus/{corpus}: study {study} has no tree, and the corpus none")
    return resolved


def corpus_study_inputs(config: dict, corpus: str, study: str) -> dict[str, str]:
    """The files the corpus_ingest job of one study reads."""
    resolved = corpus_study(config, corpus, study)
    inputs = {key: resolved[key] for key in ("table", "tree", "metadata")}
    if resolved["sequences"]:
        inputs["sequences"] = resolved["sequences"]
    return inputs


def corpus_ingest_settings(config: dict, corpus: str) -> dict:
    """The ingest stage's settings for a corpus's studies."""
    entry = config["pretrain_corpus"][corpus]
    return {key: entry[key] for key in ("max_missing_tree_fraction", "max_missing_sequence_fraction")}


def corpus_tokenize_settings(config: dict, corpus: str) -> dict:
    """The tokenize stage's settings for a corpus's studies."""
    return {"max_bp": config["pretrain_corpus"][corpus]["max_bp"]}


def corpus_run_studies(config: dict, corpus: str, run: str) -> list[str]:
    """The studies a corpus run trains on (the corpus's, less the run's `exclude`)."""
    entry = config["pretrain_corpus"][corpus]
    exclude = entry["runs"][run]["exclude"]
    unknown = sorted(set(exclude) - set(entry["studies"]))
    if unknown:
        raise InputError(f"pretrain_corpus/{corpus}/runs/{run}/exclude: no studies {unknown}")
    kept = [s for s in entry["studies"] if s not in exclude]
    if not kept:
        raise InputError(f"pretrain_corpus/{corpus}/runs/{run}: exclude leaves no study")
    return kept


def corpus_pretrain_inputs(config: dict, corpus: str, run: str) -> list[str]:
    """The token caches of every study a corpus run trains on."""
    return [
        corpus_out(config, corpus, f"studies/{study}/tokens/{name}.parquet")
        for study in corpus_run_studies(config, corpus, run)
        for name in ("features", "samples")
    ]


def corpus_studies(config: dict, corpus: str, run: str) -> list[dict]:
    """The corpus-pretrain stage's --studies: name, token caches, tree and depth of each study."""
    entries = []
    for name in corpus_run_studies(config, corpus, run):
        resolved = corpus_study(config, corpus, name)
        entries.append({"name": name, "tokens_dir": corpus_out(config, corpus, f"studies/{name}/tokens"),
                        "tree": resolved["tree"], "depth": resolved["depth"]})
    return entries


def corpus_trees(config: dict, corpus: str, run: str) -> list[str]:
    """The trees of a corpus run's studies (each once)."""
    return sorted({study["tree"] for study in corpus_studies(config, corpus, run)})


def corpus_run_settings(config: dict, corpus: str, run: str) -> dict:
    """The data, model and pretrain sections of a corpus run."""
    entry = config["pretrain_corpus"][corpus]["runs"][run]
    return {key: entry[key] for key in ("data", "model", "pretrain")}
