"""Pretraining across studies: batches from one study and tree, their UniFrac against scikit-bio,
prefix crops, and the corpus encoder fine-tuned on a dataset of shorter reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skbio
import torch
from helpers.corpus import random_tree, write_dataset
from helpers.stages import stage
from skbio.diversity import beta_diversity

from aam.data.corpus import CorpusDataModule, CorpusStudy, crop_tokens


def datamodule(studies, **kw):
    return CorpusDataModule(studies, {"asv_limit": 16, "batch_size": 4}, val_fraction=0.2, seed=5, **kw)


def test_batches_never_mix_studies_or_trees(corpus):
    _, studies = corpus
    dm = datamodule(studies)
    assert dm.group_of_study == [0, 0, 1]
    loader = dm.train_dataloader()
    for epoch in (0, 1):
        loader.batch_sampler.sampler.set_epoch(epoch)
        seen = {name: [] for name in dm.study_names}
        batches = list(loader)
        for batch in batches:
            assert batch["study"].unique().numel() == 1
            assert batch["tree_group"].unique().numel() == 1
            study = int(batch["study"][0])
            assert int(batch["tree_group"][0]) == dm.group_of_study[study]
            assert batch["asv_index"].shape[0] >= 2
            seen[dm.study_names[study]] += batch["sample_index"].tolist()
        for name in dm.study_names:  # each training sample at most once per epoch, none of validation
            rows = seen[name]
            assert len(rows) == len(set(rows))
            assert dm.n_train[name] - len(rows) < dm.batch_size
        assert len({int(b["study"][0]) for b in batches}) == 3
    for batch in dm.val_dataloader():
        assert batch["study"].unique().numel() == 1 and batch["asv_index"].shape[0] >= 2


def test_epochs_reshuffle_and_the_same_seed_repeats(corpus):
    _, studies = corpus

    def rows(dm, epoch):
        loader = dm.train_dataloader()
        loader.batch_sampler.sampler.set_epoch(epoch)
        return [(int(b["study"][0]), b["sample_index"].tolist(), b["unifrac_counts"].sum().item())
                for b in loader]

    first, again = datamodule(studies), datamodule(studies)
    assert rows(first, 0) == rows(again, 0)
    assert rows(first, 0) != rows(first, 1)


@pytest.mark.parametrize("metric", ["unweighted", "weighted_normalized"])
def test_batch_unifrac_equals_scikit_bio(corpus, metric):
    """The training's per-batch UniFrac (the module's true_distances on a corpus batch) against
    scikit-bio on the same rarefied samples and the study's tree."""
    from aam.data.unifrac import PhyloIndex
    from aam.models.aam import AAMConfig
    from aam.training.aam_modules import CorpusPretrainModule

    tmp, studies = corpus
    dm = datamodule(studies)
    indexes = [PhyloIndex.from_newick(t, ids) for t, ids in zip(dm.tree_groups, dm.group_feature_ids,
                                                                   strict=True)]
    cfg = AAMConfig(embedding_dim=8, layers=1, heads=2, ff_dim=16, dropout=0.0, max_bp=dm.max_bp,
                    asv_limit=dm.asv_limit)
    module = CorpusPretrainModule(cfg, {"max_epochs": 1}, indexes, unifrac_metric=metric)
    checked = set()
    for batch in dm.train_dataloader():
        group = int(batch["tree_group"][0])
        ours = module.true_distances(batch).double().numpy()
        ids = [dm.group_feature_ids[group][i] for i in batch["unifrac_feature_idx"].tolist()]
        counts = batch["unifrac_counts"].numpy().astype(np.int64)
        depth = dm.depth[dm.study_names[int(batch["study"][0])]]
        assert (counts.sum(1) == depth).all()
        tree = skbio.TreeNode.read(dm.tree_groups[group])
        name = "unweighted_unifrac" if metric == "unweighted" else "weighted_unifrac"
        kw = {"normalized": True} if metric != "unweighted" else {}
        ref = beta_diversity(name, counts, taxa=ids, tree=tree, **kw).data
        np.testing.assert_allclose(ours, ref, atol=2e-6)
        checked.add(group)
    assert checked == {0, 1}


def test_crops_keep_a_prefix_of_allowed_length():
    rng = np.random.default_rng(0)
    tokens = np.zeros((200, 20), dtype=np.uint8)
    lengths = rng.integers(5, 21, size=200)
    for i, n in enumerate(lengths):
        tokens[i, :n] = rng.integers(1, 5, size=n)
    cut = crop_tokens(tokens, 12, rng)
    kept = (cut != 0).sum(1)
    assert (kept <= lengths).all() and (kept >= np.minimum(lengths, 12)).all()
    for i in range(200):
        assert (cut[i, :kept[i]] == tokens[i, :kept[i]]).all()
    assert len(set(kept[lengths == 20].tolist())) > 5  # lengths vary


