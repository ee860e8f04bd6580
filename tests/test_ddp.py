"""Data-parallel training on CPU: 2 processes (gloo) against one process with the same global batch.

Every epoch here has an odd number of batches, so the last round of the two ranks is short and is
padded (aam.data.ranks). AAM pretraining, fine-tuning and corpus pretraining: two ranks with batch B
train on what one process with batch B and ``accumulate_grad_batches`` 2 trains on (whole batches
are dealt to the ranks). The contrastive model gathers every rank's projections as negatives: two
ranks with batch B train as one process with batch 2B. In each case the weights must agree to float
reduction order, each rank must see its own samples, no sample may be left out, and the validation
metrics, computed over both ranks, must equal the single process's. The VQ-Transformer sums its EMA
codebook statistics over the ranks: two ranks with batch B train as one process with batch 2B too.
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
from helpers.aam_synthetic import write_study  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"
AAM_TASKS = ["pretrain", "finetune", "corpus"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env() -> dict[str, str]:
    src = str(Path(__file__).parents[1] / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, env.get("PYTHONPATH", "")])}


def write_sequences(path: Path, n: int, seed: int = 11) -> None:
    """[sequence, label] pairs: three classes, each a distinct motif in random DNA."""
    rng = np.random.default_rng(seed)
    motifs = ["ACGTACGTAC", "GGGCCCAAAT", "TTTAAACCCG"]
    pairs = []
    for i in range(n):
        label = i % 3
        seq = "".join(rng.choice(list("ACGT"), size=rng.integers(30, 40)))
        cut = int(rng.integers(0, len(seq)))
        pairs.append([seq[:cut] + motifs[label] + seq[cut:], label])
    path.write_text(json.dumps(pairs))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "data").mkdir()
    (tmp / "data2").mkdir()
    write_study(tmp / "data", n_train=28, n_val=10)  # 7 training batches of 4; val 4, 4, 2
    write_study(tmp / "data2", n_samples=26, seed=8, n_train=16, n_val=5)  # corpus: 8 + 5 training batches
    write_sequences(tmp / "sequences.json", 32)  # 6 val, 26 train: 7 batches of 4 (the last of 2)
    return {"data": str(tmp / "data"), "data2": str(tmp / "data2"), "sequences": str(tmp / "sequences.json"),
            "decay": 0.7, "dead_threshold": 0.3,  # the VQ codebook: a fast EMA, so that codes restart
            "tmp": tmp}


@pytest.fixture(scope="module")
def runs(data):
    tmp = data.pop("tmp")
    args = {**data, "out": str(tmp / "two"), "world": 2, "port": free_port(),
            "tasks": AAM_TASKS + ["contrastive", "vq"], "batch": 4}
    procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps({**args, "rank": r})],
                              env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    # Meanwhile, the references: one process, batch 4, accumulating 2 batches per optimizer step;
    # and for the sequence models one process with batch 8.
    ddp_worker.run({**data, "out": str(tmp / "one"), "world": 1, "accumulate": 2, "tasks": AAM_TASKS})
    ddp_worker.run({**data, "out": str(tmp / "one"), "world": 1, "tasks": ["contrastive", "vq"], "batch": 8})
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-3000:]

    def load(name, task, rank=0):
        return torch.load(tmp / name / task / f"rank{rank}.pt", weights_only=False)

    return load


def by_epoch(seen, epoch):
    return [b for b in seen if b[0] == epoch]


@pytest.mark.parametrize("task", AAM_TASKS)
def test_two_ranks_deal_whole_batches_and_pad_the_last_round(runs, task):
    one, r0, r1 = runs("one", task), runs("two", task, 0), runs("two", task, 1)
    assert r0["world"] == r1["world"] == 2 and one["world"] == 1
    for epoch in (0, 1):
        single = by_epoch(one["seen"], epoch)
        assert len(single) % 2 == 1 and not any(b[3] for b in single)  # an odd number of batches
        mine = by_epoch(r0["seen"], epoch), by_epoch(r1["seen"], epoch)
        assert len(mine[0]) == len(mine[1]) == (len(single) + 1) // 2  # every rank takes every step
        # Whole batches, round robin: rank r trains on the single process's batches r, r + 2, ...
        assert mine[0] == single[0::2]
        assert mine[1][:-1] == single[1::2]
        # ... and rank 1's last round is a padding copy of its previous batch (weight 0)
        assert mine[1][-1][3] and mine[1][-1][1:3] == mine[1][-2][1:3]
        real0 = {tuple(s) if isinstance(s, list) else s for b in mine[0] for s in b[2]}
        real1 = {tuple(s) if isinstance(s, list) else s for b in mine[1] if not b[3] for s in b[2]}
        assert real0 and real1 and not real0 & real1  # disjoint samples
        # no sample left out: the ranks together train on the single process's samples
        assert real0 | real1 == {tuple(s) if isinstance(s, list) else s for b in single for s in b[2]}
    assert r0["seen"][: len(r0["seen"]) // 2] != r0["seen"][len(r0["seen"]) // 2:]  # a new order each epoch


def shift_invariant(key: str, value: torch.Tensor) -> torch.Tensor:
    """Entries whose gradient is zero in exact arithmetic: softmax ignores a constant added to all
    scores, so the key bias of attention and the score bias of attention pooling never change the
    output. Their gradients are float noise, which Adam scales up to steps of size lr; they differ
    whenever the batch shapes (hence reduction orders) differ, as one batch of 8 and two of 4 do."""
    mask = torch.zeros_like(value, dtype=torch.bool)
    if key.endswith("attn.qkv.bias"):
        third = value.numel() // 3
        mask[third:2 * third] = True
    if key.endswith("pool.score.bias"):
        mask[:] = True
    return mask


def assert_same_weights(one, r0, r1, skip_shift_invariant=False):
    for key, value in one["state"].items():
        keep = torch.ones_like(value, dtype=torch.bool)
        if skip_shift_invariant:
            keep = ~shift_invariant(key, value)
        torch.testing.assert_close(r0["state"][key][keep], value[keep], rtol=1e-5, atol=1e-6, msg=key)
        assert torch.equal(r0["state"][key], r1["state"][key]), key  # ranks stay in step
    moved = [k for k, v in one["init"].items() if not torch.equal(v, one["state"][k])]
    assert len(moved) > len(one["init"]) // 2  # training changed the weights


@pytest.mark.parametrize("task,steps", [("pretrain", 8), ("finetune", 8), ("corpus", 14)])
def test_weights_equal_one_process_with_the_same_global_batch(runs, task, steps):
    one, r0, r1 = runs("one", task), runs("two", task, 0), runs("two", task, 1)
    assert one["global_step"] == r0["global_step"] == steps  # 2 epochs of ceil(batches / 2) steps
    assert_same_weights(one, r0, r1)


@pytest.mark.parametrize("task,metrics", [
    ("pretrain", ["val/loss", "val/unifrac_loss", "val/unifrac_mae", "val/unifrac_r2",
                  "val/nucleotide_accuracy", "train/loss", "train/unifrac_loss",
                  "train/nucleotide_accuracy"]),
    ("finetune", ["val/loss", "val/target_loss", "val/accuracy", "val/auroc", "train/loss"]),
    ("corpus", ["val/loss", "val/unifrac_r2", "val/nucleotide_accuracy", "train/loss",
                "train/nucleotide_accuracy"]),
])
def test_metrics_equal_one_process(runs, task, metrics):
    one, two = runs("one", task)["history"], runs("two", task)["history"]
    for name in metrics:
        assert len(one[name]) == 2
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, err_msg=name)


def test_processes_that_lightning_starts_itself_train_alike(runs, data, tmp_path):
    """`devices: 2` without srun or torchrun: Lightning's launcher reruns the command for rank 1,
    which takes rank 0's decision about resuming from its environment (waiting for a broadcast
    that rank 0 never sends would hang)."""
    args = {"data": data["data"], "out": str(tmp_path), "world": 2, "launch": "lightning",
            "tasks": ["pretrain"]}
    done = subprocess.run([sys.executable, str(WORKER), json.dumps(args)], env=worker_env(), timeout=600,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    one = runs("one", "pretrain")
    for rank in (0, 1):
        mine = torch.load(tmp_path / "pretrain" / f"rank{rank}.pt", weights_only=False)
        assert mine["world"] == 2 and not mine["resumed"]
        assert_same_weights(one, mine, mine)


def assert_rounds_are_one_batch_twice_as_large(one, r0, r1, batches):
    """Each round of two batches of 4 holds the samples of the single process's batch of 8; the
    epoch's last round is 2 samples on rank 0 and a padding batch on rank 1."""
    for epoch in (0, 1):
        single = by_epoch(one["seen"], epoch)
        rounds = list(zip(by_epoch(r0["seen"], epoch), by_epoch(r1["seen"], epoch), strict=True))
        assert len(rounds) == len(single) == batches
        for (a, b), whole in zip(rounds, single, strict=True):
            assert sorted(a[2] + ([] if b[3] else b[2])) == sorted(whole[2])
        assert rounds[-1][1][3] and len(rounds[-1][0][2]) == 2
    assert one["global_step"] == r0["global_step"] == 2 * batches


