"""Data-parallel training on CPU: 2 processes (gloo) against one process with the same global batch.

Two ranks with batch B train on what one process with batch B and ``accumulate_grad_batches`` 2
trains on (EpochSampler deals whole batches to the ranks), so the weights must agree, each rank
must see its own samples, and the validation metrics, computed over both ranks' predictions, must
equal the single process's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402
from aam_synthetic import write_study  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "data").mkdir()
    write_study(tmp / "data")  # 24 train samples (6 batches of 4), 10 val (batches of 4, 4, 2)
    args = {"data": str(tmp / "data"), "out": str(tmp / "two"), "world": 2, "port": free_port()}
    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps({**args, "rank": r})], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    # Meanwhile, the reference: one process, batch 4, accumulating 2 batches per optimizer step.
    ddp_worker.run({"data": str(tmp / "data"), "out": str(tmp / "one"), "world": 1, "accumulate": 2})
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]

    def load(name, task, rank=0):
        return torch.load(tmp / name / task / f"rank{rank}.pt", weights_only=False)

    return load


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_two_ranks_see_disjoint_samples(runs, task):
    one, r0, r1 = runs("one", task), runs("two", task, 0), runs("two", task, 1)
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1
    for epoch in (0, 1):
        single = [b for b in one["seen"] if b[0] == epoch]
        mine = [b for b in r0["seen"] if b[0] == epoch], [b for b in r1["seen"] if b[0] == epoch]
        s0 = {s for b in mine[0] for s in b[2]}
        s1 = {s for b in mine[1] for s in b[2]}
        assert s0 and s1 and not s0 & s1
        assert s0 | s1 == {s for b in single for s in b[2]}
        # Whole batches, round robin: rank r trains on the single process's batches r, r + 2, ...
        assert mine[0] == single[0::2] and mine[1] == single[1::2]
    assert r0["seen"] != [b for b in r0["seen"] if b[0] == 0] * 2  # a new order each epoch


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_weights_equal_one_process_with_the_same_global_batch(runs, task):
    one, r0, r1 = runs("one", task), runs("two", task, 0), runs("two", task, 1)
    assert one["global_step"] == r0["global_step"] == 6
    for key, value in one["state"].items():
        torch.testing.assert_close(r0["state"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        assert torch.equal(r0["state"][key], r1["state"][key])  # ranks stay in step
    moved = [k for k, v in one["init"].items() if not torch.equal(v, one["state"][k])]
    assert len(moved) > len(one["init"]) // 2  # training changed the weights


@pytest.mark.parametrize("task,metrics", [
    ("pretrain", ["val/loss", "val/unifrac_loss", "val/unifrac_mae", "val/unifrac_r2",
                  "val/nucleotide_accuracy", "train/loss"]),
    ("finetune", ["val/loss", "val/target_loss", "val/accuracy", "val/auroc", "train/loss"]),
])
def test_metrics_equal_one_process(runs, task, metrics):
    one, two = runs("one", task)["history"], runs("two", task)["history"]
    for name in metrics:
        assert len(one[name]) == 2
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, err_msg=name)
