"""Preemption: SIGUSR1 / SIGTERM to a training process -> checkpoint at the next optimizer step,
exit 75 (no model written); the same run started again resumes mid-epoch and ends with the weights
and validation metrics of an uninterrupted run (with dropout on, so the random stream must continue
exactly too). With 2 processes (DDP, gloo), as srun signals every task of a job: both ranks save
together and exit 75, and the rerun, in which rank 0 alone decides whether to resume, ends with the
weights of an uninterrupted 2-process run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402
from helpers.aam_synthetic import write_study  # noqa: E402

from aam.errors import PREEMPTED_EXIT  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"
RUN = {"world": 1, "epochs": 3, "dropout": 0.1, "tasks": ["pretrain"]}


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    return env


def launch(args: dict, world: int = 2, **per_rank) -> list[subprocess.Popen]:
    """The worker as ``world`` ranks; ``per_rank``: {rank: extra args}."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [subprocess.Popen([sys.executable, str(WORKER),
                              json.dumps({**args, "world": world, "rank": r, "port": port,
                                          **per_rank.get(f"rank{r}", {})})],
                             env=worker_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for r in range(world)]


def finish(procs: list[subprocess.Popen], code: int = 0) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == code, out[-3000:]
        outs.append(out)
    return outs


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preempt")
    (tmp / "data").mkdir()
    write_study(tmp / "data")
    ddp_worker.run({**RUN, "data": str(tmp / "data"), "out": str(tmp / "uninterrupted")})
    return tmp


@pytest.mark.parametrize("signum,workers", [(signal.SIGUSR1, 0), (signal.SIGTERM, 2)])
def test_signal_checkpoints_and_the_rerun_resumes_to_identical_weights(study, signum, workers):
    """With loader workers too: their first iterator is made before Lightning sets the epoch."""
    out = study / signum.name
    args = {**RUN, "data": str(study / "data"), "out": str(out), "announce": True, "pause": 0.2,
            "workers": workers}
    proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(args)], env=worker_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines = []
    for line in proc.stdout:  # signal in the middle of the second epoch
        lines.append(line.strip())
        if line.strip() == "batch 1 2":
            proc.send_signal(signum)
            break
    rest, _ = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT, "\n".join(lines) + rest
    assert f"preempted: {signum.name} at epoch 1" in rest
    last = out / "pretrain" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert 3 <= ckpt["engine_mid_epoch_batches"] < 6 and ckpt["epoch"] == 1  # mid-epoch
    assert not (out / "pretrain" / "rank0.pt").exists()  # the run did not finish

    ddp_worker.run({**RUN, "data": str(study / "data"), "out": str(out), "workers": workers})  # requeued
    resumed = torch.load(out / "pretrain" / "rank0.pt", weights_only=False)
    full = torch.load(study / "uninterrupted" / "pretrain" / "rank0.pt", weights_only=False)
    assert resumed["resumed"] and not full["resumed"]
    assert resumed["global_step"] == full["global_step"] == 18
    for key, value in full["state"].items():
        assert torch.equal(resumed["state"][key], value), key
    # The resumed run trained on exactly the batches the interrupted one had not.
    done = {(e, n) for e, n, _, _ in resumed["seen"]}
    after = (1, ckpt["engine_mid_epoch_batches"] - 1)
    assert done == {(e, n) for e, n, _, _ in full["seen"] if (e, n) > after}
    for col in ("val/loss", "val/unifrac_r2"):
        assert resumed["history"][col] == full["history"][col], col
    # train/* epoch means of the interrupted epoch cover the batches after the resume only.
    assert resumed["history"]["train/loss"][::2] == full["history"]["train/loss"][::2]


def test_two_ranks_signalled_together_save_once_and_the_rerun_resumes_to_identical_weights(study, tmp_path):
    """An epoch of 7 batches (the last round padded), dropout on: every rank's random stream must
    continue exactly. In the rerun rank 1's own settings say "start afresh": rank 0 decides for
    every rank (a barrier before anyone resumes), so both resume."""
    data = tmp_path / "data7"
    data.mkdir()
    write_study(data, n_train=28, n_val=10)
    run = {**RUN, "data": str(data)}
    finish(launch({**run, "out": str(tmp_path / "uninterrupted")}))
    out = tmp_path / "preempted"
    procs = launch({**run, "out": str(out), "announce": True, "pause": 0.3})
    lines = []
    for line in procs[0].stdout:  # signal both ranks in the middle of the second epoch, as srun does
        lines.append(line.strip())
        if line.strip() == "batch 1 2":
            for p in procs:
                p.send_signal(signal.SIGUSR1)
            break
    outs = finish(procs, PREEMPTED_EXIT)
    assert all("preempted: SIGUSR1 at epoch 1" in text for text in outs), "\n".join(lines) + outs[0]
    ckpt = torch.load(out / "pretrain" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and 2 <= ckpt["engine_mid_epoch_batches"] < 4  # mid-epoch, per rank
    assert len(ckpt["engine_rng_ranks"]) == 2  # each rank's random stream
    assert not list((out / "pretrain").glob("rank*.pt"))

    finish(launch({**run, "out": str(out)}, rank1={"fresh_view": True}))  # the requeued job
    for rank in (0, 1):
        resumed = torch.load(out / "pretrain" / f"rank{rank}.pt", weights_only=False)
        full = torch.load(tmp_path / "uninterrupted" / "pretrain" / f"rank{rank}.pt", weights_only=False)
        assert resumed["resumed"] and not full["resumed"]
        assert resumed["global_step"] == full["global_step"] == 12
        for key, value in full["state"].items():
            assert torch.equal(resumed["state"][key], value), key
        for col in ("val/loss", "val/unifrac_r2"):
            assert resumed["history"][col] == full["history"][col], col
