# Helpers of the DNA sequence branch (workflow/rules/sequences.smk): run selection, inputs, settings.

import re
import shlex

SEQ_SOURCE_KEYS = ("fasta", "text", "labels")


def _runs_of_kind(kind):
    return [run for run, cfg in SEQ_RUNS.items() if cfg.get("kind", "contrastive") == kind]


def _run_regex(runs):
    return "|".join(re.escape(r) for r in runs) if runs else "(?!x)x"


def seq_runs_for(name):
    """The runs that apply to one collection: VQ runs always, contrastive runs on FASTA input."""
    has_fasta = bool(SEQUENCE_SETS[name].get("fasta"))
    return [
        run
        for run, cfg in SEQ_RUNS.items()
        if cfg.get("kind", "contrastive") == "vq" or has_fasta
    ]


def sequence_targets(name):
    """Final outputs of one DNA sequence collection (used by `rule all`)."""
    return [seq_out(name, f"eval/{run}/metrics.json") for run in seq_runs_for(name)]


def seq_prepare_inputs(wc):
    entry = SEQUENCE_SETS[wc.name]
    return {key: entry[key] for key in SEQ_SOURCE_KEYS if entry.get(key)}


def seq_prepare_sources(wc):
    entry = SEQUENCE_SETS[wc.name]
    return " ".join(
        f"--{key} {shlex.quote(str(entry[key]))}" for key in SEQ_SOURCE_KEYS if entry.get(key)
    )


def seq_eval_settings(wc):
    entry = SEQUENCE_SETS[wc.name]
    return settings_arg(
        {
            "ranks": entry.get("ranks", ["family", "genus"]),
            "color_rank": entry.get("color_rank", "phylum"),
            "knn_k": SEQ_RUNS[wc.run].get("knn_k", 1),
        }
    )


def seq_model_files(wc):
    return {
        f: seq_out(wc.name, f"models/{wc.run}/{f}")
        for f in ("model.safetensors", "model.json", "tokenizer.json", "history.csv")
    }
