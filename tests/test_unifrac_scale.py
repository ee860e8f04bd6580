"""UniFrac at scale: binary (HDF5) matrices, fanned-out jobs, streamed PCoA, bounded memory.

References: scikit-bio's TSV reader and exact PCoA (eigh); the HDF5 layout as biocore's unifrac
package writes it (unifrac-binaries' api.cpp: Fortran-string `format`/`version`, variable-length
ASCII `order`, F64LE/F32LE `matrix`) and reads it (unifrac 1.5's `h5unifrac`, `h5pcoa`); the
single-job matrix for the fanned-out one; the process's peak resident memory for the memory bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import skbio
from helpers.aam_synthetic import balanced_newick
from skbio.stats.ordination import pcoa as skbio_pcoa

from aam.cli import main
from aam.data.ordination import pcoa
from aam.data.unifrac import PhyloIndex, UniFracTiles, part_tiles, tile_grid, unifrac_matrix
from aam.errors import InputError
from aam.io.biom import csr_to_table, write_biom
from aam.io.distance_matrix import merge_parts, open_matrix, write_hdf5_tiles

N_TIPS = 64


def clustered_counts(n_samples: int, n_features: int = N_TIPS, seed: int = 3) -> sp.csr_matrix:
    """Samples from three community types (each favours its own third of the features), so the PCoA
    has well-separated leading axes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_samples):
        favour = np.full(n_features, 0.2)
        favour[(i % 3) * n_features // 3:((i % 3) + 1) * n_features // 3] = 3.0
        favour *= rng.lognormal(0.0, 0.7, n_features)
        present = rng.random(n_features) < np.minimum(favour / favour.max() * 0.9, 0.9)
        rows.append(np.where(present, rng.integers(1, 60, n_features), 0))
    return sp.csr_matrix(np.array(rows))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    counts = clustered_counts(150)
    samples = [f"2538.{1000 + i}" for i in range(counts.shape[0])]  # numeric-looking IDs stay strings
    features = [f"f{i}" for i in range(N_TIPS)]
    write_biom(csr_to_table(counts, samples, features), folder / "table.biom")
    (folder / "tree.nwk").write_text(balanced_newick(N_TIPS) + "\n")
    return folder, counts, samples, features


def run_unifrac(folder, out, settings: dict, *extra: str) -> int:
    return main(["unifrac", "--table", str(folder / "table.biom"), "--tree", str(folder / "tree.nwk"),
                 "--out-dir", str(out), "--settings", json.dumps(settings), "--threads", "1", *extra])


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_hdf5_matrix_reads_back_equal_to_tsv(study, tmp_path, precision):
    folder, counts, samples, _ = study
    settings = {"metrics": ["unweighted", "weighted_normalized"], "block_size": 40, "precision": precision,
                "pcoa_dimensions": 3}
    assert run_unifrac(folder, tmp_path / "tsv", settings, "--format", "tsv") == 0
    assert run_unifrac(folder, tmp_path / "h5", settings, "--format", "hdf5") == 0
    for metric in settings["metrics"]:
        text = skbio.DistanceMatrix.read(str(tmp_path / "tsv" / f"{metric}.tsv"))
        path = tmp_path / "h5" / f"{metric}.h5"
        with h5py.File(path, "r") as fh:
            # read as unifrac.h5unifrac does (unifrac 1.5): order decoded as ASCII, the matrix whole
            ids = [c.decode("ascii") for c in fh["order"][:]]
            matrix = fh["matrix"][:, :]
            assert matrix.dtype == np.dtype(precision)
            assert fh["format"][0] == b"BDSM" and fh["version"][0] == b"2020.12"
            string_type = fh["format"].id.get_type()
            assert string_type.get_strpad() == h5py.h5t.STR_SPACEPAD and not string_type.is_variable_str()
            assert fh["order"].id.get_type().get_cset() == h5py.h5t.CSET_ASCII
            # the PCoA where h5pcoa reads it
            assert fh["pcoa_method"][0].decode("ascii") == "EIGH"
            assert fh["pcoa_samples"].shape == (len(samples), 3)
            coords = pd.read_csv(tmp_path / "h5" / f"pcoa_{metric}.tsv", sep="\t", index_col=0)
            stored = fh["pcoa_proportion_explained"][:]
            np.testing.assert_allclose(stored, coords.iloc[0].to_numpy(), rtol=1e-6)
        assert ids == samples == list(text.ids)
        if precision == "float64":
            assert np.array_equal(matrix, text.data)
        else:
            assert np.array_equal(matrix, text.data.astype(np.float32))
        reference = unifrac_matrix(PhyloIndex.from_newick(folder / "tree.nwk", study[3]), counts, metric)
        np.testing.assert_allclose(matrix, reference, atol=1e-6 if precision == "float32" else 1e-12, rtol=0)
        assert np.array_equal(open_matrix(path).to_array(), open_matrix(tmp_path / "tsv" / f"{metric}.tsv")
                              .to_array().astype(precision))


def test_unifrac_package_reads_our_file(study, tmp_path):
    unifrac = pytest.importorskip("unifrac")  # conda env workflow/envs/unifrac.yaml
    folder, _, samples, _ = study
    assert run_unifrac(folder, tmp_path, {"metrics": ["unweighted"]}, "--format", "hdf5") == 0
    dm = unifrac.h5unifrac(str(tmp_path / "unweighted.h5"))
    assert list(dm.ids) == samples
    assert unifrac.h5pcoa(str(tmp_path / "unweighted.h5")).samples.shape[0] == len(samples)


def test_format_auto_switches_at_binary_min_samples(study, tmp_path):
    folder, _, samples, _ = study
    settings = {"metrics": ["unweighted"], "binary_min_samples": len(samples)}
    assert run_unifrac(folder, tmp_path / "a", settings) == 0
    assert (tmp_path / "a" / "unweighted.h5").exists() and not (tmp_path / "a" / "unweighted.tsv").exists()
    settings = {"metrics": ["unweighted"], "binary_min_samples": len(samples) + 1}
    assert run_unifrac(folder, tmp_path / "b", settings) == 0
    assert (tmp_path / "b" / "unweighted.tsv").exists() and not list((tmp_path / "b").glob("*.h5*"))


def test_fanned_out_matrix_equals_single_job(study, tmp_path):
    folder, counts, samples, _ = study
    settings = {"metrics": ["unweighted", "weighted_unnormalized"], "block_size": 32, "pcoa_dimensions": 2}
    assert run_unifrac(folder, tmp_path / "single", settings, "--format", "hdf5") == 0
    parts = tmp_path / "parts"
    for metric in settings["metrics"]:
        for part in range(4):
            assert main(["unifrac-part", "--table", str(folder / "table.biom"), "--tree",
                         str(folder / "tree.nwk"), "--metric", metric, "--part", str(part), "--parts", "4",
                         "--settings", json.dumps(settings),
                         "--out", str(parts / f"{metric}.part{part}.h5")]) == 0
    assert run_unifrac(folder, tmp_path / "merged", settings, "--format", "hdf5", "--parts-dir", str(parts),
                       "--parts", "4") == 0
    for metric in settings["metrics"]:
        name = f"{metric}.h5"
        with h5py.File(tmp_path / "single" / name) as a, h5py.File(tmp_path / "merged" / name) as b:
            assert np.array_equal(a["matrix"][:], b["matrix"][:])
            assert list(a["order"][:]) == list(b["order"][:])
        single = pd.read_csv(tmp_path / "single" / f"pcoa_{metric}.tsv", sep="\t", index_col=0)
        merged = pd.read_csv(tmp_path / "merged" / f"pcoa_{metric}.tsv", sep="\t", index_col=0)
        pd.testing.assert_frame_equal(single, merged)


def test_part_tiles_cover_the_triangle_once_in_balanced_runs():
    tiles = tile_grid(1000, 64)
    assert len(tiles) == 16 * 17 // 2
    runs = [part_tiles(tiles, p, 5) for p in range(5)]
    assert sum(runs, []) == tiles
    assert max(map(len, runs)) - min(map(len, runs)) <= 1


def test_merge_refuses_a_missing_or_repeated_part(study, tmp_path):
    folder, counts, samples, features = study
    index = PhyloIndex.from_newick(folder / "tree.nwk", features)
    kernel = UniFracTiles(index, counts, "unweighted", block_size=50)
    tiles = tile_grid(len(samples), 50)
    for p in range(2):
        write_hdf5_tiles(tmp_path / f"p{p}.h5", samples, part_tiles(tiles, p, 2), kernel.tile, chunk=50)
    with pytest.raises(InputError, match="a part is missing"):
        merge_parts([tmp_path / "p0.h5"], tmp_path / "m.h5")
    with pytest.raises(InputError, match="also in another part"):
        merge_parts([tmp_path / "p0.h5", tmp_path / "p0.h5"], tmp_path / "m.h5")
    merge_parts([tmp_path / "p1.h5", tmp_path / "p0.h5"], tmp_path / "m.h5")
    merged = open_matrix(tmp_path / "m.h5").to_array()
    # the merge copies tiles: bit for bit the matrix of one part holding every tile
    write_hdf5_tiles(tmp_path / "whole.h5", samples, tiles, kernel.tile, chunk=50)
    assert np.array_equal(merged, open_matrix(tmp_path / "whole.h5").to_array())
    # the tiles against the whole-matrix kernel: equal up to the order of floating-point sums
    np.testing.assert_allclose(merged, unifrac_matrix(index, counts, "unweighted"), atol=1e-12, rtol=0)


def test_streamed_pcoa_matches_exact(study, tmp_path):
    """Coordinates equal to scikit-bio's exact PCoA up to each axis's sign, within 1e-4 of the
    largest coordinate; proportions explained within 1e-8 (residual tolerance 1e-6)."""
    folder, counts, samples, features = study
    dm = unifrac_matrix(PhyloIndex.from_newick(folder / "tree.nwk", features), counts, "unweighted")
    exact = skbio_pcoa(skbio.DistanceMatrix(dm, ids=samples), method="eigh", dimensions=5)
    skbio.DistanceMatrix(dm, ids=samples).write(str(tmp_path / "dm.tsv"))
    for source in (tmp_path / "dm.tsv", _as_hdf5(dm, samples, tmp_path / "dm.h5")):
        fast, method = pcoa(open_matrix(source), 5, method="fsvd", seed=1, block_rows=17)
        assert method == "fsvd"
        np.testing.assert_allclose(fast.proportion_explained.to_numpy(),
                                   exact.proportion_explained.to_numpy(), atol=1e-8, rtol=0)
        a, b = exact.samples.to_numpy(), fast.samples.to_numpy()
        signs = np.sign((a * b).sum(0))
        np.testing.assert_allclose(b * signs, a, atol=1e-4 * np.abs(a).max(), rtol=0)
        assert list(fast.samples.index) == samples
    again, _ = pcoa(open_matrix(tmp_path / "dm.h5"), 5, method="fsvd", seed=1, block_rows=17)
    assert np.array_equal(again.samples.to_numpy(), fast.samples.to_numpy())


def _as_hdf5(dm, ids, path):
    write_hdf5_tiles(path, ids, tile_grid(len(ids), 64), lambda r0, r1, c0, c1: dm[r0:r1, c0:c1], chunk=64)
    return path


MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, scipy.sparse as sp, torch
    torch.set_num_threads(1)
    from aam.data.ordination import pcoa
    from aam.data.unifrac import PhyloIndex, UniFracTiles, tile_grid, unifrac_matrix
    from aam.io.distance_matrix import open_matrix, write_hdf5_tiles

    n, tips, block, mode, out, newick = sys.argv[1:7]
    n, tips, block = int(n), int(tips), int(block)
    rng = np.random.default_rng(0)
    counts = sp.random(n, tips, density=0.05, format="csr", random_state=1,
                       data_rvs=lambda k: rng.integers(1, 20, k))
    index = PhyloIndex.from_newick(newick, [f"f{i}" for i in range(tips)])
    ids = [f"s{i}" for i in range(n)]

    def rss(field):
        return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1]) * 1024

    def run(n):
        if mode == "tiles":
            kernel = UniFracTiles(index, counts[:n], "weighted_normalized", block_size=block)
            write_hdf5_tiles(out, ids[:n], tile_grid(n, block), kernel.tile, chunk=block)
            pcoa(open_matrix(out), 3, method="fsvd", block_rows=block)
        else:  # the whole matrix in memory: the positive control
            unifrac_matrix(index, counts[:n], "weighted_normalized", block_size=1000)

    run(2 * block)  # warm-up: lazy imports and first-call buffers are not the matrix's
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from here
    base = rss("VmRSS")
    run(n)
    print(json.dumps({"growth": rss("VmHWM") - base}))
