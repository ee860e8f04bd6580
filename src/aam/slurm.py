"""Training under SLURM: where a process runs (from SLURM's environment), and training as a job step.

A training rule's command is the plain stage (``aam pretrain ...``), locally and on a cluster.
Under the SLURM executor, Snakemake runs that command in the job's batch script; the stage then
replaces itself with ``srun`` over the job's allocation (:func:`run_as_job_step`): one task per
training process (``--nodes``, ``--ntasks-per-node`` from the run's trainer settings, as the rule
asked SLURM for them: :mod:`aam.workflow.resources`), whose ranks Lightning reads from SLURM. Being
a job step also brings training the job's ``--signal=USR1@...`` warning (SLURM signals job steps,
not the batch script, which runs Snakemake): training then checkpoints, requeues the job and exits
(:class:`aam.training.engine._Preemption`). Local runs never see ``srun``.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Step IDs from here up are SLURM's own steps (batch script, extern, interactive, pending), not
# steps that srun started.
_SPECIAL_STEPS = 0xFFFFFFF0
_RELAUNCHED = "AAM_SLURM_STEP"  # set in the step's processes: never srun twice


def job_id(env: Mapping[str, str] = os.environ) -> str | None:
    return env.get("SLURM_JOB_ID") or None


def in_job_step(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a task of a job step that srun started."""
    step = env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID") or ""
    return step.isdigit() and int(step) < _SPECIAL_STEPS


def cpus_per_task(env: Mapping[str, str] = os.environ) -> int | None:
    """CPUs of each task of this job (``--cpus-per-task``), or None."""
    value = env.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def step_command(nodes: int, per_node: int, command: list[str],
                 env: Mapping[str, str] = os.environ) -> list[str]:
    """``srun`` with one task per training process over the job's nodes, then ``command``."""
    cpus = cpus_per_task(env)
    return ["srun", f"--nodes={nodes}", f"--ntasks-per-node={per_node}",
            *([f"--cpus-per-task={cpus}"] if cpus else []),  # since Slurm 22.05 srun does not inherit it
            "--kill-on-bad-exit=1", *command]


def run_as_job_step(nodes: int, per_node: int) -> None:
    """In a SLURM job but outside a job step, replace this process by ``srun`` running the same
    command as a job step (this call then never returns). Elsewhere (locally, or already a step),
    do nothing."""
    if job_id() is None or in_job_step() or os.environ.get(_RELAUNCHED):
        return
    if shutil.which("srun") is None:
        log.warning("SLURM job %s but no srun on PATH: training runs in the batch script, where the "
                    "time-limit signal does not reach it", job_id())
        return
    # The same interpreter and arguments (the `aam` script or `python -m aam.cli`).
    command = step_command(nodes, per_node, [sys.executable, *sys.orig_argv[1:]])
    log.info("training as a SLURM job step: %s", shlex.join(command))
    os.environ[_RELAUNCHED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)
