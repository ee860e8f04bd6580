"""Sample encoder: the ASV vectors of one sample -> one sample vector.

A sample's ASVs arrive sorted by count (slot k = the k-th most abundant kept ASV), so a learned
abundance-rank embedding (positions up to ``asv_limit``) tells the model their order. A pre-norm
transformer over the ASVs (padding slots masked) and attention pooling give the sample vector;
the per-ASV outputs feed the count head. A sample with no ASV gives a zero vector, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aam.models.layers import AttentionPooling, Transformer, init_weights


@dataclass
class SampleEncoderConfig:
    dim: int = 128
    layers: int = 4
    heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    asv_limit: int = 1024


class SampleEncoder(nn.Module):
    config_class = SampleEncoderConfig

    def __init__(self, config: SampleEncoderConfig):
        super().__init__()
        self.config = config
        self.rank = nn.Embedding(config.asv_limit, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.dim, config.layers, config.heads, config.ff_dim, config.dropout)
        self.pool = AttentionPooling(config.dim)
        init_weights(self)

    def forward(self, asv_vectors: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """asv_vectors [B, K, D], mask [B, K] -> (sample vectors [B, D], ASV states [B, K, D])."""
        b, k, _ = asv_vectors.shape
        if k > self.config.asv_limit:
            raise ValueError(f"{k} ASVs per sample exceed the encoder's asv_limit {self.config.asv_limit}")
        ranks = torch.arange(k, device=asv_vectors.device)
        x = self.drop(asv_vectors + self.rank(ranks)[None]) * mask[..., None]
        states = self.transformer(x, mask)
        return self.pool(states, mask), states