""")


def test_memory_stays_bounded_with_a_tiny_block(tmp_path):
    """Matrix, file and streamed PCoA of 4,000 samples with 100-sample tiles: the peak memory grows by
    less than a third of one N x N float64 matrix (128 MB; a float32 one would be half of it); the
    in-memory matrix (the control) grows by more than one."""
    n, tips, block = 4000, 256, 100
    (tmp_path / "tree.nwk").write_text(balanced_newick(tips) + "\n")
    full = n * n * 8

    def growth(mode):
        result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n), str(tips), str(block), mode,
                                 str(tmp_path / "m.h5"), str(tmp_path / "tree.nwk")],
                                capture_output=True, text=True, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])["growth"]

    assert growth("memory") > full  # the measurement sees a full matrix when there is one
    assert growth("tiles") < full / 3
    assert open_matrix(tmp_path / "m.h5").n == n


def test_workflow_names_the_matrix_by_the_tables_sample_count(study, tmp_path):
    from aam.io.biom import count_samples
    from aam.workflow import commands, targets

    folder, counts, samples, features = study
    tsv_table = tmp_path / "table.tsv"
    tsv_table.write_text("# Constructed from biom file\n#OTU ID\ts1\ts2\ts3\ttaxonomy\nf1\t1\t0\t2\tk__x\n")
    assert count_samples(folder / "table.biom") == len(samples)
    assert count_samples(tsv_table) == 3
    assert count_samples(tmp_path / "absent.biom") is None
    config = {"results": "res", "datasets": {"big": {"table": str(folder / "table.biom")},
                                             "small": {"table": str(tsv_table)}},
              "unifrac": {"format": "auto", "binary_min_samples": len(samples), "parts": 3,
                          "metrics": ["unweighted"], "faith_pd": False}}
    assert targets.unifrac_matrix_file(config, "big", "unweighted") == "res/big/unifrac/unweighted.h5"
    assert targets.unifrac_matrix_file(config, "small", "unweighted") == "res/small/unifrac/unweighted.tsv"
    assert targets.unifrac_datasets(config, "hdf5") == "big"
    assert targets.unifrac_part_files(config, "big") == [f"res/big/unifrac_parts/unweighted.part{i}.h5"
                                                         for i in range(3)]
    assert commands.unifrac_parts_arg(config, "big") == "--parts-dir res/big/unifrac_parts --parts 3"
    config["unifrac"].update(format="tsv", parts=1)
    assert targets.unifrac_datasets(config, "hdf5") == "(?!)"
    assert targets.unifrac_part_files(config, "big") == [] and commands.unifrac_parts_arg(config, "big") == ""
