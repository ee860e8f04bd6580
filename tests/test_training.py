"""AAM LightningModules on the engine: pretraining metrics, frozen fine-tuning, target checks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from helpers.aam_synthetic import balanced_newick, make_batch  # noqa: E402

from aam.data.unifrac import PhyloIndex  # noqa: E402
from aam.errors import InputError  # noqa: E402
from aam.models.aam import AAMConfig  # noqa: E402
from aam.training import losses  # noqa: E402
from aam.training.aam_modules import FinetuneModule, PretrainModule, validation_metrics  # noqa: E402
from aam.training.engine import TrainerSettings, fit  # noqa: E402
from aam.training.finetune import check_target, class_weight_vector  # noqa: E402

N_FEATURES = 12
CFG = dict(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.1, max_bp=12, asv_limit=6)


def batches(n: int, seed: int, target_kind: str | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        samples = [list(rng.choice(N_FEATURES, size=rng.integers(1, 7), replace=False)) for _s in range(4)]
        target = None
        if target_kind == "classification":
            target = torch.tensor([len(s) > 3 for s in samples], dtype=torch.int64)
        elif target_kind == "regression":
            target = torch.tensor([len(s) - 3.5 for s in samples], dtype=torch.float32)
        out.append(make_batch(samples, n_features=N_FEATURES, seed=0, target=target))
    return out


def loader(items):
    return DataLoader(items, batch_size=None, shuffle=False)


def trainer(**kw):
    base = dict(max_epochs=2, lr=3e-3, warmup_steps=1, patience=None, progress_bar=False, seed=3,
                log_every_n_steps=1)
    base.update(kw)
    return TrainerSettings.from_dict(base)


@pytest.fixture(scope="module")
def index():
    return PhyloIndex.from_newick(balanced_newick(N_FEATURES), [f"f{i}" for i in range(N_FEATURES)])


def test_pretraining_logs_unifrac_and_nucleotide_metrics(tmp_path, index):
    module = PretrainModule(AAMConfig(**CFG), trainer(), index)
    result = fit(module, tmp_path, train_dataloaders=loader(batches(6, 0)),
                 val_dataloaders=loader(batches(2, 1)))
    h = result.history
    for col in ("train/loss", "train/unifrac_loss", "val/loss", "val/unifrac_mae", "val/unifrac_r2",
                "val/nucleotide_accuracy", "val/nucleotide_loss"):
        assert col in h.columns and np.isfinite(h[col]).all(), col
    assert h["train/loss"].iloc[-1] < h["train/loss"].iloc[0]


def test_true_distances_come_from_the_batch_counts(index):
    module = PretrainModule(AAMConfig(**CFG), trainer(), index)
    b = make_batch([[0, 1], [0, 1], [5, 6]], n_features=N_FEATURES)
    d = module.true_distances(b)
    assert d.shape == (3, 3) and d[0, 1] == 0 and d[0, 2] > 0 and torch.equal(d, d.T)


def test_validation_is_deterministic(index):
    module = PretrainModule(AAMConfig(**CFG), trainer(), index).eval()
    b = batches(1, 5)[0]
    logged = []
    module.log = lambda name, value, **kw: logged.append((name, float(value)))
    module.validation_step(b, 0)
    first = list(logged)
    logged.clear()
    torch.manual_seed(99)
    module.validation_step(b, 0)
    assert first == logged


def test_frozen_base_does_not_change(tmp_path):
    cfg = AAMConfig(**CFG, task="classification", n_outputs=2)
    module = FinetuneModule(cfg, trainer(), class_weights=[1.0, 2.0], freeze_base=True)
    before = {k: v.clone() for k, v in module.model.base.state_dict().items()}
    head_before = module.model.target_head.out.weight.clone()
    fit(module, tmp_path, train_dataloaders=loader(batches(4, 0, "classification")),
        val_dataloaders=loader(batches(2, 1, "classification")))
    for k, v in module.model.base.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(module.model.target_head.out.weight, head_before)
    assert not module.model.base.training or not module.model.training


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_regression_finetuning_learns(tmp_path, loss):
    cfg = AAMConfig(**{**CFG, "dropout": 0.0}, task="regression", n_outputs=1)
    module = FinetuneModule(cfg, trainer(max_epochs=6), loss=loss, target_mean=2.0, target_std=3.0)
    data = batches(4, 0, "regression")
    result = fit(module, tmp_path, train_dataloaders=loader(data), val_dataloaders=loader(data))
    h = result.history
    assert h["train/target_loss"].iloc[-1] < h["train/target_loss"].iloc[0]
    assert {"val/mae", "val/r2", "val/count_loss"} <= set(h.columns)


def test_focal_loss_and_class_weights():
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.5]])
    target = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert losses.focal_loss(logits, target, gamma=0.0).item() == pytest.approx(ce.item())
    assert losses.focal_loss(logits, target, gamma=2.0) < ce
    np.testing.assert_allclose(losses.balanced_class_weights(np.array([30, 10])), [40 / 60, 40 / 20])
    assert class_weight_vector({"b": 3.0}, ["a", "b"], np.array([1, 1])).tolist() == [1.0, 3.0]
    with pytest.raises(InputError, match="unknown class"):
        class_weight_vector({"z": 3.0}, ["a", "b"], np.array([1, 1]))


def test_validation_metrics():
    m = validation_metrics("classification", torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]),
                           torch.tensor([0, 1, 1]))
    assert m["accuracy"] == pytest.approx(2 / 3) and m["auroc"] == pytest.approx(1.0)
    r = validation_metrics("regression", torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), 5.0, 2.0)
    assert r["mae"] == 0 and r["r2"] == 1


SPLIT = {"a": "train", "b": "train", "c": "val", "d": "test"}


def test_target_checks_before_training():
    with pytest.raises(InputError, match="'age' is not numeric"):
        check_target({"a": "1", "b": "old", "c": "2"}, SPLIT, "age", "regression")
    with pytest.raises(InputError, match="constant"):
        check_target({"a": "3", "b": "3", "c": "4"}, SPLIT, "age", "regression")
    with pytest.raises(InputError, match="constant"):
        check_target({"a": "x", "b": "x", "c": "x"}, SPLIT, "ibd", "classification")
    with pytest.raises(InputError, match=r"\['CD'\] have no sample in the training split"):
        check_target({"a": "UC", "b": "Control", "c": "CD"}, SPLIT, "ibd", "classification")
    check_target({"a": "UC", "b": "Control", "c": "UC"}, SPLIT, "ibd", "classification")
    check_target({"a": "1.5", "b": "2", "d": "7"}, SPLIT, "age", "regression")
