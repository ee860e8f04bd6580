"""Stage settings as the rules pass them: canonical JSON, inline when short, else a file.

A stage's nested settings reach it through ``params:`` as ``--settings``, so Snakemake reruns the stage
exactly when one of its values changes and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

SETTINGS_INLINE_MAX = 100  # characters of JSON shown inline on the shell line; longer goes to a file


def to_json(obj: Any) -> str:
    """Settings as canonical JSON for `params:`; pass to the shell as `{params.name:q}`.

    Sorted keys make the string stable, so Snakemake reruns a stage only when a value changes.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def settings_arg(config: dict, obj: Any) -> str:
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
    path = f"{config['results']}/.settings/{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(f"{text}\n")
        os.replace(tmp, path)
    return path


def split_settings(config: dict) -> dict:
    """The split stage's section: `split:` without pretrain_val_fraction (rule pretrain_split's)."""
    return {k: v for k, v in config["split"].items() if k != "pretrain_val_fraction"}


def baseline_settings(config: dict) -> dict:
    """The `evaluate.baselines` section for the baselines stage, without n_jobs (it changes no result
    and reaches the stage as threads)."""
    return {k: v for k, v in config["evaluate"]["baselines"].items() if k != "n_jobs"}


def aam_run_settings(config: dict, run: str, *sections: str) -> dict:
    """The sections of an AAM run that a stage reads (data, model and pretrain or finetune)."""
    return {section: config["aam"]["runs"][run][section] for section in sections}


def classes_arg(target: dict) -> str:
    """The finetune stage's --classes: a classification target's fixed class order as JSON, else ''."""
    return to_json(target["classes"]) if target.get("classes") else ""
