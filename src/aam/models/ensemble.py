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
from aam.models.linear_clr import LinearCLR

# What the linear member reads (``EnsembleConfig.linear_input``): each sample's counts scaled to the
# depth. A config saved without the field holds a member fitted on one rarefaction draw.
LINEAR_INPUT = "scaled_counts"


@dataclass
class EnsembleConfig(AAMConfig):
    """The members' AAMConfig (they share it), their number, and the linear member's size (0:
    none), weight, CLR pseudocount and input (module docstring; empty: none, or a member saved before
    the field, which read one rarefaction draw)."""

    members: int = 2
    linear_features: int = 0
    linear_weight: float = 0.0
    linear_pseudocount: float = 0.5
    linear_input: str = ""

    def has_linear_member(self) -> bool:
        return self.linear_features > 0

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

    @classmethod
    def of(cls, members: Sequence[SequencePredictor], linear: LinearCLR | None = None,
           linear_weight: float = 0.0) -> EnsemblePredictor:
        """An ensemble holding copies of the weights of ``members`` (all of one AAMConfig) and,
        given one, of the linear member ``linear`` with weight ``linear_weight``."""
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for m in members[1:]:
            if m.config != first:
                raise ValueError("ensemble members must share one AAMConfig")
        sizes = {}
        if linear is not None:
            sizes = {"linear_features": int(linear.keys.numel()), "linear_weight": float(linear_weight),
                     "linear_pseudocount": linear.pseudocount, "linear_input": LINEAR_INPUT}
        ensemble = cls(EnsembleConfig(**dataclasses.asdict(first), members=len(members), **sizes))
        for mine, theirs in zip(ensemble.members, members, strict=True):
            mine.load_state_dict(theirs.state_dict())
        if linear is not None:
            ensemble.linear.load_state_dict(linear.state_dict())
        return ensemble

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                asv_counts: torch.Tensor | None = None, present_tokens: torch.Tensor | None = None,
                present_counts: torch.Tensor | None = None,
                readout_keys: torch.Tensor | None = None, linear_keys: torch.Tensor | None = None,
                linear_counts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        outs = [m(tokens, asv_index, asv_mask, asv_counts, present_tokens, present_counts, readout_keys)
                for m in self.members]
        log_n = math.log(len(outs))
        if self.config.task == "regression":
            target = torch.stack([o["target"] for o in outs]).mean(0)
        else:
            log_probs = torch.stack([torch.log_softmax(o["target"].float(), dim=-1) for o in outs])
            target = torch.logsumexp(log_probs, dim=0) - log_n
        if self.linear is not None:
            target = self.with_linear(target, linear_keys, linear_counts)
        counts = torch.logsumexp(torch.stack([o["count_log_probs"] for o in outs]), dim=0) - log_n
        return {
            "target": target,
            "count_log_probs": counts,
            "sample_embedding": torch.cat([o["sample_embedding"] for o in outs], dim=-1),
            "asv_mask": outs[0]["asv_mask"],
        }

    def with_linear(self, target: torch.Tensor, keys: torch.Tensor | None,
                    counts: torch.Tensor | None) -> torch.Tensor:
        """The neural members' target joined with the linear member's: (1 - w) x theirs + w x its
        own, in probabilities (classification; returned as log-probabilities) or predictions."""
        if keys is None or counts is None:
            raise ValueError("a linear member needs the batch's table_keys and expected_counts")
        w = self.config.linear_weight
        linear = self.linear(keys, counts)
        if self.config.task == "regression":
            return ((1.0 - w) * target.double() + w * linear.squeeze(-1)).to(target.dtype)
        parts = torch.stack([target.double() + math.log(1.0 - w), linear + math.log(w)])
        return torch.logsumexp(parts, dim=0).to(target.dtype)


def with_linear_member(model: nn.Module, linear: LinearCLR, weight: float) -> EnsemblePredictor:
    """A fine-tuned model (a SequencePredictor, or an EnsemblePredictor without a linear member)
    joined by the linear member ``linear`` with weight ``weight``."""
    if isinstance(model, EnsemblePredictor):
        if model.linear is not None:
            raise ValueError("the model has a linear member already")
        members = list(model.members)
    else:
        members = [model]
    return EnsemblePredictor.of(members, linear, weight)
