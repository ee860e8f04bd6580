"""Options toward generalization (issue 24), each against something independent:

- abundance as an attention bias: the attention equals a brute-force softmax(QK^T / sqrt(d) + s_h b_j) V
  computed by hand, and with its scales at 0 the sample encoder is exactly the abundance-blind one;
- the CLR readout: its term equals a linear model on CLR abundances computed by hand (numpy CLR of
  each sample's counts, each ASV's coefficient from its own vector), and at its zero start the
  predictor is exactly the one without it;
- the per-ASV readout: its term equals a linear model by hand (each sample's sum over its ASVs of a
  coefficient looked up by the ASV's own sequence, times 1 or the ASV's CLR), the same sequence
  gets the same coefficient in any batch, single-base variants never share one, an unseen ASV
  adds nothing, and regression calibration scales it with the head;
- seed ensembles: the ensemble's prediction is the mean of its members' (class probabilities,
  regression values), and `aam finetune` with ``ensemble: 2`` holds exactly the two models that
  single runs with seeds s and s + 1 train, its predictions their mean;
- regression calibration: `aam finetune` with ``calibrate: true`` predicts k (z - c) of the same
  model trained without it, c and k recomputed with numpy;
- inner-CV selection: a hand-worked choice; inner folds hold only training samples, grouped; and
  `aam finetune` with ``select`` makes the same choice, with the same inner scores, when the test
  samples' targets are replaced by garbage (it never reads them);
- ``monitor: auto``: each stage's own metric, never reaching fit() unresolved; fine-tuning's
  ``max_epochs``, ``patience`` and ``restore_best`` at ``auto`` train exactly the documented run of
  each task (classification 30 epochs, last weights; regression 10, early stopping, best epoch).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.cli import main  # noqa: E402
from aam.errors import InputError  # noqa: E402
from aam.io.model_files import load_model  # noqa: E402
from aam.models.aam import AAMConfig, SequencePredictor  # noqa: E402
from aam.models.ensemble import EnsemblePredictor  # noqa: E402
from aam.models.layers import SelfAttention, key_padding_mask  # noqa: E402
from aam.models.sample_encoder import SampleEncoder, SampleEncoderConfig  # noqa: E402
from aam.training import selection  # noqa: E402
from aam.training.engine import TrainerSettings  # noqa: E402

torch.set_num_threads(1)


def tiny(**kw) -> AAMConfig:
    base = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.0, max_bp=12, asv_limit=8,
                asv_encoder="kmer", kmer_size=3)
    base.update(kw)
    return AAMConfig(**base)


# ------------------------------------------------------------------------------ abundance as a bias
def test_key_bias_attention_equals_a_hand_computed_softmax():
    torch.manual_seed(0)
    n, t, d, h = 2, 5, 8, 2
    attn = SelfAttention(d, h, 0.0, key_bias=True).eval()
    with torch.no_grad():
        attn.bias_scale.copy_(torch.tensor([0.7, -1.3]))
    x = torch.randn(n, t, d)
    values = torch.randn(n, t)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        got = attn(x, key_padding_mask(mask), values)
        # by hand: per head, scores = q k^T / sqrt(d_h) + s_h * b_j, padding keys excluded
        w, bias = attn.qkv.weight, attn.qkv.bias
        qkv = x @ w.T + bias
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        dh = d // h
        heads = []
        for head in range(h):
            sl = slice(head * dh, (head + 1) * dh)
            scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(dh)
            scores = scores + attn.bias_scale[head] * values[:, None, :]
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
            heads.append(torch.softmax(scores, -1) @ v[..., sl])
        want = attn.proj(torch.cat(heads, -1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_abundance_bias_starts_as_the_abundance_blind_encoder_and_then_uses_abundance():
    torch.manual_seed(0)
    cfg = dict(dim=16, layers=2, heads=2, ff_dim=32, dropout=0.0, asv_limit=8)
    blind = SampleEncoder(SampleEncoderConfig(**cfg)).eval()
    biased = SampleEncoder(SampleEncoderConfig(**cfg, abundance_bias=True)).eval()
    missing, unexpected = biased.load_state_dict(blind.state_dict(), strict=False)
    assert not unexpected and all("bias_scale" in m for m in missing) and missing
    x = torch.randn(3, 6, 16)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 4:] = False
    log_ab = torch.log(torch.softmax(torch.randn(3, 6), -1)) * mask
    with torch.no_grad():
        torch.testing.assert_close(biased(x, mask, log_ab)[0], blind(x, mask)[0])
        for block in biased.transformer.blocks:
            block.attn.bias_scale.fill_(1.0)
        moved = biased(x, mask, log_ab)[0]
        other = biased(x, mask, torch.log(torch.full((3, 6), 1 / 6)) * mask)[0]
    assert (moved - blind(x, mask)[0]).norm() > 1e-3
    assert (moved - other).norm() > 1e-3  # the output depends on the abundances
    with pytest.raises(ValueError, match="abundances"):
        biased(x, mask)


# --------------------------------------------------------------------------------- CLR readout
def test_clr_readout_is_a_linear_model_on_clr_abundances_and_starts_at_zero():
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    args = (batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    torch.manual_seed(3)
    plain = SequencePredictor(tiny(task="classification", n_outputs=3)).eval()
    torch.manual_seed(3)
    readout = SequencePredictor(tiny(task="classification", n_outputs=3, clr_readout=True)).eval()
    with torch.no_grad():
        torch.testing.assert_close(readout(*args)["target"], plain(*args)["target"])
        readout.clr_readout.weight.normal_()
        got = readout(*args)["target"] - plain(*args)["target"]
        vectors, _ = readout.base.asv_vectors(batch["tokens"])
    weight = readout.clr_readout.weight.detach().numpy()
    for b in range(4):
        real = batch["asv_mask"][b].numpy()
        counts = batch["asv_counts"][b].numpy()[real].astype(np.float64)
        clr = np.log(counts) - np.log(counts).mean()  # CLR of the sample's kept ASVs, by hand
        coefficients = vectors[batch["asv_index"][b][real]].numpy() @ weight.T  # [n, C]
        want = (clr[:, None] * coefficients).sum(0) / real.sum()
        np.testing.assert_allclose(got[b].numpy(), want, atol=1e-5)
    assert np.abs(got.numpy()).max() > 1e-3
    # a sample with one ASV has CLR 0: the readout adds nothing there
    np.testing.assert_allclose(got[2].numpy(), 0.0, atol=1e-6)


# -------------------------------------------------------------------------------- per-ASV readout
def readout_weights(kind: str, counts) -> np.ndarray:
    """x_k of asv_readout by hand: 1, the CLR over the sample's ASVs, or log(1 + count)."""
    counts = np.asarray(counts, dtype=np.float64)
    if kind == "presence":
        return np.ones(counts.size)
    if kind == "clr":
        return np.log(counts) - np.log(counts).mean()
    return np.log1p(counts)


