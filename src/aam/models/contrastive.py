"""Contrastive DNA embedder: a transformer or LSTM backbone, a pooling step, a projection head.

Tensors in, tensors out (no file access). `ContrastiveEmbedder.forward(input_ids, attention_mask)`
returns the pooled representation `h` (B, dim), used as the sequence embedding, and the
L2-normalized projection `z` (B, proj_dim), used by the contrastive loss (SimCLR's convention:
the loss acts on z, downstream tasks use h).

The transformer blocks (pre-norm, `F.scaled_dot_product_attention` with a key padding mask) are
shared with the VQ-Transformer in `aam.models.vq`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


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


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :]  # True = attend
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class AttentionPooling(nn.Module):
    """A learned query attends over the valid positions: one vector per sequence.

    Sequences without any valid position pool to zeros instead of NaN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) / dim**0.5)
        self.key = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (self.key(x) @ self.query) / x.shape[-1] ** 0.5  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, dim=1).nan_to_num(0.0)
        return (w.unsqueeze(-1) * x).sum(dim=1)


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class TransformerBackbone(nn.Module):
    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_id)
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.heads, cfg.ff_dim, cfg.dropout) for _ in range(cfg.layers)
        )
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        x = self.drop(self.tok(ids) + self.pos(torch.arange(t, device=ids.device)))
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)


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
