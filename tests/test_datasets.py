"""AAM sample datasets: per-epoch rarefaction, worker independence, dedup, targets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from aam.data.datasets import AAMDataModule, EpochSampler, select_features
from aam.data.token_caches import build

N_SAMPLES, N_FEATURES, DEPTH = 40, 60, 100


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small synthetic study: 40 samples over 60 features, 3 of them below the depth."""
    tmp = tmp_path_factory.mktemp("aamdata")
    rng = np.random.default_rng(7)
    letters = np.array(list("ACGT"))
    seqs = ["".join(rng.choice(letters, size=rng.integers(20, 30))) for _ in range(N_FEATURES)]
    fids = [f"asv{i}" for i in range(N_FEATURES)]
    pq.write_table(pa.table({"feature_id": fids, "sequence": seqs}), tmp / "features.parquet")
    samples, feats, counts = [], [], []
    for s in range(N_SAMPLES):
        present = rng.choice(N_FEATURES, size=rng.integers(5, 40), replace=False)
        c = rng.integers(1, 40, size=present.size)
        if s < 3:
            c = np.minimum(c, 2)[:10]
            present = present[:10]
        samples += [f"2538.{1000 + s}"] * present.size
        feats += [fids[i] for i in present]
        counts += c.tolist()
    pq.write_table(pa.table({"sample": samples, "feature": feats, "count": counts}), tmp / "counts.parquet")
    build(tmp / "features.parquet", tmp / "counts.parquet", None,
          tmp / "tokens" / "features.parquet", tmp / "tokens" / "samples.parquet", max_bp=32)
    ids = [f"2538.{1000 + s}" for s in range(N_SAMPLES)]
    split = ["train"] * 26 + ["val"] * 7 + ["test"] * 7
    rng.shuffle(split)
    lines = ["sample\tsplit"] + [f"{i}\t{s}" for i, s in zip(ids, split, strict=True)]
    (tmp / "splits.tsv").write_text("\n".join(lines) + "\n")
    meta = ["sample_name\tdisease\tage\tdiagnosis"]
    for k, i in enumerate(ids):
        disease = "Missing: Not provided" if k == 5 else ("Crohns" if k % 3 == 0 else "Control")
        meta.append(f"{i}\t{disease}\t{20 + k}\t{('CD', 'UC', 'no')[k % 3]}")
    (tmp / "metadata.tsv").write_text("\n".join(meta) + "\n")
    return tmp


def module(data, **settings):
    target = settings.pop("target", None)
    seed = settings.pop("seed", 3)
    cfg = {"asv_limit": 8, "batch_size": 4, "num_workers": 0, **settings}
    return AAMDataModule(data / "tokens", data / "splits.tsv", cfg, seed=seed, depth=DEPTH,
                         target=target, metadata=data / "metadata.tsv")


def epoch_batches(loader, epoch):
    loader.batch_sampler.set_epoch(epoch)
    return list(loader)


def same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True)
    )


def test_samples_below_depth_are_dropped(data):
    dm = module(data)
    kept = np.concatenate([dm.rows[s] for s in ("train", "val", "test")])
    assert kept.size == N_SAMPLES - 3
    assert (dm.samples.totals[kept] >= DEPTH).all()


def test_rarefaction_changes_between_epochs_and_repeats_for_the_same_seed(data):
    loader_a, loader_b = module(data).train_dataloader(), module(data).train_dataloader()
    e0, e1 = epoch_batches(loader_a, 0), epoch_batches(loader_a, 1)
    assert same(e0, epoch_batches(loader_b, 0))
    assert same(e1, epoch_batches(loader_b, 1))
    assert not same(e0, e1)
    # The same sample differs between epochs (not only the order).
    ds = module(data).train_dataset
    assert not np.array_equal(ds[(0, 0)].present_counts, ds[(0, 1)].present_counts)
    other_seed = epoch_batches(module(data, seed=4).train_dataloader(), 0)
    assert not same(e0, other_seed)


def test_same_batches_with_0_and_2_workers(data):
    plain, workers = module(data).train_dataloader(), module(data, num_workers=2).train_dataloader()
    for epoch in (0, 1):  # persistent workers keep the dataset; the epoch travels with the index
        assert same(epoch_batches(plain, epoch), epoch_batches(workers, epoch))
    assert same(list(module(data).val_dataloader()), list(module(data, num_workers=2).val_dataloader()))


def test_validation_rarefaction_is_fixed(data):
    loader = module(data).val_dataloader()
    assert same(list(loader), list(loader))


