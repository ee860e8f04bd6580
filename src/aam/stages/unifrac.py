"""Stage `aam unifrac`: UniFrac distance matrices, Faith's PD and PCoA of the rarefied table.

Inputs: ``rarefied/table.biom``, ``ingest/tree.nwk`` and (for colouring) ``ingest/samples.parquet``.
Outputs in ``--out-dir`` (a folder of their own: all of them or none, `aam.io.atomic.publish_together`),
for each metric in the settings:

- ``{metric}.tsv``: the distance matrix in scikit-bio's / QIIME 2's TSV format
  (``skbio.DistanceMatrix.read``; ``qiime tools import --type DistanceMatrix``);
- ``pcoa_{metric}.tsv``: PCoA coordinates (samples x PC1..PCk) with a first row
  ``proportion_explained``; ``pcoa_{metric}.txt``: the full ordination in scikit-bio's format
  (``skbio.OrdinationResults.read``; ``qiime tools import --type PCoAResults``);
- ``pcoa_{metric}.png``: PC1 vs PC2 coloured by the metadata column ``--color-column``;

and ``faith_pd.tsv`` (sample, faith_pd) when ``faith_pd`` is on.

Settings (the config's ``unifrac:`` section): ``metrics``, ``faith_pd``, ``backend``
(``auto`` | ``torch`` | ``striped``: ``auto`` is the torch backend, exact in fp64 and faster than
Striped UniFrac on the benchmarks here; ``striped`` uses biocore's ``unifrac`` package, which must be
importable, e.g. in ``workflow/envs/unifrac.yaml``), ``precision`` (float64 | float32), ``block_size``
(samples per block), ``device`` (auto | cpu | cuda), ``pcoa_dimensions``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from aam.config import load_schema, load_settings, validate
from aam.errors import InputError
from aam.io.atomic import atomic_path, publish_together

log = logging.getLogger(__name__)

METRICS = ("unweighted", "weighted_normalized", "weighted_unnormalized")
DEFAULTS = {
    "metrics": ["unweighted", "weighted_normalized"],
    "faith_pd": True,
    "backend": "auto",
    "precision": "float64",
    "block_size": 512,
    "device": "auto",
    "pcoa_dimensions": 10,
}
MISSING = {"", "nan", "none", "na", "n/a", "null"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="rarefied/table.biom")
    parser.add_argument("--tree", required=True, help="ingest/tree.nwk (rooted, covering the table)")
    parser.add_argument("--samples", help="ingest/samples.parquet (metadata for colouring the PCoA)")
    parser.add_argument("--color-column", nargs="?", const="", default="",
                        help="metadata column that colours the PCoA plots; omit (or '') for none")
    parser.add_argument("--out-dir", required=True, help="folder for the matrices, PCoA and Faith's PD")
    parser.add_argument("--settings", help="the config's `unifrac:` section as JSON or a YAML file")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")


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


def run(args: argparse.Namespace) -> None:
    import torch

    settings = settings_from(args.settings)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from aam.io.biom import read_table, table_to_csr

    counts, sample_ids, feature_ids = table_to_csr(read_table(args.table))
    metadata = _read_samples(args.samples, sample_ids) if args.samples else None
    if metadata is not None and args.color_column and args.color_column not in metadata.columns:
        raise InputError(f"{args.samples}: color column {args.color_column!r} is not in the sample metadata")
    matrices, pd_values = compute(counts, sample_ids, feature_ids, args.table, args.tree, settings)
    with publish_together(args.out_dir, output_names(settings)) as out_dir:
        for metric, dm in matrices.items():
            write_distance_matrix(dm, sample_ids, out_dir / f"{metric}.tsv")
            ordination = write_pcoa(dm, sample_ids, out_dir, metric, int(settings["pcoa_dimensions"]))
            plot_pcoa(ordination, metadata, args.color_column or None, metric, out_dir / f"pcoa_{metric}.png")
        if pd_values is not None:
            with atomic_path(out_dir / "faith_pd.tsv") as tmp:
                pd.DataFrame({"sample": sample_ids, "faith_pd": pd_values}).to_csv(tmp, sep="\t", index=False)


def output_names(settings: dict) -> list[str]:
    """The files of ``--out-dir``, published all or none (`aam.io.atomic.publish_together`)."""
    names = [f"{stem}{metric}.{ext}" for metric in settings["metrics"]
             for stem, ext in (("", "tsv"), ("pcoa_", "tsv"), ("pcoa_", "txt"), ("pcoa_", "png"))]
    return names + (["faith_pd.tsv"] if settings["faith_pd"] else [])


def compute(counts, sample_ids, feature_ids, table_path, tree_path, settings):
    """({metric: S x S array}, Faith's PD or None) with the configured backend."""
    import torch

    backend = settings["backend"]
    if backend == "striped":
        return _compute_striped(table_path, tree_path, sample_ids, settings)
    from aam.data.unifrac import PhyloIndex, faith_pd, unifrac_matrix

    dtype = torch.float64 if settings["precision"] == "float64" else torch.float32
    t0 = time.perf_counter()
    index = PhyloIndex.from_newick(tree_path, feature_ids)
    log.info("tree indexed: %d features, %d branches (%.2f s)", index.n_features, index.n_branches,
             time.perf_counter() - t0)
    matrices = {}
    for metric in settings["metrics"]:
        t0 = time.perf_counter()
        matrices[metric] = unifrac_matrix(index, counts, metric, dtype=dtype, device=settings["device"],
                                          block_size=settings["block_size"])
        log.info("%s UniFrac: %d samples in %.2f s", metric, len(sample_ids), time.perf_counter() - t0)
    pd_values = None
    if settings["faith_pd"]:
        pd_values = faith_pd(index, counts, dtype=dtype, device=settings["device"],
                             block_size=settings["block_size"])
    return matrices, pd_values


def _compute_striped(table_path, tree_path, sample_ids, settings):
    try:
        import unifrac
    except ImportError as err:
        raise InputError(
            "unifrac backend 'striped' needs biocore's `unifrac` package (conda: bioconda::unifrac; "
            "see workflow/envs/unifrac.yaml); use backend 'torch' or 'auto' otherwise"
        ) from err
    suffix = "_fp64" if settings["precision"] == "float64" else "_fp32"
    matrices = {}
    for metric in settings["metrics"]:
        func = getattr(unifrac, metric + suffix, None) or getattr(unifrac, metric)
        t0 = time.perf_counter()
        dm = func(str(table_path), str(tree_path))
        matrices[metric] = dm.filter([str(s) for s in sample_ids]).data
        log.info("%s UniFrac (striped): %.2f s", metric, time.perf_counter() - t0)
    pd_values = None
    if settings["faith_pd"]:
        series = unifrac.faith_pd(str(table_path), str(tree_path))
        pd_values = series.reindex([str(s) for s in sample_ids]).to_numpy(dtype=float)
    return matrices, pd_values


def write_distance_matrix(dm: np.ndarray, sample_ids, path: Path) -> None:
    """scikit-bio's lsmat TSV (what `skbio.DistanceMatrix.read` and QIIME 2 import), atomically."""
    import skbio

    matrix = skbio.DistanceMatrix(dm, ids=[str(s) for s in sample_ids])
    with atomic_path(path) as tmp:
        matrix.write(str(tmp), format="lsmat")


def write_pcoa(dm: np.ndarray, sample_ids, out_dir: Path, metric: str, dimensions: int):
    """PCoA (scikit-bio) of one matrix: coordinates TSV and the ordination file; returns the result."""
    import skbio
    from skbio.stats.ordination import pcoa

    n = len(sample_ids)
    dims = max(1, min(int(dimensions), n - 1)) if n > 1 else 1
    matrix = skbio.DistanceMatrix(dm, ids=[str(s) for s in sample_ids])
    method = "fsvd" if n > 2000 else "eigh"
    result = pcoa(matrix, method=method, number_of_dimensions=dims)
    coords = result.samples.iloc[:, :dims].copy()
    coords.columns = [f"PC{i + 1}" for i in range(coords.shape[1])]
    prop = pd.DataFrame([result.proportion_explained.to_numpy()[:dims]], index=["proportion_explained"],
                        columns=coords.columns)
    table = pd.concat([prop, coords])
    table.index.name = "sample"
    with atomic_path(out_dir / f"pcoa_{metric}.tsv") as tmp:
        table.to_csv(tmp, sep="\t", float_format="%.10g")
    with atomic_path(out_dir / f"pcoa_{metric}.txt") as tmp:
        result.write(str(tmp), format="ordination")
    return result


def _read_samples(path, sample_ids) -> pd.DataFrame | None:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read samples: {err}") from err
    key = "sample" if "sample" in frame.columns else frame.columns[0]
    frame[key] = frame[key].astype(str)
    return frame.set_index(key).reindex([str(s) for s in sample_ids])


def plot_pcoa(result, metadata, color_column, metric: str, path: Path) -> None:
    """PC1 vs PC2, coloured by a metadata column (categories or a colour scale; missing in grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = result.samples
    x = coords.iloc[:, 0].to_numpy()
    y = coords.iloc[:, 1].to_numpy() if coords.shape[1] > 1 else np.zeros_like(x)
    prop = result.proportion_explained.to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=120)
    title = f"PCoA, {metric.replace('_', ' ')} UniFrac ({len(x)} samples)"
    if metadata is not None and color_column:
        if color_column not in metadata.columns:
            raise InputError(f"color column {color_column!r} is not in the sample metadata")
        values = metadata[color_column].astype(str).reindex(coords.index.astype(str)).fillna("")
        missing = values.str.strip().str.lower().isin(MISSING) | values.str.startswith("Missing:")
        numeric = pd.to_numeric(values.where(~missing), errors="coerce")
        if missing.any():
            ax.scatter(x[missing], y[missing], s=12, c="lightgrey", label="missing", edgecolors="none")
        present = ~missing.to_numpy()
        if numeric[~missing].notna().all() and values[~missing].nunique() > 12:
            sc = ax.scatter(x[present], y[present], s=14, c=numeric[~missing].to_numpy(), cmap="viridis",
                            edgecolors="none")
            fig.colorbar(sc, ax=ax, label=color_column)
        else:
            cats = sorted(values[~missing].unique())
            cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
            for i, cat in enumerate(cats):
                sel = (values == cat).to_numpy()
                ax.scatter(x[sel], y[sel], s=14, color=cmap(i % cmap.N), label=str(cat)[:30],
                           edgecolors="none")
            if len(cats) <= 20:
                ax.legend(title=color_column, fontsize=8, markerscale=1.5, frameon=False)
        title += f", coloured by {color_column}"
    else:
        ax.scatter(x, y, s=14, edgecolors="none")
    ax.set_xlabel(f"PC1 ({prop[0] * 100:.1f} %)")
    ax.set_ylabel(f"PC2 ({prop[1] * 100:.1f} %)" if len(prop) > 1 else "PC2")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
