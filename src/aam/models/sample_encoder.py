"""Sample encoder: the ASV vectors of one sample -> one sample vector.

A sample's ASVs arrive sorted by count (slot k = the k-th most abundant kept ASV), so a learned
abundance-rank embedding (positions up to ``asv_limit``) tells the model their order. A pre-norm
transformer over the ASVs (padding slots masked) and attention pooling give the sample vector;
the per-ASV outputs feed the count head. A sample with no ASV gives a zero vector, never NaN.

Abundances (``log_abundance`` [B, K]: each slot's log relative abundance within the sample):
- ``abundance_input``: a small MLP of the log relative abundance is added to each ASV's vector.
  The rank alone is the same for every sample (slot k is always rank k), so without it the encoder
  cannot tell a dominant ASV at 60 % from one at 5 %; the forest sees exactly these proportions.
- ``pooling: abundance``: attention pooling whose scores start from the log relative abundance,
  i.e. the sample vector starts as the abundance-weighted mean of the ASV states (a linear map of
  the relative-abundance profile, what a linear model on proportions sees) and learns to reweight.
  ``pooling: attention`` is the original, abundance-blind pooling.
- ``abundance_bias``: every attention head of the sample transformer adds ``s_h x`` the key ASV's
  log relative abundance to its attention scores (``s_h`` learned, starting at 0). Abundance then
  decides where attention goes, not what the vectors hold: the ASV vectors stay those of the
  abundance-blind model (which generalized across subjects), and at initialization the model is
  exactly that model.
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
    abundance_input: bool = False
    pooling: str = "attention"  # attention | abundance
    abundance_bias: bool = False


class SampleEncoder(nn.Module):
    config_class = SampleEncoderConfig

    def __init__(self, config: SampleEncoderConfig):
        super().__init__()
        self.config = config
        if config.pooling not in ("attention", "abundance"):
            raise ValueError(f"pooling must be 'attention' or 'abundance', got {config.pooling!r}")
        self.rank = nn.Embedding(config.asv_limit, config.dim)
        self.abundance = None
        if config.abundance_input:
            self.abundance = nn.Sequential(nn.Linear(1, config.dim), nn.GELU(),
                                           nn.Linear(config.dim, config.dim))
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.dim, config.layers, config.heads, config.ff_dim, config.dropout,
                                       key_bias=config.abundance_bias)
        self.pool = AttentionPooling(config.dim)
        init_weights(self)
        if self.abundance is not None:
            # unit-scale first layer: log abundances span ~-9..0, and 0.02-scale weights would keep
            # the MLP linear and its output far below the ASV vectors'
            nn.init.normal_(self.abundance[0].weight, std=1.0)

    def forward(self, asv_vectors: torch.Tensor, mask: torch.Tensor,
                log_abundance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """asv_vectors [B, K, D], mask [B, K], log_abundance [B, K] (needed by abundance_input,
        abundance_bias and pooling: abundance) -> (sample vectors [B, D], ASV states [B, K, D])."""
        b, k, _ = asv_vectors.shape
        if k > self.config.asv_limit:
            raise ValueError(f"{k} ASVs per sample exceed the encoder's asv_limit {self.config.asv_limit}")
        needs = (self.abundance is not None or self.config.pooling == "abundance"
                 or self.config.abundance_bias)
        if needs and log_abundance is None:
            raise ValueError("this sample encoder uses abundances: pass log_abundance "
                             "(from the batch's asv_counts)")
        ranks = torch.arange(k, device=asv_vectors.device)
        x = asv_vectors + self.rank(ranks)[None]
        if self.abundance is not None:
            x = x + self.abundance(log_abundance[..., None].to(x.dtype))
        x = self.drop(x) * mask[..., None]
        states = self.transformer(x, mask, log_abundance if self.config.abundance_bias else None)
        prior = log_abundance if self.config.pooling == "abundance" else None
        return self.pool(states, mask, prior), states