def test_contrastive_ranks_share_negatives_and_train_as_one_batch_twice_as_large(runs):
    one, r0, r1 = runs("one", "contrastive"), runs("two", "contrastive", 0), runs("two", "contrastive", 1)
    assert_rounds_are_one_batch_twice_as_large(one, r0, r1, 4)  # batches of 8: 8, 8, 8, 2 sequences
    assert_same_weights(one, r0, r1, skip_shift_invariant=True)
    for name in ("train/loss", "val/loss"):
        np.testing.assert_allclose(runs("two", "contrastive")["history"][name], one["history"][name],
                                   rtol=1e-5, err_msg=name)


def test_vq_codebook_learns_from_every_rank_as_one_batch_twice_as_large(runs):
    """The EMA codebook (buffers, compared with the weights) sums its statistics over the ranks and
    starts and restarts codes on the global batch's latents, and each rank's loss is weighted by its
    share of the global batch, so the uneven last round (2 blocks and a padding batch) trains as the
    single process's last batch of 2. (Before: the codebook learned from rank 0's batches only and
    ended 0.93 away.)"""
    one, r0, r1 = runs("one", "vq"), runs("two", "vq", 0), runs("two", "vq", 1)
    assert_rounds_are_one_batch_twice_as_large(one, r0, r1, 4)  # 26 blocks: 8, 8, 8, 2
    assert int(one["state"]["model.quantizer.restarts"]) > 0  # restarts drawn from the global batch too
    assert_same_weights(one, r0, r1, skip_shift_invariant=True)
    for name in ("train/loss", "train/recon_acc", "train/vq_loss", "val/loss", "val/recon_acc"):
        np.testing.assert_allclose(runs("two", "vq")["history"][name], one["history"][name],
                                   rtol=1e-5, err_msg=name)