def test_training_batches_are_cropped_and_validation_is_not(corpus):
    _, studies = corpus
    plain, cropped = datamodule(studies), datamodule(studies, crop_min_bp=10)
    a, b = next(iter(plain.train_dataloader())), next(iter(cropped.train_dataloader()))
    assert torch.equal(a["feature_idx"], b["feature_idx"])
    real_a, real_b = (a["tokens"] != 0).sum(1), (b["tokens"] != 0).sum(1)
    assert (real_b <= real_a).all() and (real_b < real_a).any() and (real_b >= 10).all()
    va, vb = next(iter(plain.val_dataloader())), next(iter(cropped.val_dataloader()))
    assert torch.equal(va["tokens"], vb["tokens"])


def test_corpus_encoder_fine_tunes_a_dataset_of_shorter_reads(corpus, tmp_path):
    """corpus-pretrain writes an encoder; finetune loads it (its architecture, not the run's model
    section) on a dataset whose token cache is narrower than the encoder's max_bp."""
    from aam.io.model_files import load_model
    from aam.stages import corpus_pretrain, finetune

    tmp, studies = corpus
    trainer = {"max_epochs": 1, "limit_train_batches": 3, "warmup_steps": 1, "patience": None,
               "progress_bar": False, "num_threads": 1}
    entries = [{"name": s.name, "tokens_dir": str(s.tokens_dir), "tree": s.tree, "depth": s.depth}
               for s in studies]
    settings = {"data": {"asv_limit": 16, "batch_size": 4},
                "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0},
                "pretrain": {"crop_min_bp": 12, "trainer": trainer}}
    enc = tmp_path / "encoder"
    stage(corpus_pretrain, "--studies", json.dumps(entries), "--settings", json.dumps(settings),
          "--val-fraction", "0.2", "--seed", "1", "--threads", "1", "--out-dir", str(enc))
    model, meta = load_model(enc)
    assert meta["stage"] == "corpus_pretrain" and meta["config"]["max_bp"] == 32
    assert set(meta["corpus"]["studies"]) == {"a", "b", "c"}

    # a dataset of 20-nt reads tokenized 24 wide, fine-tuned with another model section
    rng = np.random.default_rng(3)
    data = tmp_path / "dataset"
    narrow, ids = write_dataset(data, 30, rng, length=(20, 21), max_bp=24, cache="narrow")
    tokens = data / "tokens"
    splits = ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    (data / "splits.tsv").write_text("sample\tsplit\n" + "".join(f"{i}\t{s}\n" for i, s in zip(ids, splits,
                                                                                               strict=True)))
    (data / "meta.tsv").write_text("sample_name\tgroup\n" + "".join(f"{i}\t{'ab'[k % 2]}\n"
                                                                  for k, i in enumerate(ids)))
    run = {"data": {"asv_limit": 8, "batch_size": 4}, "model": {"embedding_dim": 64, "dropout": 0.0},
           "finetune": {"trainer": trainer}}
    out = tmp_path / "finetuned"
    stage(finetune, "--tokens-dir", str(narrow), "--splits", str(data / "splits.tsv"),
          "--samples", str(data / "meta.tsv"), "--target-column", "group", "--task", "classification",
          "--pretrain-dir", str(enc), "--settings", json.dumps(run), "--seed", "1", "--threads", "1",
          "--out-dir", str(out))
    tuned, tuned_meta = load_model(out)
    assert tuned_meta["config"]["embedding_dim"] == 16 and tuned_meta["config"]["max_bp"] == 32
    assert tuned_meta["pretrained"]
    assert (out / "predictions.tsv").exists()
    assert tokens.exists()


