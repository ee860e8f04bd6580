"""The linear member of a fine-tuned model (finetune.linear_member): the CLR + L2 baseline served
inside the model.

Checked against independent references: scikit-learn's own predictions of the fitted logistic and
ridge models on a CLR computed here with numpy (in the workflow: of the input table's counts scaled
to the depth, computed here from counts.parquet), the mixture of probabilities by hand, the neural
members of a run without the member (weight for weight), and a poisoned test split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_generalization_options as generalization  # noqa: E402
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.data.datasets import feature_id_keys  # noqa: E402
from aam.errors import InputError  # noqa: E402
from aam.evaluate.baselines import BaselineSettings, nested_fit  # noqa: E402
from aam.io.model_files import export_model, load_model  # noqa: E402
from aam.models.aam import SequencePredictor, predictor_inputs  # noqa: E402
from aam.models.ensemble import EnsemblePredictor, with_tabular_members  # noqa: E402
from aam.models.linear_clr import LinearCLR  # noqa: E402
from aam.training.linear_member import linear_module  # noqa: E402

SETTINGS, finetune, tiny = generalization.SETTINGS, generalization.finetune, generalization.tiny
study = generalization.study  # the tiny study (rarefied, tokenized) as a module fixture here too


def _study_counts(n: int, n_features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(4, size=(n, n_features)) * (rng.random((n, n_features)) < 0.5)


def _numpy_clr(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    logs = np.log(counts + pseudocount)
    return logs - logs.mean(axis=1, keepdims=True)


@pytest.mark.parametrize("task,n_classes", [("classification", 2), ("classification", 3), ("regression", 1)])
def test_linear_member_predicts_what_scikit_learn_fits_on_clr_counts(task, n_classes):
    """The module's outputs on a batch's (keys, counts) equal scikit-learn's predict_proba /
    predict on the CLR (numpy, here) of the same counts over the fitted features: features in
    another order, a feature the fit never saw (it adds nothing) and a kept feature absent from
    the batch (it counts 0)."""
    counts = _study_counts(60, 12, seed=1)
    counts[8:, 10], counts[4:, 11] = 0, 0  # two rare features, below the prevalence filter
    ids = [f"otu{j}" for j in range(12)]
    rng = np.random.default_rng(2)
    if task == "classification":
        names = ["a", "b", "c"][:n_classes]
        y = np.asarray(names, dtype=object)[(counts[:, 0] + rng.integers(0, 3, 60)) % n_classes]
        classes = sorted(names, reverse=True)  # the model's output order need not be sorted
    else:
        y, classes = counts[:, 0] * 0.7 + rng.normal(0, 1, 60), None
    settings = BaselineSettings.from_dict({"models": ["linear_clr"],
                                           "linear_clr": {"min_prevalence": 0.3, "C": [0.1, 1.0]}}, seed=3)
    fit = nested_fit("linear_clr", counts, y, [f"g{i // 2}" for i in range(60)], task, settings, None)
    keys = feature_id_keys(ids)
    module = linear_module(fit.model, keys, task, classes).double()
    kept = fit.model.keep
    assert kept.tolist() == list(range(10))  # the prevalence filter dropped the rare ones

    test = _study_counts(5, 12, seed=9)
    batch_features = [*np.argsort(ids)[::-1][1:].tolist(), 12]  # reversed, one left out, one unknown
    batch_keys = np.append(keys, feature_id_keys(["never-seen"]))[batch_features]
    batch_counts = np.concatenate([test, np.full((5, 1), 50)], axis=1)[:, batch_features]
    with torch.no_grad():
        out = module(torch.from_numpy(batch_keys), torch.from_numpy(batch_counts.astype(np.float32))).numpy()

    seen = test.copy()
    missing = np.argsort(ids)[::-1][0]
    seen[:, missing] = 0
    x = _numpy_clr(seen[:, kept].astype(float), 0.5)
    if task == "regression":
        np.testing.assert_allclose(out[:, 0], fit.model.estimator.predict(x), rtol=1e-10, atol=1e-10)
    else:
        want = fit.model.estimator.predict_proba(x)
        order = [list(fit.model.estimator.classes_).index(c) for c in classes]
        np.testing.assert_allclose(np.exp(out), want[:, order], rtol=1e-10, atol=1e-12)


def test_a_class_the_linear_member_never_saw_gets_probability_zero():
    counts = _study_counts(30, 6, seed=4)
    y = np.where(counts[:, 0] > 2, "b", "a").astype(object)
    settings = BaselineSettings.from_dict({"models": ["linear_clr"], "linear_clr": {"C": [1.0]}}, seed=3)
    fit = nested_fit("linear_clr", counts, y, [None] * 30, "classification", settings, None)
    module = linear_module(fit.model, feature_id_keys(list("uvwxyz")), "classification", ["a", "b", "c"])
    with torch.no_grad():
        probs = module(torch.from_numpy(feature_id_keys(list("uvwxyz"))), torch.ones(2, 6)).exp()
    assert torch.all(probs[:, 2] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, dtype=torch.float64))


def neural_members_and_a_linear_member(task: str, n_outputs: int,
                                       ) -> tuple[list[SequencePredictor], LinearCLR]:
    """Two tiny neural members (seeds 0 and 1) and a linear member on the keys 5, 11 and 40."""
    members = []
    for seed in range(2):
        torch.manual_seed(seed)
        members.append(SequencePredictor(tiny(task=task, n_outputs=n_outputs)).eval())
    linear = LinearCLR(3, n_outputs, task, 0.5)
    with torch.no_grad():
        linear.keys.copy_(torch.tensor([5, 11, 40]))
        linear.coef.copy_(torch.linspace(-1, 1, 3 * n_outputs, dtype=torch.float64).reshape(3, n_outputs))
        linear.intercept.fill_(0.25)
    return members, linear


@pytest.mark.parametrize("task,n_outputs", [("classification", 3), ("regression", 1)])
def test_an_ensemble_mixes_its_linear_member_in_by_its_weight(task, n_outputs, tmp_path):
    """(1 - w) x the neural members' mean + w x the linear member's, in probabilities (classification)
    or predictions; the model exports and loads with it."""
    members, linear = neural_members_and_a_linear_member(task, n_outputs)
    model = with_tabular_members(EnsemblePredictor.of(members), linear, 0.3).eval()
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    batch["table_keys"] = torch.tensor([40, 5, 7, 11, 13, 2, 9, 3])[: batch["unifrac_counts"].shape[1]]
    batch["expected_counts"] = batch["unifrac_counts"].double() * 1.7  # not the rarefied counts it reads
    with torch.no_grad():
        got = model(*predictor_inputs(model.config, batch))["target"]
        plain = EnsemblePredictor.of(members).eval()(*predictor_inputs(members[0].config, batch))["target"]
        own = linear(batch["table_keys"], batch["expected_counts"])
        export_model(model, tmp_path)
        loaded, _ = load_model(tmp_path)
        again = loaded(*predictor_inputs(loaded.config, batch))["target"]
    if task == "regression":
        want = 0.7 * plain.double() + 0.3 * own[:, 0]
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    else:
        want = 0.7 * plain.double().exp() + 0.3 * own.exp()
        torch.testing.assert_close(got.double().exp(), want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(again, got)
    assert loaded.linear is not None and loaded.config.linear_weight == 0.3


def test_a_model_whose_linear_member_read_a_rarefaction_draw_is_refused_in_one_line(tmp_path):
    """A model.json without ``linear_input`` was saved when the member was fitted on one rarefaction
    draw; served the scaled counts it would predict otherwise than it was scored, so loading it
    fails with one line naming the file and the remedy."""
    members = [SequencePredictor(tiny(task="classification", n_outputs=2)).eval()]
    linear = LinearCLR(2, 2, "classification", 0.5)
    export_model(with_tabular_members(EnsemblePredictor.of(members), linear, 0.5), tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["config"]["linear_input"] == "scaled_counts"
    load_model(tmp_path)
    del meta["config"]["linear_input"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"model\.json: its linear member reads one rarefaction draw.*"
                                         r"fine-tuning again"):
        load_model(tmp_path)


def _settings(linear_member) -> dict:
    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["linear_member"] = linear_member
    return settings


def _scaled_counts(study: Path, samples: list[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts [samples, features] scaled to ``depth`` per sample, feature keys), computed from the
    study's input table (ingest/counts.parquet), not from the model's batches."""
    from aam.data.datasets import feature_id_keys

    table = pd.read_parquet(study / "ingest" / "counts.parquet")
    wide = table.pivot_table(index="sample", columns="feature", values="count", fill_value=0).loc[samples]
    counts = wide.to_numpy(np.float64)
    return counts * depth / counts.sum(axis=1, keepdims=True), feature_id_keys(wide.columns)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_finetune_serves_the_clr_l2_fit_beside_the_unchanged_neural_model(study, tmp_path, task):
    """With finetune.linear_member the neural model trains exactly as without it, the linear member
    is scikit-learn's fit on the train + val samples' CLR of their counts scaled to the depth (from
    the input table: no rarefaction draw), and the test predictions are their equal-weight mix."""
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader, predict
    from aam.io.splits import read_groups

    column = "disease" if task == "classification" else "age"
    finetune(study, tmp_path / "plain", _settings(None), task=task)
    finetune(study, tmp_path / "mixed", _settings({"C": [0.1, 1.0], "alpha": [1.0, 10.0]}), task=task)
    plain, _ = load_model(tmp_path / "plain")
    mixed, meta = load_model(tmp_path / "mixed")
    assert isinstance(mixed, EnsemblePredictor) and len(mixed.members) == 1
    neural = mixed.members[0].state_dict().items()
    for (name, a), (_, b) in zip(neural, plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    record = meta["linear_member"]
    assert record["weight"] == 0.5 and record["n_train"] == 38  # 30 train + 8 val, no test sample

    splits = pd.read_csv(study / "splits.tsv", sep="\t", dtype=str)
    train = splits[splits["split"] != "test"]["sample"].tolist()  # by ID, train first, as listed
    test = splits[splits["split"] == "test"]["sample"].tolist()
    counts, keys = _scaled_counts(study, train + test, int(meta["depth"]))
    labels = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str).set_index("sample_name")
    y = labels.loc[train, column].to_numpy()
    if task == "regression":
        y = (y.astype(float) - float(meta["target_mean"])) / float(meta["target_std"])
    groups = read_groups(study / "splits.tsv")
    settings = BaselineSettings.from_dict({"models": ["linear_clr"], "linear_clr": {
        "C": [0.1, 1.0], "alpha": [1.0, 10.0]}}, seed=42)
    fit = nested_fit("linear_clr", counts[:len(train)], y, [groups.get(s) for s in train], task, settings,
                     None)
    assert record["params"] == fit.params
    assert record["n_features"] == fit.model.keep.size

    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": column, "type": task}, metadata=study / "metadata.tsv")
    pred = predict(plain, eval_loader(dm, "test"), torch.device("cpu"))
    rows = [dm.sample_ids[int(r)] for r in pred["row"]]
    plain_out = pd.DataFrame(pred["output"], index=rows).loc[test].to_numpy().copy()
    table = pd.read_csv(tmp_path / "mixed" / "predictions.tsv", sep="\t", dtype={"sample": str})
    table = table[table["split"] == "test"].set_index("sample").loc[test]
    x = counts[len(train):]
    if task == "regression":
        linear_pred = fit.model.predict(x)[0] * dm.target_std + dm.target_mean
        want = 0.5 * (plain_out[:, 0].astype(float) * dm.target_std + dm.target_mean) + 0.5 * linear_pred
        np.testing.assert_allclose(table["y_pred"].to_numpy(), want, rtol=1e-5)
    else:
        _, proba = fit.model.predict(x)
        order_out = [list(fit.classes).index(c) for c in dm.classes]
        want = 0.5 * torch.softmax(torch.from_numpy(plain_out), -1).numpy() + 0.5 * proba[:, order_out]
        np.testing.assert_allclose(table[[f"prob_{c}" for c in dm.classes]].to_numpy(), want, atol=2e-6)