@pytest.mark.parametrize("kind", ["presence", "clr", "log"])
def test_asv_readout_is_a_linear_model_on_each_asv_by_its_sequence(kind):
    samples, counts = [[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], [[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]]
    batch = make_batch(samples, counts=counts)
    args = (batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    torch.manual_seed(3)
    plain = SequencePredictor(tiny(task="classification", n_outputs=3)).eval()
    torch.manual_seed(3)
    readout = SequencePredictor(tiny(task="classification", n_outputs=3, asv_readout=kind)).eval()
    # each feature's coefficients, by its sequence (make_batch's feature f has one fixed sequence)
    features = sorted({f for s in samples for f in s})
    rng = np.random.default_rng(1)
    coefficient = {f: rng.normal(size=3) for f in features}
    with torch.no_grad():
        torch.testing.assert_close(readout(*args)["target"], plain(*args)["target"])  # zero start
        buckets = readout.asv_hash(batch["tokens"])
        assert len(set(buckets.tolist())) == len(features)  # no two of these sequences share a row
        for row, f in enumerate(features):
            readout.asv_readout.weight[buckets[row]] = torch.tensor(coefficient[f], dtype=torch.float32)
        got = (readout(*args)["target"] - plain(*args)["target"]).numpy()
    for b, (sample, sample_counts) in enumerate(zip(samples, counts, strict=True)):
        x = readout_weights(kind, sample_counts)
        want = sum(x[j] * coefficient[f] for j, f in enumerate(sample))
        np.testing.assert_allclose(got[b], want, atol=1e-5)
    # the same ASVs in another batch (other rows, other order) get the same coefficients
    other = make_batch([[7, 1], [3]], counts=[[1, 3], [5]])
    other_args = (other["tokens"], other["asv_index"], other["asv_mask"], other["asv_counts"])
    with torch.no_grad():
        moved = readout(*other_args)["target"] - plain(*other_args)["target"]
    x = readout_weights(kind, [1, 3])
    np.testing.assert_allclose(moved[0].numpy(), x[0] * coefficient[7] + x[1] * coefficient[1], atol=1e-5)
    np.testing.assert_allclose(moved[1].numpy(), readout_weights(kind, [5])[0] * coefficient[3], atol=1e-5)
    # an ASV no coefficient was learned for (a zero row) adds nothing
    unseen = make_batch([[8, 9]], counts=[[4, 1]])
    with torch.no_grad():
        torch.testing.assert_close(readout(unseen["tokens"], unseen["asv_index"], unseen["asv_mask"],
                                           unseen["asv_counts"])["target"],
                                   plain(unseen["tokens"], unseen["asv_index"], unseen["asv_mask"],
                                         unseen["asv_counts"])["target"])


@pytest.mark.parametrize("kind", ["presence", "clr", "log"])
def test_asv_readout_over_every_asv_sums_the_rare_ones_the_encoder_does_not_read(kind):
    from aam.data.datasets import Collate, SampleItem
    from aam.models.aam import predictor_inputs

    rng = np.random.default_rng(5)
    tokens = rng.integers(1, 5, size=(12, 12)).astype(np.uint8)  # 12 features of 12 nt
    # each sample: every rarefied feature with its count; the encoder keeps the 2 most abundant
    present = [([3, 7, 1, 10], [8, 5, 2, 1]), ([7, 2], [6, 6]), ([0, 4, 5, 9, 11], [9, 4, 3, 3, 1])]
    items = [SampleItem(i, np.array(f[:2]), np.array(c[:2], dtype=np.int64), np.array(f),
                        np.array(c, dtype=np.int64), 0) for i, (f, c) in enumerate(present)]
    batch = Collate(tokens)(items)
    config = tiny(task="classification", n_outputs=2, asv_readout=kind, asv_readout_scope="all")
    torch.manual_seed(3)
    plain = SequencePredictor(tiny(task="classification", n_outputs=2)).eval()
    torch.manual_seed(3)
    every = SequencePredictor(config).eval()
    coefficient = {f: rng.normal(size=2) for f in range(12)}
    with torch.no_grad():
        buckets = every.asv_hash(torch.as_tensor(tokens, dtype=torch.long))
        assert len(set(buckets.tolist())) == 12
        for f in range(12):
            every.asv_readout.weight[buckets[f]] = torch.tensor(coefficient[f], dtype=torch.float32)
        got = (every(*predictor_inputs(config, batch))["target"]
               - plain(*predictor_inputs(plain.config, batch))["target"]).numpy()
    for b, (features, counts) in enumerate(present):
        x = readout_weights(kind, counts)  # over every ASV, by hand
        want = sum(x[j] * coefficient[f] for j, f in enumerate(features))
        np.testing.assert_allclose(got[b], want, atol=1e-5)
    # the kept scope sums the encoder's 2 slots only: the same coefficients give another term
    kept = SequencePredictor(tiny(task="classification", n_outputs=2, asv_readout=kind)).eval()
    kept.load_state_dict(every.state_dict())
    with torch.no_grad():
        kept_term = (kept(*predictor_inputs(kept.config, batch))["target"]
                     - plain(*predictor_inputs(plain.config, batch))["target"]).numpy()
    x = readout_weights(kind, [8, 5])
    np.testing.assert_allclose(kept_term[0], x[0] * coefficient[3] + x[1] * coefficient[7], atol=1e-5)
    assert not np.allclose(kept_term[0], got[0])
    # a batch without every ASV's tokens is refused, not read as the kept scope
    with pytest.raises(ValueError, match="present_tokens"):
        predictor_inputs(config, {k: v for k, v in batch.items() if k != "present_tokens"})


@pytest.mark.parametrize("scope", ["all", "kept"])
def test_asv_readout_keyed_by_feature_tells_apart_otus_that_share_a_sequence(scope):
    """``asv_readout_key: feature``: two OTUs with one V4 sequence (as in closed-reference tables)
    get a coefficient each, where the sequence-keyed readout gives them one; the key is a function
    of the feature ID alone, so a cache that holds the same features in another order gives the
    same output."""
    from aam.data.datasets import Collate, SampleItem, feature_id_keys
    from aam.models.aam import predictor_inputs

    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 5, size=(6, 12)).astype(np.uint8)
    tokens[1] = tokens[0]  # otu_a and otu_b share their sequence
    ids = ["otu_a", "otu_b", "otu_c", "otu_d", "otu_e", "otu_f"]
    present = [([0, 1, 2], [5, 3, 1]), ([1, 3], [6, 2]), ([0, 4, 5], [4, 4, 1])]

    def batch_of(order):
        """The batch of ``present`` from a cache whose row r holds feature order[r]."""
        row_of = {f: r for r, f in enumerate(order)}
        items = [SampleItem(i, np.array([row_of[f] for f in fs]), np.array(cs, dtype=np.int64),
                            np.array([row_of[f] for f in fs]), np.array(cs, dtype=np.int64), 0)
                 for i, (fs, cs) in enumerate(present)]
        return Collate(tokens[order], keys=feature_id_keys([ids[f] for f in order]))(items)

    batch = batch_of(list(range(6)))
    by_feature = tiny(task="classification", n_outputs=2, asv_readout="presence", asv_readout_scope=scope,
                      asv_readout_key="feature")
    torch.manual_seed(3)
    plain = SequencePredictor(tiny(task="classification", n_outputs=2)).eval()
    torch.manual_seed(3)
    model = SequencePredictor(by_feature).eval()
    buckets = model.readout_buckets(None, batch["present_keys"])
    assert len(set(buckets.tolist())) == 6  # one row per OTU, otu_a and otu_b apart
    coefficient = {f: rng.normal(size=2) for f in range(6)}
    with torch.no_grad():
        for row, f in enumerate(batch["unifrac_feature_idx"].tolist()):
            model.asv_readout.weight[buckets[row]] = torch.tensor(coefficient[f], dtype=torch.float32)
        base = plain(*predictor_inputs(plain.config, batch))["target"]
        got = (model(*predictor_inputs(by_feature, batch))["target"] - base).numpy()
    for b, (features, _) in enumerate(present):  # presence: the sum of the sample's coefficients
        np.testing.assert_allclose(got[b], sum(coefficient[f] for f in features), atol=1e-5)
    # the same features in another cache order: the same outputs
    other = batch_of([4, 2, 5, 0, 3, 1])
    with torch.no_grad():
        moved = (model(*predictor_inputs(by_feature, other))["target"]
                 - plain(*predictor_inputs(plain.config, other))["target"]).numpy()
    np.testing.assert_allclose(moved, got, atol=1e-5)
    # keyed by sequence, otu_a and otu_b share one coefficient: sample 0's term counts it twice
    by_sequence = SequencePredictor(tiny(task="classification", n_outputs=2, asv_readout="presence",
                                         asv_readout_scope=scope)).eval()
    by_sequence.load_state_dict(model.state_dict())
    with torch.no_grad():
        rows = by_sequence.readout_buckets(torch.as_tensor(tokens, dtype=torch.long), None)
        assert rows[0] == rows[1]
        by_sequence.asv_readout.weight.zero_()
        by_sequence.asv_readout.weight[rows[0]] = 1.0
        term = (by_sequence(*predictor_inputs(by_sequence.config, batch))["target"] - base).numpy()
    np.testing.assert_allclose(term[0], [2.0, 2.0], atol=1e-5)
    # a batch without the keys is refused, not read by sequence
    key = "present_keys" if scope == "all" else "feature_keys"
    with pytest.raises(ValueError, match=key):
        predictor_inputs(by_feature, {k: v for k, v in batch.items() if k != key})


def test_sequence_hash_keeps_single_base_variants_apart_and_ignores_padding():
    from aam.models.asv_encoder import SequenceHash

    hasher = SequenceHash(256, 150)  # few buckets: a weak hash would collide here
    rng = np.random.default_rng(0)
    base = torch.as_tensor(rng.integers(1, 5, size=150))
    variants = [base]
    for i in range(150):
        for token in range(1, 6):
            if token != int(base[i]):
                v = base.clone()
                v[i] = token
                variants.append(v)
    buckets = hasher(torch.stack(variants))
    assert (buckets[1:] != buckets[0]).all()  # every one-base variant (A/C/G/T/N) differs from the original
    padded = torch.zeros(1, 150, dtype=torch.long)
    padded[0, :100] = base[:100]
    assert hasher(padded) == hasher(base[None, :100])  # the cache's width does not matter
    assert SequenceHash(256, 150)(torch.stack(variants)).equal(buckets)  # fixed across models


def test_a_salt_draws_another_hash_and_salt_0_is_the_original():
    """asv_readout_salt: 0 gives the original multipliers (SplitMix64 at 0, 1, 2, ... computed here
    by hand for position 0), another salt other buckets for the same sequences, so other pairs of
    sequences share one; each salt is fixed across models; single-base variants stay apart."""
    from aam.models.asv_encoder import SequenceHash

    x = 0x9E3779B97F4A7C15  # SplitMix64 of 0, by its definition (Steele et al. 2014)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    first = ((x ^ (x >> 31)) & 0x7FFFFFFF) | 1
    one_base = torch.tensor([[1] + [0] * 9])
    assert SequenceHash(2**31, 10)(one_base).item() == first  # token 1 at position 0: its multiplier
    assert SequenceHash(2**31, 10, salt=0)(one_base).item() == first
    rng = np.random.default_rng(1)
    seqs = torch.as_tensor(rng.integers(1, 5, size=(400, 150)))
    original, salted = SequenceHash(64, 150)(seqs), SequenceHash(64, 150, salt=1)(seqs)
    assert (original != salted).float().mean() > 0.9  # 1/64 agree by chance
    same = (original[:, None] == original[None, :]) & ~torch.eye(400, dtype=torch.bool)
    same_salted = (salted[:, None] == salted[None, :]) & ~torch.eye(400, dtype=torch.bool)
    assert same.any() and not torch.equal(same, same_salted)  # other pairs collide
    assert SequenceHash(64, 150, salt=1)(seqs).equal(salted)
    variants = seqs[:1].repeat(4, 1)
    variants[1:, 7] = torch.tensor([t for t in range(1, 5) if t != int(seqs[0, 7])])
    assert len(set(SequenceHash(256, 150, salt=3)(variants).tolist())) == 4
    with pytest.raises(ValueError, match="salt"):
        SequenceHash(64, 150, salt=-1)


def test_a_salted_readout_keyed_by_feature_maps_ids_to_other_rows_and_round_trips(tmp_path):
    from aam.io.model_files import export_model, load_model

    keys = torch.tensor([5, 2**62 + 7, 123456789])
    plain = SequencePredictor(tiny(task="regression", n_outputs=1, asv_readout="presence",
                                   asv_readout_key="feature", asv_readout_buckets=1024))
    salted = SequencePredictor(tiny(task="regression", n_outputs=1, asv_readout="presence",
                                    asv_readout_key="feature", asv_readout_buckets=1024, asv_readout_salt=2))
    rows = plain.readout_buckets(None, keys)
    assert rows.tolist() == [5, (2**62 + 7) % 1024, 123456789 % 1024]
    moved = salted.readout_buckets(None, keys)
    assert (moved >= 0).all() and (moved < 1024).all() and not torch.equal(moved, rows)
    export_model(salted, tmp_path / "m")
    assert load_model(tmp_path / "m")[0].readout_buckets(None, keys).equal(moved)


def test_calibration_scales_the_readouts_with_the_head():
    from aam.training.calibration import Calibration, apply_calibration

    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    args = (batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    torch.manual_seed(0)
    config = tiny(task="regression", n_outputs=1, asv_readout="clr", clr_readout=True)
    model = SequencePredictor(config).eval()
    with torch.no_grad():
        model.asv_readout.weight.normal_()
        model.clr_readout.weight.normal_()
        before = model(*args)["target"].clone()
        apply_calibration(model, Calibration(centre=0.3, scale=0.25, n_train=10, n_val=4))
        after = model(*args)["target"]
    torch.testing.assert_close(after, 0.25 * (before - 0.3))


# -------------------------------------------------------------------------------------- ensembles
@pytest.mark.parametrize("task,n_outputs", [("classification", 3), ("regression", 1)])
def test_ensemble_prediction_is_the_mean_of_its_members(task, n_outputs, tmp_path):
    from aam.io.model_files import export_model

    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(SequencePredictor(tiny(task=task, n_outputs=n_outputs)).eval())
    ensemble = EnsemblePredictor.of(members).eval()
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    args = (batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
    with torch.no_grad():
        outs = [m(*args) for m in members]
        got = ensemble(*args)
        export_model(ensemble, tmp_path)
        loaded, _ = load_model(tmp_path)
        again = loaded(*args)
    if task == "regression":
        want = torch.stack([o["target"] for o in outs]).mean(0)
        torch.testing.assert_close(got["target"], want)
    else:
        want = torch.stack([torch.softmax(o["target"], -1) for o in outs]).mean(0)
        torch.testing.assert_close(torch.softmax(got["target"], -1), want)
        torch.testing.assert_close(got["target"].exp().sum(-1), torch.ones(4))  # log-probabilities
    counts = torch.stack([o["count_log_probs"].exp() for o in outs]).mean(0)
    torch.testing.assert_close(got["count_log_probs"].exp(), counts)
    assert got["sample_embedding"].shape == (4, 3 * 16)
    torch.testing.assert_close(again["target"], got["target"])
    assert isinstance(loaded, EnsemblePredictor) and len(loaded.members) == 3


def test_ensemble_members_must_share_a_config():
    a = SequencePredictor(tiny(task="regression"))
    b = SequencePredictor(tiny(task="regression", embedding_dim=8, heads=2))
    with pytest.raises(ValueError, match="one AAMConfig"):
        EnsemblePredictor.of([a, b])


SETTINGS = {
    "data": {"asv_limit": 16, "batch_size": 8},
    "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0},
    "pretrain": {"enabled": False},
    "finetune": {"ensemble": 1,  # one model (the default is 2), as the single runs compared here
                 "linear_member": None,  # the neural model alone (tests/test_linear_member.py adds it,
                 "forest_member": None,  # and tests/test_forest_member.py the forest)
                 "trainer": {"max_epochs": 2, "warmup_steps": 1, "patience": None, "progress_bar": False,
                             "monitor": "auto", "num_threads": 1}},
}


def finetune(root: Path, out: Path, settings: dict, *, seed: int = 42, task: str = "classification",
             metadata: Path | None = None, splits: Path | None = None) -> None:
    column = "disease" if task == "classification" else "age"
    splits = splits or root / "splits.tsv"
    assert main(["finetune", "--tokens-dir", str(root / "tokens"), "--splits", str(splits),
                 "--samples", str(metadata or root / "metadata.tsv"), "--target-column", column,
                 "--task", task, "--settings", json.dumps(settings), "--seed", str(seed),
                 "--threads", "1", "--out-dir", str(out)]) == 0


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study through rarefy -> tokenize: tokens/, splits.tsv (30 train, 8 val, 10 test) and
    metadata.tsv with a class (``disease``, which feature 0 marks) and a number (``age``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(5)
    n, n_features = 48, 20
    samples = [f"2538.{10000 + i}" for i in range(n)]
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(30, 41)))) for _ in range(n_features)]
    label = np.where(np.arange(n) % 2 == 0, "Crohns", "Control")
    counts = rng.poisson(6, size=(n, n_features)) * (rng.random((n, n_features)) < 0.6) + 1
    counts[label == "Crohns", 0] += 30
    ingest = root / "ingest"
    ingest.mkdir()
    pq.write_table(pa.table({"feature_id": seqs, "sequence": seqs}), ingest / "features.parquet")
    rows, cols = np.nonzero(counts)
    pq.write_table(pa.table({"sample": [samples[i] for i in rows], "feature": [seqs[j] for j in cols],
                             "count": counts[rows, cols].astype(np.int64)}), ingest / "counts.parquet")
    split = ["train"] * 30 + ["val"] * 8 + ["test"] * 10
    pd.DataFrame({"sample": samples, "split": split}).to_csv(root / "splits.tsv", sep="\t", index=False)
    pd.DataFrame({"sample_name": samples, "disease": label, "age": 20 + counts[:, 0] + rng.normal(0, 3, n)}
                 ).to_csv(root / "metadata.tsv", sep="\t", index=False)
    assert main(["rarefy", "--table", str(ingest / "counts.parquet"), "--depth", "60", "--seed", "7",
                 "--out", str(root / "rarefied.biom"), "--dropped", str(root / "dropped.tsv")]) == 0
    assert main(["tokenize", "--features", str(ingest / "features.parquet"), "--counts",
                 str(ingest / "counts.parquet"), "--rarefied", str(root / "rarefied.biom"),
                 "--out-dir", str(root / "tokens"), "--settings", '{"max_bp": 40}']) == 0
    return root


