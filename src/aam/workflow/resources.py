"""Training jobs' layout, threads and resources, locally and under SLURM.

A run's trainer settings say how many processes train it: `devices` per node times `num_nodes`
(data-parallel when more than one). A training rule's resources say so to the scheduler:

- locally, `gpu`: the GPUs the job occupies on this machine (the default profile allows one at a
  time; `--resources gpu=N` for N GPUs). A machine without a GPU has none to share: training jobs
  then ask for 0 and run side by side on the cores, `threads` each (the `training.threads` config
  key, or the run's `trainer.num_threads`; Snakemake caps them at `--cores`);
- under SLURM (snakemake-executor-plugin-slurm), `nodes`, one task per process (`tasks_per_node`,
  or `tasks` with one process per node) and `gres: gpu:<devices>`: GPUs per node, so that no node
  gets fewer than its processes need (`--gpus`, which the plugin makes of `gpu`, is the job's
  total, and the SLURM profile sets `gpu: 0` for training rules). `mpi` is always present, so that
  the plugin's job step does not wrap Snakemake in a one-task `srun`: the training stage starts its
  own job step (aam.slurm), and the plugin accepts the task layout only for `mpi` jobs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESOURCE_KEYS = ("gpu", "gres", "nodes", "tasks", "tasks_per_node", "tasks_per_gpu", "mpi")


def training_layout(trainer: dict) -> tuple[int, int]:
    """(nodes, processes per node) of a trainer section; data-parallel when their product is > 1.
    `devices: auto` counts as one process per node here (under SLURM, give an integer)."""
    devices = trainer.get("devices", "auto")
    return int(trainer.get("num_nodes", 1)), devices if isinstance(devices, int) else 1


def local_gpus() -> int:
    """NVIDIA GPUs this machine offers to its jobs: those CUDA_VISIBLE_DEVICES lists when set, else
    those the driver lists (no torch import: Snakefiles parse fast)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [v for v in visible.split(",") if v.strip()]
        return 0 if not entries or entries[0].strip() in ("-1", "NoDevFiles") else len(entries)
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return sum(1 for _ in driver.iterdir())
    if shutil.which("nvidia-smi"):
        try:
            listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return 0
        if listed.returncode:
            return 0
        return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
    return 0


def gpus_here(config: dict) -> int:
    """GPUs of this machine for local runs: the config's `training.gpus`, or counted (auto)."""
    gpus = config.get("training", {}).get("gpus", "auto")
    return local_gpus() if gpus == "auto" else int(gpus)


def inference_gpu(config: dict) -> int:
    """The `gpu` resource of a job that runs a trained model (aam predict uses a GPU when there is
    one): 1 where this machine has GPUs, else 0, so that on a machine without one such jobs do not
    queue for a resource nothing uses (and under SLURM, where the plugin turns `gpu` into
    `--gpus`, they do not ask a CPU partition for a GPU)."""
    return int(gpus_here(config) > 0)


def training_resources(trainer: dict, gpus_available: int) -> dict[str, Any]:
    """Resources of a training job (see the module docstring); `gpus_available`: GPUs of the machine
    that schedules local jobs. Keys the plugin must not see are 0 or "", which it ignores."""
    nodes, per_node = training_layout(trainer)
    on_gpu = trainer.get("accelerator", "auto") != "cpu"
    parallel = nodes * per_node > 1
    return {
        "gpu": per_node if on_gpu and gpus_available else 0,
        "gres": f"gpu:{per_node}" if on_gpu else "",
        "nodes": nodes,
        # the plugin takes --ntasks-per-node only above 1, and --ntasks only above 1
        "tasks": nodes if parallel and per_node == 1 else 0,
        "tasks_per_node": per_node if parallel and per_node > 1 else 0,
        # 0, not absent: the plugin would take `tasks` as tasks per GPU (--ntasks-per-gpu)
        "tasks_per_gpu": 0,
        "mpi": "srun" if parallel else 0,
    }


def training_threads(config: dict, trainer: dict) -> int:
    """A training job's threads (all its processes on one node): the run's `trainer.num_threads`,
    else the config's `training.threads`."""
    return int(trainer.get("num_threads") or config.get("training", {}).get("threads", 2))


def aam_trainer(config: dict, run: str, stage: str) -> dict:
    """The trainer settings of an AAM run's stage (pretrain or finetune)."""
    return config["aam"]["runs"][run][stage].get("trainer", {})


def corpus_trainer(config: dict, corpus: str, run: str) -> dict:
    """The trainer settings of a corpus run."""
    return config["pretrain_corpus"][corpus]["runs"][run]["pretrain"].get("trainer", {})


def seq_trainer(config: dict, run: str) -> dict:
    """The trainer settings of a sequence model run."""
    return config["seq_models"]["runs"][run].get("trainer", {})


def resource_params(config: dict, trainer_of: Callable[[Any], dict]) -> dict[str, Callable[[Any], Any]]:
    """A training rule's resources (training_resources), each a function of the wildcards;
    `trainer_of(wildcards)` gives the run's trainer settings."""
    gpus = gpus_here(config)
    return {
        key: (lambda wildcards, key=key: training_resources(trainer_of(wildcards), gpus)[key])
        for key in RESOURCE_KEYS
    }


def threads_param(config: dict, trainer_of: Callable[[Any], dict]) -> Callable[[Any], int]:
    """A training rule's threads, a function of the wildcards."""
    return lambda wildcards: training_threads(config, trainer_of(wildcards))
