"""Training jobs' layout, resources and launcher, locally and under SLURM.

A run's trainer settings say how many processes train it: `devices` per node times `num_nodes`
(data-parallel when more than one). A training rule asks for that many GPUs (`gpu`, the local
profile's limit; `--gpus` under SLURM) and one task per process, and under SLURM starts them with
its own `srun` so that Lightning reads the ranks from SLURM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RESOURCE_KEYS = ("gpu", "nodes", "tasks_per_node", "tasks_per_gpu", "mpi")


def training_layout(trainer: dict) -> tuple[int, int]:
    """(nodes, processes per node) of a trainer section; data-parallel when their product is > 1.
    `devices: auto` counts as one process per node here (under SLURM, give an integer)."""
    devices = trainer.get("devices", "auto")
    return int(trainer.get("num_nodes", 1)), devices if isinstance(devices, int) else 1


def training_resources(trainer: dict) -> dict[str, Any]:
    """Resources of a training job. `gpu`: GPUs in all (a local profile's limit; `--gpus` on SLURM);
    `nodes` and `tasks_per_node`: one task per process, which SLURM starts through the rule's own
    `srun` (resource `mpi` present, so the SLURM executor does not wrap the job in a one-task step;
    "srun" for several processes, 0 for one, which the executor requires)."""
    nodes, per_node = training_layout(trainer)
    parallel = nodes * per_node > 1
    return {
        "gpu": nodes * per_node,
        "nodes": nodes,
        "tasks_per_node": per_node,
        "tasks_per_gpu": 1,
        "mpi": "srun" if parallel else 0,
    }


def training_launcher(trainer: dict, cpus: int) -> str:
    """The prefix of a training command. Under SLURM (a job's SLURM_JOB_ID) training runs as a job
    step, `srun` with one task per process: Lightning reads the ranks from SLURM, and the step gets
    the profile's `--signal` (SIGUSR1 before the time limit: checkpoint and requeue). Run elsewhere,
    the command runs as it is and Lightning starts the processes of one node itself. `cpus`: per
    process (the job's cpus_per_task, else the rule's threads)."""
    nodes, per_node = training_layout(trainer)
    srun = f"srun --nodes={nodes} --ntasks-per-node={per_node} --cpus-per-task={cpus} --kill-on-bad-exit=1"
    return f'$([ -n "${{SLURM_JOB_ID:-}}" ] && echo "{srun}") '


def aam_trainer(config: dict, run: str, stage: str) -> dict:
    """The trainer settings of an AAM run's stage (pretrain or finetune)."""
    return config["aam"]["runs"][run][stage].get("trainer", {})


def corpus_trainer(config: dict, corpus: str, run: str) -> dict:
    """The trainer settings of a corpus run."""
    return config["pretrain_corpus"][corpus]["runs"][run]["pretrain"].get("trainer", {})


def seq_trainer(config: dict, run: str) -> dict:
    """The trainer settings of a sequence model run."""
    return config["seq_models"]["runs"][run].get("trainer", {})


def launch_param(trainer_of: Callable[[Any], dict]) -> Callable[..., str]:
    """A training rule's `launch` param; `trainer_of(wildcards)` gives the run's trainer settings.
    Snakemake passes the job's threads and resources by these parameters' names."""
    return lambda wildcards, threads, resources: training_launcher(
        trainer_of(wildcards), resources.get("cpus_per_task", threads)
    )


def resource_params(trainer_of: Callable[[Any], dict]) -> dict[str, Callable[[Any], Any]]:
    """A training rule's resources (training_resources), each a function of the wildcards."""
    return {
        key: (lambda wildcards, key=key: training_resources(trainer_of(wildcards))[key])
        for key in RESOURCE_KEYS
    }
