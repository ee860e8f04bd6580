"""Stage `aam unifrac`: outputs that scikit-bio reads back, equal to scikit-bio's numbers."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skbio
from skbio.diversity import alpha_diversity, beta_diversity

from aam.cli import main
from aam.io.biom import csr_to_table, write_biom

NEWICK = "(((f1:0.5,f2:0.25):0.1,(f3:0.3,'f 4':0.2,f5:0):0.4):0.05,(f6:1,f7:0.7):0.2);"
FEATURES = ["f1", "f2", "f3", "f 4", "f5", "f6", "f7"]


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, (9, len(FEATURES)))
    counts[0] = [5, 0, 0, 0, 0, 0, 0]
    counts[1] = counts[2]
    samples = [f"2538.{1000 + i}" for i in range(9)]  # numeric-looking IDs stay strings
    table = tmp_path / "table.biom"
    write_biom(csr_to_table(sp.csr_matrix(counts), samples, FEATURES), table)
    tree = tmp_path / "tree.nwk"
    tree.write_text(NEWICK)
    meta = tmp_path / "samples.parquet"
    groups = ["a", "b", "a", "b", "a", "Missing: Not provided", "b", "a", "b"]
    pd.DataFrame({"sample": samples, "group": groups}).to_parquet(meta)
    return counts, samples, table, tree, meta


def run_stage(inputs, out, settings):
    _, _, table, tree, meta = inputs
    return main(["unifrac", "--table", str(table), "--tree", str(tree), "--samples", str(meta),
                 "--color-column", "group", "--out-dir", str(out), "--settings", settings, "--threads", "1"])


def test_stage_writes_readable_outputs(inputs, tmp_path):
    counts, samples, *_ = inputs
    out = tmp_path / "unifrac"
    settings = ('{"metrics": ["unweighted", "weighted_normalized", "weighted_unnormalized"],'
                ' "pcoa_dimensions": 3}')
    assert run_stage(inputs, out, settings) == 0
    tree = skbio.TreeNode.read(io.StringIO(NEWICK), convert_underscores=False)
    for metric in ("unweighted", "weighted_normalized", "weighted_unnormalized"):
        dm = skbio.DistanceMatrix.read(str(out / f"{metric}.tsv"))
        assert list(dm.ids) == samples
        kw = {} if metric == "unweighted" else {"normalized": metric == "weighted_normalized"}
        name = "unweighted_unifrac" if metric == "unweighted" else "weighted_unifrac"
        ref = beta_diversity(name, counts, ids=samples, taxa=FEATURES, tree=tree, **kw)
        np.testing.assert_allclose(dm.data, ref.data, atol=1e-9, rtol=0)
        coords = pd.read_csv(out / f"pcoa_{metric}.tsv", sep="\t", index_col=0, dtype={"sample": str})
        assert list(coords.columns) == ["PC1", "PC2", "PC3"]
        assert coords.index[0] == "proportion_explained" and list(coords.index[1:]) == samples
        assert (coords.iloc[0] > 0).all()  # proportions of the eigenvalue sum (negative ones included)
        assert skbio.OrdinationResults.read(str(out / f"pcoa_{metric}.txt")).samples.shape[0] == len(samples)
        assert (out / f"pcoa_{metric}.png").read_bytes()[:4] == b"\x89PNG"
    pd_table = pd.read_csv(out / "faith_pd.tsv", sep="\t", dtype={"sample": str})
    ref_pd = alpha_diversity("faith_pd", counts, ids=samples, taxa=FEATURES, tree=tree)
    np.testing.assert_allclose(pd_table["faith_pd"], ref_pd.to_numpy(), atol=1e-9)
    assert not list(out.glob(".*.tmp"))


def test_stage_settings_and_errors(inputs, tmp_path, capsys):
    out = tmp_path / "u"
    assert run_stage(inputs, out, '{"metrics": ["generalized"]}') == 2
    assert run_stage(inputs, out, '{"backend": "nope"}') == 2
    assert "unifrac" in capsys.readouterr().err
    _, _, table, tree, meta = inputs
    tree.write_text("(f1:1,f2:1,f3:1);")
    assert run_stage(inputs, out, "{}") == 2
    assert "unrooted" in capsys.readouterr().err
    assert not (out / "unweighted.tsv").exists()


@pytest.mark.skipif(importlib.util.find_spec("unifrac") is None, reason="biocore's unifrac is not installed")
def test_striped_backend_agrees(inputs, tmp_path):
    a, b = tmp_path / "torch", tmp_path / "striped"
    assert run_stage(inputs, a, '{"backend": "torch", "faith_pd": false}') == 0
    assert run_stage(inputs, b, '{"backend": "striped", "faith_pd": false}') == 0
    for metric in ("unweighted", "weighted_normalized"):
        np.testing.assert_allclose(skbio.DistanceMatrix.read(str(a / f"{metric}.tsv")).data,
                                   skbio.DistanceMatrix.read(str(b / f"{metric}.tsv")).data, atol=1e-6)
