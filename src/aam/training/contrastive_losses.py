"""Contrastive losses on L2-normalized projections, computed with log-sum-exp (log_softmax).

NT-Xent (SimCLR, Chen et al. 2020). For 2N projections (two views per sequence) with cosine
similarities s_ij / tau, the loss of anchor i with positive p(i) (its other view) is

    l_i = -log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) )

averaged over all 2N anchors.

Supervised contrastive (SupCon "L_out", Khosla et al. 2020). With labels y, the positives of
anchor i are P(i) = {p != i : y_p = y_i}, and

    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a != i} exp(s_ia / tau) )

averaged over the anchors that have at least one positive. Label -1 means unknown: such a
sample is a negative for everyone and an anchor of nothing, unless `group` ids say which samples
are views of the same sequence (then views are positives of each other whatever the label, which
makes SupCon with all-unknown labels equal to NT-Xent).

Across data-parallel ranks (:func:`anchor_terms`): each rank's anchors are scored against the
projections of every rank (gathered with gradients), so a batch spread over W ranks has the
negatives of one batch W times as large. A rank's share of the loss is the sum of its anchors'
terms over the number of anchors of all ranks; the gradient every rank's share sends to the other
ranks' projections comes back to them through the gather, so the summed gradient is that of the
single-process loss of the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _log_prob(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax over all other samples (self excluded) of the scaled similarity matrix."""
    sim = (z @ z.T) / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    return torch.log_softmax(sim, dim=1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent of two views (N, D) each; rows are expected L2-normalized."""
    n = len(z1)
    z = torch.cat([z1, z2], dim=0)
    logp = _log_prob(z, temperature)
    idx = torch.arange(2 * n, device=z.device)
    pos = (idx + n) % (2 * n)
    return -logp[idx, pos].mean()


def supcon(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    group: torch.Tensor | None = None,
) -> torch.Tensor:
    """Supervised contrastive loss of (M, D) projections with (M,) integer labels (-1 unknown).

    `group` (M,) marks views of the same sequence (positives whatever their label). Returns 0
    (attached to the graph) when no anchor has a positive.
    """
    labels = labels.to(z.device)
    m = len(z)
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    known = labels >= 0
    pos = (labels[:, None] == labels[None, :]) & known[:, None] & known[None, :] & ~eye
    if group is not None:
        group = group.to(z.device)
        pos = pos | ((group[:, None] == group[None, :]) & ~eye)
    n_pos = pos.sum(dim=1)
    anchors = n_pos > 0
    if not anchors.any():
        return z.sum() * 0.0
    logp = _log_prob(z, temperature)
    # masked_fill, not multiplication: logp is -inf on the diagonal and 0 * -inf is NaN
    pos_logp = logp.masked_fill(~pos, 0.0).sum(dim=1)
    return -(pos_logp[anchors] / n_pos[anchors]).mean()


def anchor_terms(
    z: torch.Tensor,
    rows: torch.Tensor,
    temperature: float,
    labels: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SupCon terms of the anchors ``rows`` (indices into ``z``) against all valid rows of ``z``.

    ``z`` (M, D) holds every rank's projections, ``labels`` (M,) their labels (-1 unknown; None: no
    labels, views of one sequence are the only positives, i.e. NT-Xent), ``group`` (M,) the
    sequence each row is a view of, ``valid`` (M,) False for rows of padding batches (neither
    anchors nor negatives). Returns (sum of the terms of those ``rows`` that have a positive, number
    of anchors with a positive among *all* valid rows): the loss of the whole batch is the sum of
    every rank's first value over the second.
    """
    m = len(z)
    valid = torch.ones(m, dtype=torch.bool, device=z.device) if valid is None else valid.to(z.device)
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    pos = torch.zeros((m, m), dtype=torch.bool, device=z.device)
    if labels is not None:
        labels = labels.to(z.device)
        known = labels >= 0
        pos = (labels[:, None] == labels[None, :]) & known[:, None] & known[None, :]
    if group is not None:
        group = group.to(z.device)
        pos = pos | (group[:, None] == group[None, :])
    pos = pos & ~eye & valid[:, None] & valid[None, :]
    n_pos = pos.sum(dim=1)
    n_anchors = (n_pos > 0).sum()
    mine = rows[n_pos[rows] > 0]  # this rank's anchors: each has a valid positive, so no row is all -inf
    if mine.numel() == 0:
        return z.sum() * 0.0, n_anchors
    sim = (z[mine] @ z.T) / temperature
    sim = sim.masked_fill(eye[mine] | ~valid[None, :], float("-inf"))
    logp = torch.log_softmax(sim, dim=1)
    # masked_fill, not multiplication: logp is -inf on the diagonal and 0 * -inf is NaN
    pos_logp = logp.masked_fill(~pos[mine], 0.0).sum(dim=1)
    total = -(pos_logp / n_pos[mine]).sum()
    return total, n_anchors


def multi_rank_supcon(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    group: torch.Tensor | None = None,
    weights: list[float] | None = None,
) -> torch.Tensor:
    """Weighted mean of `supcon` over several label columns (M, R), e.g. family and genus."""
    if labels.dim() == 1:
        return supcon(z, labels, temperature, group)
    r = labels.shape[1]
    weights = weights or [1.0] * r
    total = sum(w * supcon(z, labels[:, j], temperature, group) for j, w in enumerate(weights))
    return total / float(sum(weights))


def normalize(z: torch.Tensor) -> torch.Tensor:
    return F.normalize(z, dim=-1)
