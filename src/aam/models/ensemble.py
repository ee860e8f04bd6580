"""A seed ensemble of fine-tuned AAM predictors: N fine-tunings that differ only in their seed.

Small studies give a fine-tuned model a high variance: the same data and settings with another seed
(initialisation, batch order, rarefaction draws) move a fold's AUROC by several points. Averaging
the predictions of N such models removes that part of the error without adding any bias, which is
why an ensemble can rank above each of its members.

How predictions combine, per sample:
- regression: the mean of the members' outputs (standardized units; every member was trained with
  the same target mean and sd, so the mean in original units is the same average);
- classification: the mean of the members' class probabilities. The output is returned as
  ``log(mean_i softmax(logits_i))``, a vector of logits whose softmax IS that mean (it sums to one
  already), so every consumer that applies a softmax to the output reads the averaged probabilities;
- count head: the mean of the members' predicted relative abundances, as log-probabilities;
- sample embedding: the members' vectors side by side ([B, N x D]); each member has its own basis,
  so their mean would mix unrelated coordinates.

A linear member (``linear_features`` > 0; :mod:`aam.models.linear_clr`, fitted by
:mod:`aam.training.linear_member`) joins the target with weight ``linear_weight``: the probabilities
(regression: the predictions) are ``(1 - w) x`` the neural members' mean ``+ w x`` its own. It reads
the batch's ``table_keys`` and ``expected_counts`` (every feature of the samples, its counts scaled to
the depth: no rarefaction draw), which :func:`aam.models.aam.predictor_inputs` passes as
``linear_keys`` and ``linear_counts``. The count head and the embedding stay the neural members'.

A forest member (``forest_features`` > 0; :mod:`aam.models.forest`, fitted by
:mod:`aam.training.forest_member`) joins the same way with weight ``forest_weight``; it reads the
model's evaluation rarefaction draw (``present_keys`` and ``unifrac_counts``, passed as ``draw_keys``
and ``draw_counts``); with both, the neural members' share is ``1 - linear_weight - forest_weight``.

What a member reads is recorded in ``linear_input``: aam fitted the linear member on one rarefaction
draw before it read the scaled counts, and such a model, served the scaled counts, would predict
otherwise than it was scored. A config without the field is of that time, so it refuses to build
(one line, telling the user to fine-tune again) rather than predict silently otherwise.

The ensemble is a plain ``nn.Module`` with a dataclass ``config`` (``EnsembleConfig``: the members'
``AAMConfig`` plus ``members``), so it exports to one ``model.safetensors`` + ``model.json`` and loads
with ``load_model`` exactly like a single predictor; `aam predict` and `aam evaluate` need nothing new.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from aam.models.aam import AAMConfig, SequencePredictor
from aam.models.forest import ForestModule
from aam.models.linear_clr import LinearCLR

# What the linear member reads (``EnsembleConfig.linear_input``): each sample's counts scaled to the
# depth. A config saved without the field holds a member fitted on one rarefaction draw.
LINEAR_INPUT = "scaled_counts"


@dataclass
class EnsembleConfig(AAMConfig):
    """The members' AAMConfig (they share it), their number, the linear member's size (0: none),
    weight, CLR pseudocount and input (module docstring; empty: none, or a member saved before the
    field, which read one rarefaction draw), and the forest member's sizes (0: none) and weight."""

    members: int = 2
    linear_features: int = 0
    linear_weight: float = 0.0
    linear_pseudocount: float = 0.5
    linear_input: str = ""
    forest_features: int = 0
    forest_nodes: int = 0
    forest_trees: int = 0
    forest_weight: float = 0.0

    def has_linear_member(self) -> bool:
        return self.linear_features > 0

    def has_forest_member(self) -> bool:
        return self.forest_features > 0

    def reads_table(self) -> bool:
        """Whether a member reads the batch's table_keys and expected_counts."""
        return self.has_linear_member() or self.has_forest_member()

    def member_config(self) -> AAMConfig:
        return AAMConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(AAMConfig)})


