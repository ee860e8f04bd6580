"""UniFrac matrices of a table into HDF5 files: the whole matrix, or one part of a fanned-out job.

`TableMatrices` holds a table and the `unifrac:` settings; `write` computes a metric's matrix tile
by tile into a file (`aam.io.distance_matrix`): all tiles, or only those of one of N row-block jobs
(`aam.data.unifrac.part_tiles`). A part computes its tiles exactly as a single job does, so the N
part files merged give the single job's matrix, chunk for chunk. Used by the stages `aam unifrac`
and `aam unifrac-part`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from aam.config import load_schema, load_settings, validate
from aam.errors import InputError

log = logging.getLogger(__name__)

METRICS = ("unweighted", "weighted_normalized", "weighted_unnormalized")
DEFAULTS = {
    "metrics": ["unweighted", "weighted_normalized"],
    "faith_pd": True,
    "backend": "auto",
    "precision": "float64",
    "block_size": 512,
    "device": "auto",
    "format": "auto",
    "binary_min_samples": 5000,
    "parts": 1,
    "pcoa_dimensions": 10,
    "pcoa_method": "auto",
    "pcoa_exact_max_samples": 2000,
}


def settings_from(value) -> dict:
    """The `unifrac:` settings, validated against the config schema with its defaults filled in."""
    settings = load_settings(value)
    schema = load_schema().get("properties", {}).get("unifrac")
    if schema:
        validate(settings, schema, where="unifrac settings")
    merged = {**DEFAULTS, **settings}
    unknown = set(merged) - set(DEFAULTS)
    if unknown:
        raise InputError(f"unifrac settings: unknown keys {sorted(unknown)}")
    bad = [m for m in merged["metrics"] if m not in METRICS]
    if bad or not merged["metrics"]:
        raise InputError(f"unifrac settings: metrics must be some of {list(METRICS)}, got {merged['metrics']}"
                         )
    return merged


def storage_dtype(settings: dict):
    """The stored values' type: the computation's (unifrac's *_fp32 methods store float32 too)."""
    return np.float32 if settings["precision"] == "float32" else np.float64


class TableMatrices:
    """A table's UniFrac matrices (and Faith's PD) with the configured backend, into HDF5 files."""

    def __init__(self, counts, sample_ids, feature_ids, table_path, tree_path, settings: dict):
        self.counts, self.sample_ids, self.feature_ids = counts, [str(s) for s in sample_ids], feature_ids
        self.table_path, self.tree_path, self.settings = table_path, tree_path, settings
        self._index = None

    @property
    def index(self):
        from aam.data.unifrac import PhyloIndex

        if self._index is None:
            t0 = time.perf_counter()
            self._index = PhyloIndex.from_newick(self.tree_path, self.feature_ids)
            log.info("tree indexed: %d features, %d branches (%.2f s)", self._index.n_features,
                     self._index.n_branches, time.perf_counter() - t0)
        return self._index

    def tiles(self, metric: str):
        """The prepared tile kernel of one metric (torch backend)."""
        import torch

        from aam.data.unifrac import UniFracTiles

        t0 = time.perf_counter()
        dtype = torch.float32 if self.settings["precision"] == "float32" else torch.float64
        kernel = UniFracTiles(self.index, self.counts, metric, dtype=dtype, device=self.settings["device"],
                              block_size=self.settings["block_size"])
        log.info("%s UniFrac: %d samples prepared in %.1f s (%d dense and %d sparse branches, %.0f MB)",
                 metric, kernel.n, time.perf_counter() - t0, kernel.n_dense, kernel.n_sparse,
                 kernel.nbytes / 2**20)
        return kernel

    def write(self, metric: str, path: Path, part: int = 0, parts: int = 1) -> None:
        """The matrix of `metric` into the HDF5 file `path`, tile by tile: all of it, or the tiles of
        part `part` of `parts` (the file then has the matrix's shape and only those chunks)."""
        from aam.data.unifrac import part_tiles, tile_grid
        from aam.io.distance_matrix import write_hdf5_tiles

        block = int(self.settings["block_size"])
        tiles = part_tiles(tile_grid(len(self.sample_ids), block), part, parts)
        what = f"{metric} UniFrac" + (f" (part {part + 1} of {parts})" if parts > 1 else "")
        t0 = time.perf_counter()
        if self.settings["backend"] == "striped":
            if parts > 1:
                raise InputError("unifrac: the striped backend computes whole matrices; use parts: 1")
            dm = self._striped(metric)
            compute = lambda r0, r1, c0, c1: dm[r0:r1, c0:c1]  # noqa: E731
        else:
            compute = self.tiles(metric).tile
        write_hdf5_tiles(path, self.sample_ids, tiles, compute, dtype=storage_dtype(self.settings),
                         chunk=block, what=what)
        log.info("%s: %d tiles of %d samples computed and written in %.1f s", what, len(tiles),
                 len(self.sample_ids), time.perf_counter() - t0)

    def faith_pd(self) -> np.ndarray:
        if self.settings["backend"] == "striped":
            series = _striped_module().faith_pd(str(self.table_path), str(self.tree_path))
            return series.reindex(self.sample_ids).to_numpy(dtype=float)
        from aam.data.unifrac import faith_pd

        return faith_pd(self.index, self.counts)

    def _striped(self, metric: str) -> np.ndarray:
        """The matrix from biocore's unifrac package (in memory: Striped UniFrac returns it whole)."""
        unifrac = _striped_module()
        suffix = "_fp64" if self.settings["precision"] == "float64" else "_fp32"
        func = getattr(unifrac, metric + suffix, None) or getattr(unifrac, metric)
        t0 = time.perf_counter()
        dm = func(str(self.table_path), str(self.tree_path))
        log.info("%s UniFrac (striped): %.2f s", metric, time.perf_counter() - t0)
        return dm.filter(self.sample_ids).data


def _striped_module():
    try:
        import unifrac
    except ImportError as err:
        raise InputError(
            "unifrac backend 'striped' needs biocore's `unifrac` package (conda: bioconda::unifrac; "
            "see workflow/envs/unifrac.yaml); use backend 'torch' or 'auto' otherwise"
        ) from err
    return unifrac
