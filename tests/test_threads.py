"""The thread policy (aam.threads): a process never runs more threads than the cores it was given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aam import threads


@pytest.fixture
def cores(monkeypatch):
    """Pretend this process may run on `n` cores, outside SLURM and without a cgroup quota."""
    for key in ("SLURM_CPUS_PER_TASK", "SLURM_STEP_ID", "SLURM_STEPID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)

    def given(n):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    return given


def test_threads_never_exceed_the_cores_given(cores):
    cores(2)
    assert threads.thread_count(None) == 2  # no request: every core given
    assert threads.thread_count(1) == 1
    assert threads.thread_count(8) == 2  # a rule asking for 8 threads on a 2-core share gets 2
    cores(8)
    assert threads.thread_count(None, processes_per_node=4) == 2  # Lightning's launcher: 4 share them
    assert threads.thread_count(4, processes_per_node=4) == 1  # the job's 4 threads, shared
    assert threads.thread_count(16, processes_per_node=4) == 2
    cores(1)
    assert threads.thread_count(None, processes_per_node=4) == 1  # at least one


def test_a_slurm_step_uses_its_cpus_per_task_and_a_cgroup_quota_caps(cores, monkeypatch):
    cores(16)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert threads.thread_count(None, processes_per_node=2) == 4  # each task has its own CPUs
    assert threads.thread_count(2, processes_per_node=2) == 4
    monkeypatch.setenv("SLURM_STEP_ID", str(0xFFFFFFFB))  # the batch script: not an srun step
    assert threads.thread_count(None, processes_per_node=2) == 8
    monkeypatch.delenv("SLURM_STEP_ID")
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 3.5)  # a container's quota
    assert threads.thread_count(None) == 3


def test_use_threads_sets_torch_blas_and_child_process_threads():
    """In a fresh process (inter-op threads can be set once per process): every pool obeys."""
    code = """
import json, os, numpy, torch, threadpoolctl
from aam.threads import use_threads
n = use_threads(1)
pools = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
print(json.dumps({"n": n, "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                  "pools": pools, "omp": os.environ["OMP_NUM_THREADS"]}))
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["n"] == got["torch"] == got["interop"] == 1 and got["omp"] == "1"
    assert got["pools"] and set(got["pools"]) == {1}  # NumPy's BLAS and torch's OpenMP included


def test_openmp_waits_sleep_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    threads.sleeping_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    threads.sleeping_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
