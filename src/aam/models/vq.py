"""VQ-Transformer for fixed-length DNA blocks: encoder -> vector quantizer -> decoder.

The encoder embeds nucleotide tokens, runs transformer blocks and merges every `patch`
consecutive positions into one latent of `code_dim`; the quantizer replaces each latent by its
nearest codebook vector; the decoder maps the codes back to `patch` nucleotide logits each.
A block of L nucleotides thus becomes L / patch codes of log2(codebook_size) bits.

Vector quantizer (van den Oord et al. 2017, EMA variant of Razavi et al. 2019):
    code_i  = argmin_k ||z_i - e_k||^2
    N_k    <- decay * N_k + (1 - decay) * n_k            n_k: batch count of code k
    m_k    <- decay * m_k + (1 - decay) * sum_{i: code_i = k} z_i
    e_k     = m_k / N~_k,  N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j   (Laplace smoothing)
    loss    = beta * ||z - sg(e)||^2                     (commitment; the codebook learns by EMA)
    z_q     = z + sg(e - z)                               (straight-through gradient)
Dead codes (EMA count N_k below `dead_threshold` after an update) are restarted on random latents
of the current batch, with N_k = dead_threshold and m_k = dead_threshold * e_k (Jukebox's recipe).
Under data-parallel training (`VectorQuantizerEMA.data_parallel`) n_k and the latent sums are summed
over the processes before the update, and the codebook's data-dependent starts and restarts are drawn
by rank 0 from every process's latents: every process holds the same codebook, and it learns from the
global batch (W processes with batch B update it as one process with batch W x B).
`quantize=False` bypasses the quantizer: the same model is then a plain autoencoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from aam.models.layers import Transformer


@dataclass
class VQConfig:
    vocab_size: int = 10  # the character tokenizer's vocabulary
    block_len: int = 64
    patch: int = 4  # nucleotides per code
    dim: int = 64
    enc_layers: int = 2
    dec_layers: int = 2
    heads: int = 4
    ff_dim: int = 128
    dropout: float = 0.0
    code_dim: int = 32
    codebook_size: int = 256
    commitment: float = 0.25
    decay: float = 0.99
    eps: float = 1e-5
    dead_threshold: float = 0.5     # restart codes whose EMA count falls below
    quantize: bool = True

    def __post_init__(self) -> None:
        if self.block_len % self.patch:
            raise ValueError(f"block_len {self.block_len} is not a multiple of patch {self.patch}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not a multiple of heads {self.heads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VQConfig:
        """Build from a dict; an unknown key is a ValueError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown VQ model setting(s) {unknown}; known: {sorted(names)}")
        return cls(**d)


