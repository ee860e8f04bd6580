"""The DNA sequence branch: the rules' inputs, settings and options (which runs apply to a
collection, and its final targets: aam.workflow.targets).

A collection (`sequences:` entry) is FASTA or plain text, optionally labelled; a run (`seq_models.runs`
entry) is contrastive (needs FASTA) or VQ (any text).
"""

from __future__ import annotations

import re
import shlex

from aam.workflow.targets import seq_out, seq_run_kind

SEQ_SOURCE_KEYS = ("fasta", "text", "labels")
# keys that name input files (inputs of the rules, not settings) or that only the classify rule uses
SEQ_FILE_KEYS = SEQ_SOURCE_KEYS + ("test", "classify")
MODEL_FILES = ("model.safetensors", "model.json", "tokenizer.json", "history.csv")


def runs_of_kind(config: dict, kind: str) -> list[str]:
    """The sequence model runs of one kind."""
    return [run for run in config["seq_models"]["runs"] if seq_run_kind(config, run) == kind]


def run_regex(runs: list[str]) -> str:
    """A wildcard constraint matching exactly these run names (nothing when there are none)."""
    return "|".join(re.escape(r) for r in runs) if runs else "(?!x)x"


def seq_sources(config: dict, name: str) -> dict[str, str]:
    """{option: path} of a collection's input files (the external test set included)."""
    entry = config["sequences"][name]
    files = {key: entry[key] for key in SEQ_SOURCE_KEYS if entry.get(key)}
    test = entry.get("test") or {}
    files.update({f"test-{key}": test[key] for key in ("fasta", "labels") if test.get(key)})
    return files


def prepare_inputs(config: dict, name: str) -> dict[str, str]:
    """The seq_prepare rule's named inputs."""
    return {key.replace("-", "_"): path for key, path in seq_sources(config, name).items()}


def prepare_sources_arg(config: dict, name: str) -> str:
    """The seq-prepare stage's input options (--fasta, --labels, --test-fasta, ...)."""
    return " ".join(f"--{key} {shlex.quote(str(path))}" for key, path in seq_sources(config, name).items())


def prepare_settings(config: dict, name: str) -> dict:
    """The collection's settings for seq-prepare (its file keys are inputs, not settings)."""
    return {k: v for k, v in config["sequences"][name].items() if k not in SEQ_FILE_KEYS}


def train_settings(config: dict, run: str) -> dict:
    """The run's settings without the classifier's (changing those reruns only seq_classify)."""
    return {k: v for k, v in config["seq_models"]["runs"][run].items() if k != "classify"}


def trainer(config: dict, run: str) -> dict:
    """The trainer settings of a sequence model run."""
    return config["seq_models"]["runs"][run].get("trainer", {})


def classify_settings(config: dict, run: str) -> dict:
    """The run's `classify` settings (seq_classify)."""
    return config["seq_models"]["runs"][run].get("classify", {})


def classify_reads(config: dict, name: str) -> dict[str, str]:
    """The reads to classify: `sequences.<name>.classify`, or else the collection's test split."""
    reads = config["sequences"][name].get("classify")
    return {"reads": reads} if reads else {"prepared": seq_out(config, name, "prepared.parquet")}


def classify_source_arg(config: dict, name: str) -> str:
    """The classify stage's --reads or --prepared option."""
    reads = config["sequences"][name].get("classify")
    if reads:
        return f"--reads {shlex.quote(str(reads))}"
    return f"--prepared {shlex.quote(seq_out(config, name, 'prepared.parquet'))}"


def eval_settings(config: dict, name: str, run: str) -> dict:
    """The seq-evaluate stage's settings: the collection's ranks, the run's kNN and classifier."""
    entry, run_cfg = config["sequences"][name], config["seq_models"]["runs"][run]
    return {
        "ranks": entry.get("ranks", ["family", "genus"]),
        "color_rank": entry.get("color_rank", "phylum"),
        "knn_k": run_cfg.get("knn_k", 1),
        "classify": run_cfg.get("classify", {}),
    }


def model_files(config: dict, name: str, run: str) -> dict[str, str]:
    """The files of a trained sequence model that the embed, classify and evaluate rules read."""
    return {f: seq_out(config, name, f"models/{run}/{f}") for f in MODEL_FILES}


def reference_file(config: dict, name: str, run: str) -> str:
    """A contrastive run's labelled reference (training sequences, ranks, embeddings)."""
    return seq_out(config, name, f"models/{run}/reference.parquet")