def test_finetune_ensemble_holds_the_single_runs_of_seeds_s_and_s_plus_1(study, tmp_path):
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader, predict

    settings = json.loads(json.dumps(SETTINGS))
    finetune(study, tmp_path / "single42", settings, seed=42)
    # seed 43 named by the run (finetune.trainer.seed) under the config's 42, as a benchmark
    # candidate does: its initialisation, batch order and rarefaction draws are member 1's
    seeded = json.loads(json.dumps(SETTINGS))
    seeded["finetune"]["trainer"]["seed"] = 43
    finetune(study, tmp_path / "single43", seeded, seed=42)
    settings["finetune"]["ensemble"] = 2
    finetune(study, tmp_path / "ensemble", settings, seed=42)

    ensemble, meta = load_model(tmp_path / "ensemble")
    assert meta["ensemble"] == 2 and isinstance(ensemble, EnsemblePredictor)
    singles = [load_model(tmp_path / f"single{s}")[0] for s in (42, 43)]
    for member, single in zip(ensemble.members, singles, strict=True):
        for (name, a), (_, b) in zip(member.state_dict().items(), single.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    # the ensemble's test probabilities are the mean of the two single models' on the same batches
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": "disease", "type": "classification"},
                       metadata=study / "metadata.tsv")
    outputs = [predict(m, eval_loader(dm, "test"), torch.device("cpu"))["output"] for m in singles]
    probs = [torch.softmax(torch.from_numpy(o), -1).numpy() for o in outputs]
    table = pd.read_csv(tmp_path / "ensemble" / "predictions.tsv", sep="\t")
    test = table[table["split"] == "test"]
    np.testing.assert_allclose(test[[f"prob_{c}" for c in dm.classes]].to_numpy(), np.mean(probs, axis=0),
                               atol=1e-5)
    history = pd.read_csv(tmp_path / "ensemble" / "metrics.csv")
    assert sorted(history["member"].unique()) == [0, 1]