def test_dedup_reconstructs_every_sample(data):
    dm = module(data, asv_limit=12)
    all_tokens = dm.features.tokens
    for epoch in (0, 1):
        batches = epoch_batches(dm.train_dataloader(), epoch)
        order = [(int(i), epoch) for i in np.random.default_rng([dm.seed, 2, epoch]).permutation(
            len(dm.train_dataset))]
        for n, batch in enumerate(batches):
            u = batch["tokens"].shape[0]
            assert u == np.unique(batch["feature_idx"]).size  # each feature once
            for b in range(batch["asv_index"].shape[0]):
                item = dm.train_dataset[order[n * dm.batch_size + b]]
                assert int(batch["sample_index"][b]) == item.row
                mask = batch["asv_mask"][b]
                slots = batch["asv_index"][b][mask]
                np.testing.assert_array_equal(batch["tokens"][slots].numpy(), all_tokens[item.kept])
                np.testing.assert_array_equal(batch["feature_idx"][slots].numpy(), item.kept)
                np.testing.assert_array_equal(batch["asv_counts"][b][mask].numpy(), item.kept_counts)
                # UniFrac counts: every present feature, summing to the depth
                uf = batch["unifrac_feature_idx"].numpy()
                row = batch["unifrac_counts"][b].numpy()
                assert row.sum() == DEPTH
                np.testing.assert_array_equal(np.sort(uf[row > 0]), np.sort(item.present))
            assert batch["asv_mask"].sum() >= u


def test_abundance_selection_keeps_the_top_features(data):
    dm = module(data, asv_limit=5)
    for i in range(len(dm.train_dataset)):
        item = dm.train_dataset[(i, 0)]
        assert item.kept.size == min(5, item.present.size)
        assert (np.diff(item.kept_counts) <= 0).all()
        assert item.kept_counts.min() >= np.sort(item.present_counts)[::-1][: item.kept.size].min()


def test_random_selection():
    rng = np.random.default_rng(0)
    feats = np.arange(20)
    counts = np.array([5] * 10 + [0] * 5 + [1] * 5)
    kept, kc = select_features(feats, counts, 6, "random", rng)
    assert kept.size == 6 and set(kept) <= set(feats[counts > 0])
    assert (np.diff(kc) <= 0).all()
    kept2, _ = select_features(feats, counts, 6, "random", np.random.default_rng(1))
    assert set(kept) != set(kept2)
    kept_all, _ = select_features(feats, counts, 100, "random", rng)
    assert set(kept_all) == set(feats[counts > 0])
    assert select_features(feats, counts, 3, "abundance", rng)[0].tolist() == [0, 1, 2]


def test_classification_target(data):
    dm = module(data, target={"column": "disease", "type": "classification"})
    assert dm.classes == ["Control", "Crohns"] and dm.n_classes == 2
    assert dm.class_counts.sum() == len(dm.train_dataset)
    batch = next(iter(dm.val_dataloader()))
    assert batch["target"].dtype == torch.int64
    for s, t in zip(batch["sample_index"], batch["target"], strict=True):
        k = int(dm.sample_ids[int(s)].split(".")[1]) - 1000
        assert dm.classes[int(t)] == ("Crohns" if k % 3 == 0 else "Control")
    # the sample with a Qiita missing value is dropped
    kept = {dm.sample_ids[r] for s in ("train", "val", "test") for r in dm.rows[s]}
    assert "2538.1005" not in kept


def test_target_classes_keep_only_those_samples(data):
    every = module(data, target={"column": "diagnosis", "type": "classification"})
    dm = module(data, target={"column": "diagnosis", "type": "classification", "classes": ["no", "CD"]})
    assert every.classes == ["CD", "UC", "no"]
    assert dm.classes == ["CD", "no"] and dm.n_classes == 2
    for split in ("train", "val", "test"):
        kept = [dm.sample_ids[r] for r in dm.rows[split]]
        expected = [every.sample_ids[r] for r in every.rows[split]
                    if (int(every.sample_ids[r].split(".")[1]) - 1000) % 3 != 1]  # UC: k % 3 == 1
        assert kept == expected
    assert dm.class_counts.sum() == len(dm.train_dataset) < len(every.train_dataset)


def test_regression_target_is_standardized_on_train(data):
    dm = module(data, target={"column": "age", "type": "regression"})
    train_t = np.concatenate([b["target"].numpy() for b in dm.train_dataloader()])
    assert dm.target_std > 0
    assert abs(dm.train_dataset.targets.mean()) < 1e-5 and abs(dm.train_dataset.targets.std() - 1) < 1e-5
    ages = dm.target_mean + dm.target_std * train_t
    np.testing.assert_allclose(ages, np.round(ages), atol=1e-4)


def test_lightning_sets_the_epoch(data):
    import lightning.pytorch as pl

    seen = []

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            seen.append((self.current_epoch, batch["unifrac_counts"].sum(0).clone()))
            return (self.w**2).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = module(data)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, accelerator="cpu")
    trainer.fit(Probe(), datamodule=dm)
    assert [e for e, _ in seen] == [0, 1]
    expected = epoch_batches(module(data).train_dataloader(), 1)[0]["unifrac_counts"].sum(0)
    assert torch.equal(seen[1][1], expected)


