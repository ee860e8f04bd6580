"""SLURM: the sbatch lines of the training rules, built by the installed executor plugin's own code
from the SLURM profile and the rules' resources, for every layout of 1-8 GPUs per node on 1-4
nodes; the profile covers every training rule; a training stage in a SLURM job starts itself as a
job step with srun (a stand-in srun records how), and never locally."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string
from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

from aam import slurm
from aam.workflow.resources import training_resources

REPO = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
TRAINING_RULES = {"pretrain", "corpus_pretrain", "finetune", "finetune_cv", "seq_train",
                  "seq_train_contrastive"}


def training_rules() -> set[str]:
    """Rules whose resources are training resources, and the rules made from them (use rule)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    found = set()
    for block in re.split(r"\n(?=rule |use rule )", text):
        name = re.match(r"rule (\w+):", block)
        if name and "training_resource_params" in block:
            found.add(name.group(1))
    for base, derived in re.findall(r"use rule (\w+) as (\w+)", text):
        if base in found:
            found.add(derived)
    return found


def test_the_slurm_profile_gives_every_training_rule_a_gpu_partition_and_the_usr1_warning():
    rules = training_rules()
    assert rules == TRAINING_RULES
    for rule in rules:
        settings = PROFILE["set-resources"][rule]
        assert settings["slurm_partition"] == "gpu" and settings["runtime"] >= 60, rule
        assert re.search(r"--signal=USR1@\d+", settings["slurm_extra"]), rule
        assert settings["gpu"] == 0, rule  # GPUs come per node (gres), never as a job total
        assert PROFILE["set-threads"][rule] == settings["cpus_per_task"], rule


class Resources(dict):
    """A job's resources as the plugin reads them (``.get`` and attributes)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def sbatch_line(rule: str, trainer: dict) -> str:
    """The sbatch call the plugin builds for a job of `rule`: the profile's default resources, the
    rule's own (on a login node that has GPUs itself, the worst case), the profile's set-resources."""
    rule_resources = training_resources(trainer, gpus_available=4)
    resources = Resources({**PROFILE["default-resources"], **rule_resources,
                           **PROFILE["set-resources"][rule]})
    job = SimpleNamespace(resources=resources, threads=PROFILE["set-threads"][rule], name=rule)
    validate_slurm_extra(job)
    params = {"run_uuid": "uuid", "slurm_logfile": Path("/logs/%j.log"), "comment_str": f"rule_{rule}",
              "account": f"-A {resources['slurm_account']}",
              "partition": f"-p {resources['slurm_partition']}",
              "workdir": "/work"}
    settings = SimpleNamespace(requeue=PROFILE["slurm-requeue"], no_requeue=False, qos=None, reservation=None)
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def options(line: str) -> dict[str, str]:
    out = {}
    for word in shlex.split(line)[1:]:
        if word.startswith("--"):
            key, _, value = word[2:].partition("=")
            out[key] = value
    return out


@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
@pytest.mark.parametrize("per_node", range(1, 9))
def test_every_layout_gives_an_sbatch_line_the_plugin_accepts(nodes, per_node):
    for rule in sorted(TRAINING_RULES):
        line = sbatch_line(rule, {"devices": per_node, "num_nodes": nodes})
        opts = options(line)
        assert opts["nodes"] == str(nodes)
        assert opts["gres"] == f"gpu:{per_node}"  # GPUs per node
        assert "gpus" not in opts and "ntasks-per-gpu" not in opts
        tasks = (int(opts["ntasks-per-node"]) * nodes if "ntasks-per-node" in opts
                 else int(opts.get("ntasks", 1)))
        assert tasks == nodes * per_node  # one task per training process
        assert opts["cpus-per-task"] == "8" and opts["signal"] == "USR1@300" and "requeue" in opts
        # the training stage's own step over that allocation: the same layout
        step = slurm.step_command(nodes, per_node, ["aam", "pretrain"], env={"SLURM_CPUS_PER_TASK": "8"})
        assert step[:5] == ["srun", f"--nodes={nodes}", f"--ntasks-per-node={per_node}",
                            "--cpus-per-task=8", "--kill-on-bad-exit=1"]


def test_a_cpu_run_under_slurm_asks_for_no_gpu():
    opts = options(sbatch_line("pretrain", {"accelerator": "cpu", "devices": 2}))
    assert "gres" not in opts and "gpus" not in opts and opts["ntasks-per-node"] == "2"
    opts = options(sbatch_line("finetune", {"accelerator": "cpu"}))
    assert "gres" not in opts and opts["ntasks"] == "1"


def test_job_steps_are_told_from_the_batch_script():
    assert slurm.in_job_step({"SLURM_STEP_ID": "0"})
    assert not slurm.in_job_step({"SLURM_STEP_ID": str(0xFFFFFFFB)})  # SLURM's batch step
    assert not slurm.in_job_step({})
    assert slurm.cpus_per_task({"SLURM_CPUS_PER_TASK": "6"}) == 6 and slurm.cpus_per_task({}) is None


FAKE_SRUN = """#!/bin/sh
# Records its arguments, then runs the command after the options as a job step would.
printf '%s\\n' "$*" >> "$SRUN_RECORD"
while [ "${1#--}" != "$1" ]; do shift; done
SLURM_STEP_ID=0 exec "$@"
"""


@pytest.mark.parametrize("stage,settings", [
    ("pretrain", {"pretrain": {"trainer": {"devices": 2, "num_nodes": 3}}}),
    ("seq-train", {"kind": "vq", "trainer": {"devices": 2, "num_nodes": 3}}),
])
def test_a_training_stage_in_a_slurm_job_runs_as_a_job_step_and_never_locally(tmp_path, stage,
                                                                              settings):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(stat.S_IRWXU)
    record = tmp_path / "srun.txt"
    missing = tmp_path / "missing"
    args = {"pretrain": ["--tokens-dir", str(missing), "--splits", str(missing / "s.tsv"),
                         "--tree", str(missing / "t.nwk")],
            "seq-train": ["--prepared", str(missing / "prepared.parquet")]}[stage]
    command = [sys.executable, "-m", "aam.cli", stage, *args, "--settings", json.dumps(settings),
               "--out-dir", str(tmp_path / "out")]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "AAM_SLURM"))}
    base.update(SRUN_RECORD=str(record), PATH=f"{bin_dir}{os.pathsep}{base['PATH']}",
                PYTHONPATH=os.pathsep.join([str(REPO / "src"), base.get("PYTHONPATH", "")]))

    local = subprocess.run(command, env=base, capture_output=True, text=True, timeout=300)
    assert local.returncode and "missing" in local.stderr  # the missing input
    assert not record.exists()  # and no srun

    in_job = subprocess.run(command, env={**base, "SLURM_JOB_ID": "77", "SLURM_CPUS_PER_TASK": "6"},
                            capture_output=True, text=True, timeout=300)
    # the step got as far as the same missing input
    assert in_job.returncode == local.returncode and "missing" in in_job.stderr, in_job.stderr[-2000:]
    calls = record.read_text().splitlines()
    assert len(calls) == 1  # the step did not start another
    srun = ["--nodes=3", "--ntasks-per-node=2", "--cpus-per-task=6", "--kill-on-bad-exit=1"]
    assert calls[0] == " ".join([*srun, sys.executable, *command[1:]])
