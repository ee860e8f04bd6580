"""How many CPU threads a process of ours uses: never more than the cores it was given.

Why a policy: torch's default is one intra-op thread per core of the *machine*, and NumPy's BLAS
(OpenBLAS, used by the data pipeline) and torch's inter-op pool each start their own threads too.
Two training jobs side by side on a 2-core machine (``snakemake --cores 2``) then run 4 or more
busy threads on 2 cores; threads that wait for each other at the end of each parallel region spin
while the thread they wait for is descheduled, and throughput collapses far below the fair share.

The policy (:func:`use_threads`):

- cores given = this process's CPU affinity (``taskset``, cpusets, SLURM's CPU binding), capped by
  a cgroup CPU quota (containers); the training processes of one node (data parallelism that
  Lightning's launcher starts) share them; a task of a SLURM job step has its ``--cpus-per-task``;
- threads per process = the job's request (Snakemake's ``{threads}``, the stages' ``--threads``:
  for the job on one node) divided among its processes, capped by the cores given; no request =
  all of them;
- torch intra-op threads = that number, inter-op threads = 1 (our models run no inter-op
  parallel work), BLAS/OpenMP pools of the libraries already loaded = that number
  (threadpoolctl), and ``OMP_NUM_THREADS`` for child processes;
- OpenMP threads that wait for the others at the end of a parallel region sleep instead of
  spinning (``OMP_WAIT_POLICY=PASSIVE``, set by the ``aam`` command before torch loads, unless the
  user set it): one training job with 2 threads on a loaded 2-core machine ran 7x faster so
  (12.4 vs 1.6 samples/s at load average 15; ``scripts/bench_contention.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from aam.slurm import cpus_per_task, in_job_step

log = logging.getLogger(__name__)


def sleeping_waits() -> None:
    """OpenMP threads wait passively (see the module docstring); call before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def cores_given(processes_per_node: int = 1) -> int:
    """CPU cores each of this node's training processes may use (see the module docstring)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, int(limit)))
    per_task = cpus_per_task()
    if per_task and in_job_step():
        return max(1, min(cores, per_task))  # a SLURM step: each task has its own CPUs
    return max(1, cores // max(1, processes_per_node))


def thread_count(requested: int | None, processes_per_node: int = 1) -> int:
    """Threads of each process: ``requested`` (the job's threads on this node, all its processes
    together: Snakemake's ``{threads}``) shared by the node's processes, capped by the cores each was
    given; None = all of them. In a SLURM job step each task uses its ``--cpus-per-task``."""
    cores = cores_given(processes_per_node)
    if not requested or (cpus_per_task() and in_job_step()):
        return cores
    return max(1, min(int(requested) // max(1, processes_per_node), cores))


def use_threads(requested: int | None, processes_per_node: int = 1) -> int:
    """Apply the thread policy to this process (see the module docstring); returns the count."""
    import torch

    n = thread_count(requested, processes_per_node)
    if requested and n < int(requested):
        log.info("%d threads requested, %d cores available to this process: using %d", requested, n, n)
    torch.set_num_threads(n)
    # Settable once per process, before any inter-op work: a later run in the same process keeps it.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings it
        pass
    os.environ["OMP_NUM_THREADS"] = str(n)
    return n
