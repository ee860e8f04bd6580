"""VQ-Transformer: EMA codebook update on a hand-worked example, dead-code restarts, the off switch."""

from __future__ import annotations

import pytest
import torch

from aam.models.vq import VectorQuantizerEMA, VQConfig, VQTransformer


def _quantizer(embedding, decay=0.5, eps=0.0, dead_threshold=0.0):
    k, d = embedding.shape
    q = VectorQuantizerEMA(k, d, commitment=0.25, decay=decay, eps=eps, dead_threshold=dead_threshold)
    q.embedding.copy_(embedding)
    q.embed_sum.copy_(embedding)
    q.cluster_size.fill_(1.0)
    q.initialized.fill_(True)
    return q.train()


def test_ema_update_hand_worked():
    # codes e0 = 0, e1 = 10; inputs 1, 2 -> e0 and 9 -> e1; decay 0.5, no smoothing:
    # N = 0.5 * [1, 1] + 0.5 * [2, 1] = [1.5, 1.0]
    # m = 0.5 * [0, 10] + 0.5 * [1 + 2, 9] = [1.5, 9.5]
    # e = m / N = [1.0, 9.5]
    q = _quantizer(torch.tensor([[0.0], [10.0]]))
    z = torch.tensor([[1.0], [2.0], [9.0]])
    out = q(z)
    assert out["codes"].tolist() == [0, 0, 1]
    torch.testing.assert_close(q.cluster_size, torch.tensor([1.5, 1.0]))
    torch.testing.assert_close(q.embed_sum, torch.tensor([[1.5], [9.5]]))
    torch.testing.assert_close(q.embedding, torch.tensor([[1.0], [9.5]]))
    # commitment loss uses the codes before the update: 0.25 * mean((1-0)^2, (2-0)^2, (9-10)^2) = 0.5
    assert out["loss"].item() == pytest.approx(0.25 * (1 + 4 + 1) / 3)
    # perplexity of the batch's code use (2/3, 1/3)
    p = torch.tensor([2 / 3, 1 / 3])
    assert out["perplexity"].item() == pytest.approx(torch.exp(-(p * p.log()).sum()).item())


def test_ema_update_with_laplace_smoothing():
    # same step with eps = 0.1: N~ = (N + eps) / (sum N + K eps) * sum N
    q = _quantizer(torch.tensor([[0.0], [10.0]]), eps=0.1)
    q(torch.tensor([[1.0], [2.0], [9.0]]))
    smoothed = torch.tensor([(1.5 + 0.1) / 2.7 * 2.5, (1.0 + 0.1) / 2.7 * 2.5])
    torch.testing.assert_close(q.embedding[:, 0], torch.tensor([1.5, 9.5]) / smoothed)


def test_straight_through_gradient():
    q = _quantizer(torch.tensor([[0.0], [10.0]]))
    z = torch.tensor([[1.0], [9.0]], requires_grad=True)
    out = q(z)
    (out["quantized"].sum() + out["loss"]).backward()
    # d/dz of sum(z_q) is 1 (straight through); commitment: 0.25 * 2 * (z - e) / n
    torch.testing.assert_close(z.grad, torch.tensor([[1.0 + 0.25 * 2 * 1 / 2], [1.0 + 0.25 * 2 * -1 / 2]]))


def test_dead_codes_are_restarted():
    emb = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [100.0, 100.0]])
    q = _quantizer(emb, decay=0.5, dead_threshold=0.3)
    z = torch.tensor([[0.1, 0.0], [1.1, 1.0], [2.0, 2.1], [0.0, 0.2]])
    q(z)  # code 3 unused: N_3 = 0.5 (alive)
    assert int(q.restarts) == 0
    q(z)  # N_3 = 0.25 < 0.3: restarted on one of the batch's latents
    assert int(q.restarts) == 1
    assert any(torch.allclose(q.embedding[3], row) for row in z)
    assert q.cluster_size[3].item() == pytest.approx(0.3)
    torch.testing.assert_close(q.embed_sum[3] / q.cluster_size[3], q.embedding[3])


def test_eval_mode_does_not_update():
    q = _quantizer(torch.tensor([[0.0], [10.0]])).eval()
    before = q.embedding.clone()
    q(torch.tensor([[1.0], [2.0]]))
    torch.testing.assert_close(q.embedding, before)


def _blocks(n=64, length=16, seed=0):
    return torch.randint(5, 9, (n, length), generator=torch.Generator().manual_seed(seed))


def test_quantizer_off_is_a_plain_autoencoder():
    torch.manual_seed(0)
    cfg = VQConfig(
        block_len=16,
        patch=4,
        dim=16,
        enc_layers=1,
        dec_layers=1,
        heads=2,
        ff_dim=32,
        code_dim=8,
        codebook_size=16,
        quantize=False,
    )
    model = VQTransformer(cfg).eval()
    assert model.quantizer is None
    x = _blocks()
    out = model(x)
    assert out["codes"] is None and out["vq_loss"].item() == 0.0
    torch.testing.assert_close(out["logits"], model.decode(model.encode(x)))
    assert out["loss"].item() == pytest.approx(out["recon_loss"].item())


@pytest.mark.parametrize("quantize", [True, False])
def test_training_reduces_reconstruction_loss(quantize):
    torch.manual_seed(0)
    cfg = VQConfig(
        block_len=16,
        patch=2,
        dim=32,
        enc_layers=1,
        dec_layers=1,
        heads=2,
        ff_dim=64,
        code_dim=8,
        codebook_size=32,
        quantize=quantize,
    )
    model = VQTransformer(cfg).train()
    x = _blocks(128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        out = model(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["recon_loss"].item()
    assert out["recon_loss"].item() < 0.9 * first
    if quantize:
        assert out["codes"].shape == (128, 8) and out["codes"].max() < 32
