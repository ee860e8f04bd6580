"""Building blocks shared by the AAM models: a pre-norm transformer and masked attention pooling.

Masks are boolean with True = a real position. Rows with no real position at all (an all-padding
ASV, an empty sample) never produce NaN: attention lets such a row attend to its first position and
pooling returns a zero vector for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``F.scaled_dot_product_attention`` and a key padding mask.

    With ``key_bias``, each head h adds ``s_h * b_j`` to the score of every query for key j, where
    ``b`` [N, T] is a per-key value given in the forward pass (e.g. the key ASV's log relative
    abundance) and ``s_h`` a learned scale that starts at 0: the attention then starts exactly as
    without the bias and learns how much weight the abundant keys get. The values attended to are
    unchanged, so abundance steers which ASVs a state looks at without becoming part of any vector.
    """

    def __init__(self, dim: int, heads: int, dropout: float, key_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)
        self.bias_scale = nn.Parameter(torch.zeros(heads)) if key_bias else None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                key_values: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.bias_scale is not None:
            if key_values is None:
                raise ValueError("this attention adds a key bias: pass key_values [N, T]")
            bias = self.bias_scale.view(1, -1, 1, 1) * key_values[:, None, None, :].to(q.dtype)
            if attn_mask is not None:  # boolean [N, 1, 1, T]: padding keys get -inf
                bias = bias.masked_fill(~attn_mask, float("-inf"))
            attn_mask = bias
        # No dropout on the attention weights: on CPU it forces SDPA's slow path and a mask as large
        # as the attention matrix; residual and feed-forward dropout remain.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(n, t, d)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, key_bias: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, key_bias)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                key_values: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask, key_values)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """A stack of pre-norm blocks and a final LayerNorm (``key_bias``: see :class:`SelfAttention`)."""

    def __init__(self, dim: int, layers: int, heads: int, ff_dim: int, dropout: float,
                 key_bias: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, ff_dim, dropout, key_bias) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                key_values: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, T, D], mask [N, T] (True = real; None = no padding), key_values [N, T] (the
        per-key bias values, for a key-bias transformer) -> [N, T, D]."""
        attn_mask = None if mask is None or bool(mask.all()) else key_padding_mask(mask)
        for block in self.blocks:
            x = block(x, attn_mask, key_values)
        return self.ln_f(x)


def key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """[N, T] real-position mask -> [N, 1, 1, T] attention mask; empty rows may see position 0."""
    safe = mask.clone()
    safe[:, 0] |= ~mask.any(dim=1)
    return safe[:, None, None, :]


class AttentionPooling(nn.Module):
    """Softmax-weighted sum over the real positions: [N, T, D], [N, T] -> [N, D] (zeros if empty).

    ``log_prior`` [N, T], when given, is added to the learned scores: with ``log_prior = log w`` the
    weights start (scores ~0 at initialisation) as ``w`` normalized over the real positions, e.g.
    each ASV's relative abundance, and the learned scores reweight from there.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, log_prior: torch.Tensor | None = None
                ) -> torch.Tensor:
        scores = self.score(x).squeeze(-1).float()
        if log_prior is not None:
            scores = scores + log_prior.float()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * mask  # all-masked rows: uniform * 0 = 0
        return torch.einsum("nt,ntd->nd", weights.to(x.dtype), x)


def init_weights(module: nn.Module) -> None:
    """GPT-style initialisation: normal(0, 0.02) for linear and embedding weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
