"""The AAM models: SequenceEncoder (pretraining) and SequencePredictor (fine-tuning).

Batch inputs (see ``aam.data.datasets``): ``tokens`` [U, L] holds each DISTINCT ASV of the batch
once; ``asv_index`` [B, K] maps sample b's k-th slot (slots sorted by count) to a row of ``tokens``;
``asv_mask`` [B, K] marks real slots. The ASV encoder runs on the U distinct rows only and its
vectors are gathered back per slot, which gives the same result as encoding every slot (tested)
at a fraction of the cost. ``asv_counts`` [B, K] (the slots' rarefied counts) gives each slot's
relative abundance within its sample, for the abundance options of the sample encoder.

ASV vectors come from a nucleotide transformer (``asv_encoder: transformer``, the original), a k-mer
profile (``kmer``) or the sum of both (``both``). ``asv_dropout`` drops whole ASV slots of each
training sample (the remaining abundances renormalized), a regularizer for studies of a few hundred
samples: a sample without some of its ASVs is still the same sample.

SequenceEncoder = ASV encoder + sample encoder + UniFrac head + masked-nucleotide head.
SequencePredictor = a SequenceEncoder (the base, optionally frozen) + target head + count head
(+ with ``clr_readout`` a linear term on the sample's CLR abundances, coefficients from ASV vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aam.models.asv_encoder import (
    VOCAB_SIZE,
    ASVEncoder,
    ASVEncoderConfig,
    KmerEncoder,
    SequenceHash,
    splitmix64,
)
from aam.models.heads import CountHead, NucleotideHead, TargetHead, UniFracHead
from aam.models.sample_encoder import SampleEncoder, SampleEncoderConfig


@dataclass
class AAMConfig:
    """Sizes and options of the AAM models (defaults: the original TensorFlow AAM, which an older
    encoder's model.json without a key relies on; the config schema's defaults, which new runs get,
    are the configuration measured across the benchmark's tasks, docs/benchmark.md)."""

    embedding_dim: int = 128
    layers: int = 4  # transformer layers of each encoder
    heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    asv_layers: int | None = None  # override of `layers` for the nucleotide (ASV) encoder
    sample_layers: int | None = None  # override of `layers` for the sample encoder
    asv_norm: str = "none"  # none | batch: standardize ASV vectors over the batch's distinct ASVs
    asv_encoder: str = "transformer"  # transformer | kmer | both
    kmer_size: int = 6  # k of the k-mer profile encoder
    abundance_input: bool = False  # add an MLP of each slot's log relative abundance to its vector
    pooling: str = "attention"  # attention | abundance (scores start at the log relative abundance)
    abundance_bias: bool = False  # sample attention scores + learned scale x key log relative abundance
    clr_readout: bool = False  # fine-tuning: + the mean over slots of CLR x a linear map of the ASV vector
    asv_readout: str = "none"  # fine-tuning: none | presence | clr | log: + a coefficient per ASV sequence
    asv_readout_buckets: int = 65536  # hash buckets of asv_readout's coefficient table
    asv_readout_scope: str = "kept"  # kept: the asv_limit ASVs the encoder reads | all: every ASV present
    asv_readout_key: str = "sequence"  # what names an ASV's coefficient: its sequence | its feature ID
    asv_readout_salt: int = 0  # which hash maps ASVs to asv_readout's rows (0: the original one)
    # (a model.json without the key, written before the scope existed, read the kept ASVs)
    asv_dropout: float = 0.0  # training only: probability of dropping each ASV slot
    unifrac_affine: bool = False  # UniFrac head: offset + scale * Euclidean distance
    max_bp: int = 150  # set from the token cache
    asv_limit: int = 1024  # set from the run's data section
    vocab_size: int = VOCAB_SIZE
    # fine-tuning only
    task: str | None = None  # regression | classification
    n_outputs: int = 1  # 1 for regression, number of classes for classification
    head_dropout: float = 0.0

    def asv_config(self) -> ASVEncoderConfig:
        return ASVEncoderConfig(self.vocab_size, self.max_bp, self.embedding_dim,
                                self.asv_layers if self.asv_layers is not None else self.layers,
                                self.heads, self.ff_dim, self.dropout)

    def sample_config(self) -> SampleEncoderConfig:
        return SampleEncoderConfig(self.embedding_dim,
                                   self.sample_layers if self.sample_layers is not None else self.layers,
                                   self.heads, self.ff_dim, self.dropout, self.asv_limit,
                                   self.abundance_input, self.pooling, self.abundance_bias)

    def reads_every_asv(self) -> bool:
        """Whether the predictor needs every ASV of each sample (``asv_readout_scope: all``), not
        only the ``asv_limit`` kept slots: the batch's ``present_tokens`` and ``unifrac_counts``."""
        return self.asv_readout != "none" and self.asv_readout_scope == "all"

    def uses_abundance(self) -> bool:
        return (self.abundance_input or self.pooling == "abundance" or self.abundance_bias
                or self.clr_readout or self.asv_readout == "clr")


def predictor_inputs(config: AAMConfig, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The arguments of a SequencePredictor's (or an ensemble's) forward from a batch of
    :class:`aam.data.datasets.Collate`: the kept slots, and every ASV of the samples where the
    model reads them (``config.reads_every_asv()``; the batch then carries ``present_tokens``), and
    for an ensemble's linear member every feature's key and expected count (``table_keys``,
    ``expected_counts``: batches of an evaluation loader), for its forest member the keys and
    counts of the evaluation draw (``present_keys``, ``unifrac_counts``)."""
    inputs = (batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    if config.reads_every_asv():
        if "present_tokens" not in batch:
            raise ValueError("asv_readout_scope: all needs batches with present_tokens "
                             "(those of aam.data.datasets.Collate)")
        inputs += (batch["present_tokens"], batch["unifrac_counts"])
    if config.asv_readout != "none" and config.asv_readout_key == "feature":
        key = "present_keys" if config.reads_every_asv() else "feature_keys"
        if key not in batch:
            raise ValueError(f"asv_readout_key: feature needs batches with {key} "
                             "(those of aam.data.datasets.Collate given the feature IDs)")
        if len(inputs) == 4:
            inputs += (None, None)
        inputs += (batch[key],)
    linear, forest = getattr(config, "linear_features", 0), getattr(config, "forest_features", 0)
    if linear or forest:  # an ensemble's linear or forest member (aam.models.ensemble)
        if "expected_counts" not in batch:
            raise ValueError("a linear or forest member needs batches with table_keys and expected_counts "
                             "(those of aam.data.datasets.Collate given the feature IDs and expected_counts)")
        inputs += (None,) * (7 - len(inputs))  # the members' own present ASVs and keys, where they read them
        inputs += (batch["table_keys"], batch["expected_counts"]) if linear else (None, None)
        if forest:
            inputs += (batch["present_keys"], batch["unifrac_counts"])
    return inputs


def trim_padding(tokens: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row (e.g. 100-nt deblur ASVs in a 150-wide cache):
    the transformer then runs on the real length only. Outputs are unchanged: padding is masked."""
    real = (tokens != 0).any(dim=0)
    if tokens.shape[1] == 0 or bool(real[-1]):
        return tokens
    width = int(real.nonzero().max()) + 1 if bool(real.any()) else 1
    return tokens[:, :width]


class ASVNorm(nn.BatchNorm1d):
    """Batch normalization of ASV vectors over the batch's distinct ASVs (``asv_norm: batch``).

    16S ASVs share most of their nucleotides, so the pooled ASV vectors are nearly identical (they
    differ by ~1 % of their norm at initialization) and so are the sample vectors built from them:
    the UniFrac and target heads then see almost no difference between samples and learn slowly.
    Standardizing each feature over the distinct ASVs removes the shared part and gives the
    differences unit scale. Statistics come from the distinct ASVs (each once), so deduplicated and
    per-slot encoding agree in evaluation (running statistics); a batch with a single distinct ASV
    uses the running statistics.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)


class SequenceEncoder(nn.Module):
    """ASV encoder on the batch's distinct ASVs, sample encoder, UniFrac and nucleotide heads."""

    config_class = AAMConfig

    def __init__(self, config: AAMConfig):
        super().__init__()
        self.config = config
        if config.asv_encoder not in ("transformer", "kmer", "both"):
            raise ValueError(f"asv_encoder must be transformer, kmer or both, got {config.asv_encoder!r}")
        if not 0.0 <= config.asv_dropout < 1.0:
            raise ValueError(f"asv_dropout must lie in [0, 1), got {config.asv_dropout}")
        self.asv_encoder = ASVEncoder(config.asv_config()) if config.asv_encoder != "kmer" else None
        self.kmer_encoder = (KmerEncoder(config.embedding_dim, config.kmer_size)
                             if config.asv_encoder != "transformer" else None)
        if config.asv_norm not in ("none", "batch"):
            raise ValueError(f"asv_norm must be 'none' or 'batch', got {config.asv_norm!r}")
        self.asv_norm = ASVNorm(config.embedding_dim) if config.asv_norm == "batch" else nn.Identity()
        self.sample_encoder = SampleEncoder(config.sample_config())
        self.unifrac_head = UniFracHead(config.embedding_dim, affine=config.unifrac_affine)
        self.nucleotide_head = (NucleotideHead(config.embedding_dim, config.vocab_size)
                                if self.asv_encoder is not None else None)

    def asv_vectors(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens [U, L] -> ASV vectors [U, D] and nucleotide states [U, L', D] (None for kmer)."""
        tokens = trim_padding(tokens)
        vectors, states = None, None
        if self.asv_encoder is not None:
            vectors, states = self.asv_encoder(tokens)
        if self.kmer_encoder is not None:
            kmer = self.kmer_encoder(tokens)
            vectors = kmer if vectors is None else vectors + kmer
        return self.asv_norm(vectors), states

    def encode(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
               asv_counts: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """tokens [U, L], asv_index [B, K], asv_mask [B, K], asv_counts [B, K] (needed by the
        abundance options) -> sample embedding [B, D], ASV states [B, K, D], the mask used
        (after ASV dropout) and nucleotide states [U, L, D] (None without a nucleotide encoder)."""
        asv_vectors, nucleotide_states = self.asv_vectors(tokens)
        if self.training and self.config.asv_dropout > 0:
            asv_mask = drop_slots(asv_mask, self.config.asv_dropout)
        log_abundance = None
        if self.config.uses_abundance():
            if asv_counts is None:
                raise ValueError("this model uses abundances: pass asv_counts")
            log_abundance = log_relative_abundance(asv_counts, asv_mask)
        per_slot = asv_vectors[asv_index] * asv_mask[..., None]  # [B, K, D]
        sample, asv_states = self.sample_encoder(per_slot, asv_mask, log_abundance)
        return {"sample_embedding": sample, "asv_states": asv_states, "asv_mask": asv_mask,
                "nucleotide_states": nucleotide_states, "asv_vectors": per_slot,
                "log_abundance": log_abundance}

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                asv_counts: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        out = self.encode(tokens, asv_index, asv_mask, asv_counts)
        out["distances"] = self.unifrac_head(out["sample_embedding"])
        states = out["nucleotide_states"]
        out["nucleotide_logits"] = None if states is None else self.nucleotide_head(states)
        return out


def log_relative_abundance(counts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """counts [B, K], mask [B, K] -> log(count / the sample's total over its real slots) at real
    slots, 0 at padding (and at a real slot with count 0, which rarefied samples never have)."""
    counts = counts.float() * mask
    share = counts / counts.sum(-1, keepdim=True).clamp(min=1e-12)
    return torch.where(share > 0, torch.log(share.clamp(min=1e-30)), torch.zeros_like(share))


def centred_log_ratio(log_abundance: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log relative abundances [B, K] -> their CLR over each sample's real slots (log share minus
    the sample's mean log share), 0 at padding: the transform the CLR + L2 baseline fits on."""
    maskf = mask.to(log_abundance.dtype)
    mean = (log_abundance * maskf).sum(-1, keepdim=True) / maskf.sum(-1, keepdim=True).clamp(min=1.0)
    return (log_abundance - mean) * maskf


def readout_weights(kind: str, counts: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """x of ``asv_readout`` per sample and ASV ([B, N], 0 where ``mask`` is False): 1
    (``presence``), the CLR over the sample's masked-in ASVs (``clr``) or log(1 + count) (``log``);
    one definition for the kept slots and for every ASV of the sample."""
    if kind == "presence":
        return mask.float()
    if counts is None:
        raise ValueError(f"asv_readout: {kind} needs the ASVs' counts")
    if kind == "clr":
        return centred_log_ratio(log_relative_abundance(counts, mask), mask)
    return torch.log1p(counts.float()) * mask


def drop_slots(mask: torch.Tensor, rate: float) -> torch.Tensor:
    """Each real slot kept with probability 1 - rate; a sample's first (most abundant) slot is
    always kept, so no sample loses all its ASVs."""
    keep = torch.rand(mask.shape, device=mask.device) >= rate
    keep[:, 0] = True
    return mask & keep


class SequencePredictor(nn.Module):
    """A SequenceEncoder base with a target head (regression/classification) and a count head.

    ``freeze_base(True)`` stops gradients into the base and keeps it in eval mode (no dropout), so
    its weights stay exactly those loaded from pretraining.
    """

    config_class = AAMConfig

    def __init__(self, config: AAMConfig):
        super().__init__()
        if config.task not in ("regression", "classification"):
            raise ValueError(f"task must be regression or classification, got {config.task!r}")
        self.config = config
        self.base = SequenceEncoder(config)
        self.target_head = TargetHead(config.embedding_dim, config.n_outputs, config.head_dropout)
        self.count_head = CountHead(config.embedding_dim)
        self.clr_readout = None
        if config.clr_readout:
            # zero start: at initialization the model is exactly the one without the readout
            self.clr_readout = nn.Linear(config.embedding_dim, config.n_outputs, bias=False)
            nn.init.zeros_(self.clr_readout.weight)
        if config.asv_readout not in ("none", "presence", "clr", "log"):
            raise ValueError(f"asv_readout must be none, presence, clr or log, got {config.asv_readout!r}")
        if config.asv_readout_scope not in ("kept", "all"):
            raise ValueError(f"asv_readout_scope must be kept or all, got {config.asv_readout_scope!r}")
        if config.asv_readout_key not in ("sequence", "feature"):
            raise ValueError(f"asv_readout_key must be sequence or feature, got {config.asv_readout_key!r}")
        self.asv_readout = self.asv_hash = None
        if config.asv_readout != "none":
            if config.asv_readout_salt < 0:
                raise ValueError(f"asv_readout_salt must be >= 0, got {config.asv_readout_salt}")
            if config.asv_readout_key == "sequence":  # keyed by feature, the batch's keys name the rows
                self.asv_hash = SequenceHash(config.asv_readout_buckets, config.max_bp,
                                             config.asv_readout_salt)
            # zero start, as clr_readout: at initialization the model is the one without it
            self.asv_readout = nn.Embedding(config.asv_readout_buckets, config.n_outputs)
            nn.init.zeros_(self.asv_readout.weight)
        self.base_frozen = False

    def freeze_base(self, frozen: bool = True) -> None:
        self.base_frozen = frozen
        for p in self.base.parameters():
            p.requires_grad_(not frozen)
        self.base.train(self.training and not frozen)

    def train(self, mode: bool = True) -> SequencePredictor:
        super().train(mode)
        if self.base_frozen:
            self.base.eval()
        return self

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                asv_counts: torch.Tensor | None = None, present_tokens: torch.Tensor | None = None,
                present_counts: torch.Tensor | None = None,
                readout_keys: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """-> target [B] (regression) or logits [B, C], count_log_probs [B, K], sample_embedding,
        asv_mask (the slots used: ASV dropout removes some in training). ``present_tokens`` [F, L]
        and ``present_counts`` [B, F] (the batch's ``present_tokens`` and ``unifrac_counts``: every
        ASV of the rarefied samples) feed ``asv_readout_scope: all``; ``readout_keys`` (the batch's
        ``present_keys`` [F] with that scope, else its ``feature_keys`` [U]) feed
        ``asv_readout_key: feature``."""
        out = self.base.encode(tokens, asv_index, asv_mask, asv_counts)
        target = self.target_head(out["sample_embedding"]).float()
        if self.clr_readout is not None:
            target = target + self.linear_clr_term(out)
        if self.config.reads_every_asv():
            if present_tokens is None or present_counts is None:
                raise ValueError("asv_readout_scope: all needs present_tokens and present_counts")
            target = target + self.every_asv_readout_term(present_tokens, present_counts, readout_keys)
        elif self.asv_readout is not None:
            target = target + self.asv_readout_term(tokens, asv_index, out, asv_counts, readout_keys)
        if self.config.task == "regression":
            target = target.squeeze(-1)
        return {
            "target": target,
            "count_log_probs": self.count_head(out["asv_states"], out["asv_mask"]),
            "sample_embedding": out["sample_embedding"],
            "asv_mask": out["asv_mask"],
        }

    def linear_clr_term(self, encoded: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """``clr_readout``: (1 / n) sum_k clr_k w(v_k) over the n real slots, with v_k the ASV's
        own vector (k-mer profile, before the sample transformer) and w a learned linear map: a
        linear model on the CLR of the sample's kept ASVs, as the CLR + L2 baseline fits, whose
        coefficient for an ASV is a function of its sequence (so ASVs unseen in training get one).
        -> [B, n_outputs]."""
        mask = encoded["asv_mask"]
        clr = centred_log_ratio(encoded["log_abundance"].float(), mask)
        per_slot = self.clr_readout(encoded["asv_vectors"].float())  # [B, K, C]
        n = mask.sum(-1, keepdim=True).clamp(min=1).float()
        return (clr[..., None] * per_slot).sum(1) / n

    def readout_buckets(self, tokens: torch.Tensor | None, keys: torch.Tensor | None) -> torch.Tensor:
        """The ``asv_readout`` row of each ASV: a hash of its sequence (``tokens`` [N, L];
        ``asv_readout_key: sequence``) or of its feature ID (``keys`` [N], the batch's 63-bit
        :func:`aam.data.datasets.feature_id_keys`; ``asv_readout_key: feature``). Why the ID: in a
        closed-reference OTU table several OTUs often share one V4 sequence (41-67 % of the reads of
        five of the benchmark's studies), and a coefficient per sequence adds them up where a linear
        model tells them apart (docs/benchmark.md, "Fourteenth round"; it tied the default there)."""
        if self.config.asv_readout_key == "feature":
            if keys is None:
                raise ValueError("asv_readout_key: feature needs the ASVs' feature keys")
            if self.config.asv_readout_salt:  # another salt, other IDs share a row (63-bit keys stay >= 0)
                keys = keys ^ (splitmix64(self.config.asv_readout_salt) & 0x3FFFFFFFFFFFFFFF)
            return keys % self.config.asv_readout_buckets
        return self.asv_hash(tokens)

    def asv_readout_term(self, tokens: torch.Tensor, asv_index: torch.Tensor,
                         encoded: dict[str, torch.Tensor | None],
                         asv_counts: torch.Tensor | None = None,
                         keys: torch.Tensor | None = None) -> torch.Tensor:
        """``asv_readout`` (wide and deep): sum_k x_k u(ASV_k) over the sample's real slots, where
        u is a learned coefficient per ASV sequence (per class), looked up by the sequence's hash
        (SequenceHash), and x_k is 1 (``presence``), the slot's CLR within the sample (``clr``) or
        log(1 + its rarefied count) (``log``: abundance that a rare ASV cannot make large).
        Why: a linear model on which ASVs a sample holds (or on their CLR) names each ASV exactly,
        where the k-mer vectors of similar ASVs are alike; on the benchmark's folds such a model
        scored well above AAM on some tasks (docs/benchmark.md, "Tenth round"). An ASV unseen in
        training keeps its zero start, so it adds nothing. -> [B, n_outputs]."""
        mask = encoded["asv_mask"]
        coefficients = self.asv_readout(self.readout_buckets(tokens, keys))[asv_index].float()  # [B, K, C]
        weights = readout_weights(self.config.asv_readout, asv_counts, mask)
        return (weights[..., None] * coefficients).sum(1)

    def every_asv_readout_term(self, present_tokens: torch.Tensor, present_counts: torch.Tensor,
                               present_keys: torch.Tensor | None = None) -> torch.Tensor:
        """``asv_readout_scope: all``: the readout of :meth:`asv_readout_term` over every ASV of
        the rarefied sample (``present_counts`` [B, F] > 0 over the batch's F distinct ASVs, whose
        tokens are ``present_tokens`` [F, L]), not only the ``asv_limit`` the encoder reads. Why: on
        some tasks the signal lies in rare ASVs; a linear model on the presence of every ASV scored
        R^2 0.175 on the Claesson age task against 0.067 on each sample's top 128
        (docs/benchmark.md, "Eleventh round"). The CLR is over the sample's present ASVs (log
        count minus their mean; the relative abundance's normalizer cancels). -> [B, n_outputs]."""
        coefficients = self.asv_readout(self.readout_buckets(present_tokens, present_keys)).float()  # [F, C]
        return readout_weights(self.config.asv_readout, present_counts, present_counts > 0) @ coefficients
