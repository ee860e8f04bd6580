"""LightningModules of AAM pretraining and fine-tuning, on the shared training engine.

Pretraining (:class:`PretrainModule`): each batch's UniFrac distances are computed on the fly from
its rarefied counts (``aam.data.unifrac.batch_distances``); loss = ``unifrac_weight`` x MSE of the
predicted vs true distances (pairs i < j) + ``nucleotide_weight`` x cross-entropy of masked
nucleotides (``mask_rate``, BERT-style 80/10/10). Validation runs without dropout and without
masking on the UniFrac path; masked-nucleotide accuracy is measured with a fixed mask (seeded per
batch, so it neither varies between epochs nor touches the global random stream). Logged:
``val/loss``, ``val/unifrac_loss``, ``val/unifrac_mae``, ``val/unifrac_r2``, ``val/nucleotide_loss``,
``val/nucleotide_accuracy`` (and ``train/...``).

Fine-tuning (:class:`FinetuneModule`): loss = target loss (regression on the standardized target:
``mse`` or ``huber``; classification: ``cross_entropy`` or ``focal`` with class weights) +
``count_weight`` x count loss (KL of predicted vs true relative abundance of the kept ASVs).
Logged: ``val/loss``, ``val/target_loss``, ``val/count_loss`` and ``val/mae``, ``val/r2``
(regression, original units) or ``val/accuracy``, ``val/auroc`` (classification).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aam.data.unifrac import batch_distances
from aam.models.aam import AAMConfig, SequenceEncoder, SequencePredictor, predictor_inputs, trim_padding
from aam.training import losses
from aam.training.engine import EngineModule, TrainerSettings


class PretrainModule(EngineModule):
    def __init__(self, model_config: AAMConfig, settings: TrainerSettings | dict | None, phylo_index: Any,
                 unifrac_metric: str = "unweighted", mask_rate: float = 0.15,
                 unifrac_weight: float = 1.0, nucleotide_weight: float = 1.0):
        super().__init__(settings)
        self.model = SequenceEncoder(model_config)
        self.index = phylo_index
        self.metric = unifrac_metric
        self.mask_rate = mask_rate
        self.unifrac_weight = unifrac_weight
        self.nucleotide_weight = nucleotide_weight
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def true_distances(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return batch_distances(self.index, batch["unifrac_counts"], batch["unifrac_feature_idx"],
                                   self.metric, dtype=torch.float32)

    def _losses(self, batch, tokens, labels, stage: str):
        out = self.model(tokens, batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
        true = self.true_distances(batch)
        u_loss = losses.unifrac_loss(out["distances"], true)
        loss = self.unifrac_weight * u_loss
        bs = batch["asv_index"].shape[0]
        # sync_dist: under data parallelism the logged values are means over all ranks' batches.
        kw = {"on_step": stage == "train", "on_epoch": True, "sync_dist": True}
        self.log(f"{stage}/unifrac_loss", u_loss, batch_size=bs, **kw)
        if out["nucleotide_logits"] is not None:  # a k-mer ASV encoder has no nucleotide objective
            n_loss = losses.nucleotide_loss(out["nucleotide_logits"], labels)
            loss = loss + self.nucleotide_weight * n_loss
            chosen = labels != losses.IGNORE
            correct = (out["nucleotide_logits"].argmax(-1)[chosen] == labels[chosen]).float()
            self.log(f"{stage}/nucleotide_loss", n_loss, batch_size=bs, **kw)
            # Logged on every rank (a collective), weighted by the masked positions (0 adds nothing).
            n_chosen = correct.numel()
            self.log(f"{stage}/nucleotide_accuracy", correct.sum() / max(n_chosen, 1), batch_size=n_chosen,
                     **kw)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, **kw)
        return loss, out, true

    def training_step(self, batch, batch_idx):
        head = self.model.unifrac_head
        if head.affine and not bool(head.offset_ready):
            mean = float(losses.upper_triangle(self.true_distances(batch)).mean())
            trainer = self.attached_trainer()
            if trainer is not None and trainer.world_size > 1:
                # Rank 0's first batch is the global first batch: every rank starts from its mean,
                # as one process would (ranks whose offsets differed would never agree again).
                mean = float(trainer.strategy.broadcast(mean, src=0))
            head.init_offset(mean)
        if self.model.nucleotide_head is None:
            return self._losses(batch, trim_padding(batch["tokens"]), None, "train")[0]
        # The mask is seeded by (seed, epoch, batch number), so a batch is masked the same on any
        # rank and in any world size (batches from a plain loader draw from the global stream).
        number = _batch_number(batch)
        gen = None
        if number >= 0:
            seed = 42 if self.settings.seed is None else int(self.settings.seed)
            state = np.random.SeedSequence([seed, 3, self.current_epoch, number]).generate_state(2)
            gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        masked, labels = losses.mask_nucleotides(trim_padding(batch["tokens"]), self.mask_rate, generator=gen)
        loss, _, _ = self._losses(batch, masked, labels, "train")
        return loss

    def validation_step(self, batch, batch_idx):
        # UniFrac on unmasked tokens; the nucleotide objective on a fixed, seeded mask. A last batch
        # of one sample has no pair (its UniFrac MSE would be NaN and stop training): skipped.
        bs = batch["asv_index"].shape[0]
        if bs < 2:
            return
        tokens = trim_padding(batch["tokens"])
        out = self.model(tokens, batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
        true = self.true_distances(batch)
        u_loss = losses.unifrac_loss(out["distances"], true)
        # sync_dist: the epoch value is the batch-size weighted mean over every rank's batches.
        kw = {"on_epoch": True, "batch_size": bs, "sync_dist": True}
        loss, correct, n_chosen = self.unifrac_weight * u_loss, 0, 0
        if self.model.nucleotide_head is not None:
            number = _batch_number(batch)
            gen = torch.Generator().manual_seed(10_000 + (number if number >= 0 else batch_idx))
            masked, labels = losses.mask_nucleotides(tokens, self.mask_rate, generator=gen)
            _, nuc_states = self.model.asv_encoder(masked)
            logits = self.model.nucleotide_head(nuc_states)
            n_loss = losses.nucleotide_loss(logits, labels)
            loss = loss + self.nucleotide_weight * n_loss
            self.log("val/nucleotide_loss", n_loss, **kw)
            chosen = labels != losses.IGNORE
            correct, n_chosen = int((logits.argmax(-1)[chosen] == labels[chosen]).sum()), int(chosen.sum())
        self.log("val/loss", loss, prog_bar=True, **kw)
        self.log("val/unifrac_loss", u_loss, **kw)
        self._val.append((losses.upper_triangle(out["distances"]).detach().float().cpu(),
                          losses.upper_triangle(true).detach().float().cpu(), correct, n_chosen))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def on_validation_epoch_end(self) -> None:
        # Every rank's pairs (the metrics of all validation samples, as in one process).
        parts = [part for rank in self.all_ranks(self._val) for part in rank]
        self._val = []
        if not parts:
            return
        total = sum(n for *_, n in parts)
        if total:
            self.log("val/nucleotide_accuracy", sum(c for _, _, c, _ in parts) / total)
        pred = torch.cat([p for p, *_ in parts])
        true = torch.cat([t for _, t, *_ in parts])
        if pred.numel() == 0:
            return
        self.log("val/unifrac_mae", (pred - true).abs().mean())
        r2 = losses.r2_score(pred, true)
        if np.isfinite(r2):
            self.log("val/unifrac_r2", r2)


class CorpusPretrainModule(PretrainModule):
    """Pretraining on a corpus (:mod:`aam.data.corpus`): one UniFrac index per tree group, chosen by
    the batch's ``tree_group`` (a corpus batch never spans two groups)."""

    def __init__(self, model_config: AAMConfig, settings: TrainerSettings | dict | None,
                 phylo_indexes: list[Any], **kwargs):
        super().__init__(model_config, settings, phylo_indexes[0], **kwargs)
        self.indexes = list(phylo_indexes)

    def true_distances(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        groups = torch.unique(batch["tree_group"])
        if groups.numel() != 1:
            raise ValueError(f"a corpus batch spans tree groups {groups.tolist()}")
        index = self.indexes[int(groups[0])]
        with torch.no_grad():
            return batch_distances(index, batch["unifrac_counts"], batch["unifrac_feature_idx"],
                                   self.metric, dtype=torch.float32)


class FinetuneModule(EngineModule):
    def __init__(self, model_config: AAMConfig, settings: TrainerSettings | dict | None,
                 loss: str | None = None, class_weights: np.ndarray | list[float] | None = None,
                 count_weight: float = 1.0, focal_gamma: float = 2.0, huber_delta: float = 1.0,
                 freeze_base: bool = False, target_mean: float = 0.0, target_std: float = 1.0,
                 base_lr_scale: float = 1.0, readout_lr_scale: float = 1.0):
        super().__init__(settings)
        self.model = SequencePredictor(model_config)
        self.task = model_config.task
        default = "mse" if self.task == "regression" else "cross_entropy"
        self.loss_name = loss or default
        allowed = ("mse", "huber") if self.task == "regression" else ("cross_entropy", "focal")
        if self.loss_name not in allowed:
            raise ValueError(f"loss {self.loss_name!r} does not fit a {self.task} target; use {allowed}")
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.count_weight = count_weight
        self.focal_gamma = focal_gamma
        self.huber_delta = huber_delta
        self.target_mean, self.target_std = float(target_mean), float(target_std)
        self.model.freeze_base(freeze_base)
        # The pretraining heads ride along (a pretrained encoder's weights load into them) but get
        # no gradient here; frozen, data-parallel training needs no search for unused parameters.
        for head in (self.model.base.unifrac_head, self.model.base.nucleotide_head):
            if head is not None:  # a k-mer ASV encoder has no nucleotide head
                head.requires_grad_(False)
        self.base_lr_scale = float(base_lr_scale)
        self.readout_lr_scale = float(readout_lr_scale)
        self.register_buffer("training_offsets", None, persistent=False)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def set_training_offsets(self, offsets: np.ndarray | None) -> None:
        """Per-sample corrections [samples of the data module, n_outputs] that training steps add
        to the outputs (by ``batch["sample_index"]``; validation and prediction never do):
        ``finetune.readout_fit``'s cross-fitting (aam.training.readout_fit). Not saved: the fit
        recomputes them."""
        self.training_offsets = None if offsets is None else torch.as_tensor(offsets, dtype=torch.float32)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The engine's groups (weight decay on matrices only), with two learning rates scaled:
        the base's by ``base_lr_scale`` (a pretrained base moves slower than the fresh heads) and
        the per-ASV readout's by ``readout_lr_scale`` (each of its coefficients gets a gradient
        only from the samples holding its ASV, so at the shared rate it moves little in a short
        fine-tuning). With both at 1 these are the engine's groups. The unscaled groups come
        first, so the logged ``lr`` is the heads'."""
        scales: dict[int, float] = {}
        if self.base_lr_scale != 1.0:
            scales |= {id(p): self.base_lr_scale for p in self.model.base.parameters()}
        if self.readout_lr_scale != 1.0 and self.model.asv_readout is not None:
            scales |= {id(p): self.readout_lr_scale for p in self.model.asv_readout.parameters()}
        groups = []
        for scale in dict.fromkeys([1.0, self.base_lr_scale, self.readout_lr_scale]):
            for decay in (True, False):
                params = [p for p in self.parameters() if p.requires_grad
                          and scales.get(id(p), 1.0) == scale and (p.ndim >= 2) == decay]
                if params:
                    groups.append({"params": params, "lr": self.settings.lr * scale,
                                   "weight_decay": self.settings.weight_decay if decay else 0.0})
        return groups

    def target_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "mse":
            return F.mse_loss(pred, target.float())
        if self.loss_name == "huber":
            return F.huber_loss(pred, target.float(), delta=self.huber_delta)
        if self.loss_name == "focal":
            return losses.focal_loss(pred, target, self.class_weights, self.focal_gamma)
        return F.cross_entropy(pred, target, weight=self.class_weights)

    def _step(self, batch, stage: str):
        out = self.model(*predictor_inputs(self.model.config, batch))
        target = out["target"]
        if stage == "train" and self.training_offsets is not None:
            offset = self.training_offsets[batch["sample_index"]]
            target = target + (offset.squeeze(-1) if target.ndim == 1 else offset)
        t_loss = self.target_loss(target, batch["target"])
        c_loss = losses.count_loss(out["count_log_probs"], batch["asv_counts"], out["asv_mask"])
        loss = t_loss + self.count_weight * c_loss
        kw = {"on_step": stage == "train", "on_epoch": True, "batch_size": batch["asv_index"].shape[0],
              "sync_dist": True}  # under data parallelism: means over all ranks' batches
        self.log(f"{stage}/loss", loss, prog_bar=True, **kw)
        self.log(f"{stage}/target_loss", t_loss, **kw)
        self.log(f"{stage}/count_loss", c_loss, **kw)
        return loss, out

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")[0]

    def validation_step(self, batch, batch_idx):
        _, out = self._step(batch, "val")
        self._val.append((out["target"].detach().float().cpu(), batch["target"].detach().cpu()))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def on_validation_epoch_end(self) -> None:
        # Every rank's predictions: AUROC and R2 of all validation samples, as in one process.
        parts = [part for rank in self.all_ranks(self._val) for part in rank]
        self._val = []
        if not parts:
            return
        pred = torch.cat([p for p, _ in parts])
        true = torch.cat([t for _, t in parts])
        metrics = validation_metrics(self.task, pred, true, self.target_mean, self.target_std)
        for name, value in metrics.items():
            if np.isfinite(value):
                self.log(f"val/{name}", value)


def _batch_number(batch: dict[str, torch.Tensor]) -> int:
    """The batch's number in its epoch over all ranks (-1 when the loader does not say)."""
    number = batch.get("batch_number")
    return -1 if number is None else int(number)


def validation_metrics(task: str, pred: torch.Tensor, true: torch.Tensor, mean: float = 0.0,
                       std: float = 1.0) -> dict[str, float]:
    """The monitored metrics of :data:`aam.evaluate.metrics.METRICS` on a validation pass (regression
    in original units: ``pred`` and ``true`` standardized with ``mean`` and ``std``; classification
    from logits and class codes); a metric undefined on these samples (AUROC with one class) is left
    out."""
    from aam.evaluate.metrics import monitored_metrics

    if task == "regression":
        proba, codes = None, None
        y_pred = (pred * std + mean).double().numpy()
        y_true = (true.float() * std + mean).double().numpy()
    else:
        proba = torch.softmax(pred.float(), dim=-1).numpy()
        codes = list(range(proba.shape[1]))
        y_pred, y_true = proba.argmax(1), true.numpy()
    out = {}
    for metric in monitored_metrics(task):
        value = metric.compute(y_true, y_pred, proba, codes)
        if value is not None:
            out[metric.name] = value
    return out
