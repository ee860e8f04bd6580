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
from aam.training.contrastive_losses import multi_rank_supcon, nt_xent
from aam.training.engine import EngineModule, TrainerSettings


class _EpochSeeded(EngineModule):
    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)


class ContrastiveModule(_EpochSeeded):
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

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        _, z = self.model(batch["input_ids"], batch["attention_mask"])
        if self.loss_name == "supcon" and "labels" in batch:
            return multi_rank_supcon(z, batch["labels"], self.temperature, batch["group"], self.rank_weights)
        n_views = int(batch["n_views"])
        if n_views != 2:
            raise ValueError("NT-Xent needs two views per sequence (n_views=2)")
        b = len(z) // 2
        return nt_xent(z[:b], z[b:], self.temperature)

    def training_step(self, batch, batch_idx):
        loss = self.compute_loss(batch)
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["group"])
        )
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.compute_loss(batch)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch["group"]),
                 sync_dist=True)


class VQModule(_EpochSeeded):
    def __init__(self, model_config: VQConfig, settings: TrainerSettings | dict | None = None) -> None:
        super().__init__(settings)
        self.model = VQTransformer(model_config)

    def _step(self, ids: torch.Tensor, prefix: str) -> torch.Tensor:
        out = self.model(ids)
        acc = (out["logits"].argmax(-1) == ids).float().mean()
        kw = {"on_epoch": True, "batch_size": len(ids), "sync_dist": prefix == "val"}
        self.log(f"{prefix}/loss", out["loss"], prog_bar=True, on_step=prefix == "train", **kw)
        self.log(f"{prefix}/recon_loss", out["recon_loss"], **kw)
        self.log(f"{prefix}/vq_loss", out["vq_loss"], **kw)
        self.log(f"{prefix}/recon_acc", acc, prog_bar=prefix == "val", **kw)
        if self.model.quantizer is not None:
            self.log(f"{prefix}/perplexity", out["perplexity"], **kw)
        return out["loss"]

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")
