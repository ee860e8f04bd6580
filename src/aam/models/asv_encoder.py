"""ASV encoders: the nucleotide tokens of one ASV -> one vector.

:class:`ASVEncoder` (``model.asv_encoder: transformer``): a nucleotide transformer. Tokens
(see ``aam.data.nucleotides``): PAD 0, A C G T 1-4, N 5 (any ambiguity code), MASK 6.
Token embedding + learned positions (up to ``max_bp``), a pre-norm transformer over the
nucleotides of each ASV (padding masked), and attention pooling over the real nucleotides. An
all-padding row gives a zero vector, never NaN.

:class:`KmerEncoder` (``model.asv_encoder: kmer``): the ASV's k-mer profile (counts of each of the
4^k k-mers of A/C/G/T over its overlapping windows, divided by the number of windows; a window
holding N, MASK or padding is skipped) through a linear layer and a LayerNorm. Why: 16S ASVs share
most of their nucleotides, so a freshly initialised nucleotide transformer gives them near-identical
vectors (measured on IBD 2538: distinct ASVs differ by ~9 % of their norm, samples by ~1 %); two
ASVs that differ at one position in ten share only about half of their 6-mers, so their profiles,
and any random projection of them, differ from the start. It costs a weighted sum of the projection's
columns of its k-mers per distinct ASV, and has no nucleotide states (no masked-nucleotide objective).
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


def kmer_windows(tokens: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [N, L] (A C G T = 1-4) -> the code of each overlapping k-mer window [N, W] and its
    weight [N, W]: 1 / (the row's valid windows) for a window of A/C/G/T only, 0 for one holding N,
    MASK or padding (its code is then meaningless). k-mer code: the base-4 number of its nucleotides
    (A=0 ... T=3), first most significant. W = L - k + 1 (none when L < k). Built from k shifted
    slices of the row rather than unfolded windows: a third of the time on 1,000 ASVs of 150 nt."""
    n, length = tokens.shape
    width = length - k + 1
    if width < 1:
        empty = torch.zeros(n, 0, device=tokens.device)
        return empty.long(), empty
    base = (tokens - 1).clamp(0, 3)
    invalid = ((tokens < 1) | (tokens > 4)).to(torch.int32)
    codes = base[:, :width] * 4 ** (k - 1)
    invalid_in_window = invalid[:, :width].clone()
    for j in range(1, k):
        codes = codes + base[:, j:j + width] * 4 ** (k - 1 - j)
        invalid_in_window += invalid[:, j:j + width]
    valid = (invalid_in_window == 0).float()
    return codes, valid / valid.sum(1, keepdim=True).clamp(min=1.0)


def kmer_profile(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """tokens [N, L] -> k-mer frequencies [N, 4^k] (rows sum to 1; 0 without a valid window);
    codes as in :func:`kmer_windows`."""
    codes, weights = kmer_windows(tokens, k)
    out = torch.zeros(tokens.shape[0], 4**k, dtype=torch.float32, device=tokens.device)
    return out.scatter_add_(1, codes, weights)


class KmerEncoder(nn.Module):
    """k-mer profile -> Linear -> LayerNorm: one vector per ASV (zeros for an all-padding row)."""

    def __init__(self, dim: int, k: int = 6):
        super().__init__()
        if not 1 <= k <= 8:
            raise ValueError(f"kmer_size must lie in 1..8, got {k}")
        self.k = k
        self.proj = nn.Linear(4**k, dim)
        self.ln = nn.LayerNorm(dim)
        init_weights(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, L] -> vectors [N, D]: ``proj(kmer_profile(tokens))``, computed as the weighted
        sum of the projection's columns of each window's k-mer (``embedding_bag``). Why not the
        profile times the matrix: a 150-nt ASV holds at most 145 of the 4,096 6-mers, so the dense
        product multiplies 97 % zeros, forward and backward (`scripts/bench_kmer_encoder.py`)."""
        codes, weights = kmer_windows(tokens, self.k)
        has = (weights.sum(1, keepdim=True) > 0).to(weights.dtype)
        if codes.shape[1] == 0:
            return self.ln(self.proj.bias.expand(tokens.shape[0], -1)) * has
        # The transposed weight is copied once: embedding_bag on a strided view is 3x slower.
        summed = nn.functional.embedding_bag(codes, self.proj.weight.t().contiguous(),
                                             per_sample_weights=weights, mode="sum")
        return self.ln(summed + self.proj.bias) * has


def splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al. 2014) on a Python int: fixed hash multipliers that
    no library version can change (torch's generators promise no such stability)."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class SequenceHash(nn.Module):
    """tokens [N, L] -> one bucket in [0, buckets) per row, a function of the sequence alone.

    ``sum_i token_i * r_i mod buckets`` with fixed odd multipliers r_i < 2^31 (SplitMix64; another
    ``salt`` draws other multipliers, so other sequences share a bucket), so the
    same ASV gets the same bucket in every batch, table and model (padding, token 0, adds nothing,
    so the cache's width does not matter). With a power-of-two ``buckets`` two sequences that differ
    at one position never share a bucket (token differences of 1-6 times an odd r_i are never
    0 modulo 2^b); others share one with chance 1 / buckets.
    """

    def __init__(self, buckets: int, max_bp: int, salt: int = 0):
        super().__init__()
        if buckets < 1:
            raise ValueError(f"buckets must be positive, got {buckets}")
        if salt < 0:
            raise ValueError(f"salt must be >= 0, got {salt}")
        self.buckets = buckets
        # salt s draws the multipliers from SplitMix64 at (s << 32) + i: salt 0 is the original hash
        multipliers = [(splitmix64((salt << 32) + i) & 0x7FFFFFFF) | 1 for i in range(max_bp)]
        self.register_buffer("multipliers", torch.tensor(multipliers, dtype=torch.int64), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.multipliers.numel():
            raise ValueError(f"tokens are {length} wide, the hash covers {self.multipliers.numel()}")
        return (tokens.long() * self.multipliers[:length]).sum(1) % self.buckets