@pytest.mark.parametrize("name", ["gg13_8_v4_small", "gg13_8_v4_long"])
def test_bundled_encoder_loads_and_fine_tunes(corpus, tmp_path, name):
    """Each encoder shipped in the package: under 20 MB, with its card, loads as a SequenceEncoder
    and fine-tunes (aam finetune --bundled) with no pretraining step."""
    from aam import pretrained
    from aam.io.model_files import load_model
    from aam.stages import finetune

    folder = pretrained.bundled_dir(name)
    assert name in pretrained.available() and pretrained.DEFAULT in pretrained.available()
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20 * 1024 * 1024
    card = (folder / "MODEL_CARD.md").read_text()
    assert "UniFrac R^2" in card and "licence" in card
    model, meta = load_model(folder)
    assert type(model).__name__ == "SequenceEncoder" and meta["stage"] == "corpus_pretrain"

    rng = np.random.default_rng(4)
    data = tmp_path / "dataset"
    _, ids = write_dataset(data, 24, rng, length=(20, 30), max_bp=150)
    splits = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    (data / "splits.tsv").write_text("sample\tsplit\n" + "".join(f"{i}\t{s}\n" for i, s in zip(ids, splits,
                                                                                               strict=True)))
    ages = "".join(f"{i}\t{20 + k}\n" for k, i in enumerate(ids))
    (data / "meta.tsv").write_text("sample_name\tage\n" + ages)
    trainer = {"max_epochs": 1, "limit_train_batches": 2, "warmup_steps": 1, "patience": None,
               "progress_bar": False, "num_threads": 1}
    # frozen base: the fine-tuned model's encoder must be the bundled weights exactly. No asv_limit:
    # the schema's default must fit the encoder's; a model section of other sizes: the encoder's win
    run = {"data": {"batch_size": 4}, "model": {"embedding_dim": 32, "layers": 1},
           "finetune": {"trainer": trainer, "freeze_base": True}}
    out = tmp_path / "finetuned"
    stage(finetune, "--tokens-dir", str(data / "cache"), "--splits", str(data / "splits.tsv"),
          "--samples", str(data / "meta.tsv"), "--target-column", "age", "--task", "regression",
          "--bundled", name, "--settings", json.dumps(run), "--seed", "1",
          "--out-dir", str(out))
    tuned, tuned_meta = load_model(out)
    assert tuned_meta["pretrained"]
    assert tuned_meta["config"]["embedding_dim"] == meta["config"]["embedding_dim"]
    # the provenance records the sizes the model has (the encoder's), not the run's model section,
    # and the thread count and seed training used; no pretraining section (none ran)
    used = tuned_meta["provenance"]["settings"]
    assert used["model"]["embedding_dim"] == meta["config"]["embedding_dim"] == 64
    assert used["model"]["layers"] == meta["config"]["layers"] != run["model"]["layers"]
    assert used["data"]["asv_limit"] == meta["config"]["asv_limit"] == 128
    assert used["finetune"]["trainer"]["num_threads"] == 1 and used["finetune"]["trainer"]["seed"] == 1
    assert "pretrain" not in used and tuned_meta["provenance"]["pretrained_from"].endswith(name)
    bundled = model.state_dict()
    assert tuned_meta["ensemble"] == 2  # the default: both members froze the bundled encoder
    for member in tuned.members:
        assert all(torch.equal(v, bundled[k]) for k, v in member.base.state_dict().items())
    assert (out / "predictions.tsv").exists()