def test_finetune_calibrate_shrinks_the_uncalibrated_models_outputs_by_the_validation_slope(study, tmp_path):
    """``calibrate: auto`` (the default) trains a regressor as ``calibrate: false`` does (same seed)
    and then predicts k (z - c): c the mean output over the training samples, k the validation slope
    clipped to [0, 1], both recomputed here with numpy from the uncalibrated run's outputs."""
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader, predict

    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["calibrate"] = False
    finetune(study, tmp_path / "plain", settings, task="regression")
    settings["finetune"]["calibrate"] = "auto"  # the default: a regressor is calibrated
    finetune(study, tmp_path / "calibrated", settings, task="regression")

    plain, meta = load_model(tmp_path / "plain")
    assert meta["calibration"] is None
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": "age", "type": "regression"}, metadata=study / "metadata.tsv")
    out = {s: predict(plain, eval_loader(dm, s), torch.device("cpu")) for s in ("train", "val", "test")}
    centre = out["train"]["output"].astype(np.float64).mean()
    dev = out["val"]["output"].astype(np.float64) - centre
    scale = float(np.clip(dev @ out["val"]["target"] / (dev @ dev), 0, 1))
    record = json.loads((tmp_path / "calibrated" / "model.json").read_text())["calibration"]
    assert record["centre"] == pytest.approx(centre, abs=1e-5)
    assert record["scale"] == pytest.approx(scale, abs=1e-5)
    assert (record["n_train"], record["n_val"]) == (30, 8)
    assert abs(centre) > 1e-3  # a real offset (the slope's arithmetic: tests/test_calibration.py)
    want = scale * (out["test"]["output"] - centre) * meta["target_std"] + meta["target_mean"]
    table = pd.read_csv(tmp_path / "calibrated" / "predictions.tsv", sep="\t")
    got = table[table["split"] == "test"]["y_pred"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)  # predictions.tsv keeps the loader's order


