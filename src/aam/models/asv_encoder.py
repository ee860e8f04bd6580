"""ASV encoder: the nucleotide tokens of one ASV -> one vector.

Tokens (see ``aam.data.nucleotides``): PAD 0, A C G T 1-4, N 5 (any ambiguity code), MASK 6.
Token embedding + learned positions (up to ``max_bp``), a pre-norm transformer over the
nucleotides of each ASV (padding masked), and attention pooling over the real nucleotides. An
all-padding row gives a zero vector, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aam.models.layers import AttentionPooling, Transformer, init_weights

PAD, MASK, VOCAB_SIZE = 0, 6, 7


@dataclass
class ASVEncoderConfig:
    vocab_size: int = VOCAB_SIZE
    max_bp: int = 150
    dim: int = 128
    layers: int = 4
    heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1


class ASVEncoder(nn.Module):
    config_class = ASVEncoderConfig

    def __init__(self, config: ASVEncoderConfig):
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.dim)
        self.pos = nn.Embedding(config.max_bp, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.transformer = Transformer(config.dim, config.layers, config.heads, config.ff_dim, config.dropout)
        self.pool = AttentionPooling(config.dim)
        init_weights(self)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [N, L] int -> (vectors [N, D], nucleotide states [N, L, D])."""
        n, length = tokens.shape
        if length > self.config.max_bp:
            raise ValueError(f"tokens are {length} wide, the encoder's max_bp is {self.config.max_bp}")
        mask = tokens != PAD
        pos = torch.arange(length, device=tokens.device)
        x = self.drop(self.tok(tokens) + self.pos(pos)[None])
        states = self.transformer(x, mask)
        return self.pool(states, mask), states