class KillAt(__import__("lightning").pytorch.callbacks.Callback):
    """Simulates a crash in the middle of an epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("killed")


@pytest.mark.parametrize("kill_epoch, kill_batch", [(1, 1), (2, 0)], ids=["mid-epoch", "epoch-boundary"])
def test_interrupted_corpus_pretraining_resumes_to_the_same_weights(corpus, tmp_path, kill_epoch, kill_batch):
    """Killed mid-epoch, or at the first batch of an epoch (the checkpoint then is the previous
    epoch's end), and started again (fresh process state), a corpus run resumes from last.ckpt and
    ends with the weights of an uninterrupted run: the corpus sampler follows the epoch Lightning
    restores."""
    from aam.data.unifrac import PhyloIndex
    from aam.models.aam import AAMConfig
    from aam.training.aam_modules import CorpusPretrainModule
    from aam.training.engine import fit

    _, studies = corpus

    def run(out, seed, callbacks=()):
        torch.manual_seed(seed)
        dm = datamodule(studies, crop_min_bp=12)
        indexes = [PhyloIndex.from_newick(t, ids) for t, ids in zip(dm.tree_groups, dm.group_feature_ids,
                                                                       strict=True)]
        cfg = AAMConfig(embedding_dim=8, layers=1, heads=2, ff_dim=16, dropout=0.0, max_bp=dm.max_bp,
                        asv_limit=dm.asv_limit)
        settings = {"max_epochs": 3, "limit_train_batches": 3, "warmup_steps": 1, "patience": None,
                    "progress_bar": False, "num_threads": 1, "seed": 3, "restore_best": False}
        module = CorpusPretrainModule(cfg, settings, indexes)
        return module, fit(module, out, datamodule=dm, fingerprint={"run": 1}, callbacks=list(callbacks))

    full, _ = run(tmp_path / "full", 0)
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "resumed", 0, [KillAt(epoch=kill_epoch, batch=kill_batch)])
    resumed, result = run(tmp_path / "resumed", 99)
    assert result.resumed
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_missing_study_cache_is_one_clear_error(corpus, tmp_path):
    from aam.errors import InputError

    _, studies = corpus
    gone = CorpusStudy("gone", tmp_path / "nowhere", studies[0].tree, 10)
    with pytest.raises(InputError, match="study gone: no features.parquet"):
        datamodule([studies[0], gone])


def test_pretraining_continues_from_a_bundled_encoder_on_one_study(tmp_path):
    """`aam pretrain --init-dir` (pretrain.continue_on_study) starts from the encoder's weights and
    architecture, whatever the run's model section says: after one step at a vanishing learning
    rate the weights are still the bundled file's; without --init-dir they are a fresh model's."""
    from safetensors.torch import load_file

    from aam import pretrained
    from aam.io.model_files import load_model
    from aam.stages import pretrain

    rng = np.random.default_rng(8)
    tips = [f"asv{i}" for i in range(30)]
    (tmp_path / "tree.nwk").write_text(random_tree(tips, rng))
    tokens, _ = write_dataset(tmp_path / "study", 20, rng, length=(20, 30), max_bp=150)
    (tmp_path / "splits.tsv").write_text(
        "sample\tsplit\n" + "".join(f"d.{s}\t{'train' if s < 16 else 'val'}\n" for s in range(20)))
    trainer = {"max_epochs": 1, "limit_train_batches": 1, "lr": 1e-12, "warmup_steps": 0, "patience": None,
               "progress_bar": False, "num_threads": 1}
    run = {"data": {"asv_limit": 16, "batch_size": 4}, "model": {"embedding_dim": 16, "heads": 2},
           "pretrain": {"trainer": trainer}}
    common = ["--tokens-dir", str(tokens), "--splits", str(tmp_path / "splits.tsv"), "--tree",
              str(tmp_path / "tree.nwk"), "--settings", json.dumps(run), "--seed", "1"]
    folder = pretrained.bundled_dir()
    stage(pretrain, *common, "--out-dir", str(tmp_path / "continued"), "--init-dir", str(folder))
    stage(pretrain, *common, "--out-dir", str(tmp_path / "fresh"))

    bundled = load_file(str(folder / "model.safetensors"))
    continued, meta = load_model(tmp_path / "continued")
    assert meta["initialized_from"] == str(folder)
    assert meta["config"]["embedding_dim"] == 64 and meta["config"]["asv_encoder"] == "kmer"
    for name, value in continued.state_dict().items():
        torch.testing.assert_close(value, bundled[name], rtol=0, atol=1e-8)
    fresh, fresh_meta = load_model(tmp_path / "fresh")
    assert fresh_meta["config"]["embedding_dim"] == 16 and fresh_meta["initialized_from"] is None


@pytest.mark.parametrize("case", ["no weights", "a fine-tuned model", "weights of another size"])
def test_a_folder_that_is_not_an_encoder_is_one_clear_error(tmp_path, case):
    """--init-dir (and --pretrain-dir, the same loader) naming a folder without weights, with a
    fine-tuned model's weights, or with weights that do not match its model.json: one InputError
    naming model.safetensors, and no output folder."""
    from safetensors.torch import load_file, save_file

    from aam import pretrained
    from aam.errors import InputError
    from aam.stages import pretrain

    rng = np.random.default_rng(8)
    (tmp_path / "tree.nwk").write_text(random_tree([f"asv{i}" for i in range(30)], rng))
    tokens, ids = write_dataset(tmp_path / "study", 20, rng, length=(20, 30), max_bp=150)
    (tmp_path / "splits.tsv").write_text("sample\tsplit\n" + "".join(f"{i}\ttrain\n" for i in ids[:16])
                                         + "".join(f"{i}\tval\n" for i in ids[16:]))
    bundled = pretrained.bundled_dir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text((bundled / "model.json").read_text())
    weights = load_file(str(bundled / "model.safetensors"))
    if case == "a fine-tuned model":
        save_file({f"base.{k}": v for k, v in weights.items()}, str(bad / "model.safetensors"))
    elif case == "weights of another size":
        name = next(iter(weights))
        save_file(weights | {name: torch.zeros(3)}, str(bad / "model.safetensors"))
    run = {"data": {"asv_limit": 16, "batch_size": 4},
           "pretrain": {"trainer": {"max_epochs": 1, "progress_bar": False, "num_threads": 1}}}
    out = tmp_path / "out"
    with pytest.raises(InputError, match="model.safetensors"):
        stage(pretrain, "--tokens-dir", str(tokens), "--splits", str(tmp_path / "splits.tsv"), "--tree",
              str(tmp_path / "tree.nwk"), "--settings", json.dumps(run), "--out-dir", str(out),
              "--init-dir", str(bad))
    assert not out.exists()