def test_kept_epochs_are_the_best_epochs_count_where_the_best_is_restored():
    from types import SimpleNamespace

    from aam.training.finetune import kept_epochs

    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "val/mae": [5.0, 4.2, 4.2, 4.6]})
    fit = SimpleNamespace(history=history, best_score=4.2)
    restoring = SimpleNamespace(restore_best=True, monitor="val/mae")
    assert kept_epochs(SimpleNamespace(result=fit, trainer=restoring)) == 2  # epoch 1, the first of ties
    last = SimpleNamespace(restore_best=False, monitor="val/mae")
    assert kept_epochs(SimpleNamespace(result=fit, trainer=last)) == 4


def test_refit_on_val_refuses_a_readout_fitted_on_the_train_split_alone():
    from aam.training.finetune import check_refit_on_val

    with pytest.raises(InputError, match="cannot refit a readout_fit run"):
        check_refit_on_val({"refit_on_val": True, "readout_fit": {}})
    check_refit_on_val({"refit_on_val": False, "readout_fit": {}})
    check_refit_on_val({"refit_on_val": True, "readout_fit": None})


def test_refit_on_val_leaves_a_run_that_trained_on_val_as_it_was(study, tmp_path):
    """A classifier's auto run trains on its val samples already: the refit would repeat it."""
    settings = json.loads(json.dumps(SETTINGS))
    finetune(study, tmp_path / "plain", settings, task="classification")
    settings["finetune"]["refit_on_val"] = True
    finetune(study, tmp_path / "refit", settings, task="classification")
    record = json.loads((tmp_path / "refit" / "model.json").read_text())
    assert record["refit_on_val"] is None and record["trained_on_val"] is True
    assert not (tmp_path / "refit" / "refit").exists()
    assert (tmp_path / "refit" / "model.safetensors").read_bytes() == \
        (tmp_path / "plain" / "model.safetensors").read_bytes()


def test_refit_on_val_trains_again_on_train_and_val_with_the_first_fits_scale(study, tmp_path):
    """``refit_on_val``: the first fit decides its epochs (early stopping, best epoch) and the
    calibration's scale on val; the exported model is trained again on the 38 train + val samples
    for those epochs, with that scale, centred on its own training samples: its calibrated mean
    output over them is the training targets' mean (0 in standardized units), recomputed here."""
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader, predict

    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["trainer"].update(max_epochs=4, patience=2, restore_best=True)
    settings["finetune"]["calibrate"] = True
    finetune(study, tmp_path / "first", settings, task="regression")
    settings["finetune"]["refit_on_val"] = True
    finetune(study, tmp_path / "refit", settings, task="regression")

    first = json.loads((tmp_path / "first" / "model.json").read_text())
    refit = json.loads((tmp_path / "refit" / "model.json").read_text())
    history = pd.read_csv(tmp_path / "first" / "metrics.csv")
    monitored = history[first["trainer"]["monitor"]].to_numpy()
    best = int(np.argmin(np.abs(monitored - first["training"]["best_score"])))
    assert refit["refit_on_val"] == {"epochs": [best + 1]}
    assert first["refit_on_val"] is None and first["trained_on_val"] is False
    assert refit["trained_on_val"] is True
    assert len(pd.read_csv(tmp_path / "refit" / "metrics.csv")) == best + 1
    timing = json.loads((tmp_path / "refit" / "timing.json").read_text())
    assert len(timing["first_fits"]) == 1 and timing["wall_time_s"] > 0  # both fits' time is told
    assert refit["calibration"]["scale"] == pytest.approx(first["calibration"]["scale"], abs=1e-9)
    assert (refit["calibration"]["n_train"], refit["calibration"]["n_val"]) == (38, 8)

    model, meta = load_model(tmp_path / "refit")
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": "age", "type": "regression"}, metadata=study / "metadata.tsv")
    outputs = np.concatenate([predict(model, eval_loader(dm, s), torch.device("cpu"))["output"].reshape(-1)
                              for s in ("train", "val")])
    assert outputs.size == 38
    assert abs(outputs.astype(np.float64).mean()) < 1e-5
    assert meta["target_mean"] == pytest.approx(first["target_mean"])  # the train split's scaling


def test_calibrate_auto_calibrates_regression_only():
    from aam.training.finetune import CALIBRATE_AUTO, resolve_calibrate

    assert CALIBRATE_AUTO == {"classification": False, "regression": True}
    values = ("auto", True, False, None)
    assert [resolve_calibrate(v, "regression") for v in values] == [True, True, False, False]
    assert [resolve_calibrate(v, "classification") for v in values] == [False] * 4


def test_a_classifier_is_never_calibrated(study, tmp_path):
    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["calibrate"] = True
    finetune(study, tmp_path / "classifier", settings, task="classification")
    assert json.loads((tmp_path / "classifier" / "model.json").read_text())["calibration"] is None


# -------------------------------------------------------------------------------------- selection
def test_grid_candidates_and_the_choice_by_hand():
    settings = {"data": {"asv_limit": 64}, "model": {"dropout": 0.1}, "finetune": {"trainer": {"lr": 1e-3}}}
    cands = selection.grid_candidates(settings, {"lr": [1e-3, 1e-2], "dropout": [0.0, 0.2]})
    assert [c[0] for c in cands] == [{"dropout": 0.0, "lr": 1e-3}, {"dropout": 0.0, "lr": 1e-2},
                                     {"dropout": 0.2, "lr": 1e-3}, {"dropout": 0.2, "lr": 1e-2}]
    assert cands[3][1]["model"]["dropout"] == 0.2 and cands[3][1]["finetune"]["trainer"]["lr"] == 1e-2
    assert settings["model"]["dropout"] == 0.1  # the run's own settings are left alone
    # inner scores by hand: means 0.6, 0.7 (a None fold is left out), 0.7 (tie: the earlier wins), None
    table = {0: [0.5, 0.7], 1: [0.7, None], 2: [0.8, 0.6], 3: [None, None]}
    chosen = selection.select(cands, 2, lambda i, s, k: table[i][k], "auroc")
    assert chosen.chosen == {"dropout": 0.0, "lr": 1e-2}
    assert [c["mean"] for c in chosen.candidates] == pytest.approx([0.6, 0.7, 0.7, None])
    low = selection.select(cands[:3], 2, lambda i, s, k: table[i][k], "mae", higher_is_better=False)
    assert low.chosen == cands[0][0]
    readout = selection.grid_candidates(settings, {"asv_readout": ["presence", "log"],
                                                   "readout_lr_scale": [3]})
    assert readout[1][1]["model"] == {"dropout": 0.1, "asv_readout": "log"}
    assert readout[1][1]["finetune"] == {"trainer": {"lr": 1e-3}, "readout_lr_scale": 3}
    with pytest.raises(InputError, match="unknown key"):
        selection.grid_candidates(settings, {"layers": [1, 2]})


