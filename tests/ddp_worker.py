"""One process of a tiny AAM pretraining and fine-tuning under data parallelism (or alone), for
tests/test_ddp.py and scripts/bench_ddp.py.

    python tests/ddp_worker.py '{"data": DIR, "out": DIR, "world": 2, "rank": 0, "port": 29500, ...}'

With ``world`` > 1 the process is one of ``world`` ranks launched from outside (as srun or torchrun
launch them: LOCAL_RANK, NODE_RANK, MASTER_ADDR/PORT in the environment) and trains with
``strategy: ddp`` on CPU (gloo). Writes ``{out}/{task}/rank{rank}.pt``: the weights, the samples it
trained on per epoch and batch, and the run's per-epoch history and wall time; ``tasks``: pretrain
and/or finetune (a classifier of ``disease``, from scratch); ``model``: sizes over the tiny default;
``threads``: torch threads per process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ARGS = json.loads(sys.argv[1]) if __name__ == "__main__" else {}
if ARGS.get("world", 1) > 1:  # before Lightning is imported: it reads the rank at import
    os.environ.update({"LOCAL_RANK": str(ARGS["rank"]), "NODE_RANK": "0", "WORLD_SIZE": str(ARGS["world"]),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ARGS["port"])})

import lightning as L  # noqa: E402
import torch  # noqa: E402

from aam.data.datasets import AAMDataModule  # noqa: E402
from aam.data.unifrac import PhyloIndex  # noqa: E402
from aam.errors import PREEMPTED_EXIT, Preempted  # noqa: E402
from aam.models.aam import AAMConfig  # noqa: E402
from aam.training.aam_modules import FinetuneModule, PretrainModule  # noqa: E402
from aam.training.engine import TrainerSettings, fit, seed_everything  # noqa: E402

MODEL = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, asv_limit=8)


class Seen(L.Callback):
    """The samples of each training batch: (epoch, batch_number, sample rows); with ``announce``,
    prints ``batch {epoch} {number}`` as each batch starts, then waits ``pause`` seconds (so that a
    test can signal the process mid-epoch)."""

    def __init__(self, announce: bool = False, pause: float = 0.0) -> None:
        self.batches: list[tuple[int, int, list[int]]] = []
        self.announce, self.pause = announce, pause

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        number = int(batch["batch_number"])
        self.batches.append((trainer.current_epoch, number, batch["sample_index"].tolist()))
        if self.announce:
            print(f"batch {trainer.current_epoch} {number}", flush=True)
            time.sleep(self.pause)


def model_limit(args: dict) -> int:
    return int(args.get("model", {}).get("asv_limit", MODEL["asv_limit"]))


def run(args: dict) -> None:
    for task in args.get("tasks", ["pretrain", "finetune"]):
        run_task(args, task)


def run_task(args: dict, task: str) -> None:
    data, world = Path(args["data"]), int(args.get("world", 1))
    settings = TrainerSettings.from_dict({
        "max_epochs": args.get("epochs", 2), "lr": 3e-3, "warmup_steps": 1, "patience": None,
        "progress_bar": False, "seed": 3, "log_every_n_steps": 1, "accelerator": "cpu",
        "devices": world, "accumulate_grad_batches": args.get("accumulate", 1),
        "num_threads": args.get("threads", 1),
        "restore_best": False,
    })
    target = {"column": "disease", "type": "classification"} if task == "finetune" else None
    data_settings = {"asv_limit": model_limit(args), "batch_size": 4, "num_workers": args.get("workers", 0)}
    dm = AAMDataModule(data / "tokens", data / "splits.tsv", data_settings, seed=3,
                       depth=100, target=target, metadata=data / "metadata.tsv")
    seed_everything(3)
    dropout = float(args.get("dropout", 0.0))
    model = {**MODEL, **args.get("model", {})}
    cfg = AAMConfig(**model, dropout=dropout, max_bp=dm.max_bp)
    if task == "pretrain":
        index = PhyloIndex.from_newick(data / "tree.nwk", list(dm.feature_ids))
        module = PretrainModule(cfg, settings, index)
    else:
        cfg = AAMConfig(**model, dropout=dropout, max_bp=dm.max_bp, task="classification",
                        n_outputs=dm.n_classes)
        module = FinetuneModule(cfg, settings)
    init = {k: v.detach().clone() for k, v in module.state_dict().items()}
    seen = Seen(bool(args.get("announce")), float(args.get("pause", 0.0)))
    start = time.perf_counter()
    result = fit(module, Path(args["out"]) / task, datamodule=dm, callbacks=[seen])
    out = Path(args["out"]) / task / f"rank{result.global_rank}.pt"
    torch.save({
        "init": init,
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "seen": seen.batches,
        "history": result.history.to_dict(orient="list"),
        "wall_s": time.perf_counter() - start,
        "world": result.world_size,
        "global_step": result.global_step,
        "resumed": result.resumed,
    }, out)


if __name__ == "__main__":
    try:
        run(ARGS)
    except Preempted as err:  # as the `aam` CLI does
        print(f"preempted: {err}", flush=True)
        sys.exit(PREEMPTED_EXIT)
