"""The unifrac stage's files of one metric: the matrix in its format, its PCoA tables and plot.

The matrix is computed (or merged from the part files of `aam unifrac-part`) into HDF5 and a TSV
written from it row block by row block, so no N x N array is held; the PCoA of a large matrix
streams its row blocks from that file (:mod:`aam.data.ordination`). Each file is written under a
temporary name and renamed, inside the stage's all-or-none folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError
from aam.io.atomic import atomic_path
from aam.io.distance_matrix import SUFFIX, add_pcoa, merge_parts, open_matrix, write_tsv

MISSING = {"", "nan", "none", "na", "n/a", "null"}


def write_metric(source, metric: str, fmt: str, out_dir: Path, settings: dict, seed: int,
                 parts: list[Path] | None, metadata: pd.DataFrame | None, color_column: str | None) -> None:
    """``{metric}.tsv`` or ``.h5``, ``pcoa_{metric}.tsv/.txt/.png`` into `out_dir`; from `parts`
    (merged) when given, else computed by `source` (:class:`aam.data.unifrac_jobs.TableMatrices`)."""
    # the matrix is computed (or merged) into HDF5; a TSV output is written from it
    h5 = out_dir / (f"{metric}.h5" if fmt == "hdf5" else f".{metric}.h5.tmp")
    if parts is not None:
        merge_parts(parts, h5)
    else:
        source.write(metric, h5)
    matrix = open_matrix(h5)
    if fmt == "tsv":
        write_tsv(matrix, out_dir / f"{metric}.tsv")
    ordination, method = _pcoa(matrix, settings, seed)
    if fmt == "hdf5":
        add_pcoa(h5, ordination, method)
    else:
        h5.unlink()
    write_pcoa_tables(ordination, out_dir, metric, int(settings["pcoa_dimensions"]))
    plot_pcoa(ordination, metadata, color_column, metric, out_dir / f"pcoa_{metric}.png")


def output_names(settings: dict, fmt: str) -> list[str]:
    """The files of ``--out-dir``, published all or none (`aam.io.atomic.publish_together`)."""
    names = [f"{metric}{SUFFIX[fmt]}" for metric in settings["metrics"]]
    names += [f"pcoa_{metric}.{ext}" for metric in settings["metrics"] for ext in ("tsv", "txt", "png")]
    return names + (["faith_pd.tsv"] if settings["faith_pd"] else [])


def _pcoa(matrix, settings: dict, seed: int):
    """The PCoA the settings ask for (exact below pcoa_exact_max_samples, else randomized, streamed)."""
    from aam.data.ordination import pcoa

    return pcoa(matrix, int(settings["pcoa_dimensions"]), method=settings["pcoa_method"],
                exact_max_samples=int(settings["pcoa_exact_max_samples"]), seed=seed,
                block_rows=int(settings["block_size"]))


def write_pcoa_tables(result, out_dir: Path, metric: str, dimensions: int) -> None:
    """PCoA coordinates TSV (first row: proportion explained) and the ordination file, atomically."""
    dims = min(int(dimensions), result.samples.shape[1])
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


def read_samples(path, sample_ids) -> pd.DataFrame | None:
    """The sample metadata in the table's sample order (for colouring the PCoA)."""
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