def test_inner_folds_hold_only_training_samples_and_keep_groups_whole():
    rng = np.random.default_rng(0)
    samples = [f"s{i}" for i in range(60)]
    groups = [f"g{i // 3}" for i in range(60)]
    split = ["test" if i % 5 == 0 else ("val" if i % 7 == 0 else "train") for i in range(60)]
    splits = pd.DataFrame({"sample": samples, "split": split, "group": groups})
    part = selection.training_part(splits)
    labels = {s: str(rng.integers(2)) for s in part["sample"]}
    folds = selection.inner_folds(part, labels, 3, 42, 0.2)
    tests = set()
    for rows in folds:
        assert set(rows["sample"]) == set(part["sample"])  # every training sample, and only those
        assert not set(rows["sample"]) & set(splits.loc[splits["split"] == "test", "sample"])
        by_group = rows.groupby("group")["split"].nunique()
        assert (by_group == 1).all()  # a group never on two sides
        tests |= set(rows.loc[rows["split"] == "test", "sample"])
    assert tests == set(part["sample"])  # each training sample is held out once


def test_selection_never_reads_the_test_samples(study, tmp_path):
    """Garbage targets for the test samples (and their groups' names) change nothing: the same
    inner folds, the same inner scores, the same choice. A selection that used the test samples'
    targets (in its inner folds, or in its scores) would see the garbage."""
    splits = pd.read_csv(study / "splits.tsv", sep="\t", dtype=str)
    splits["group"] = [f"subject{i // 2}" for i in range(len(splits))]
    splits.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    meta = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str)
    test_ids = set(splits.loc[splits["split"] == "test", "sample"])
    poisoned = meta.copy()
    is_test = poisoned["sample_name"].isin(test_ids)
    poisoned.loc[is_test, "age"] = "1000000"
    poisoned.to_csv(tmp_path / "poisoned.tsv", sep="\t", index=False)
    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["trainer"]["max_epochs"] = 1
    settings["finetune"]["select"] = {"grid": {"lr": [1e-3, 3e-2]}, "folds": 2}
    outs = {}
    for name, metadata in (("clean", study / "metadata.tsv"), ("poisoned", tmp_path / "poisoned.tsv")):
        finetune(study, tmp_path / name, settings, task="regression", metadata=metadata,
                 splits=tmp_path / "splits.tsv")
        outs[name] = json.loads((tmp_path / name / "model.json").read_text())["selection"]
    assert outs["clean"] == outs["poisoned"]
    assert len(outs["clean"]["candidates"]) == 2
    assert all(s is not None for c in outs["clean"]["candidates"] for s in c["scores"])
    for k in range(2):
        inner = pd.read_csv(tmp_path / "clean" / "select" / f"fold{k}" / "splits.tsv", sep="\t", dtype=str)
        assert not set(inner["sample"]) & test_ids


# ---------------------------------------------------------------------------------- monitor: auto
def test_monitor_auto_is_each_stages_own_metric():
    from aam.training.finetune import AUTO_MONITOR

    s = TrainerSettings.from_dict({"monitor": "auto", "mode": "min"})
    s.resolve_monitor(*AUTO_MONITOR["classification"])
    assert (s.monitor, s.mode) == ("val/auroc", "max")
    kept = TrainerSettings.from_dict({"monitor": "val/loss"})
    kept.resolve_monitor("val/auroc", "max")
    assert (kept.monitor, kept.mode) == ("val/loss", "min")


def test_an_unresolved_auto_monitor_never_trains(tmp_path):
    from aam.training.engine import EngineModule, fit

    module = EngineModule(TrainerSettings.from_dict({"monitor": "auto"}))
    with pytest.raises(ValueError, match="resolve"):
        fit(module, tmp_path)


# ------------------------------------------------------------- fine-tuning's per-task trainer
# docs/benchmark.md ("Third round") and config/README.md state these, independently of FINETUNE_AUTO.
DOCUMENTED = {"classification": {"max_epochs": 30, "patience": None, "restore_best": False},
              "regression": {"max_epochs": 10, "patience": 4, "restore_best": True}}


def test_fine_tuning_s_auto_trainer_is_the_documented_run_of_each_task(study, tmp_path):
    """max_epochs, patience and restore_best left at ``auto`` (the schema's default for fine-tuning)
    train exactly the run with each task's documented values, and not the other task's. The epochs are
    scaled down (and patience with them) and the "best" epoch is the one of highest validation loss
    (mode max), an early one, so that best and last weights differ and the comparison can fail."""
    scaled = {task: {**v, "max_epochs": v["max_epochs"] // 5, "patience": v["patience"] and 1}
              for task, v in DOCUMENTED.items()}

    def train(task: str, trainer: dict, name: str) -> dict:
        settings = json.loads(json.dumps(SETTINGS))
        settings["finetune"]["trainer"] = {**settings["finetune"]["trainer"], "monitor": "val/loss",
                                           "mode": "max", **trainer}
        finetune(study, tmp_path / name, settings, task=task)
        return load_model(tmp_path / name)[0].state_dict()

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[name], b[name]) for name in a)

    from aam.training import finetune as finetune_module

    assert finetune_module.FINETUNE_AUTO == DOCUMENTED
    for task, other in (("classification", "regression"), ("regression", "classification")):
        auto = {key: "auto" for key in DOCUMENTED[task]}
        with pytest.MonkeyPatch.context() as patch:  # the scaled-down epochs, the same choice per task
            patch.setitem(finetune_module.FINETUNE_AUTO, task, scaled[task])
            chosen = train(task, auto, f"{task}-auto")
        assert same(chosen, train(task, scaled[task], f"{task}-own"))
        assert not same(chosen, train(task, scaled[other], f"{task}-other"))


def test_auto_settings_are_the_stage_s_choice_and_never_reach_fit(tmp_path):
    from aam.training.engine import EngineModule, fit

    s = TrainerSettings.from_dict({"max_epochs": "auto", "patience": 3, "restore_best": "auto"})
    assert s.unresolved() == ["max_epochs", "restore_best"]
    with pytest.raises(ValueError, match="max_epochs"):
        fit(EngineModule(s), tmp_path)
    s.resolve_auto({"max_epochs": 30, "patience": None, "restore_best": False})
    assert (s.max_epochs, s.patience, s.restore_best) == (30, 3, False)  # a given value is kept
    with pytest.raises(InputError, match="restore_best"):
        TrainerSettings.from_dict({"restore_best": "last"})


