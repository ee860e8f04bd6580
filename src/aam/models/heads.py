"""Output heads of the AAM models.

- :class:`UniFracHead`: sample vectors -> a projection z; the predicted UniFrac distance of two
  samples is the Euclidean distance ||z_i - z_j||. The matrix is exactly symmetric with a zero
  diagonal; no sigmoid (a sigmoid distance collapses to 0.5), and the square root is taken of
  ``max(squared distance, eps)`` so its gradient is finite for identical embeddings. With
  ``affine`` the distance is ``offset + scale * ||z_i - z_j||`` (learned scalars; the offset starts at
  the first training batch's mean distance): the Euclidean geometry then only has to encode how
  pairs differ from a typical distance, not the typical distance itself (unweighted UniFrac of a
  study sits around 0.5-0.8 with a spread of ~0.1, which a plain Euclidean head must reach by
  pushing every pair apart; on IBD 2538 its validation R^2 stayed negative).
- :class:`NucleotideHead`: nucleotide states -> logits over the token vocabulary (masked-nucleotide
  objective).
- :class:`CountHead`: per-ASV states -> predicted relative abundance (a softmax over a sample's real
  ASVs; padding gets 0).
- :class:`TargetHead`: sample vector -> one value (regression, standardized target) or class logits.
"""

from __future__ import annotations

import torch
from torch import nn


class UniFracHead(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-8, affine: bool = False):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.eps = eps
        self.affine = affine
        if affine:
            self.scale = nn.Parameter(torch.ones(()))
            self.offset = nn.Parameter(torch.zeros(()))
            self.register_buffer("offset_ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_offset(self, mean_distance: float) -> None:
        """Start the offset at a typical distance (once; checkpoints remember that it was set)."""
        if self.affine and not bool(self.offset_ready):
            self.offset.fill_(float(mean_distance))
            self.offset_ready.fill_(True)

    def forward(self, sample_vectors: torch.Tensor) -> torch.Tensor:
        """[B, D] -> predicted distances [B, B] (symmetric, zero diagonal)."""
        z = self.proj(sample_vectors).float()
        diff = z[:, None, :] - z[None, :, :]
        sq = (diff * diff).sum(-1)
        off_diagonal = 1.0 - torch.eye(z.shape[0], device=z.device, dtype=z.dtype)
        dist = torch.sqrt(sq.clamp(min=self.eps))
        if self.affine:
            dist = self.offset + self.scale * dist
        return dist * off_diagonal


class NucleotideHead(nn.Module):
    def __init__(self, dim: int, vocab_size: int):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """[N, L, D] -> logits [N, L, V]."""
        return self.out(self.ln(states))


class CountHead(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.out = nn.Linear(dim, 1)

    def forward(self, asv_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, K, D], mask [B, K] -> log relative abundance [B, K] (-inf-free: padding gets a large
        negative value and probability 0)."""
        logits = self.out(asv_states).squeeze(-1).float()
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        return torch.log_softmax(logits, dim=-1)


class TargetHead(nn.Module):
    def __init__(self, dim: int, n_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, n_outputs)

    def forward(self, sample_vectors: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, n_outputs] (regression: n_outputs = 1)."""
        return self.out(self.drop(self.ln(sample_vectors)))
