"""AAM model options against independent computations: k-mer profiles (brute-force counting),
log relative abundances (by hand), abundance pooling (hand-worked weights), dedup = per-slot
encoding with every option on, ASV dropout, the base's learning-rate scale, a k-mer pretraining step."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.models.aam import (  # noqa: E402
    AAMConfig,
    SequenceEncoder,
    SequencePredictor,
    drop_slots,
    log_relative_abundance,
)
from aam.models.asv_encoder import KmerEncoder, kmer_profile  # noqa: E402
from aam.models.layers import AttentionPooling  # noqa: E402

torch.set_num_threads(1)
NUCLEOTIDES = "ACGT"


def tiny(**kw) -> AAMConfig:
    base = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.0, max_bp=12, asv_limit=8,
                asv_encoder="kmer", kmer_size=3, abundance_input=True, pooling="abundance")
    base.update(kw)
    return AAMConfig(**base)


def brute_force_profile(seq: str, k: int) -> np.ndarray:
    """Count k-mers of a string by looking each window up in the list of all 4^k k-mers."""
    kmers = ["".join(p) for p in itertools.product(NUCLEOTIDES, repeat=k)]
    counts = np.zeros(len(kmers))
    for i in range(len(seq) - k + 1):
        window = seq[i:i + k]
        if all(c in NUCLEOTIDES for c in window):
            counts[kmers.index(window)] += 1
    return counts / counts.sum() if counts.sum() else counts


def tokens_of(seqs: list[str], width: int) -> torch.Tensor:
    code = {"A": 1, "C": 2, "G": 3, "T": 4, "N": 5, "#": 6}  # '#': the MASK token
    out = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor([code[c] for c in s])
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_kmer_profile_equals_brute_force_count(k):
    rng = np.random.default_rng(k)
    weights = [0.23, 0.23, 0.23, 0.23, 0.04, 0.04]
    seqs = ["".join(rng.choice(list("ACGTN#"), p=weights, size=rng.integers(0, 15))) for _ in range(20)]
    seqs += ["ACGTACGT", "NNNN", "", "AC"]
    profile = kmer_profile(tokens_of(seqs, 16), k).numpy()
    expected = np.stack([brute_force_profile(s, k) for s in seqs])
    np.testing.assert_allclose(profile, expected, atol=1e-6)


def test_kmer_encoder_separates_one_substitution_and_zeroes_empty_rows():
    torch.manual_seed(0)
    enc = KmerEncoder(16, k=4)
    a = "ACGTTGCAAGCTTACGGATC"
    b = a[:10] + "T" + a[11:]  # one substitution
    vec = enc(tokens_of([a, b, ""], 24))
    assert not torch.allclose(vec[0], vec[1])
    assert torch.all(vec[2] == 0)


@pytest.mark.parametrize("k", [2, 4])
def test_kmer_encoder_is_the_projection_of_the_brute_force_profile(k):
    """The encoder sums the projection's columns per window (embedding_bag); it must equal the
    Linear layer applied to the profile counted by hand, gradients included."""
    torch.manual_seed(k)
    rng = np.random.default_rng(k)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=rng.integers(0, 20)))
            for _ in range(12)] + ["NNNN", "A", ""]
    tokens = tokens_of(seqs, 20)
    enc = KmerEncoder(8, k=k)
    out = enc(tokens)
    out.pow(2).sum().backward()
    grad = enc.proj.weight.grad.clone()
    enc.zero_grad()
    profile = torch.from_numpy(np.stack([brute_force_profile(s, k) for s in seqs])).float()
    has = torch.tensor([[float(profile[i].sum() > 0)] for i in range(len(seqs))])
    expected = enc.ln(enc.proj(profile)) * has
    expected.pow(2).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, enc.proj.weight.grad, rtol=1e-4, atol=1e-5)
    assert torch.all(out[-3:] == 0)  # no valid window: a zero vector


def test_log_relative_abundance_by_hand():
    counts = torch.tensor([[6.0, 3.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    expected = torch.tensor([[math.log(0.6), math.log(0.3), math.log(0.1), 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(log_relative_abundance(counts, mask), expected)


def test_abundance_pooling_with_zero_scores_is_the_abundance_weighted_mean():
    pool = AttentionPooling(2)
    torch.nn.init.zeros_(pool.score.weight)
    torch.nn.init.zeros_(pool.score.bias)
    x = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [4.0, 4.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, True, False]])
    prior = log_relative_abundance(torch.tensor([[6.0, 3.0, 1.0, 0.0]]), mask)
    # 0.6 * (1, 0) + 0.3 * (0, 2) + 0.1 * (4, 4) = (1.0, 1.0); the padding slot counts nothing
    torch.testing.assert_close(pool(x, mask, prior), torch.tensor([[1.0, 1.0]]))


@pytest.mark.parametrize("asv_encoder", ["kmer", "both"])
def test_dedup_encoding_equals_per_slot_encoding_with_abundance_options(asv_encoder):
    torch.manual_seed(0)
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    model = SequenceEncoder(tiny(asv_encoder=asv_encoder, layers=2)).eval()
    with torch.no_grad():
        dedup = model.encode(batch["tokens"], batch["asv_index"], batch["asv_mask"],
                             batch["asv_counts"])["sample_embedding"]
        b, k = batch["asv_index"].shape
        slot_tokens = batch["tokens"][batch["asv_index"]].reshape(b * k, -1)
        vectors, _ = model.asv_vectors(slot_tokens)
        vectors = vectors.reshape(b, k, -1) * batch["asv_mask"][..., None]
        counts = batch["asv_counts"].double()
        log_share = torch.log(counts / counts.sum(1, keepdim=True)).float()
        log_share[~batch["asv_mask"]] = 0
        plain, _ = model.sample_encoder(vectors, batch["asv_mask"], log_share)
    torch.testing.assert_close(dedup, plain, atol=1e-5, rtol=1e-5)


def test_abundances_change_the_sample_embedding_and_are_required():
    torch.manual_seed(0)
    model = SequenceEncoder(tiny()).eval()
    a = make_batch([[0, 1, 2]], counts=[[10, 5, 1]])
    b = make_batch([[0, 1, 2]], counts=[[6, 5, 5]])
    with torch.no_grad():
        ea = model.encode(a["tokens"], a["asv_index"], a["asv_mask"], a["asv_counts"])["sample_embedding"]
        eb = model.encode(b["tokens"], b["asv_index"], b["asv_mask"], b["asv_counts"])["sample_embedding"]
    assert (ea - eb).norm() > 1e-3 * ea.norm()
    with pytest.raises(ValueError, match="asv_counts"):
        model.encode(a["tokens"], a["asv_index"], a["asv_mask"])


def test_asv_dropout_keeps_the_first_slot_and_only_acts_in_training():
    torch.manual_seed(0)
    mask = torch.ones(400, 50, dtype=torch.bool)
    mask[:, 40:] = False
    kept = drop_slots(mask, 0.3)
    assert kept[:, 0].all() and not kept[:, 40:].any()
    assert abs(kept[:, 1:40].float().mean().item() - 0.7) < 0.02
    model = SequencePredictor(tiny(asv_dropout=0.5, task="classification", n_outputs=2))
    batch = make_batch([[0, 1, 2, 3], [2, 4]])
    model.eval()
    out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    assert torch.equal(out["asv_mask"], batch["asv_mask"])


def test_base_lr_scale_gives_the_base_a_smaller_learning_rate():
    from aam.training.aam_modules import FinetuneModule

    cfg = tiny(task="classification", n_outputs=2)
    module = FinetuneModule(cfg, {"lr": 0.01, "weight_decay": 0.1}, base_lr_scale=0.1)
    base_ids = {id(p) for p in module.model.base.parameters()}
    groups = module.parameter_groups()
    seen = 0
    for g in groups:
        in_base = {id(p) in base_ids for p in g["params"]}
        assert len(in_base) == 1
        assert g["lr"] == pytest.approx(0.001 if in_base.pop() else 0.01)
        assert g["weight_decay"] == (0.1 if all(p.ndim >= 2 for p in g["params"]) else 0.0)
        seen += len(g["params"])
    assert seen == len([p for p in module.parameters() if p.requires_grad])


def test_readout_lr_scale_moves_only_the_readout_that_many_times_farther():
    """Adam's first step moves every parameter with a non-zero gradient by its group's learning
    rate (m / sqrt(v) = sign(g)), so with equal gradients the readout must move 10x as far as at
    scale 1 and everything else exactly as far."""
    from aam.training.aam_modules import FinetuneModule

    settings = {"lr": 0.01, "weight_decay": 0.0, "schedule": "none", "optimizer": "adam"}
    moves = {}
    for scale in (1.0, 10.0):
        torch.manual_seed(0)
        cfg = tiny(task="classification", n_outputs=2, asv_readout="presence", asv_readout_buckets=64)
        module = FinetuneModule(cfg, settings, readout_lr_scale=scale)
        before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
        for p in module.parameters():
            if p.requires_grad:
                p.grad = torch.ones_like(p)
        module.configure_optimizers().step()
        moves[scale] = {n: (p.detach() - before[n]).abs().max().item()
                        for n, p in module.named_parameters() if p.requires_grad}
    readout = [n for n in moves[1.0] if n.startswith("model.asv_readout.")]
    assert readout == ["model.asv_readout.weight"]
    for name, moved in moves[1.0].items():
        expected = moved * (10.0 if name in readout else 1.0)
        assert moves[10.0][name] == pytest.approx(expected, rel=1e-4), name
    assert moves[1.0]["model.asv_readout.weight"] == pytest.approx(0.01, rel=1e-4)


def test_kmer_encoder_pretrains_without_a_nucleotide_objective():
    from helpers.aam_synthetic import balanced_newick

    from aam.data.unifrac import PhyloIndex
    from aam.training.aam_modules import PretrainModule

    torch.manual_seed(0)
    index = PhyloIndex.from_newick(balanced_newick(12), [f"f{i}" for i in range(12)])
    module = PretrainModule(tiny(), {"lr": 0.01}, index)
    assert module.model.nucleotide_head is None and module.model.asv_encoder is None
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5, 6], [1, 6, 7]])
    module.log = lambda *a, **k: None
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert module.model.kmer_encoder.proj.weight.grad.abs().sum() > 0


def test_pretraining_validation_skips_a_batch_of_one_sample():
    from helpers.aam_synthetic import balanced_newick

    from aam.data.unifrac import PhyloIndex
    from aam.training.aam_modules import PretrainModule

    index = PhyloIndex.from_newick(balanced_newick(12), [f"f{i}" for i in range(12)])
    module = PretrainModule(tiny(), {"lr": 0.01}, index)
    logged = []
    module.log = lambda name, value, **kw: logged.append((name, float(value)))
    module.eval()
    module.on_validation_epoch_start()
    module.validation_step(make_batch([[0, 1, 2]]), 0)  # one sample: no pair, nothing logged
    assert logged == []
    module.validation_step(make_batch([[0, 1, 2], [3, 4]]), 1)
    module.on_validation_epoch_end()
    assert all(np.isfinite(v) for _, v in logged) and any(n == "val/unifrac_loss" for n, _ in logged)