# ------------------------------------------------------------------- the readout fitted in closed form
READOUT_FIT = {"C": [0.5], "alpha": [2.0], "folds": 3}


@pytest.mark.parametrize(("task", "key"), [("classification", "sequence"), ("regression", "sequence"),
                                         ("classification", "feature")])
def test_fitted_readout_predicts_what_scikit_learn_fits_on_the_training_samples_by_sequence(study, task, key):
    """The readout written into the model (its term plus the intercept added to the head's bias)
    equals scikit-learn's own model fitted on a table built here by hand from the training split's
    batches: one column per distinct ASV sequence (no hashing; per feature ID with
    ``asv_readout_key: feature``), presence of every rarefied ASV. Only the 30 training samples
    are read (not the 8 val or 10 test)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader
    from aam.models.aam import predictor_inputs
    from aam.training.readout_fit import fit_model_readout

    column = "disease" if task == "classification" else "age"
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", SETTINGS["data"], seed=42,
                       target={"column": column, "type": task}, metadata=study / "metadata.tsv")
    n_outputs = 2 if task == "classification" else 1
    torch.manual_seed(0)
    model = SequencePredictor(tiny(task=task, n_outputs=n_outputs, max_bp=40, asv_limit=16,
                                   asv_readout="presence", asv_readout_scope="all", asv_readout_key=key))
    bias_before = model.target_head.out.bias.detach().clone()
    fit = fit_model_readout(model, eval_loader(dm, "train"), dm.sample_ids, {}, task, READOUT_FIT, seed=42)

    rows, targets, terms = [], [], []
    with torch.no_grad():
        for batch in eval_loader(dm, "train"):
            inputs = predictor_inputs(model.config, batch)
            terms.append(model.every_asv_readout_term(*inputs[4:]).numpy())
            names = (dm.feature_ids[batch["unifrac_feature_idx"].numpy()] if key == "feature"
                     else [bytes(t.numpy().astype(np.uint8)) for t in inputs[4]])
            for b in range(inputs[5].shape[0]):
                present = (inputs[5][b] > 0).nonzero().ravel().tolist()
                rows.append({names[f]: 1.0 for f in present})
            targets.append(batch["target"].numpy())
    table = pd.DataFrame(rows).fillna(0.0)
    y = np.concatenate(targets)
    assert len(table) == 30 and fit.buckets.size == table.shape[1]
    written = np.concatenate(terms) + (model.target_head.out.bias.detach() - bias_before).numpy()
    if task == "classification":
        reference = LogisticRegression(C=0.5, max_iter=5000).fit(table.to_numpy(), y)
        logit = reference.decision_function(table.to_numpy())
        np.testing.assert_allclose(written[:, 1] - written[:, 0], logit, atol=2e-3)
    else:
        reference = Ridge(alpha=2.0).fit(table.to_numpy(), y)
        np.testing.assert_allclose(written[:, 0], reference.predict(table.to_numpy()), atol=2e-3)
    assert not model.asv_readout.weight.requires_grad


def test_cross_fitting_trains_on_each_samples_output_from_the_fold_that_held_it_out(study):
    """``cross_fit``: a training sample's offset is its output from the ridge model fitted on the
    inner folds without it minus the full fit's (both recomputed here with scikit-learn on a table
    built by sequence); validation and test samples get none, and a training step adds the offset
    while a validation step does not."""
    from sklearn.linear_model import Ridge

    from aam.data.datasets import AAMDataModule
    from aam.evaluate.baselines import inner_folds
    from aam.evaluate.predict import eval_loader
    from aam.models.aam import predictor_inputs
    from aam.training.aam_modules import FinetuneModule
    from aam.training.readout_fit import fit_model_readout

    dm = AAMDataModule(study / "tokens", study / "splits.tsv", SETTINGS["data"], seed=42,
                       target={"column": "age", "type": "regression"}, metadata=study / "metadata.tsv")
    torch.manual_seed(0)
    config = tiny(task="regression", n_outputs=1, max_bp=40, asv_limit=16, asv_readout="presence",
                  asv_readout_scope="all")
    module = FinetuneModule(config, {"lr": 0.001})
    groups = {s: f"g{i // 2}" for i, s in enumerate(dm.sample_ids)}  # pairs of samples
    spec = {"alpha": [3.0], "folds": 3, "cross_fit": True}
    fit = fit_model_readout(module.model, eval_loader(dm, "train"), dm.sample_ids, groups, "regression",
                            spec, seed=42)

    rows, tables, targets = [], [], []
    for batch in eval_loader(dm, "train"):
        inputs = predictor_inputs(config, batch)
        for b in range(inputs[5].shape[0]):
            present = (inputs[5][b] > 0).nonzero().ravel().tolist()
            tables.append({bytes(inputs[4][f].numpy().astype(np.uint8)): 1.0 for f in present})
        rows.append(batch["sample_index"].numpy())
        targets.append(batch["target"].numpy())
    rows, y = np.concatenate(rows), np.concatenate(targets)
    x = pd.DataFrame(tables).fillna(0.0).to_numpy()
    full = Ridge(alpha=3.0).fit(x, y).predict(x)
    cross = np.zeros_like(y, dtype=np.float64)
    for fit_rows, val_rows in inner_folds([groups[dm.sample_ids[r]] for r in rows], None, 3, 42):
        cross[val_rows] = Ridge(alpha=3.0).fit(x[fit_rows], y[fit_rows]).predict(x[val_rows])
    np.testing.assert_allclose(fit.offsets[rows, 0], cross - full, atol=2e-3)
    others = np.setdiff1d(np.arange(len(dm.sample_ids)), rows)
    assert others.size == 18 and not fit.offsets[others].any()
    assert np.abs(cross - full).max() > 0.05  # the folds do change the outputs

    module.set_training_offsets(fit.offsets)
    batch = next(iter(eval_loader(dm, "train")))
    losses = {}
    module.log = lambda *a, **k: None
    module.eval()
    for stage in ("train", "val"):
        losses[stage] = module._step(batch, stage)[0]
    with torch.no_grad():
        out = module.model(*predictor_inputs(config, batch))["target"]
    shifted = out + torch.from_numpy(fit.offsets[batch["sample_index"].numpy(), 0])
    want_train = torch.nn.functional.mse_loss(shifted, batch["target"].float())
    want_val = torch.nn.functional.mse_loss(out, batch["target"].float())
    count = module._step(batch, "val")[0] - want_val
    assert losses["train"].item() == pytest.approx((want_train + count).item(), rel=1e-5)
    assert losses["val"].item() == pytest.approx((want_val + count).item(), rel=1e-5)


def test_finetune_keeps_the_fitted_readout_frozen_and_records_the_search(study, tmp_path):
    """Fine-tuning with ``readout_fit`` trains the rest of the model around the closed-form readout:
    the exported readout is exactly the one fitted before training (refit here on a fresh model),
    the rest has moved, and model.json records the strength chosen among the grid's two."""
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader
    from aam.training.readout_fit import fit_model_readout

    settings = json.loads(json.dumps(SETTINGS))
    settings["model"] |= {"asv_readout": "presence", "asv_readout_scope": "all"}
    settings["finetune"]["readout_fit"] = {"C": [0.05, 5.0], "folds": 2}
    finetune(study, tmp_path / "fitted", settings)
    model, meta = load_model(tmp_path / "fitted")
    record = meta["readout_fit"][0]
    assert record["strength"] in (0.05, 5.0) and len(record["search"]) == 2
    assert all(len(c["inner_scores"]) == 2 for c in record["search"])

    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": "disease", "type": "classification"},
                       metadata=study / "metadata.tsv")
    fresh = SequencePredictor(model.config)
    groups = {}  # the fixture's splits have no group column: each sample is its own group
    fit_model_readout(fresh, eval_loader(dm, "train"), dm.sample_ids, groups, "classification",
                      {"C": [0.05, 5.0], "folds": 2}, seed=42,
                      class_weights=np.asarray(meta["class_weights"]))
    assert torch.equal(model.asv_readout.weight, fresh.asv_readout.weight)
    assert model.asv_readout.weight.abs().sum() > 0
    assert not torch.equal(model.target_head.out.weight, fresh.target_head.out.weight)


