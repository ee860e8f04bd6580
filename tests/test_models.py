"""AAM models: shapes, masks, no NaN on padding, dedup = per-slot encoding, UniFrac head, overfitting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.models.aam import AAMConfig, SequenceEncoder, SequencePredictor  # noqa: E402
from aam.models.asv_encoder import ASVEncoder, ASVEncoderConfig  # noqa: E402
from aam.models.heads import UniFracHead  # noqa: E402
from aam.models.layers import AttentionPooling  # noqa: E402
from aam.training import losses  # noqa: E402

torch.set_num_threads(1)


def tiny(**kw) -> AAMConfig:
    base = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.0, max_bp=12, asv_limit=8)
    base.update(kw)
    return AAMConfig(**base)


SAMPLES = [[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]]


def test_encoder_shapes():
    torch.manual_seed(0)
    batch = make_batch(SAMPLES)
    out = SequenceEncoder(tiny())(batch["tokens"], batch["asv_index"], batch["asv_mask"])
    u = batch["tokens"].shape[0]
    assert out["sample_embedding"].shape == (4, 16)
    assert out["asv_states"].shape == (4, 4, 16)
    width = int((batch["tokens"] != 0).sum(1).max())  # all-padding columns are trimmed
    assert out["nucleotide_logits"].shape == (u, width, 7)
    assert out["distances"].shape == (4, 4)


def test_no_nan_with_padding_rows_one_asv_and_empty_samples():
    torch.manual_seed(0)
    batch = make_batch([[0, 1, 2], [3], []], pad_row=True)  # an all-PAD token row, 1-ASV and 0-ASV samples
    model = SequencePredictor(tiny(task="classification", n_outputs=2, dropout=0.1))
    out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"])
    for key, value in out.items():
        assert torch.isfinite(value).all(), key
    counts = losses.count_loss(out["count_log_probs"], batch["asv_counts"], batch["asv_mask"])
    loss = out["target"].sum() + counts
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    # the padding slots of a sample get probability 0
    assert torch.all(out["count_log_probs"][1, 1:].exp() == 0)


def test_asv_encoder_all_padding_gives_zero_vector():
    enc = ASVEncoder(ASVEncoderConfig(max_bp=10, dim=8, layers=1, heads=2, ff_dim=16))
    vec, states = enc(torch.zeros(3, 10, dtype=torch.long))
    assert torch.isfinite(states).all() and torch.all(vec == 0)


def test_pooling_ignores_padding():
    pool = AttentionPooling(4)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = x.clone()
    y[0, 2:] = 1e3
    assert torch.allclose(pool(x, mask), pool(y, mask))


def test_dedup_encoding_equals_per_slot_encoding():
    torch.manual_seed(0)
    batch = make_batch(SAMPLES)
    model = SequenceEncoder(tiny(layers=2)).eval()
    with torch.no_grad():
        dedup = model.encode(batch["tokens"], batch["asv_index"], batch["asv_mask"])["sample_embedding"]
        # the plain way: every slot's tokens encoded on their own row
        b, k = batch["asv_index"].shape
        per_slot_tokens = batch["tokens"][batch["asv_index"]].reshape(b * k, -1)
        vectors, _ = model.asv_encoder(per_slot_tokens)
        vectors = vectors.reshape(b, k, -1) * batch["asv_mask"][..., None]
        plain, _ = model.sample_encoder(vectors, batch["asv_mask"])
    torch.testing.assert_close(dedup, plain, atol=1e-5, rtol=1e-5)


def test_unifrac_head_symmetric_zero_diagonal_finite_gradients():
    head = UniFracHead(8)
    z = torch.randn(5, 8)
    z[3] = z[1]  # two identical samples: distance 0, gradient must stay finite
    z.requires_grad_(True)
    d = head(z)
    assert torch.equal(d, d.T)
    assert torch.all(torch.diagonal(d) == 0)
    assert d[1, 3] < 1e-3 and (d[~torch.eye(5, dtype=torch.bool)] >= 0).all()
    d.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_mask_nucleotides_rate_and_split():
    tokens = torch.randint(1, 5, (200, 100))
    tokens[:, 80:] = 0
    masked, labels = losses.mask_nucleotides(tokens, 0.15, generator=torch.Generator().manual_seed(0))
    chosen = labels != losses.IGNORE
    assert not chosen[:, 80:].any() and torch.equal(masked[:, 80:], tokens[:, 80:])
    frac = chosen[:, :80].float().mean().item()
    assert 0.13 < frac < 0.17
    as_mask = (masked[chosen] == 6).float().mean().item()
    assert 0.75 < as_mask < 0.85
    assert torch.equal(masked[~chosen], tokens[~chosen])


def test_tiny_predictor_overfits_a_tiny_batch():
    torch.manual_seed(0)
    batch = make_batch(SAMPLES, target=[1.5, -0.5, 0.25, -1.0])
    model = SequencePredictor(tiny(task="regression", n_outputs=1, embedding_dim=32, ff_dim=64))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        opt.zero_grad()
        out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"])
        loss = torch.nn.functional.mse_loss(out["target"], batch["target"].float()) + losses.count_loss(
            out["count_log_probs"], batch["asv_counts"], batch["asv_mask"])
        loss.backward()
        opt.step()
    assert loss.item() < 0.02


def test_tiny_encoder_fits_unifrac_distances():
    torch.manual_seed(0)
    batch = make_batch(SAMPLES)
    true = torch.tensor([[0, .6, .9, .3], [.6, 0, .5, .8], [.9, .5, 0, .7], [.3, .8, .7, 0]])
    model = SequenceEncoder(tiny(embedding_dim=32, ff_dim=64))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(200):
        opt.zero_grad()
        out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"])
        loss = losses.unifrac_loss(out["distances"], true)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 5e-3 and loss.item() < first / 50


def test_limits_are_checked():
    batch = make_batch([[0, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match="asv_limit"):
        SequenceEncoder(tiny(asv_limit=4))(batch["tokens"], batch["asv_index"], batch["asv_mask"])
    with pytest.raises(ValueError, match="divisible"):
        SequenceEncoder(tiny(embedding_dim=15, heads=2))


def test_asv_norm_batch_standardizes_distinct_asvs_and_keeps_dedup_exact():
    torch.manual_seed(0)
    batch = make_batch(SAMPLES)
    model = SequenceEncoder(tiny(layers=2, asv_norm="batch"))
    model.train()
    out = model.encode(batch["tokens"], batch["asv_index"], batch["asv_mask"])  # updates running stats
    vectors = model.asv_norm(model.asv_encoder(batch["tokens"])[0])
    torch.testing.assert_close(vectors.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    assert torch.isfinite(out["sample_embedding"]).all()
    model.eval()
    with torch.no_grad():  # evaluation uses running statistics: dedup = per-slot encoding
        dedup = model.encode(batch["tokens"], batch["asv_index"], batch["asv_mask"])["sample_embedding"]
        b, k = batch["asv_index"].shape
        slot_tokens = batch["tokens"][batch["asv_index"]].reshape(b * k, -1)
        per_slot = model.asv_norm(model.asv_encoder(slot_tokens)[0])
        plain, _ = model.sample_encoder(per_slot.reshape(b, k, -1) * batch["asv_mask"][..., None],
                                        batch["asv_mask"])
    torch.testing.assert_close(dedup, plain, atol=1e-5, rtol=1e-5)


def test_asv_norm_batch_with_a_single_distinct_asv_trains_without_error():
    batch = make_batch([[3], [3]])
    model = SequencePredictor(tiny(asv_norm="batch", task="classification", n_outputs=2)).train()
    out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"])
    out["target"].sum().backward()
    assert torch.isfinite(out["target"]).all()
    with pytest.raises(ValueError, match="asv_norm"):
        SequenceEncoder(tiny(asv_norm="layer"))


def test_unifrac_loss_of_a_single_sample_batch_is_zero_not_nan():
    one = torch.zeros(1, 1, requires_grad=True)
    loss = losses.unifrac_loss(one, torch.zeros(1, 1))
    assert loss.item() == 0.0
    loss.backward()  # stays in the graph
    pred, true = torch.tensor([[0.0, 0.3], [0.3, 0.0]]), torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    assert losses.unifrac_loss(pred, true).item() == pytest.approx(0.04)
