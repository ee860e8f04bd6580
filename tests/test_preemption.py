"""Preemption: SIGUSR1 / SIGTERM to a training process -> checkpoint at the next optimizer step,
exit 75 (no model written); the same run started again resumes mid-epoch and ends with the weights
and validation metrics of an uninterrupted run (with dropout on, so the random stream must continue
exactly too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402
from aam_synthetic import write_study  # noqa: E402

from aam.errors import PREEMPTED_EXIT  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"
RUN = {"world": 1, "epochs": 3, "dropout": 0.1, "tasks": ["pretrain"]}


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(args)], env=env, text=True,
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
    done = {(e, n) for e, n, _ in resumed["seen"]}
    assert done == {(e, n) for e, n, _ in full["seen"] if (e, n) > (1, ckpt["engine_mid_epoch_batches"] - 1)}
    for col in ("val/loss", "val/unifrac_r2"):
        assert resumed["history"][col] == full["history"][col], col
    # train/* epoch means of the interrupted epoch cover the batches after the resume only.
    assert resumed["history"]["train/loss"][::2] == full["history"]["train/loss"][::2]
