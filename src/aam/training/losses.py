"""Losses and masking of the AAM objectives."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aam.models.asv_encoder import MASK, PAD

IGNORE = -100


def mask_nucleotides(tokens: torch.Tensor, rate: float = 0.15, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style masking of the real nucleotides of ``tokens`` [N, L].

    Each non-padding position is chosen with probability ``rate``; a chosen position becomes MASK
    (80 %), a random nucleotide A/C/G/T (10 %) or stays (10 %). Returns the masked tokens and the
    labels: the original token at chosen positions, ``IGNORE`` (-100) elsewhere.
    """
    real = tokens != PAD
    draw = torch.rand(tokens.shape, generator=generator, device="cpu").to(tokens.device)
    how = torch.rand(tokens.shape, generator=generator, device="cpu").to(tokens.device)
    random_nt = torch.randint(1, 5, tokens.shape, generator=generator, device="cpu").to(tokens.device)
    chosen = real & (draw < rate)
    labels = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))
    masked = torch.where(chosen & (how < 0.8), torch.full_like(tokens, MASK), tokens)
    masked = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_nt, masked)
    return masked, labels


def upper_triangle(matrix: torch.Tensor) -> torch.Tensor:
    """The entries i < j of a square matrix, as a vector."""
    i, j = torch.triu_indices(matrix.shape[0], matrix.shape[1], offset=1, device=matrix.device)
    return matrix[i, j]


def unifrac_loss(predicted: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pairs i < j of the batch (0 for a batch of one sample: no pair).

    A validation set whose size leaves one sample in its last batch must not read as a NaN loss,
    which the engine takes for divergence.
    """
    pred, target = upper_triangle(predicted).float(), upper_triangle(true).float()
    if pred.numel() == 0:
        return predicted.sum() * 0.0
    return F.mse_loss(pred, target)


def nucleotide_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the masked positions (0 if none was masked)."""
    chosen = labels != IGNORE
    if not bool(chosen.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[chosen].float(), labels[chosen])


def count_loss(log_probs: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL divergence of the predicted from the true relative abundance, averaged over samples.

    log_probs [B, K] (log-softmax over real slots), counts [B, K], mask [B, K]. 0 for a perfect
    prediction; samples without ASVs count 0.
    """
    counts = counts.float() * mask
    totals = counts.sum(-1, keepdim=True)
    p = counts / totals.clamp(min=1e-12)
    log_p = torch.log(p.clamp(min=1e-12))
    kl = torch.where(p > 0, p * (log_p - log_probs.float()), torch.zeros_like(p)).sum(-1)
    return kl.mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
               gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): class-weighted cross-entropy scaled by (1 - p_true)^gamma."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_pt = log_p.gather(1, target[:, None]).squeeze(1)
    loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if weight is not None:
        w = weight[target]
        return (loss * w).sum() / w.sum()
    return loss.mean()


def balanced_class_weights(class_counts: np.ndarray) -> np.ndarray:
    """n / (k * n_c): the weights of scikit-learn's ``class_weight='balanced'``."""
    counts = np.asarray(class_counts, dtype=np.float64)
    return counts.sum() / (len(counts) * np.maximum(counts, 1.0))


def r2_score(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Coefficient of determination of ``pred`` for ``true`` (nan for fewer than 2 values)."""
    pred, true = pred.double().flatten(), true.double().flatten()
    if true.numel() < 2:
        return float("nan")
    ss_res = ((true - pred) ** 2).sum()
    ss_tot = ((true - true.mean()) ** 2).sum()
    return float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")