def test_epoch_sampler_deals_whole_batches_to_ranks():
    one = EpochSampler(23, seed=5, batch_size=4, drop_last=True)
    batches = one.global_batches(3)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)  # 23 // 4, partial one dropped
    order = np.random.default_rng([5, 2, 3]).permutation(23)
    assert [i for b in batches for i in b] == order[:20].tolist()
    ranks = [EpochSampler(23, seed=5, batch_size=4, drop_last=True, num_replicas=2, rank=r) for r in (0, 1)]
    for r, sampler in enumerate(ranks):
        sampler.set_epoch(3)
        dealt = list(sampler)
        assert len(sampler) == len(dealt) == 3  # ranks take equally many batches
        assert {k.epoch for b in dealt for k in b} == {3}
        numbers = [b[0].number for b in dealt]
        padding = [b[0].padding for b in dealt]
        if r == 0:  # batches 0, 2, 4: all real
            assert numbers == [0, 2, 4] and padding == [False] * 3
        else:  # batches 1, 3 and, in the last round, a copy of batch 3 with weight 0
            assert numbers == [1, 3, 3] and padding == [False, False, True]
        assert [k.item for k in dealt[0]] == batches[r] and [k.item for k in dealt[1]] == batches[r + 2]
    # Every real batch is trained on exactly once, whatever the number of ranks.
    for world in (1, 2, 3, 4, 6):
        dealt = [list(EpochSampler(23, 5, batch_size=4, drop_last=True, num_replicas=world, rank=r))
                 for r in range(world)]
        real = sorted(b[0].number for rank in dealt for b in rank if not b[0].padding)
        assert real == list(range(5)) and len({len(rank) for rank in dealt}) == 1
    # Evaluation (no padding): a partial last batch goes where it falls; fewer batches than ranks:
    # every rank takes every batch.
    def evaluation(n, r):
        return EpochSampler(n, 0, shuffle=False, batch_size=4, num_replicas=2, rank=r, pad=False)

    val = [[k.item for b in evaluation(10, r) for k in b] for r in (0, 1)]
    assert val == [[0, 1, 2, 3, 8, 9], [4, 5, 6, 7]]
    few = [list(evaluation(3, r)) for r in (0, 1)]
    assert few[0] == few[1] == [[(0, 0, 0, False), (1, 0, 0, False), (2, 0, 0, False)]]


def test_epoch_sampler_resumes_after_the_batches_already_trained_on():
    full = list(EpochSampler(20, seed=1, batch_size=4, drop_last=True))
    resumed = EpochSampler(20, seed=1, batch_size=4, drop_last=True)
    resumed.resume_after(2)
    assert list(resumed) == full[2:]  # once: the next epoch is whole again
    assert len(list(resumed)) == 5


def test_evaluation_batches_carry_each_samples_counts_scaled_to_the_depth(data):
    """``expected_counts`` of an evaluation loader: every feature of a sample in counts.parquet, its
    count x depth / total (computed here from the input table), keyed by the feature ID; the mean
    of many rarefaction draws of a sample (brute force over seeds) comes out at the same values.
    Training batches do without them."""
    from aam.data.datasets import RarefiedSamples, feature_id_keys
    from aam.evaluate.predict import eval_loader

    table = pq.read_table(data / "counts.parquet").to_pandas()
    dm = module(data)
    assert "expected_counts" not in next(iter(dm.train_dataloader()))
    seen = 0
    for batch in eval_loader(dm, "test"):
        keys, expected = batch["table_keys"].numpy(), batch["expected_counts"].numpy()
        assert np.unique(keys).size == keys.size
        for b, row in enumerate(batch["sample_index"].tolist()):
            sample = table[table["sample"] == dm.sample_ids[row]]
            want = dict(zip(feature_id_keys(sample["feature"]).tolist(),
                            sample["count"] * DEPTH / sample["count"].sum(), strict=True))
            got = {k: v for k, v in zip(keys.tolist(), expected[b].tolist(), strict=True) if v > 0}
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-12)
            seen += 1
    assert seen == len(dm.test_dataset)

    ds = dm.test_dataset
    draws = np.mean([np.bincount(item.present, item.present_counts, minlength=N_FEATURES)
                     for item in (RarefiedSamples(ds.samples, ds.rows[:1], DEPTH, 8, "abundance", seed,
                                                  False)[0] for seed in range(4000))], axis=0)
    item = ds[0]
    want = np.bincount(item.table, item.expected_counts, minlength=N_FEATURES)
    np.testing.assert_allclose(draws, want, atol=0.35)
