"""The pretraining diagnosis's pieces (scripts/diagnose_pretraining.py): nested probes against
scikit-learn, their inner selection blind to the test samples, and frozen encoders against the
bundled encoder's own weight file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.spatial.distance import pdist, squareform

from aam.evaluate.baselines import inner_folds
from aam.evaluate.frozen_encoder import cache_embeddings, frozen_encoder
from aam.evaluate.probes import nested_probe
from aam.pretrained import bundled_dir

N, N_TRAIN = 72, 54


@pytest.fixture(scope="module")
def points():
    """Two noisy classes in 4 dimensions, a regression target, and groups of 3 samples."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 4))
    score = x[:, 0] + 0.7 * rng.normal(size=N)
    labels = np.where(score > 0, "b", "a").astype(object)
    groups = [f"g{i // 3}" for i in range(N)]
    return x, labels, score, groups


def test_knn_probe_on_distances_equals_scikit_learn_knn_on_the_points(points):
    from sklearn.neighbors import KNeighborsClassifier

    x, labels, _, groups = points
    train, test = np.arange(N_TRAIN), np.arange(N_TRAIN, N)
    pred, proba, chosen = nested_probe("knn", squareform(pdist(x)), labels, groups, train, test,
                                       "classification", ["a", "b"], 0, grid=("k", [7]))
    reference = KNeighborsClassifier(7, weights="distance").fit(x[train], labels[train])
    np.testing.assert_allclose(proba, reference.predict_proba(x[test]), rtol=1e-9)
    assert list(pred) == list(reference.predict(x[test])) and chosen == {"k": 7}


def test_linear_probe_chooses_and_predicts_as_grid_search_on_the_same_inner_folds(points):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, _, y, groups = points
    train, test = np.arange(N_TRAIN), np.arange(N_TRAIN, N)
    alphas = [0.01, 10.0, 300.0, 3000.0]
    pred, proba, chosen = nested_probe("linear", x, y, groups, train, test, "regression", None, 5,
                                       grid=("alpha", alphas))
    folds = inner_folds(groups[:N_TRAIN], None, 3, 5)
    search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": alphas}, scoring="r2",
                          cv=folds).fit(x[train], y[train])
    assert chosen == {"alpha": search.best_params_["ridge__alpha"]} and proba is None
    np.testing.assert_allclose(pred, search.predict(x[test]), rtol=1e-9)


@pytest.mark.parametrize("probe", ["knn", "dissimilarity"])
def test_distance_probes_never_read_a_distance_to_or_a_label_of_a_test_sample(points, probe):
    x, labels, _, groups = points
    train, test = np.arange(N_TRAIN), np.arange(N_TRAIN, N)
    d = squareform(pdist(x))
    args = (groups, train, test, "classification", ["a", "b"], 3)
    pred, proba, chosen = nested_probe(probe, d, labels, *args)
    poisoned = d.copy()
    poisoned[np.ix_(test, test)] = np.nan
    poisoned[np.ix_(train, test)] = np.nan
    flipped = labels.copy()
    flipped[test] = "a"
    pred2, proba2, chosen2 = nested_probe(probe, poisoned, flipped, *args)
    assert chosen2 == chosen and list(pred2) == list(pred)
    np.testing.assert_array_equal(proba2, proba)


def test_frozen_encoders_hold_the_bundled_weights_shuffled_or_none_of_them():
    folder = bundled_dir()
    saved = load_file(str(folder / "model.safetensors"))
    pretrained = frozen_encoder(folder, "pretrained", 0).base.state_dict()
    permuted = frozen_encoder(folder, "permuted", 0).base.state_dict()
    random_a = frozen_encoder(folder, "random", 0).base.state_dict()
    random_b = frozen_encoder(folder, "random", 0).base.state_dict()
    assert set(saved) == set(pretrained)
    for name, weights in saved.items():
        assert torch.equal(pretrained[name], weights)
        assert torch.equal(permuted[name].flatten().sort().values, weights.flatten().sort().values)
        assert torch.equal(random_a[name], random_b[name])
    projection = "kmer_encoder.proj.weight"
    assert not torch.equal(permuted[projection], saved[projection])
    assert not torch.equal(random_a[projection], saved[projection])


def test_cache_embeddings_are_the_same_whatever_the_batch(tmp_path):
    from helpers.aam_synthetic import write_study

    from aam.io.model_files import export_model
    from aam.io.parquet_cache import read_samples
    from aam.models.aam import AAMConfig, SequenceEncoder

    write_study(tmp_path, n_samples=14, n_train=8, n_val=3)
    torch.manual_seed(0)
    config = AAMConfig(embedding_dim=16, layers=1, heads=2, ff_dim=32, dropout=0.0, asv_encoder="kmer",
                       kmer_size=3, max_bp=32, asv_limit=10)
    export_model(SequenceEncoder(config), tmp_path / "encoder")
    model = frozen_encoder(tmp_path / "encoder", "pretrained", 0)
    ids, batched = cache_embeddings(model, tmp_path / "tokens", seed=1, depth=100, batch_size=6)
    alone_ids, alone = cache_embeddings(model, tmp_path / "tokens", seed=1, depth=100, batch_size=1)
    cache = read_samples(tmp_path / "tokens" / "samples.parquet")
    deep = [str(s) for s, total in zip(cache.sample_ids, cache.totals, strict=True) if total >= 100]
    assert ids == alone_ids == deep
    assert batched.shape == (14, 16)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert np.ptp(batched, axis=0).max() > 1e-3  # samples differ
