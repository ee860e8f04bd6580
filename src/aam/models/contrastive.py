"""Contrastive DNA embedder: a transformer or LSTM backbone, a pooling step, a projection head.

Tensors in, tensors out (no file access). `ContrastiveEmbedder.forward(input_ids, attention_mask)`
returns the pooled representation `h` (B, dim), used as the sequence embedding, and the
L2-normalized projection `z` (B, proj_dim), used by the contrastive loss (SimCLR's convention:
the loss acts on z, downstream tasks use h).

The transformer stack and attention pooling are the shared ones of `aam.models.layers` (also used
by the AAM models and the VQ-Transformer in `aam.models.vq`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from aam.models.layers import AttentionPooling, Transformer, init_weights


@dataclass
class ContrastiveConfig:
    vocab_size: int = 4101
    pad_id: int = 0
    backbone: str = "transformer"  # transformer | lstm
    pooling: str = "attention"  # cls | attention | mean
    dim: int = 128
    layers: int = 2
    heads: int = 4
    ff_dim: int = 256
    dropout: float = 0.1
    max_len: int = 160  # tokens, including [CLS]/[SEP]
    proj_hidden: int = 128
    proj_dim: int = 64

    def __post_init__(self) -> None:
        if self.backbone not in ("transformer", "lstm"):
            raise ValueError(f"backbone must be transformer or lstm, got {self.backbone!r}")
        if self.pooling not in ("cls", "attention", "mean"):
            raise ValueError(f"pooling must be cls, attention or mean, got {self.pooling!r}")
        if self.backbone == "transformer" and self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ContrastiveConfig:
        """Build from a dict; an unknown key is a ValueError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown contrastive model setting(s) {unknown}; known: {sorted(names)}")
        return cls(**d)


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class TransformerBackbone(nn.Module):
    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_id)
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.transformer = Transformer(cfg.dim, cfg.layers, cfg.heads, cfg.ff_dim, cfg.dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.drop(self.tok(ids) + self.pos(torch.arange(t, device=ids.device)))
        return self.transformer(x, mask)


class LSTMBackbone(nn.Module):
    """Bidirectional LSTM over packed sequences; output width `dim` (dim/2 per direction)."""

    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_id)
        self.lstm = nn.LSTM(
            cfg.dim,
            cfg.dim // 2,
            num_layers=cfg.layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.tok(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.ln(out)


class ContrastiveEmbedder(nn.Module):
    config_class = ContrastiveConfig

    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.config = cfg
        self.backbone = TransformerBackbone(cfg) if cfg.backbone == "transformer" else LSTMBackbone(cfg)
        self.pool = AttentionPooling(cfg.dim) if cfg.pooling == "attention" else None
        self.head = nn.Sequential(
            nn.Linear(cfg.dim, cfg.proj_hidden), nn.ReLU(), nn.Linear(cfg.proj_hidden, cfg.proj_dim)
        )
        if self.pool is not None:
            # Small attention scores at the start (normal(0, 0.02) weights): pooling begins close to a
            # mean over the real positions and sharpens as it learns.
            init_weights(self.pool)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled sequence representation h (B, dim)."""
        mask = attention_mask.bool()
        x = self.backbone(input_ids, mask)
        if self.config.pooling == "cls":
            return x[:, 0]  # the [CLS] token (LSTM: the first position's output)
        if self.config.pooling == "mean":
            return mean_pool(x, mask)
        return self.pool(x, mask)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(input_ids, attention_mask)
        z = F.normalize(self.head(h), dim=-1)
        return h, z
