"""Config settings as the workflow passes them to the stages (dry runs with the shell commands)."""

from __future__ import annotations

import re

import yaml
from helpers.workflow import REPO, planned_rules, single_split, snakemake, write_config


def shell_commands(result) -> list[str]:
    """The `aam ...` command lines a dry run with -p prints."""
    planned_rules(result)  # asserts success
    text = result.stdout + result.stderr
    # the stage's command, after any launcher prefix (e.g. srun under SLURM)
    return re.findall(r"^(?:\s*|.*Shell command: .*?)\b(aam [a-z-]+ --.*)$", text, flags=re.MULTILINE)


def test_rarefy_depth_per_dataset_overrides_the_global_depth(tmp_path):
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]["ibd2538"]
    write_config(tmp_path, datasets={"deep": {**demo, "rarefy_depth": 1234}, "shallow": dict(demo)},
                 rarefy={"depth": 500})
    commands = [c for c in shell_commands(snakemake(tmp_path, "-n", "-p")) if c.startswith("aam rarefy")]
    depths = {re.search(r"results/(\w+)/ingest", c).group(1): re.search(r"--depth (\S+)", c).group(1)
              for c in commands}
    assert depths == {"deep": "1234", "shallow": "500"}


def test_target_classes_and_positive_class_reach_finetune_and_evaluate(tmp_path):
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]["ibd2538"]
    target = {"name": "ibd", "column": "ibd", "type": "classification",
              "classes": ["Crohns", "Control"], "positive_class": "Crohns"}
    write_config(tmp_path, datasets={"ibd2538": {**demo, "targets": [target]}})
    commands = shell_commands(snakemake(tmp_path, "-n", "-p"))
    finetune = [c for c in commands if c.startswith("aam finetune")]
    evaluate = [c for c in commands if c.startswith("aam evaluate")]
    assert finetune and all("""--classes '["Crohns","Control"]'""" in c for c in finetune)
    assert evaluate and all("--positive-class Crohns" in c for c in evaluate)
    # evaluate.combine's default (null): the demo's runs serve the linear model inside their models,
    # so they are combined with the forest alone
    assert all(re.search(r"--combine random_forest --run", c) for c in evaluate)


def test_targets_without_runs_warn(tmp_path):
    write_config(tmp_path, aam={"runs": {}}, evaluate=single_split())
    result = snakemake(tmp_path, "-n")
    rules = planned_rules(result)
    assert "no aam.runs and no evaluate.cv: no model is trained or evaluated" in result.stdout + result.stderr
    assert "evaluate" not in rules and "rarefy" in rules
    write_config(tmp_path)
    assert "no aam.runs" not in (lambda r: r.stdout + r.stderr)(snakemake(tmp_path, "-n"))
