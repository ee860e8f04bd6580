"""LightningModules of the DNA sequence models, on the engine's `EngineModule`.

- `ContrastiveModule`: supervised contrastive loss over one or more label columns (views of the
  same sequence are positives too, so unlabeled sequences still learn as in NT-Xent), or NT-Xent
  on two augmented views when `loss="ntxent"` or the batch has no labels.
- `VQModule`: reconstruction cross-entropy plus the quantizer's commitment loss; logs
  reconstruction accuracy and codebook perplexity.
"""

from __future__ import annotations

import torch

from aam.models.contrastive import ContrastiveConfig, ContrastiveEmbedder
from aam.models.vq import VQConfig, VQTransformer
from aam.training.contrastive_losses import anchor_terms
from aam.training.engine import EngineModule, TrainerSettings


class ContrastiveModule(EngineModule):
    """Contrastive training. Under data parallelism each rank's anchors see every rank's projections
    as negatives (gathered with gradients, :func:`aam.training.contrastive_losses.anchor_terms`), so
    W ranks with batch B train as one process with batch W x B (up to float reduction order)."""

    def __init__(
        self,
        model_config: ContrastiveConfig,
        settings: TrainerSettings | dict | None = None,
        loss: str = "supcon",
        temperature: float = 0.1,
        rank_weights: list[float] | None = None,
    ) -> None:
        super().__init__(settings)
        if loss not in ("supcon", "ntxent"):
            raise ValueError(f"loss must be supcon or ntxent, got {loss!r}")
        self.model = ContrastiveEmbedder(model_config)
        self.loss_name, self.temperature, self.rank_weights = loss, temperature, rank_weights

    def _gather(self, x: torch.Tensor, grads: bool = False) -> tuple[torch.Tensor, int]:
        """Every rank's rows of ``x`` in rank order (ranks may hold different numbers of rows), and
        where this rank's rows start. ``grads``: gradients flow back to the rank that owns a row."""
        trainer = self.attached_trainer()
        if trainer is None or trainer.world_size == 1:
            return x, 0
        sizes = self.all_gather(torch.tensor(len(x), device=x.device)).flatten().tolist()
        most = max(sizes)
        padded = torch.cat([x, x.new_zeros((most - len(x), *x.shape[1:]))]) if most > len(x) else x
        parts = self.all_gather(padded, sync_grads=grads)
        rank = trainer.global_rank
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)]), int(sum(sizes[:rank]))

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(this rank's share of the loss, to back-propagate; the whole batch's loss, to log)."""
        _, z = self.model(batch["input_ids"], batch["attention_mask"])
        labels = batch.get("labels") if self.loss_name == "supcon" else None
        if labels is None and int(batch["n_views"]) != 2:
            raise ValueError("NT-Xent needs two views per sequence (n_views=2)")
        padding = bool(batch.get("padding", False))
        z_all, start = self._gather(z, grads=torch.is_grad_enabled())
        group_all, _ = self._gather(batch["group"])
        valid_all, _ = self._gather(torch.full((len(z),), int(not padding), device=z.device))
        valid_all = valid_all.bool()
        rows = torch.arange(start, start + len(z), device=z.device)
        if labels is None:
            columns, weights = [None], [1.0]
        else:
            labels_all, _ = self._gather(labels if labels.dim() == 2 else labels[:, None])
            columns = [labels_all[:, j] for j in range(labels_all.shape[1])]
            weights = self.rank_weights or [1.0] * len(columns)
        share, sums, counts = z.sum() * 0.0, [], []
        for column, weight in zip(columns, weights, strict=True):
            total, n_anchors = anchor_terms(z_all, rows, self.temperature, column, group_all, valid_all)
            share = share + weight * total / n_anchors.clamp(min=1)
            sums.append(total.detach())
            counts.append(n_anchors)
        trainer = self.attached_trainer()
        world = 1 if trainer is None else trainer.world_size
        share = share * (world / float(sum(weights)))  # DDP averages the ranks' gradients
        summed = torch.stack(sums)
        if world > 1:
            summed = trainer.strategy.reduce(summed, reduce_op="sum")
        whole = sum(w * s / c.clamp(min=1) for w, s, c in zip(weights, summed, counts, strict=True))
        return share, whole / float(sum(weights))

    def training_step(self, batch, batch_idx):
        share, whole = self.compute_loss(batch)
        self.log("train/loss", whole, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(batch["group"]), sync_dist=True)
        return share

    def validation_step(self, batch, batch_idx):
        _, whole = self.compute_loss(batch)
        self.log("val/loss", whole, on_epoch=True, prog_bar=True, batch_size=len(batch["group"]),
                 sync_dist=True)


class VQModule(EngineModule):
    """VQ-Transformer training. Under data parallelism the codebook's EMA statistics are summed over
    the ranks (padding batches add nothing; :class:`aam.models.vq.VectorQuantizerEMA`) and each rank's
    loss is weighted by its share of the global batch, so W ranks with batch B train as one process
    with batch W x B (up to float reduction order; codebook restarts draw from rank 0's latents)."""

    def __init__(self, model_config: VQConfig, settings: TrainerSettings | dict | None = None) -> None:
        super().__init__(settings)
        self.model = VQTransformer(model_config)

    def setup(self, stage: str) -> None:
        # After the process group exists; every rank then runs every training step (aam.data.ranks).
        trainer = self.attached_trainer()
        if self.model.quantizer is not None and trainer is not None:
            self.model.quantizer.data_parallel = trainer.world_size > 1

    def teardown(self, stage: str) -> None:
        if self.model.quantizer is not None:  # rank 0 alone uses the model after training
            self.model.quantizer.data_parallel = False

    def _share(self, n: int) -> torch.Tensor | float:
        """This rank's weight: DDP averages the ranks' gradients, so a rank's mean loss is scaled by
        W x n / N (n: its blocks, 0 for padding; N: the real blocks of all ranks), which makes the
        gradient the global batch's mean also in an epoch's uneven last round."""
        trainer = self.attached_trainer()
        if trainer is None or trainer.world_size == 1:
            return 1.0
        mine = torch.tensor(0.0 if self._padding else float(n), device=self.device)
        total = trainer.strategy.reduce(mine.clone(), reduce_op="sum")
        return trainer.world_size * mine / total.clamp(min=1.0)

    def _step(self, ids: torch.Tensor, prefix: str) -> torch.Tensor:
        out = self.model(ids, weight=0.0 if self._padding else 1.0)
        acc = (out["logits"].argmax(-1) == ids).float().mean()
        # sync_dist: under data parallelism the epoch values are means over every rank's blocks
        kw = {"on_epoch": True, "batch_size": len(ids), "sync_dist": True}
        self.log(f"{prefix}/loss", out["loss"], prog_bar=True, on_step=prefix == "train", **kw)
        self.log(f"{prefix}/recon_loss", out["recon_loss"], **kw)
        self.log(f"{prefix}/vq_loss", out["vq_loss"], **kw)
        self.log(f"{prefix}/recon_acc", acc, prog_bar=prefix == "val", **kw)
        if self.model.quantizer is not None:
            self.log(f"{prefix}/perplexity", out["perplexity"], **kw)
        return out["loss"]

    def training_step(self, batch, batch_idx):
        ids = _block_tokens(batch)
        return self._step(ids, "train") * self._share(len(ids))

    def validation_step(self, batch, batch_idx):
        self._step(_block_tokens(batch), "val")


def _block_tokens(batch: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The token rows of a block batch (a dict from BlockDataModule, or plain rows)."""
    return batch["tokens"] if isinstance(batch, dict) else batch
