# Helpers of the DNA sequence branch (workflow/rules/sequences.smk): run selection, inputs, settings.

import re
import shlex

SEQ_SOURCE_KEYS = ("fasta", "text", "labels")
# keys that name input files (inputs of the rules, not settings) or that only the classify rule uses
SEQ_FILE_KEYS = SEQ_SOURCE_KEYS + ("test", "classify")


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
    """Final outputs of one DNA sequence collection (used by `rule all`), every run's evaluation and,
    for labelled collections, every contrastive run's taxonomy of the reads to classify."""
    targets = [seq_out(name, f"eval/{run}/metrics.json") for run in seq_runs_for(name)]
    if SEQUENCE_SETS[name].get("labels"):
        targets += [
            seq_out(name, f"classify/{run}/taxonomy.tsv")
            for run in seq_runs_for(name)
            if SEQ_RUNS[run].get("kind", "contrastive") == "contrastive"
        ]
    return targets


def _seq_sources(entry):
    """{option: path} of a collection's input files (the external test set included)."""
    files = {key: entry[key] for key in SEQ_SOURCE_KEYS if entry.get(key)}
    test = entry.get("test") or {}
    files.update({f"test-{key}": test[key] for key in ("fasta", "labels") if test.get(key)})
    return files


def seq_prepare_inputs(wc):
    return {key.replace("-", "_"): path for key, path in _seq_sources(SEQUENCE_SETS[wc.name]).items()}


def seq_prepare_sources(wc):
    return " ".join(
        f"--{key} {shlex.quote(str(path))}" for key, path in _seq_sources(SEQUENCE_SETS[wc.name]).items()
    )


def seq_train_settings(wc):
    """The run's settings without the classifier's (changing those reruns only seq_classify)."""
    return settings_arg({k: v for k, v in SEQ_RUNS[wc.run].items() if k != "classify"})


def seq_classify_reads(wc):
    """The reads to classify: `sequences.<name>.classify`, or else the collection's test split."""
    reads = SEQUENCE_SETS[wc.name].get("classify")
    return {"reads": reads} if reads else {"prepared": seq_out(wc.name, "prepared.parquet")}


def seq_classify_source(wc):
    reads = SEQUENCE_SETS[wc.name].get("classify")
    if reads:
        return f"--reads {shlex.quote(str(reads))}"
    return f"--prepared {shlex.quote(seq_out(wc.name, 'prepared.parquet'))}"


def seq_eval_settings(wc):
    entry = SEQUENCE_SETS[wc.name]
    return settings_arg(
        {
            "ranks": entry.get("ranks", ["family", "genus"]),
            "color_rank": entry.get("color_rank", "phylum"),
            "knn_k": SEQ_RUNS[wc.run].get("knn_k", 1),
            "classify": SEQ_RUNS[wc.run].get("classify", {}),
        }
    )


def seq_model_files(wc):
    return {
        f: seq_out(wc.name, f"models/{wc.run}/{f}")
        for f in ("model.safetensors", "model.json", "tokenizer.json", "history.csv")
    }


def seq_reference_file(wc):
    return seq_out(wc.name, f"models/{wc.run}/reference.parquet")