class VectorQuantizerEMA(nn.Module):
    def __init__(
        self,
        codebook_size: int,
        dim: int,
        commitment: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 0.05,
    ) -> None:
        super().__init__()
        self.codebook_size, self.dim = codebook_size, dim
        self.commitment, self.decay, self.eps, self.dead_threshold = commitment, decay, eps, dead_threshold
        embed = torch.randn(codebook_size, dim)
        self.register_buffer("embedding", embed)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("restarts", torch.tensor(0, dtype=torch.long))
        # Set by the training module for data-parallel training (every process runs every step, so
        # the collectives below are matched); off in one process and outside training.
        self.data_parallel = False

    def _from_rank0(self, *buffers: torch.Tensor) -> None:
        """Under data parallelism, every process takes rank 0's values of ``buffers``."""
        if self.data_parallel:
            for buffer in buffers:
                dist.broadcast(buffer, src=0)

    def _global_rows(self, flat: torch.Tensor, weight: float) -> torch.Tensor:
        """The global batch's latents: under data parallelism every process's rows in rank order (a
        padding batch's none; processes may hold different numbers), else ``flat``."""
        if not self.data_parallel:
            return flat
        mine = torch.tensor([len(flat) if weight else 0], device=flat.device)
        sizes = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, mine)
        counts = [int(s) for s in sizes]
        padded = flat.new_zeros((max(counts), flat.shape[1]))
        padded[: counts[dist.get_rank()]] = flat[: counts[dist.get_rank()]]
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])

    def distances(self, flat: torch.Tensor) -> torch.Tensor:
        return (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.embedding.T
            + self.embedding.pow(2).sum(1)[None, :]
        )

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialization: codes start on random latents of the first (global) batch,
        drawn by rank 0 under data parallelism."""
        idx = torch.randint(len(flat), (self.codebook_size,), generator=generator, device=flat.device)
        self.embedding.copy_(flat[idx])
        self.embed_sum.copy_(flat[idx])
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)
        self._from_rank0(self.embedding, self.embed_sum)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor, weight: float = 1.0) -> None:
        """One EMA step on the batch's latents; ``weight`` 0: a batch that only pads an epoch's last
        round under data parallelism (it adds nothing, but takes part in the sum over processes)."""
        onehot = F.one_hot(codes, self.codebook_size).to(flat.dtype) * weight
        n = onehot.sum(0)
        s = onehot.T @ flat
        if self.data_parallel:  # one all-reduce of [n | s]: the statistics of the global batch
            stats = torch.cat([n[:, None], s], dim=1)
            dist.all_reduce(stats)
            n, s = stats[:, 0], stats[:, 1:]
        self.cluster_size.mul_(self.decay).add_(n, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(s, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embedding.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor) -> int:
        """Restart dead codes on random rows of ``flat`` (the global batch's latents; rank 0 draws)."""
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            idx = torch.randint(len(flat), (n_dead,), device=flat.device)
            self.embedding[dead] = flat[idx]
            self.embed_sum[dead] = flat[idx] * self.dead_threshold
            self.cluster_size[dead] = self.dead_threshold
            self.restarts += n_dead
            # cluster_size is the same on every process (summed statistics), hence n_dead too
            self._from_rank0(self.embedding, self.embed_sum)
        return n_dead

    def forward(self, z: torch.Tensor, weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Quantize ``z``; in training also update the codebook (``weight``: see ema_update)."""
        shape = z.shape
        flat = z.reshape(-1, self.dim)
        if self.training and not bool(self.initialized):
            self._init_from(self._global_rows(flat.detach(), weight))
        codes = self.distances(flat.detach()).argmin(dim=1)
        quant = self.embedding[codes]  # the codebook before this batch's update (as Sonnet)
        if self.training:
            self.ema_update(flat.detach(), codes, weight)
            if bool((self.cluster_size < self.dead_threshold).any()):  # the same on every process
                self.restart_dead(self._global_rows(flat.detach(), weight))
        loss = self.commitment * F.mse_loss(flat, quant.detach())
        quant = flat + (quant - flat).detach()
        counts = torch.bincount(codes, minlength=self.codebook_size).to(flat.dtype)
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        return {
            "quantized": quant.view(shape),
            "loss": loss,
            "codes": codes.view(shape[:-1]),
            "perplexity": perplexity,
        }


class VQTransformer(nn.Module):
    config_class = VQConfig

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.config = cfg
        n_lat = cfg.block_len // cfg.patch
        self.tok = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos = nn.Embedding(cfg.block_len, cfg.dim)
        self.encoder = Transformer(cfg.dim, cfg.enc_layers, cfg.heads, cfg.ff_dim, cfg.dropout)
        self.to_code = nn.Linear(cfg.dim * cfg.patch, cfg.code_dim)
        self.quantizer = (
            VectorQuantizerEMA(
                cfg.codebook_size, cfg.code_dim, cfg.commitment, cfg.decay, cfg.eps, cfg.dead_threshold
            )
            if cfg.quantize
            else None
        )
        self.from_code = nn.Linear(cfg.code_dim, cfg.dim)
        self.lat_pos = nn.Embedding(n_lat, cfg.dim)
        self.decoder = Transformer(cfg.dim, cfg.dec_layers, cfg.heads, cfg.ff_dim, cfg.dropout)
        self.to_logits = nn.Linear(cfg.dim, cfg.patch * cfg.vocab_size)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token IDs -> (B, L / patch, code_dim) continuous latents."""
        b, t = ids.shape
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        x = self.encoder(x)  # blocks + final LayerNorm; fixed-length blocks, no padding
        x = x.reshape(b, t // self.config.patch, self.config.patch * self.config.dim)
        return self.to_code(x)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, L / patch, code_dim) -> (B, L, vocab) logits."""
        b, n, _ = latents.shape
        x = self.from_code(latents) + self.lat_pos(torch.arange(n, device=latents.device))
        logits = self.to_logits(self.decoder(x))
        return logits.view(b, n * self.config.patch, self.config.vocab_size)

    def forward(self, ids: torch.Tensor, weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Reconstruct ``ids``; ``weight``: the batch's weight in the codebook's update (0 for a
        padding batch under data parallelism)."""
        z = self.encode(ids)
        if self.quantizer is not None:
            q = self.quantizer(z, weight)
            latents, vq_loss, codes, ppl = q["quantized"], q["loss"], q["codes"], q["perplexity"]
        else:
            latents, vq_loss, codes = z, z.new_zeros(()), None
            ppl = z.new_tensor(float("nan"))
        logits = self.decode(latents)
        recon = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1))
        return {
            "logits": logits,
            "recon_loss": recon,
            "vq_loss": vq_loss,
            "loss": recon + vq_loss,
            "codes": codes,
            "perplexity": ppl,
        }

    def bits_per_block(self) -> float:
        return (self.config.block_len // self.config.patch) * math.log2(self.config.codebook_size)
