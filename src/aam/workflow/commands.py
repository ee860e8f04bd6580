"""Pieces of the rules' shell commands: the log redirection and the optional options."""

from __future__ import annotations

import shlex

from aam.workflow import sources
from aam.workflow.targets import out, predict_entry


def logged(command: str) -> str:
    """A rule's shell command with its output sent to the rule's log.

    On failure the log's last line (the stage's one-line error, or a traceback's last line) is printed
    to Snakemake's own output as well, so the user sees what went wrong without opening the log; the
    command's exit status is kept. Every rule's `shell:` goes through this.
    """
    return f"{command} > {{log:q}} 2>&1" " || {{ status=$?; tail -n 1 {log:q} >&2; exit $status; }}"


def fold_arg(fold: str | None) -> str:
    """The evaluate stage's --fold option for a cross-validation job, else empty."""
    return f"--fold {fold}" if fold else ""


# The finetune member that serves each baseline inside the model (aam.training.linear_member,
# aam.training.forest_member).
MEMBER_OF_BASELINE = {"linear_clr": "linear_member", "random_forest": "forest_member"}


def served_baselines(config: dict) -> set[str]:
    """The baselines some AAM run already serves inside its model (its finetune member is set)."""
    runs = config.get("aam", {}).get("runs", {})
    return {baseline for baseline, member in MEMBER_OF_BASELINE.items()
            if any(run.get("finetune", {}).get(member) is not None for run in runs.values())}


def combine_arg(config: dict) -> str:
    """The evaluate stage's --combine option: the combinations of evaluate.combine, else empty.

    null: the forest and the linear model, each alone and the two together, those that are fitted
    and that no AAM run serves as a member already. A model that holds a baseline inside it,
    averaged with that baseline again, would count it twice and be scored as something it is not
    (the defaults serve the linear model, so they combine with the forest alone)."""
    names = config["evaluate"]["combine"]
    if names is None:
        fitted = config["evaluate"]["baselines"]["models"]
        served = served_baselines(config)
        names = [b for b in ("random_forest", "linear_clr") if b in fitted and b not in served]
        if len(names) == 2:
            names.append("+".join(names))
    return f"--combine {' '.join(names)}" if names else ""


def average_arg(config: dict) -> str:
    """The cv-summary stage's --average option: each group of evaluate.average_runs as run,run,...;
    empty without any."""
    groups = config["evaluate"]["average_runs"]
    return f"--average {' '.join(','.join(group) for group in groups)}" if groups else ""


def init_dir_arg(config: dict, run: str) -> str:
    """The pretrain stage's --init-dir option (continue_on_study), else empty."""
    if not sources.continues_on_study(config, run):
        return ""
    return f"--init-dir {shlex.quote(str(sources.source_encoder_dir(config, run)))}"


def pretrain_dir_arg(config: dict, dataset: str, run: str) -> str:
    """The finetune and evaluate stages' --pretrain-dir option, if the run starts from an encoder."""
    folder = sources.pretrained_dir(config, dataset, run)
    return "" if folder is None else f"--pretrain-dir {shlex.quote(folder)}"


def predict_sequences_arg(config: dict, name: str, dataset: str) -> str:
    """The predict stage's --sequences option, where the `predict:` entry names sequences."""
    sequences = predict_entry(config, name, dataset).get("sequences")
    return f"--sequences {shlex.quote(sequences)}" if sequences else ""


def unifrac_parts_arg(config: dict, dataset: str) -> str:
    """rule unifrac's --parts-dir/--parts arguments when it merges row-block jobs (unifrac.parts > 1)."""
    parts = int(config["unifrac"]["parts"])
    if parts <= 1:
        return ""
    return f"--parts-dir {shlex.quote(out(config, dataset, 'unifrac_parts'))} --parts {parts}"