def test_readout_fit_without_a_readout_is_one_clear_error(study, tmp_path, capsys):
    settings = json.loads(json.dumps(SETTINGS))
    settings["model"]["asv_readout"] = "none"
    settings["finetune"]["readout_fit"] = {}  # on, with the schema's grid
    out = tmp_path / "none"
    assert main(["finetune", "--tokens-dir", str(study / "tokens"), "--splits", str(study / "splits.tsv"),
                 "--samples", str(study / "metadata.tsv"), "--target-column", "disease", "--task",
                 "classification", "--settings", json.dumps(settings), "--out-dir", str(out)]) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert message == ["aam finetune: error: finetune.readout_fit needs a per-ASV readout: set "
                       "model.asv_readout to presence, clr or log"]
    assert not out.exists() or not any(out.iterdir())


def test_fitted_readout_of_a_class_absent_from_training_gives_it_no_weight():
    """Three outputs, training samples of classes 0 and 2 only (a binary logistic model): the
    readout's softmax over the three outputs is scikit-learn's probability for 0 and 2, and about
    1e-6 for class 1."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from aam.training.readout_fit import fit_readout

    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((40, 12)) < 0.3).astype(float))
    y = np.where(x[:, 0].toarray().ravel() > 0, 2, 0)
    fit = fit_readout(x, y, [None] * 40, "classification", 3, [1.0], 3, seed=0)
    outputs = x @ fit.coefficients + fit.intercept
    proba = np.exp(outputs - outputs.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    reference = LogisticRegression(C=1.0, max_iter=5000).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(proba[:, [0, 2]], reference, atol=1e-5)
    assert proba[:, 1].max() < 2e-6
    # its cross-fitted outputs are each held-out sample's log-probabilities, in the same terms
    assert fit.cross_fitted.shape == (40, 3) and np.all(fit.cross_fitted[:, 1] == np.log(1e-6))


# ---------------------------------------------------------------------------------- train_on_val
def _resolved(task: str, **given) -> TrainerSettings:
    """The trainer a fine-tuning of ``task`` runs with: ``given`` over each setting's auto choice."""
    from aam.training.finetune import FINETUNE_AUTO

    trainer = TrainerSettings.from_dict({"max_epochs": "auto", "patience": "auto", "restore_best": "auto",
                                         **given})
    trainer.resolve_auto(FINETUNE_AUTO[task])
    return trainer


def test_train_on_val_auto_trains_on_val_only_where_the_run_decides_nothing_on_it():
    """auto: the classifier's documented run (fixed epochs, last weights, no calibration) trains on
    val; a regressor (early stopping, best epoch, calibration) or a classifier that early-stops does
    not; true where the run decides on val is one clear error, false is false."""
    from aam.training.finetune import resolve_train_on_val

    def on_val(value, task, fine=None, **trainer):
        return resolve_train_on_val({"calibrate": "auto", "train_on_val": value, **(fine or {})},
                                    _resolved(task, **trainer), task)

    assert on_val("auto", "classification") is True
    assert on_val("auto", "regression") is False
    assert on_val("auto", "classification", patience=3) is False
    assert on_val("auto", "classification", restore_best=True) is False
    assert on_val("auto", "classification", fine={"readout_fit": {}}) is False
    assert on_val("auto", "regression", fine={"calibrate": False}, patience=None, restore_best=False) is True
    assert on_val(True, "classification") is True
    assert on_val(False, "classification") is False
    with pytest.raises(InputError, match=r"train_on_val is true but .*patience \(early stopping\), "
                                         r"finetune\.trainer\.restore_best, finetune\.calibrate"):
        on_val(True, "regression")


@pytest.mark.parametrize("train_on_val", [False, True])
def test_the_training_loader_draws_the_val_samples_only_with_train_on_val(study, train_on_val):
    """Over epochs the training batches hold exactly the splits file's train samples, or its train
    and val samples with train_on_val, and never a test sample; the val and test loaders, the
    classes and class counts stay those of the splits."""
    from aam.data.datasets import AAMDataModule

    splits = pd.read_csv(study / "splits.tsv", sep="\t", dtype=str)
    want = set(splits.loc[splits.split.isin(["train", "val"] if train_on_val else ["train"]), "sample"])
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", {"asv_limit": 16, "batch_size": 8}, seed=3,
                       target={"column": "disease", "type": "classification"},
                       metadata=study / "metadata.tsv", train_on_val=train_on_val)
    seen = set()
    for epoch in range(12):  # a last partial batch is dropped per epoch: enough epochs draw every sample
        loader = dm.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            seen |= {dm.sample_ids[int(r)] for r in batch["sample_index"]}
    assert seen == want
    val = {dm.sample_ids[int(r)] for b in dm.val_dataloader() for r in b["sample_index"]}
    assert val == set(splits.loc[splits.split == "val", "sample"])
    train_labels = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str).set_index("sample_name").loc[
        splits.loc[splits.split == "train", "sample"], "disease"]
    assert dm.class_counts.tolist() == [int((train_labels == c).sum()) for c in dm.classes]


def test_finetune_records_training_on_val_and_refuses_it_where_the_run_decides_on_val(study, tmp_path,
                                                                                      capsys):
    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["train_on_val"] = "auto"
    finetune(study, tmp_path / "classifier", settings, task="classification")
    meta = json.loads((tmp_path / "classifier" / "model.json").read_text())
    assert meta["trained_on_val"] is True
    settings["finetune"]["train_on_val"] = True
    settings["finetune"]["trainer"]["patience"] = 1
    out = tmp_path / "early"
    capsys.readouterr()
    assert main(["finetune", "--tokens-dir", str(study / "tokens"), "--splits", str(study / "splits.tsv"),
                 "--samples", str(study / "metadata.tsv"), "--target-column", "disease", "--task",
                 "classification", "--settings", json.dumps(settings), "--out-dir", str(out)]) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert message == ["aam finetune: error: finetune.train_on_val is true but the run decides on its "
                       "validation split by finetune.trainer.patience (early stopping): set train_on_val "
                       "to auto or false"]
    assert not out.exists() or not any(out.iterdir())