def poisoned_copy(study: Path, tmp_path: Path) -> Path:
    """A copy of the study whose test samples have their classes flipped: a member fitted without
    reading them comes out the same on both."""
    import shutil

    poisoned = tmp_path / "poisoned"
    shutil.copytree(study, poisoned)
    meta = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str)
    test_ids = pd.read_csv(study / "splits.tsv", sep="\t", dtype=str).query("split == 'test'")["sample"]
    flip = meta["sample_name"].isin(test_ids)
    meta.loc[flip, "disease"] = np.where(meta.loc[flip, "disease"] == "Crohns", "Control", "Crohns")
    meta.to_csv(poisoned / "metadata.tsv", sep="\t", index=False)
    return poisoned


def test_the_linear_member_never_reads_the_test_samples(study, tmp_path):
    """Test samples with their targets flipped leave the member as it was."""
    settings = _settings({"C": [0.01, 0.1, 1.0]})
    finetune(study, tmp_path / "clean", settings)
    finetune(poisoned_copy(study, tmp_path), tmp_path / "dirty", settings)
    clean, clean_meta = load_model(tmp_path / "clean")
    dirty, dirty_meta = load_model(tmp_path / "dirty")
    assert clean_meta["linear_member"]["search"] == dirty_meta["linear_member"]["search"]
    for name in ("keys", "coef", "intercept"):
        assert torch.equal(getattr(clean.linear, name), getattr(dirty.linear, name)), name
