"""Contrastive losses against brute force, edge cases of labels, and a tiny model on two clades."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aam.data.dna_tokenizers import KmerTokenizer
from aam.models.contrastive import ContrastiveConfig, ContrastiveEmbedder
from aam.training.contrastive_losses import multi_rank_supcon, nt_xent, supcon


def _z(m, d=8, seed=0):
    return F.normalize(
        torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1
    )


def _brute_supcon(z, labels, t, group=None):
    """Khosla et al. L_out, one anchor and one positive at a time, with plain exp/log."""
    m = len(z)
    losses = []
    for i in range(m):
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in range(m) if a != i)
        pos = [
            p
            for p in range(m)
            if p != i
            and ((labels[i] >= 0 and labels[i] == labels[p]) or (group is not None and group[i] == group[p]))
        ]
        if pos:
            losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses) if losses else 0.0


def test_nt_xent_equals_brute_force():
    n, t = 5, 0.2
    z1, z2 = _z(n, seed=1), _z(n, seed=2)
    z = torch.cat([z1, z2])
    expected = 0.0
    for i in range(2 * n):
        p = (i + n) % (2 * n)
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in range(2 * n) if a != i)
        expected += -math.log(math.exp(float(z[i] @ z[p]) / t) / denom)
    assert nt_xent(z1, z2, t).item() == pytest.approx(expected / (2 * n), rel=1e-10)


def test_supcon_equals_brute_force():
    z = _z(10, seed=3)
    labels = torch.tensor([0, 1, 0, 2, 1, -1, 3, 0, -1, 2])
    assert supcon(z, labels, 0.3).item() == pytest.approx(_brute_supcon(z, labels.tolist(), 0.3), rel=1e-10)
    group = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    got = supcon(z, labels, 0.3, group=group).item()
    assert got == pytest.approx(_brute_supcon(z, labels.tolist(), 0.3, group.tolist()), rel=1e-10)


def test_all_labels_equal():
    z = _z(6, seed=4)
    labels = torch.zeros(6, dtype=torch.long)
    got = supcon(z, labels, 0.5).item()
    assert got == pytest.approx(_brute_supcon(z, [0] * 6, 0.5), rel=1e-10)
    # every other sample is a positive: identical projections give exactly log(M - 1)
    same = F.normalize(torch.ones(6, 4, dtype=torch.float64), dim=1)
    assert supcon(same, labels, 0.1).item() == pytest.approx(math.log(5), rel=1e-12)


def test_all_labels_different():
    z = _z(6, seed=5).requires_grad_(True)
    labels = torch.arange(6)
    loss = supcon(z, labels, 0.1)  # no anchor has a positive
    assert loss.item() == 0.0
    loss.backward()  # still attached to the graph
    # with two views per sequence the views are the positives: SupCon reduces to NT-Xent
    z2 = _z(12, seed=6)
    lab = torch.arange(6).repeat(2)
    group = torch.arange(6).repeat(2)
    assert supcon(z2, lab, 0.2, group).item() == pytest.approx(nt_xent(z2[:6], z2[6:], 0.2).item(), rel=1e-10)
    assert supcon(z2, torch.full((12,), -1), 0.2, group).item() == pytest.approx(
        nt_xent(z2[:6], z2[6:], 0.2).item(), rel=1e-10
    )


def test_stable_at_low_temperature():
    z = _z(16, seed=7).float()
    labels = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(0))
    for t in (1e-3, 1e-2):
        assert torch.isfinite(supcon(z, labels, t))
        assert torch.isfinite(nt_xent(z[:8], z[8:], t))


def test_multi_rank_is_the_weighted_mean():
    z = _z(8, seed=8)
    labels = torch.tensor([[0, 0], [0, 1], [1, 2], [1, 2], [0, 0], [1, 3], [0, 1], [1, 3]])
    expected = (1 * supcon(z, labels[:, 0], 0.2) + 3 * supcon(z, labels[:, 1], 0.2)) / 4
    assert multi_rank_supcon(z, labels, 0.2, weights=[1, 3]).item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    "backbone,pooling", [("transformer", "cls"), ("transformer", "attention"), ("lstm", "mean")]
)
def test_embedder_shapes_and_normalized_projection(backbone, pooling):
    cfg = ContrastiveConfig(
        vocab_size=69,
        backbone=backbone,
        pooling=pooling,
        dim=16,
        layers=1,
        heads=2,
        ff_dim=32,
        max_len=20,
        proj_hidden=16,
        proj_dim=8,
    )
    model = ContrastiveEmbedder(cfg).eval()
    enc = KmerTokenizer(3).batch_encode(["ACGTACGTAC", "ACGTAC", ""])
    h, z = model(torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"]))
    assert h.shape == (3, 16) and z.shape == (3, 8)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.isfinite(h).all()


def _mutate(seq, rate, rng):
    arr = np.array(list(seq))
    hit = rng.random(len(arr)) < rate
    arr[hit] = rng.choice(list("ACGT"), hit.sum())
    return "".join(arr)


def test_tiny_model_separates_two_clades():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    roots = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(2)]
    seqs = [_mutate(roots[c], 0.25, rng) for c in (0, 1) for _ in range(40)]
    labels = torch.tensor([c for c in (0, 1) for _ in range(40)])
    test = np.zeros(80, bool)
    test[30:40] = test[70:80] = True
    tok = KmerTokenizer(3)
    enc = tok.batch_encode(seqs)
    ids, mask = torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"])
    cfg = ContrastiveConfig(
        vocab_size=tok.vocab_size,
        dim=32,
        layers=1,
        heads=2,
        ff_dim=64,
        dropout=0.0,
        max_len=ids.shape[1],
        proj_hidden=32,
        proj_dim=16,
    )
    model = ContrastiveEmbedder(cfg)

    def nn_accuracy():
        model.eval()
        with torch.no_grad():
            h = F.normalize(model.embed(ids, mask), dim=1)
        sim = h[test] @ h[~test].T
        model.train()
        return (labels[~test][sim.argmax(1)] == labels[test]).float().mean().item(), h

    def gap(h):
        same = (labels[:, None] == labels[None, :]).float()
        sim = h @ h.T
        return ((sim * same).sum() / same.sum() - (sim * (1 - same)).sum() / (1 - same).sum()).item()

    gap_before = gap(nn_accuracy()[1])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tr = torch.from_numpy(~test)
    for _ in range(40):
        _, z = model(ids[tr], mask[tr])
        loss = supcon(z, labels[tr], 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc, h = nn_accuracy()
    assert acc == 1.0  # held-out clade members find a neighbour of their own clade
    print(gap_before, gap(h))
    assert gap(h) > 0.2 and gap(h) > 3 * gap_before  # within-clade minus between-clade cosine
