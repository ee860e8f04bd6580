"""`aam evaluate` and `aam compare` on small synthetic files shaped like the real artifacts."""

from __future__ import annotations

import json

import biom
import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from aam.cli import main
from aam.errors import InputError
from aam.evaluate.combine import combine, mean_outputs, row_name
from aam.evaluate.holdout import label
from aam.evaluate.metrics import classification_metrics, regression_metrics
from aam.io.embeddings import write_embeddings

CLASSES = ["Control", "Crohns"]


def write_dataset(root, n=60, f=30, seed=0, regression=False):
    """Rarefied BIOM, splits, metadata and a finetune dir whose predictions follow the labels."""
    rng = np.random.default_rng(seed)
    samples = [f"2538.{1000100 + i}" for i in range(n)]  # numeric-looking IDs stay strings
    label = np.where(rng.random(n) < 0.45, "Crohns", "Control")
    age = np.round(rng.uniform(5, 60, size=n), 1)
    counts = rng.poisson(5, size=(n, f)).astype(float)
    counts[label == "Crohns", 0] += 40
    counts[:, 1] += age
    # rarefied: every sample has the same depth
    depth = int(counts.sum(axis=1).min())
    rare = np.zeros_like(counts)
    for i in range(n):
        rare[i] = rng.multivariate_hypergeometric(counts[i].astype(int), depth)
    table = biom.Table(rare.T, [f"ASV{j}" for j in range(f)], samples)
    (root / "rarefied").mkdir(parents=True)
    with h5py.File(root / "rarefied" / "table.biom", "w") as fh:
        table.to_hdf5(fh, "test")

    split = np.array(["train"] * n, dtype=object)
    split[n // 2: n // 2 + n // 6] = "val"
    split[n // 2 + n // 6:] = "test"
    pd.DataFrame({"sample": samples, "split": split, "group": [f"subj{i // 2}" for i in range(n)]}).to_csv(
        root / "splits.tsv", sep="\t", index=False
    )
    meta = pd.DataFrame({"sample": samples, "ibd": label, "age": [str(a) for a in age],
                         "sex": ["female"] * n})
    meta.loc[3, "ibd"] = "Missing: Not provided"  # a training sample without a usable label
    label[3] = "Missing: Not provided"
    (root / "ingest").mkdir()
    meta.to_parquet(root / "ingest" / "samples.parquet", index=False)

    ft = root / "models" / "small" / "finetune" / ("age" if regression else "ibd")
    ft.mkdir(parents=True)
    keep = np.isin(split, ["val", "test"])
    rows = pd.DataFrame({"sample": np.array(samples)[keep], "split": split[keep]})
    if regression:
        (ft / "model.json").write_text(json.dumps({"task": "regression", "target": "age"}))
        # as finetune writes it: float32 standardization undone, printed with %.6g
        mean, std = age.mean(), age.std()
        back = ((age[keep] - mean) / std).astype(np.float32).astype(np.float64) * std + mean
        rows["y_true"] = [f"{v:.6g}" for v in back]
        rows["y_pred"] = age[keep] + rng.normal(scale=5, size=keep.sum())
    else:
        (ft / "model.json").write_text(json.dumps({"task": "classification", "classes": CLASSES}))
        p = np.clip((label[keep] == "Crohns") * 0.5 + rng.uniform(0, 0.5, size=keep.sum()), 0, 1)
        rows["y_true"] = label[keep]
        rows["y_pred"] = np.where(p >= 0.5, "Crohns", "Control")
        rows["prob_Control"] = 1 - p
        rows["prob_Crohns"] = p
    rows.to_csv(ft / "predictions.tsv", sep="\t", index=False)
    # Lightning CSVLogger style: train and val rows for each epoch, NaN elsewhere
    hist = []
    for e in range(5):
        hist.append({"epoch": e, "step": 10 * e + 9, "train/loss": 1 / (e + 1), "val/loss": np.nan})
        hist.append({"epoch": e, "step": 10 * e + 9, "train/loss": np.nan, "val/loss": 1.2 / (e + 1)})
    pd.DataFrame(hist).to_csv(ft / "metrics.csv", index=False)
    pre = root / "models" / "small" / "pretrain"
    pre.mkdir()
    pd.DataFrame(hist).to_csv(pre / "metrics.csv", index=False)
    # every split's samples with a value for the target, as finetune writes them
    seen = np.ones(n, dtype=bool) if regression else np.arange(n) != 3
    emb = rng.normal(size=(int(seen.sum()), 8)).astype(np.float32)
    write_embeddings(ft / "embeddings.parquet", list(np.array(samples)[seen]), emb, split=list(split[seen]))
    return ft


BASELINES = {"random_forest": {"n_estimators": 20, "search_estimators": 10},
             "hist_gradient_boosting": {"max_iter": 20}}


def baselines(root, column="ibd", task="classification"):
    """`aam baselines` on the dataset's split (once per target), as the workflow runs it. Their class
    order needs no positive class: evaluate reads the probabilities by class name."""
    out = root / "baselines" / column
    if not (out / "metrics.json").exists():
        args = ["baselines", "--rarefied", str(root / "rarefied/table.biom"),
                "--splits", str(root / "splits.tsv"), "--samples", str(root / "ingest/samples.parquet"),
                "--target-column", column, "--task", task, "--dataset", "toy", "--seed", "42",
                "--settings", json.dumps(BASELINES), "--out-dir", str(out)]
        assert main(args) == 0
    return out


def evaluate_args(root, ft, out, column="ibd", task="classification", extra=(), base=None):
    """`aam evaluate`'s arguments; `base`: (column, task) of the baselines when not the target's own."""
    return [
        "evaluate", "--finetune-dir", str(ft), "--pretrain-dir", str(root / "models/small/pretrain"),
        "--baselines", str(baselines(root, *(base or (column, task)))), "--splits", str(root / "splits.tsv"),
        "--samples", str(root / "ingest/samples.parquet"), "--target-column", column, "--task", task,
        "--target", column, "--run", "small", "--dataset", "toy", "--out-dir", str(out), *extra,
    ]


MODELS = ("aam", "random_forest", "linear_clr", "hist_gradient_boosting")


def test_evaluate_classification(tmp_path):
    ft = write_dataset(tmp_path)
    out = tmp_path / "eval" / "small" / "ibd"
    assert main(evaluate_args(tmp_path, ft, out)) == 0
    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample": str})
    assert m["task"] == "classification" and m["classes"] == CLASSES and m["positive_class"] == "Crohns"
    assert m["n_test"] == len(pred) == 20 and m["n_val"] == 10
    assert (pred["split"] == "test").all() and pred["sample"].str.startswith("2538.").all()
    # train (30) + val (10) minus the unlabelled sample 3
    assert m["baselines"]["n_train"] == 39 and m["baselines"]["models"]["random_forest"]["n_features"] == 30
    assert set(m["baselines"]["models"]["linear_clr"]["params"]) == {"C"}
    # metrics.json agrees with the side-by-side predictions, and with the baselines' own scores
    own = json.loads((tmp_path / "baselines" / "ibd" / "metrics.json").read_text())["models"]
    for who in MODELS:
        again = classification_metrics(pred["y_true"], pred[f"{who}_pred"],
                                       pred[[f"{who}_prob_{c}" for c in CLASSES]].to_numpy(), CLASSES)
        assert again["auroc"] == pytest.approx(m["test"][who]["auroc"], abs=1e-5)
        assert again["confusion_matrix"] == m["test"][who]["confusion_matrix"]
        if who != "aam":
            assert own[who]["test"]["auroc"] == pytest.approx(m["test"][who]["auroc"], abs=1e-5)
    assert m["test"]["random_forest"]["auroc"] > 0.8  # the planted signal
    assert m["val"] == {"aam": m["val"]["aam"]} and m["val"]["aam"]["n"] == 10
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["confusion_matrices.png", "embedding_pcoa.png", "learning_curves.png", "roc.png"]
    assert all((out / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
    # same inputs, same outputs
    out2 = tmp_path / "again"
    assert main(evaluate_args(tmp_path, ft, out2)) == 0
    assert (out2 / "metrics.json").read_text() == (out / "metrics.json").read_text()
    assert (out2 / "predictions.tsv").read_text() == (out / "predictions.tsv").read_text()


@pytest.mark.parametrize("record", [{"trained_on_val": True}, {"linear_member": {"model": "linear_clr"}},
                                    {"forest_member": {"model": "random_forest"}}])
def test_val_scores_of_a_model_that_saw_its_val_samples_are_marked(tmp_path, record):
    """A model trained on its val samples (finetune.train_on_val), or whose linear or forest member
    was fitted on them, gets val_seen_in_training; one that did neither does not."""
    ft = write_dataset(tmp_path)
    assert main(evaluate_args(tmp_path, ft, tmp_path / "plain")) == 0
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["val_seen_in_training"] is False
    meta = json.loads((ft / "model.json").read_text())
    (ft / "model.json").write_text(json.dumps({**meta, **record}))
    assert main(evaluate_args(tmp_path, ft, tmp_path / "seen")) == 0
    assert json.loads((tmp_path / "seen" / "metrics.json").read_text())["val_seen_in_training"] is True


def test_evaluate_regression(tmp_path):
    ft = write_dataset(tmp_path, regression=True)
    out = tmp_path / "eval"
    assert main(evaluate_args(tmp_path, ft, out, column="age", task="regression")) == 0
    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert m["classes"] is None and m["baselines"]["n_train"] == 40
    again = regression_metrics(pred["y_true"], pred["aam_pred"])
    assert again["mae"] == pytest.approx(m["test"]["aam"]["mae"], rel=1e-4)
    assert m["test"]["random_forest"]["r2"] > 0.5
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "embedding_pcoa.png", "learning_curves.png", "pred_vs_true.png"]


def test_baselines_of_other_test_samples_are_a_clear_error(tmp_path, capsys):
    """Every model is scored on the same samples: baselines made from another split are refused."""
    ft = write_dataset(tmp_path)
    args = evaluate_args(tmp_path, ft, tmp_path / "eval")
    folder = tmp_path / "baselines" / "ibd"
    pred = pd.read_csv(folder / "predictions.tsv", sep="\t", dtype=str)
    dropped = pred["sample"].iloc[0]
    pred.iloc[1:].to_csv(folder / "predictions.tsv", sep="\t", index=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "lack a baseline prediction" in err and dropped in err and "same splits.tsv" in err
    assert not (tmp_path / "eval").exists()  # nothing half-written


def test_label_mismatch_and_task_mismatch_are_errors(tmp_path, capsys):
    ft = write_dataset(tmp_path)
    ibd = ("ibd", "classification")
    assert main(evaluate_args(tmp_path, ft, tmp_path / "e1", task="regression", base=ibd)) == 2
    assert "model task 'classification'" in capsys.readouterr().err
    assert main(evaluate_args(tmp_path, ft, tmp_path / "e2", column="sex", base=ibd)) == 2
    assert "differ from metadata column 'sex'" in capsys.readouterr().err
    pred = pd.read_csv(ft / "predictions.tsv", sep="\t", dtype=str)
    pred.loc[pred["split"] == "val", "split"] = "test"  # val samples claimed as test
    pred.to_csv(ft / "predictions.tsv", sep="\t", index=False)
    assert main(evaluate_args(tmp_path, ft, tmp_path / "e3")) == 2
    assert "not in the test split" in capsys.readouterr().err


def test_compare_two_runs(tmp_path):
    ft = write_dataset(tmp_path)
    files = []
    for run in ("small", "tiny"):
        out = tmp_path / "eval" / run / "ibd"
        args = evaluate_args(tmp_path, ft, out)
        args[args.index("--run") + 1] = run
        assert main(args) == 0
        files.append(str(out / "metrics.json"))
    tsv, png = tmp_path / "comparison.tsv", tmp_path / "comparison.png"
    assert main(["compare", "--metrics", *files, "--out", str(tsv), "--plot", str(png)]) == 0
    table = pd.read_csv(tsv, sep="\t")
    assert list(table["run"]) == ["small", "tiny"] and (table["metric"] == "auroc").all()
    assert table["random_forest"].nunique() == 1  # one fit of the baselines per split and target
    best = table[["random_forest", "linear_clr", "hist_gradient_boosting"]].max(axis=1)
    np.testing.assert_allclose(table["difference"], table["aam"] - best, atol=2e-4)
    assert (table["best_baseline"] == table[["random_forest", "linear_clr", "hist_gradient_boosting"]]
            .idxmax(axis=1)).all()
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", "--metrics", files[0], files[0], "--out", str(tsv),
                 "--plot", str(png)]) == 2


def test_true_class_unknown_to_the_model_is_an_input_error(tmp_path, capsys):
    ft = write_dataset(tmp_path)
    (ft / "model.json").write_text(json.dumps({"task": "classification", "classes": ["Control"]}))
    args = evaluate_args(tmp_path, ft, tmp_path / "e")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "baselines' classes ['Control', 'Crohns'] differ from the model's ['Control']" in err
    at = args.index("--baselines")
    assert main(args[:at] + args[at + 2:]) == 2  # the model alone
    assert "not among the classes" in capsys.readouterr().err


def test_multiclass_plots(tmp_path):
    from aam.evaluate import plots

    rng = np.random.default_rng(0)
    classes = ["CD", "Control", "UC"]
    y = np.array(classes, dtype=object)[rng.integers(0, 3, size=40)]
    logits = rng.normal(size=(40, 3)) + 2 * (y[:, None] == np.array(classes)[None, :])
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = {"AAM": classification_metrics(y, np.array(classes)[proba.argmax(1)], proba, classes)}
    plots.plot_roc_curves(y, {"AAM": proba, "random forest": proba[::-1]}, classes, tmp_path / "roc.png",
                          scores=scores)
    plots.plot_confusion_matrices({"AAM": scores["AAM"]["confusion_matrix"]}, classes, tmp_path / "cm.png")
    plots.plot_embedding_pcoa(rng.normal(size=(40, 4)), y, "classification", tmp_path / "pcoa.png")
    plots.plot_learning_curves({}, tmp_path / "lc.png")
    for name in ("roc.png", "cm.png", "pcoa.png", "lc.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_pcoa_coordinates_match_classical_mds_of_euclidean_distances():
    from scipy.spatial.distance import pdist, squareform

    from aam.evaluate.plots import pcoa_coordinates

    x = np.random.default_rng(1).normal(size=(12, 5))
    coords, explained = pcoa_coordinates(x, n_axes=2)
    # classical MDS: eigenvectors of the double-centred -D^2/2
    d2 = squareform(pdist(x)) ** 2
    j = np.eye(12) - 1 / 12
    vals, vecs = np.linalg.eigh(-0.5 * j @ d2 @ j)
    order = np.argsort(vals)[::-1][:2]
    ref = vecs[:, order] * np.sqrt(vals[order])
    for k in range(2):  # axes are defined up to sign
        sign = np.sign(coords[0, k] * ref[0, k])
        np.testing.assert_allclose(coords[:, k], sign * ref[:, k], atol=1e-8)
    assert explained[0] == pytest.approx(vals[order[0]] / vals[vals > 1e-12].sum())


def test_classifier_predicting_one_class_is_flagged(tmp_path, caplog):
    ft = write_dataset(tmp_path)
    pred = pd.read_csv(ft / "predictions.tsv", sep="\t", dtype={"sample": str})
    pred["y_pred"] = "Control"
    pred["prob_Crohns"] = 0.3 + 0.001 * np.arange(len(pred)) / len(pred)
    pred["prob_Control"] = 1 - pred["prob_Crohns"]
    pred.to_csv(ft / "predictions.tsv", sep="\t", index=False)
    out = tmp_path / "eval"
    with caplog.at_level("WARNING"):
        assert main(evaluate_args(tmp_path, ft, out, extra=("--fold", "r0f1"))) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["degenerate_predictions"].startswith("one class ('Control') predicted for all 20 test samples")
    assert m["fold"] == "r0f1"
    assert "degenerate predictions of the AAM: one class ('Control')" in caplog.text
    assert "of the random forest" not in caplog.text and "of the HistGradientBoosting" not in caplog.text
    # a model that learned is not flagged
    ft2 = write_dataset(tmp_path / "ok")
    assert main(evaluate_args(tmp_path / "ok", ft2, tmp_path / "ok" / "eval")) == 0
    learned = json.loads((tmp_path / "ok" / "eval" / "metrics.json").read_text())
    assert learned["degenerate_predictions"] is None


def test_embeddings_in_another_layout_are_one_clear_error(tmp_path, capsys):
    ft = write_dataset(tmp_path)
    old = pd.DataFrame({"sample": ["a", "b"], "split": ["val", "test"],
                        "embedding": [[0.1, 0.2], [0.3, 0.4]]})
    old.to_parquet(ft / "embeddings.parquet", index=False)
    assert main(evaluate_args(tmp_path, ft, tmp_path / "eval")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embeddings.parquet" in err[0] and "columns id and embedding" in err[0]
    assert not (tmp_path / "eval").exists()


def test_positive_class_orders_the_classes_and_auroc_scores_it(tmp_path):
    from sklearn.metrics import roc_auc_score

    ft = write_dataset(tmp_path)
    out = tmp_path / "eval"
    assert main(evaluate_args(tmp_path, ft, out, extra=("--positive-class", "Control"))) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["positive_class"] == "Control" and m["classes"] == ["Crohns", "Control"]
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample": str})
    for who in MODELS:
        prefix = who
        expected = roc_auc_score(pred["y_true"] == "Control", pred[f"{prefix}_prob_Control"])
        assert m["test"][who]["auroc"] == pytest.approx(expected, abs=1e-6)
        # rows and columns of the confusion matrix follow the new class order
        truth = pred["y_true"].to_numpy()
        said = pred[f"{prefix}_pred"].to_numpy()
        both = int(((truth == "Control") & (said == "Control")).sum())
        assert m["test"][who]["confusion_matrix"][1][1] == both


def test_positive_class_unknown_to_the_model_is_an_error(tmp_path, capsys):
    ft = write_dataset(tmp_path)
    assert main(evaluate_args(tmp_path, ft, tmp_path / "eval", extra=("--positive-class", "UC"))) == 2
    assert "'UC' is not one of the classes" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


# --- AAM combined with a baseline: the mean of their predictions, one more model (aam.evaluate.combine) ---


def test_combined_outputs_are_the_mean_of_the_members_by_hand():
    aam = (np.array(["B", "A"], dtype=object), np.array([[0.2, 0.8], [0.6, 0.4]]))
    forest = (np.array(["A", "A"], dtype=object), np.array([[0.6, 0.4], [0.9, 0.1]]))
    # (0.2 + 0.6) / 2 = 0.4, (0.8 + 0.4) / 2 = 0.6 -> B; (0.6 + 0.9) / 2 = 0.75, 0.25 -> A
    pred, proba = combine({"aam": aam, "random_forest": forest}, ["random_forest"], "classification",
                          ["A", "B"], "here")["aam+random_forest"]
    assert proba == pytest.approx(np.array([[0.4, 0.6], [0.75, 0.25]])) and list(pred) == ["B", "A"]
    # regression: (1 + 3) / 2, (2 + 6) / 2
    mean = mean_outputs("regression", [(np.array([1.0, 2.0]), None), (np.array([3.0, 6.0]), None)], None)
    assert mean[0].tolist() == [2.0, 4.0] and mean[1] is None
    assert row_name("scratch", ["aam", "random_forest"]) == "scratch+random_forest (mean)"


def test_a_combination_of_two_baselines_is_the_mean_of_three_by_hand():
    aam = (np.array(["B"], dtype=object), np.array([[0.1, 0.9]]))
    forest = (np.array(["A"], dtype=object), np.array([[0.7, 0.3]]))
    linear = (np.array(["A"], dtype=object), np.array([[0.7, 0.3]]))
    models = {"aam": aam, "random_forest": forest, "linear_clr": linear}
    # (0.1 + 0.7 + 0.7) / 3 = 0.5, (0.9 + 0.3 + 0.3) / 3 = 0.5: a tie goes to the first class, A
    pred, proba = combine(models, ["random_forest+linear_clr"], "classification", ["A", "B"],
                          "here")["aam+random_forest+linear_clr"]
    assert proba == pytest.approx(np.array([[0.5, 0.5]])) and list(pred) == ["A"]
    # regression: (3 + 6 + 9) / 3
    values = {"aam": (np.array([3.0]), None), "random_forest": (np.array([6.0]), None),
              "linear_clr": (np.array([9.0]), None)}
    three = "aam+random_forest+linear_clr"
    mean, _ = combine(values, ["random_forest+linear_clr"], "regression", None, "here")[three]
    assert mean.tolist() == [6.0]
    name = row_name("scratch", ["aam", "random_forest", "linear_clr"])
    assert name == "scratch+random_forest+linear_clr (mean)"
    # its name in plots and in the log's warnings, each member by its label
    assert label(three) == "AAM + random forest + CLR + L2 logistic/ridge (mean)"
    assert label("aam+random_forest") == "AAM + random forest (mean)"
    with pytest.raises(InputError, match=r"here: cannot combine AAM with 'hist_gradient_boosting'"):
        combine(models, ["random_forest+hist_gradient_boosting"], "classification", ["A", "B"], "here")


def test_evaluate_scores_the_combination_like_any_model(tmp_path):
    ft = write_dataset(tmp_path)
    out = tmp_path / "eval"
    assert main(evaluate_args(tmp_path, ft, out, extra=["--combine", "random_forest", "linear_clr",
                                                         "random_forest+linear_clr"])) == 0
    m = json.loads((out / "metrics.json").read_text())
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample": str})
    assert list(m["combined"]) == ["aam+random_forest", "aam+linear_clr", "aam+random_forest+linear_clr"]
    assert m["combined"]["aam+linear_clr"] == {"members": ["aam", "linear_clr"], "method": "mean",
                                               "degenerate_predictions": None}
    assert m["combined"]["aam+random_forest+linear_clr"]["members"] == ["aam", "random_forest", "linear_clr"]
    three = "aam+random_forest+linear_clr"
    mean = (pred["aam_prob_Crohns"] + pred["random_forest_prob_Crohns"] + pred["linear_clr_prob_Crohns"]) / 3
    assert pred[f"{three}_prob_Crohns"].to_numpy() == pytest.approx(mean.to_numpy(), abs=2e-6)
    expected = roc_auc_score(pred["y_true"] == "Crohns", mean)
    assert m["test"][three]["auroc"] == pytest.approx(expected, abs=1e-5)
    for base in ("random_forest", "linear_clr"):
        name = f"aam+{base}"
        for c in CLASSES:  # each probability the mean of the members' in the same file
            mean = (pred[f"aam_prob_{c}"] + pred[f"{base}_prob_{c}"]) / 2
            assert pred[f"{name}_prob_{c}"].to_numpy() == pytest.approx(mean.to_numpy(), abs=2e-6)
        # scored by scikit-learn from that mean: AUROC of the positive class (Crohns)
        mean = (pred["aam_prob_Crohns"] + pred[f"{base}_prob_Crohns"]) / 2
        expected = roc_auc_score(pred["y_true"] == "Crohns", mean)
        assert m["test"][name]["auroc"] == pytest.approx(expected, abs=1e-5)
        top = np.where(pred[f"{name}_prob_Crohns"] > pred[f"{name}_prob_Control"], "Crohns", "Control")
        assert (pred[f"{name}_pred"] == top).all()
    # the members' own scores are untouched by the combination
    plain = tmp_path / "plain"
    assert main(evaluate_args(tmp_path, ft, plain)) == 0
    alone = json.loads((plain / "metrics.json").read_text())
    assert alone["combined"] == {} and all(m["test"][k] == alone["test"][k] for k in MODELS)


def test_combining_another_fold_or_an_unfitted_baseline_is_refused(tmp_path, capsys):
    ft = write_dataset(tmp_path)
    folder = baselines(tmp_path)
    info = json.loads((folder / "metrics.json").read_text())
    del info["models"]["linear_clr"]
    (folder / "metrics.json").write_text(json.dumps(info))
    assert main(evaluate_args(tmp_path, ft, tmp_path / "e1", extra=["--combine", "linear_clr"])) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot combine AAM with 'linear_clr'" in err and len(err.splitlines()) == 1
    # baselines of other test samples: the same one line as without --combine, nothing written
    pred = pd.read_csv(folder / "predictions.tsv", sep="\t", dtype=str)
    pred.iloc[1:].to_csv(folder / "predictions.tsv", sep="\t", index=False)
    assert main(evaluate_args(tmp_path, ft, tmp_path / "e2", extra=["--combine", "random_forest"])) == 2
    assert "lack a baseline prediction" in capsys.readouterr().err
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()
