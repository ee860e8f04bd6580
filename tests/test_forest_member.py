"""The forest member of a fine-tuned model (finetune.forest_member): the random forest baseline served
inside the model, its trees held as tensors.

Checked against independent references: scikit-learn's own predict_proba / predict of the fitted
forest on relative abundances computed here with numpy (in the workflow: of the model's evaluation
rarefaction draw, each row summing to the depth), its leaves at split thresholds, the members'
mixture by hand, the shares of ``auto`` worked out by hand, and a poisoned test split.
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
import test_linear_member as linear_tests  # noqa: E402
from helpers.aam_synthetic import make_batch  # noqa: E402

from aam.data.datasets import feature_id_keys  # noqa: E402
from aam.errors import InputError  # noqa: E402
from aam.evaluate.baselines import BaselineSettings, nested_fit, relative_abundance  # noqa: E402
from aam.io.model_files import export_model, load_model  # noqa: E402
from aam.models.aam import SequencePredictor, predictor_inputs  # noqa: E402
from aam.models.ensemble import EnsemblePredictor, with_tabular_members  # noqa: E402
from aam.models.linear_clr import LinearCLR  # noqa: E402
from aam.training.forest_member import forest_module  # noqa: E402
from aam.training.member_weights import member_weights  # noqa: E402

SETTINGS, finetune, tiny = generalization.SETTINGS, generalization.finetune, generalization.tiny
study = generalization.study  # the tiny study (rarefied, tokenized) as a module fixture here too


def _forest(task: str, classes_seen: list[str] | None = None, n: int = 80, n_features: int = 15):
    """A nested fit of the random_forest baseline on synthetic counts, and those counts."""
    rng = np.random.default_rng(3)
    counts = rng.poisson(5, size=(n, n_features)) * (rng.random((n, n_features)) < 0.6)
    counts[:, 0] += rng.integers(0, 2, n) * 20
    if task == "classification":
        names = np.asarray(classes_seen, dtype=object)
        y = names[(counts[:, 0] > 10).astype(int) + (counts[:, 1] > 6) * (len(names) > 2)]
    else:
        y = counts[:, 0] * 0.3 + rng.normal(0, 1, n)
    settings = BaselineSettings.from_dict({"models": ["random_forest"], "random_forest": {
        "n_estimators": 40, "search_estimators": 10, "min_samples_leaf": [1, 3]}}, seed=7)
    groups = [f"g{i // 2}" for i in range(n)]
    return nested_fit("random_forest", counts, y, groups, task, settings, None), counts


@pytest.mark.parametrize("task,classes_seen,classes", [
    ("classification", ["a", "b"], ["b", "a"]),
    ("classification", ["a", "b", "c"], ["c", "a", "b"]),
    ("classification", ["a", "b"], ["a", "b", "z"]),  # a class the forest never saw
    ("regression", None, None),
])
def test_forest_member_predicts_what_scikit_learn_fits_on_relative_abundances(task, classes_seen, classes):
    """The module's outputs on a batch's (keys, counts) equal scikit-learn's predict_proba / predict
    on relative abundances (numpy, here) over every feature of the sample: features in another
    order, one the fit never saw (it counts toward the sample's total, and splits nothing) and a
    fitted one absent from the batch (it counts 0)."""
    fit, counts = _forest(task, classes_seen)
    ids = [f"otu{j}" for j in range(counts.shape[1])]
    keys = feature_id_keys(ids)
    module = forest_module(fit.model.estimator, keys, task, classes)
    assert module.keys.numel() <= counts.shape[1] and torch.all(module.keys[1:] > module.keys[:-1])

    rng = np.random.default_rng(11)
    test = rng.poisson(5, size=(12, counts.shape[1])) * (rng.random((12, counts.shape[1])) < 0.6)
    test[:, 0] += rng.integers(0, 2, 12) * 20
    missing = 4  # a fitted feature the batch lacks
    test[:, missing] = 0
    unknown = rng.integers(0, 9, size=(12, 1))
    columns = [j for j in range(counts.shape[1]) if j != missing][::-1]
    batch_keys = np.append(keys[columns], feature_id_keys(["never-seen"]))
    batch_counts = np.concatenate([test[:, columns], unknown], axis=1).astype(np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(batch_keys), torch.from_numpy(batch_counts)).numpy()

    x = relative_abundance(np.concatenate([test, unknown], axis=1))[:, : counts.shape[1]]
    if task == "regression":
        np.testing.assert_allclose(out[:, 0], fit.model.estimator.predict(x), rtol=1e-6, atol=1e-6)
        return
    want = fit.model.estimator.predict_proba(x)
    probs = np.exp(out)
    for c in classes:
        column = probs[:, classes.index(c)]
        if c in fit.model.estimator.classes_:
            fitted = list(fit.model.estimator.classes_).index(c)
            np.testing.assert_allclose(column, want[:, fitted], atol=1e-6)
        else:
            assert np.all(column == 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_a_sample_at_a_split_threshold_reaches_scikit_learn_s_leaf():
    """scikit-learn compares a float32 copy of a feature with a float64 threshold (the midpoint of
    two float32 values); values on and next to a threshold reach the same leaf in the module."""
    fit, counts = _forest("classification", ["a", "b"])
    estimator = fit.model.estimator.estimators_[0]
    keys = feature_id_keys([f"otu{j}" for j in range(counts.shape[1])])
    module = forest_module(fit.model.estimator, keys, "classification", ["a", "b"])
    root_feature, threshold = int(estimator.tree_.feature[0]), np.float32(estimator.tree_.threshold[0])
    values = [threshold, np.nextafter(threshold, np.float32(0)), np.nextafter(threshold, np.float32(1))]
    x = np.zeros((len(values), counts.shape[1]), dtype=np.float32)
    x[:, root_feature] = values
    mine = torch.zeros(len(values), module.keys.numel(), dtype=torch.float64)
    mine[:, int(module.feature[0])] = torch.tensor(np.asarray(values, dtype=np.float64))
    want = estimator.apply(x)
    got = module.leaves(mine)[:, 0].numpy()
    np.testing.assert_array_equal(got, want)
    assert len(set(want)) == 2  # the values fall on both sides of the split


@pytest.mark.parametrize("task,n_outputs", [("classification", 3), ("regression", 1)])
def test_an_ensemble_mixes_its_linear_and_forest_members_in_by_their_weights(task, n_outputs, tmp_path):
    """w_n x the neural members' mean + w_l x the linear member's + w_f x the forest's, in
    probabilities (classification) or predictions, w_n = 1 - w_l - w_f; it exports and loads."""
    members, linear = linear_tests.neural_members_and_a_linear_member(task, n_outputs)
    fit, counts = _forest(task, ["a", "b", "c"] if task == "classification" else None, n_features=8)
    forest = forest_module(fit.model.estimator, np.array([2, 3, 5, 7, 9, 11, 13, 40]), task,
                           ["a", "b", "c"] if task == "classification" else None)
    model = with_tabular_members(EnsemblePredictor.of(members), linear, 0.25, forest, 0.35).eval()
    batch = make_batch([[0, 1, 2, 3], [2, 4], [5], [1, 6, 7]], counts=[[9, 5, 2, 1], [4, 4], [7], [3, 2, 1]])
    batch["table_keys"] = torch.tensor([40, 5, 7, 11, 13, 2, 9, 3])[: batch["unifrac_counts"].shape[1]]
    batch["expected_counts"] = batch["unifrac_counts"].double() * 1.7
    batch["present_keys"] = torch.tensor([2, 3, 40, 9, 11, 7, 13, 5])[: batch["unifrac_counts"].shape[1]]
    with torch.no_grad():
        got = model(*predictor_inputs(model.config, batch))["target"]
        plain = EnsemblePredictor.of(members).eval()(*predictor_inputs(members[0].config, batch))["target"]
        own_linear = linear(batch["table_keys"], batch["expected_counts"])
        own_forest = forest(batch["present_keys"], batch["unifrac_counts"])  # the draw, not scaled counts
        export_model(model, tmp_path)
        loaded, _ = load_model(tmp_path)
        again = loaded(*predictor_inputs(loaded.config, batch))["target"]
    if task == "regression":
        want = 0.4 * plain.double() + 0.25 * own_linear[:, 0] + 0.35 * own_forest[:, 0]
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    else:
        want = 0.4 * plain.double().exp() + 0.25 * own_linear.exp() + 0.35 * own_forest.exp()
        torch.testing.assert_close(got.double().exp(), want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(again, got)
    assert loaded.forest is not None and loaded.config.forest_weight == 0.35
    assert loaded.neural_weight() == pytest.approx(0.4)


def test_members_whose_weights_leave_the_neural_members_nothing_are_refused():
    members = [SequencePredictor(tiny(task="classification", n_outputs=2)).eval()]
    fit, _ = _forest("classification", ["a", "b"], n_features=4)
    forest = forest_module(fit.model.estimator, np.arange(4), "classification", ["a", "b"])
    with pytest.raises(ValueError, match="sum must be below 1"):
        with_tabular_members(EnsemblePredictor.of(members), LinearCLR(2, 2, "classification", 0.5), 0.5,
                             forest, 0.5)


@pytest.mark.parametrize("fine,task,want", [
    ({"linear_member": {}, "forest_member": {}}, "classification", {"linear": 1 / 3, "forest": 1 / 3}),
    ({"linear_member": {}, "forest_member": {}}, "regression", {"linear": 1 / 2}),  # tasks: classification
    ({"linear_member": {}, "forest_member": {"tasks": ["regression"]}}, "regression",
     {"linear": 1 / 3, "forest": 1 / 3}),
    ({"linear_member": None, "forest_member": {}}, "classification", {"forest": 1 / 2}),
    ({"linear_member": {"weight": 0.5}, "forest_member": {"weight": "auto"}}, "classification",
     {"linear": 0.5, "forest": 1 / 3}),
    ({"linear_member": {"weight": 0.2}, "forest_member": None}, "classification", {"linear": 0.2}),
    ({"linear_member": None, "forest_member": None}, "classification", {}),
])
def test_member_weights_auto_is_an_equal_share_among_the_parts_the_model_has(fine, task, want):
    got = member_weights(fine, task)
    assert got.keys() == want.keys()
    for name, weight in want.items():
        assert got[name] == pytest.approx(weight)


def test_member_weights_that_sum_to_one_fail_in_one_line_naming_the_keys():
    fine = {"linear_member": {"weight": 0.6}, "forest_member": {"weight": 0.4}}
    with pytest.raises(InputError, match=r"^finetune\.linear_member\.weight 0\.6, finetune\.forest_member\."
                                         r"weight 0\.4: the members' shares must sum to less than 1"):
        member_weights(fine, "classification")


def _settings(forest_member, linear_member=None) -> dict:
    settings = json.loads(json.dumps(SETTINGS))
    settings["finetune"]["linear_member"] = linear_member
    settings["finetune"]["forest_member"] = forest_member
    return settings


FOREST = {"n_estimators": 60, "search_estimators": 20, "min_samples_leaf": [1, 3]}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_finetune_serves_the_forest_fit_beside_the_linear_member_and_the_unchanged_neural_model(
        study, tmp_path, task):
    """With finetune.forest_member the neural model trains exactly as without it, the forest is
    scikit-learn's nested fit on the train + val samples' relative abundances in the model's
    evaluation draw (each row summing to the depth), the linear member's on their counts scaled to
    the depth (from the input table), and the test predictions are the three parts' mix in thirds
    (``auto``)."""
    from aam.data.datasets import AAMDataModule
    from aam.evaluate.predict import eval_loader, predict
    from aam.io.splits import read_groups

    column = "disease" if task == "classification" else "age"
    forest_spec = {**FOREST, "tasks": ["classification", "regression"]}
    finetune(study, tmp_path / "plain", _settings(None), task=task)
    finetune(study, tmp_path / "mixed", _settings(forest_spec, {"C": [0.1, 1.0], "alpha": [1.0, 10.0]}),
             task=task)
    plain, _ = load_model(tmp_path / "plain")
    mixed, meta = load_model(tmp_path / "mixed")
    assert isinstance(mixed, EnsemblePredictor) and mixed.forest is not None and mixed.linear is not None
    neural = mixed.members[0].state_dict().items()
    for (name, a), (_, b) in zip(neural, plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    record = meta["forest_member"]
    assert record["weight"] == meta["linear_member"]["weight"] == pytest.approx(1 / 3)
    assert record["n_train"] == 38 and record["n_trees"] == 60  # 30 train + 8 val, no test sample

    splits = pd.read_csv(study / "splits.tsv", sep="\t", dtype=str)
    train = splits[splits["split"] != "test"]["sample"].tolist()
    test = splits[splits["split"] == "test"]["sample"].tolist()
    counts, _ = linear_tests._scaled_counts(study, train + test, int(meta["depth"]))
    labels = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str).set_index("sample_name")
    y = labels.loc[train, column].to_numpy()
    if task == "regression":  # standardized, in float32 as the batches carry it
        y = ((y.astype(float) - float(meta["target_mean"])) / float(meta["target_std"])).astype(np.float32)
    groups = [read_groups(study / "splits.tsv").get(s) for s in train]
    dm = AAMDataModule(study / "tokens", study / "splits.tsv", meta["data"], seed=42,
                       target={"column": column, "type": task}, metadata=study / "metadata.tsv")
    drawn = _drawn_counts(dm, train + test, len(train))
    assert np.all(drawn.sum(axis=1) == int(meta["depth"]))
    settings = BaselineSettings.from_dict({"models": ["random_forest"], "random_forest": FOREST}, seed=42)
    fit = nested_fit("random_forest", drawn[:len(train)], y, groups, task, settings, None)
    linear_settings = BaselineSettings.from_dict({"models": ["linear_clr"], "linear_clr": {
        "C": [0.1, 1.0], "alpha": [1.0, 10.0]}}, seed=42)
    linear = nested_fit("linear_clr", counts[:len(train)], y, groups, task, linear_settings, None)
    assert record["params"] == fit.params and record["search"] == fit.search

    pred = predict(plain, eval_loader(dm, "test"), torch.device("cpu"))
    rows = [dm.sample_ids[int(r)] for r in pred["row"]]
    plain_out = pd.DataFrame(pred["output"], index=rows).loc[test].to_numpy().copy()
    table = pd.read_csv(tmp_path / "mixed" / "predictions.tsv", sep="\t", dtype={"sample": str})
    table = table[table["split"] == "test"].set_index("sample").loc[test]
    x, x_drawn = counts[len(train):], drawn[len(train):]
    if task == "regression":
        scale = lambda v: v * dm.target_std + dm.target_mean  # noqa: E731
        want = (scale(plain_out[:, 0].astype(float)) + scale(linear.model.predict(x)[0])
                + scale(fit.model.predict(x_drawn)[0])) / 3
        np.testing.assert_allclose(table["y_pred"].to_numpy(), want, rtol=1e-5)
    else:
        order = [list(fit.classes).index(c) for c in dm.classes]
        want = (torch.softmax(torch.from_numpy(plain_out), -1).numpy() + linear.model.predict(x)[1][:, order]
                + fit.model.predict(x_drawn)[1][:, order]) / 3
        np.testing.assert_allclose(table[[f"prob_{c}" for c in dm.classes]].to_numpy(), want, atol=2e-6)


def _drawn_counts(dm, samples: list[str], n_train: int) -> np.ndarray:
    """[samples, features] the evaluation draw's counts of ``samples``, over the features drawn in
    some of the first ``n_train`` (the fit's samples) in ascending order of their keys: the columns
    of the fit (a forest's column order decides which features each split tries)."""
    from aam.evaluate.predict import eval_loader

    rows = {}
    for split in ("train", "val", "test"):
        for batch in eval_loader(dm, split):
            for i, r in enumerate(batch["sample_index"]):
                drawn = batch["unifrac_counts"][i]
                rows[dm.sample_ids[int(r)]] = dict(zip(batch["present_keys"][drawn > 0].tolist(),
                                                       drawn[drawn > 0].tolist(), strict=True))
    keys = sorted({k for s in samples[:n_train] for k in rows[s]})
    return np.array([[rows[s].get(k, 0.0) for k in keys] for s in samples])


def test_the_forest_member_never_reads_the_test_samples(study, tmp_path):
    """Test samples with their targets flipped leave the forest as it was, tree for tree."""
    settings = _settings(FOREST)
    finetune(study, tmp_path / "clean", settings)
    finetune(linear_tests.poisoned_copy(study, tmp_path), tmp_path / "dirty", settings)
    clean, clean_meta = load_model(tmp_path / "clean")
    dirty, dirty_meta = load_model(tmp_path / "dirty")
    assert clean_meta["forest_member"]["search"] == dirty_meta["forest_member"]["search"]
    for name, buffer in clean.forest.state_dict().items():
        assert torch.equal(buffer, dirty.forest.state_dict()[name]), name
