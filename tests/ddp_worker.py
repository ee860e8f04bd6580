"""One process of a tiny training run under data parallelism (or alone), for tests/test_ddp.py,
tests/test_preemption.py and scripts/bench_ddp.py.

    python tests/ddp_worker.py '{"data": DIR, "out": DIR, "world": 2, "rank": 0, "port": 29500, ...}'

With ``world`` > 1 the process is one of ``world`` ranks launched from outside (as srun or torchrun
launch them: LOCAL_RANK, NODE_RANK, MASTER_ADDR/PORT in the environment) and trains with
``strategy: ddp`` on CPU (gloo). Writes ``{out}/{task}/rank{rank}.pt``: the weights, the batches it
trained on per epoch (numbers, samples, padding), and the run's per-epoch history and wall time.
``tasks``: ``pretrain``, ``finetune`` (a classifier of ``disease``, from scratch), ``corpus``
(corpus pretraining on two studies: ``data`` and ``data2``, each a tests/helpers/aam_synthetic study),
``contrastive`` (the contrastive DNA embedder on ``sequences``: [sequence, label] pairs, batch
``batch`` per rank) and ``vq`` (the VQ-Transformer on synthetic blocks, batch ``batch`` per rank);
``model``: sizes over the tiny default; ``threads``: torch threads per process;
``fresh_view``: this rank's own settings say "do not resume" (rank 0's decision must prevail);
``launch: lightning``: start one process and let Lightning's launcher start the others.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ARGS = json.loads(sys.argv[1]) if __name__ == "__main__" else {}
# Launched as one of `world` ranks (as srun or torchrun launch them), unless Lightning's own launcher
# starts the other ranks ("launch": "lightning": it reruns this command with LOCAL_RANK set).
if ARGS.get("world", 1) > 1 and ARGS.get("launch") != "lightning":  # before Lightning reads the rank
    os.environ.update({"LOCAL_RANK": str(ARGS["rank"]), "NODE_RANK": "0", "WORLD_SIZE": str(ARGS["world"]),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ARGS["port"])})

import lightning as L  # noqa: E402
import torch  # noqa: E402

from aam.data.corpus import CorpusDataModule, CorpusStudy  # noqa: E402
from aam.data.datasets import AAMDataModule  # noqa: E402
from aam.data.unifrac import PhyloIndex  # noqa: E402
from aam.errors import PREEMPTED_EXIT, Preempted  # noqa: E402
from aam.models.aam import AAMConfig  # noqa: E402
from aam.training.aam_modules import CorpusPretrainModule, FinetuneModule, PretrainModule  # noqa: E402
from aam.training.engine import TrainerSettings, fit, seed_everything  # noqa: E402

MODEL = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, asv_limit=8, unifrac_affine=True)


class Seen(L.Callback):
    """The training batches: (epoch, batch_number, samples, padding); with ``announce``, prints
    ``batch {epoch} {number}`` as each batch starts, then waits ``pause`` seconds (so that a test
    can signal the process mid-epoch)."""

    def __init__(self, announce: bool = False, pause: float = 0.0) -> None:
        self.batches: list[tuple[int, int, list, bool]] = []
        self.announce, self.pause = announce, pause

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        number = int(batch["batch_number"])
        if "study" in batch:
            samples = list(zip(batch["study"].tolist(), batch["sample_index"].tolist(), strict=True))
        elif "sample_index" in batch:
            samples = batch["sample_index"].tolist()
        elif "block_index" in batch:  # VQ blocks
            samples = batch["block_index"].tolist()
        else:  # DNA sequences: the first view of each
            samples = batch["group"][: len(batch["group"]) // int(batch["n_views"])].tolist()
        self.batches.append((trainer.current_epoch, number, samples, bool(batch["padding"])))
        if self.announce:
            print(f"batch {trainer.current_epoch} {number}", flush=True)
            time.sleep(self.pause)


def model_limit(args: dict) -> int:
    return int(args.get("model", {}).get("asv_limit", MODEL["asv_limit"]))


def run(args: dict) -> None:
    for task in args.get("tasks", ["pretrain", "finetune"]):
        run_task(args, task)


def run_task(args: dict, task: str) -> None:
    world = int(args.get("world", 1))
    settings = TrainerSettings.from_dict({
        "max_epochs": args.get("epochs", 2), "lr": 3e-3, "warmup_steps": 1, "patience": None,
        "progress_bar": False, "seed": 3, "log_every_n_steps": 1, "accelerator": "cpu",
        "devices": world, "accumulate_grad_batches": args.get("accumulate", 1),
        "num_threads": args.get("threads", 1),
        "restore_best": False,
        # a rank that, deciding alone, would start afresh (tests that rank 0 decides for all)
        "resume": not args.get("fresh_view", False),
    })
    seed_everything(3)
    if task == "contrastive":
        module, dm = contrastive(args, settings)
    elif task == "vq":
        module, dm = vq(args, settings)
    elif task == "corpus":
        module, dm = corpus(args, settings)
    else:
        module, dm = aam(args, settings, task)
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


def aam(args: dict, settings: TrainerSettings, task: str):
    data = Path(args["data"])
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
        return PretrainModule(cfg, settings, index), dm
    cfg = AAMConfig(**model, dropout=dropout, max_bp=dm.max_bp, task="classification", n_outputs=dm.n_classes)
    return FinetuneModule(cfg, settings), dm


def corpus(args: dict, settings: TrainerSettings):
    """Two studies on two trees; batches never mix studies, so each batch uses its own tree."""
    folders = [Path(args["data"]), Path(args["data2"])]
    studies = [CorpusStudy(f"s{k}", folder / "tokens", str(folder / "tree.nwk"), 100)
               for k, folder in enumerate(folders)]
    data_settings = {"asv_limit": model_limit(args), "batch_size": 4, "num_workers": args.get("workers", 0)}
    dm = CorpusDataModule(studies, data_settings, val_fraction=0.2, seed=3)
    indexes = [PhyloIndex.from_newick(tree, ids) for tree, ids in zip(dm.tree_groups, dm.group_feature_ids,
                                                                       strict=True)]
    seed_everything(3)
    cfg = AAMConfig(**{**MODEL, **args.get("model", {})}, dropout=0.0, max_bp=dm.max_bp)
    return CorpusPretrainModule(cfg, settings, indexes), dm


def contrastive(args: dict, settings: TrainerSettings):
    """Supervised contrastive training on labelled sequences with two augmented views each."""
    from aam.data.augment import AugmentConfig, Augmenter
    from aam.data.dna_tokenizers import make_tokenizer
    from aam.data.sequence_datasets import SequenceCollator, SequenceDataModule, SequenceDataset
    from aam.models.contrastive import ContrastiveConfig
    from aam.training.seq_modules import ContrastiveModule

    pairs = json.loads(Path(args["sequences"]).read_text())
    seqs, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    n_val = int(args.get("n_val", 6))
    tokenizer = make_tokenizer({"type": "kmer", "k": 3})
    aug = Augmenter(AugmentConfig(min_len=16, max_len=64))
    train = SequenceDataset(seqs[n_val:], labels[n_val:], 2, aug, seed=3)
    val = SequenceDataset(seqs[:n_val], labels[:n_val], 2, None, seed=3)
    max_tokens = tokenizer.n_tokens(64) + 2
    collator = SequenceCollator(tokenizer, max_tokens)
    dm = SequenceDataModule(train, val, collator, int(args["batch"]), 0, seed=3)
    seed_everything(3)
    cfg = ContrastiveConfig(vocab_size=tokenizer.vocab_size, dim=16, layers=1, heads=2, ff_dim=32,
                            dropout=0.0, max_len=max_tokens, proj_hidden=16, proj_dim=8)
    return ContrastiveModule(cfg, settings, "supcon", 0.2), dm


def vq(args: dict, settings: TrainerSettings):
    """The VQ-Transformer on 26 training blocks of 16 nucleotides (6 for validation), batch
    ``batch`` per rank; ``decay``, ``dead_threshold``: the quantizer's (0: no code restarts)."""
    import numpy as np

    from aam.data.dna_tokenizers import CharTokenizer
    from aam.data.sequence_datasets import BlockDataModule, BlockDataset
    from aam.models.vq import VQConfig
    from aam.training.seq_modules import VQModule

    rng = np.random.default_rng(5)
    motifs = np.frombuffer(b"ACGTACGTGGCCAATT", dtype=np.uint8).reshape(4, 4)
    blocks = motifs[rng.integers(0, 4, size=(32, 4))].reshape(32, 16)  # blocks of four 4-mers
    tokenizer = CharTokenizer(add_special_tokens=False)
    dm = BlockDataModule(BlockDataset(blocks[6:], tokenizer), BlockDataset(blocks[:6], tokenizer),
                         int(args["batch"]), 0, seed=3)
    seed_everything(3)
    cfg = VQConfig(vocab_size=tokenizer.vocab_size, block_len=16, patch=4, dim=16, enc_layers=1,
                   dec_layers=1, heads=2, ff_dim=32, code_dim=8, codebook_size=8,
                   decay=float(args.get("decay", 0.99)),
                   dead_threshold=float(args.get("dead_threshold", 0.0)))
    return VQModule(cfg, settings), dm


if __name__ == "__main__":
    try:
        run(ARGS)
    except Preempted as err:  # as the `aam` CLI does
        print(f"preempted: {err}", flush=True)
        sys.exit(PREEMPTED_EXIT)