class EnsemblePredictor(nn.Module):
    """N SequencePredictors of one architecture whose predictions are averaged (module docstring)."""

    config_class = EnsembleConfig

    def __init__(self, config: EnsembleConfig):
        super().__init__()
        if config.members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {config.members}")
        self.config = config
        member = config.member_config()
        self.members = nn.ModuleList(SequencePredictor(member) for _ in range(config.members))
        self.linear = None
        if config.has_linear_member():
            if not 0.0 < config.linear_weight < 1.0:
                raise ValueError(f"the linear member's weight must lie in (0, 1), got {config.linear_weight}")
            if config.linear_input != LINEAR_INPUT:
                saved = config.linear_input
                read = repr(saved) if saved else "one rarefaction draw (no linear_input)"
                raise ValueError(f"its linear member reads {read}, this aam serves it {LINEAR_INPUT!r} "
                                 "(each sample's counts scaled to the depth): run the fine-tuning again")
            self.linear = LinearCLR(config.linear_features, config.n_outputs, config.task,
                                    config.linear_pseudocount)
        self.forest = None
        if config.has_forest_member():
            if not 0.0 < config.forest_weight < 1.0:
                raise ValueError(f"the forest member's weight must lie in (0, 1), got {config.forest_weight}")
            self.forest = ForestModule(config.forest_features, config.forest_nodes, config.forest_trees,
                                       config.n_outputs, config.task)
        if self.neural_weight() <= 0.0:
            raise ValueError(f"the members' weights ({config.linear_weight} linear, "
                             f"{config.forest_weight} forest) "
                             "must leave the neural members a share: their sum must be below 1")

    def neural_weight(self) -> float:
        """The neural members' share of the prediction: what the linear and forest members leave."""
        c = self.config
        return 1.0 - (c.linear_weight if self.linear is not None else 0.0) - (
            c.forest_weight if self.forest is not None else 0.0)

    @classmethod
    def of(cls, members: Sequence[SequencePredictor], linear: LinearCLR | None = None,
           linear_weight: float = 0.0, forest: ForestModule | None = None,
           forest_weight: float = 0.0) -> EnsemblePredictor:
        """An ensemble holding copies of the weights of ``members`` (all of one AAMConfig) and, given
        them, of the linear member ``linear`` and the forest member ``forest`` with their weights."""
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for m in members[1:]:
            if m.config != first:
                raise ValueError("ensemble members must share one AAMConfig")
        sizes = {}
        if linear is not None:
            sizes |= {"linear_features": int(linear.keys.numel()), "linear_weight": float(linear_weight),
                      "linear_pseudocount": linear.pseudocount, "linear_input": LINEAR_INPUT}
        if forest is not None:
            sizes |= {"forest_features": int(forest.keys.numel()),
                      "forest_nodes": int(forest.feature.numel()),
                      "forest_trees": int(forest.roots.numel()), "forest_weight": float(forest_weight)}
        ensemble = cls(EnsembleConfig(**dataclasses.asdict(first), members=len(members), **sizes))
        for mine, theirs in zip(ensemble.members, members, strict=True):
            mine.load_state_dict(theirs.state_dict())
        if linear is not None:
            ensemble.linear.load_state_dict(linear.state_dict())
        if forest is not None:
            ensemble.forest.load_state_dict(forest.state_dict())
        return ensemble

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                asv_counts: torch.Tensor | None = None, present_tokens: torch.Tensor | None = None,
                present_counts: torch.Tensor | None = None,
                readout_keys: torch.Tensor | None = None, table_keys: torch.Tensor | None = None,
                expected_counts: torch.Tensor | None = None, draw_keys: torch.Tensor | None = None,
                draw_counts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        outs = [m(tokens, asv_index, asv_mask, asv_counts, present_tokens, present_counts, readout_keys)
                for m in self.members]
        log_n = math.log(len(outs))
        if self.config.task == "regression":
            target = torch.stack([o["target"] for o in outs]).mean(0)
        else:
            log_probs = torch.stack([torch.log_softmax(o["target"].float(), dim=-1) for o in outs])
            target = torch.logsumexp(log_probs, dim=0) - log_n
        if self.config.reads_table():
            target = self.with_tabular(target, (table_keys, expected_counts), (draw_keys, draw_counts))
        counts = torch.logsumexp(torch.stack([o["count_log_probs"] for o in outs]), dim=0) - log_n
        return {
            "target": target,
            "count_log_probs": counts,
            "sample_embedding": torch.cat([o["sample_embedding"] for o in outs], dim=-1),
            "asv_mask": outs[0]["asv_mask"],
        }

    def with_tabular(self, target: torch.Tensor, expected: tuple[torch.Tensor | None, torch.Tensor | None],
                     draw: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor:
        """The neural members' target joined with the linear member's (reading ``expected``, the
        batch's table_keys and expected_counts) and the forest member's (reading ``draw``, its
        present_keys and unifrac_counts): each weighted by its share, in probabilities
        (classification; returned as log-probabilities) or predictions."""
        parts = [(self.neural_weight(), target.double())]
        if self.linear is not None:
            if expected[0] is None or expected[1] is None:
                raise ValueError("a linear member needs the batch's table_keys and expected_counts")
            parts.append((self.config.linear_weight, self.linear(*expected)))
        if self.forest is not None:
            if draw[0] is None or draw[1] is None:
                raise ValueError("a forest member needs the batch's present_keys and unifrac_counts")
            parts.append((self.config.forest_weight, self.forest(*draw)))
        if self.config.task == "regression":
            return sum(w * (p if p.dim() == 1 else p.squeeze(-1)) for w, p in parts).to(target.dtype)
        return torch.logsumexp(torch.stack([p + math.log(w) for w, p in parts]), dim=0).to(target.dtype)


def with_tabular_members(model: nn.Module, linear: LinearCLR | None = None, linear_weight: float = 0.0,
                         forest: ForestModule | None = None, forest_weight: float = 0.0) -> EnsemblePredictor:
    """A fine-tuned model (a SequencePredictor, or an EnsemblePredictor without a linear or forest
    member) joined by the linear member ``linear`` and the forest member ``forest`` (either may be
    None) with their weights."""
    if isinstance(model, EnsemblePredictor):
        if model.config.reads_table():
            raise ValueError("the model has a linear or forest member already")
        members = list(model.members)
    else:
        members = [model]
    return EnsemblePredictor.of(members, linear, linear_weight, forest, forest_weight)
