"""Stage `aam unifrac`: UniFrac distance matrices, Faith's PD and PCoA of the rarefied table.

Inputs: ``rarefied/table.biom``, ``ingest/tree.nwk`` and (for colouring) ``ingest/samples.parquet``.
Outputs in ``--out-dir`` (a folder of their own: all of them or none, `aam.io.atomic.publish_together`),
for each metric in the settings:

- the distance matrix: ``{metric}.tsv`` (scikit-bio / QIIME 2 TSV: ``skbio.DistanceMatrix.read``,
  ``qiime tools import --type DistanceMatrix``) or ``{metric}.h5`` (the HDF5 layout of biocore's
  `unifrac` package, read by ``unifrac.h5unifrac``; its PCoA stored inside too, for
  ``unifrac.h5pcoa``); see `aam.io.distance_matrix`. ``format: auto`` writes HDF5 from
  ``binary_min_samples`` samples on;
- ``pcoa_{metric}.tsv``: PCoA coordinates (samples x PC1..PCk) with a first row
  ``proportion_explained``; ``pcoa_{metric}.txt``: the ordination in scikit-bio's format
  (``skbio.OrdinationResults.read``; ``qiime tools import --type PCoAResults``);
- ``pcoa_{metric}.png``: PC1 vs PC2 coloured by the metadata column ``--color-column``;

and ``faith_pd.tsv`` (sample, faith_pd) when ``faith_pd`` is on.

Memory: the matrix is computed and written tile by tile (``block_size`` x ``block_size``,
`aam.data.unifrac.UniFracTiles`), and the PCoA of a large matrix streams its row blocks from the
file (`aam.data.ordination`): no N x N array is held, whatever N (the exact PCoA below
``pcoa_exact_max_samples`` and the ``striped`` backend hold the matrix). A TSV output is written
from a temporary HDF5 file, row block by row block.

Fan-out: with ``--parts-dir`` and ``--parts N`` the matrices are not computed here but merged from
the files ``{metric}.part{i}.h5`` (i < N) that N jobs of `aam unifrac-part` wrote, each its own
share of the tiles; the merged matrix is the one a single job computes, chunk for chunk.

Settings (the config's ``unifrac:`` section): ``metrics``, ``faith_pd``, ``backend``
(``auto`` | ``torch`` | ``striped``: ``auto`` is the torch backend; ``striped`` uses biocore's
``unifrac`` package, which must be importable, e.g. in ``workflow/envs/unifrac.yaml``),
``precision`` (float64 | float32: arithmetic and stored values), ``block_size`` (samples per tile
side), ``device`` (auto | cpu | cuda), ``format`` (auto | tsv | hdf5), ``binary_min_samples``,
``parts`` (row-block jobs; read by the workflow), ``pcoa_dimensions``, ``pcoa_method``
(auto | eigh | fsvd), ``pcoa_exact_max_samples``.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from aam.data.unifrac import METRICS
from aam.data.unifrac_jobs import TableMatrices, settings_from
from aam.errors import InputError
from aam.io.atomic import atomic_path, publish_together
from aam.io.distance_matrix import SUFFIX, add_pcoa, choose_format, merge_parts, open_matrix, write_tsv
from aam.threads import use_threads

log = logging.getLogger(__name__)

MISSING = {"", "nan", "none", "na", "n/a", "null"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="rarefied/table.biom")
    parser.add_argument("--tree", required=True, help="ingest/tree.nwk (rooted, covering the table)")
    parser.add_argument("--samples", help="ingest/samples.parquet (metadata for colouring the PCoA)")
    parser.add_argument("--color-column", nargs="?", const="", default="",
                        help="metadata column that colours the PCoA plots; omit (or '') for none")
    parser.add_argument("--out-dir", required=True, help="folder for the matrices, PCoA and Faith's PD")
    parser.add_argument("--settings", help="the config's `unifrac:` section as JSON or a YAML file")
    parser.add_argument("--format", choices=("auto", "tsv", "hdf5"),
                        help="matrix format (default: the settings' format; auto decides by sample count)")
    parser.add_argument("--parts-dir", help="merge the matrices from the files of `aam unifrac-part` here")
    parser.add_argument("--parts", type=int, default=0, help="number of part files per metric (--parts-dir)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the randomized PCoA")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")


def run(args: argparse.Namespace) -> None:

    settings = settings_from(args.settings)
    use_threads(args.threads if args.threads > 0 else None)
    from aam.io.biom import read_table, table_to_csr

    counts, sample_ids, feature_ids = table_to_csr(read_table(args.table))
    fmt = choose_format(args.format or settings["format"], len(sample_ids), settings["binary_min_samples"])
    metadata = _read_samples(args.samples, sample_ids) if args.samples else None
    if metadata is not None and args.color_column and args.color_column not in metadata.columns:
        raise InputError(f"{args.samples}: color column {args.color_column!r} is not in the sample metadata")
    source = TableMatrices(counts, sample_ids, feature_ids, args.table, args.tree, settings)
    every = {name for f in SUFFIX for name in output_names({"metrics": METRICS, "faith_pd": True}, f)}
    owned = "|".join(re.escape(name) for name in sorted(every))  # of other settings: replaced too
    with publish_together(args.out_dir, output_names(settings, fmt), owned=owned) as out_dir:
        for metric in settings["metrics"]:
            # the matrix is computed (or merged) into HDF5; a TSV output is written from it
            h5 = out_dir / (f"{metric}.h5" if fmt == "hdf5" else f".{metric}.h5.tmp")
            if args.parts_dir:
                parts = [Path(args.parts_dir) / f"{metric}.part{i}.h5" for i in range(args.parts)]
                log.info("%s UniFrac: merging %d part files from %s", metric, len(parts), args.parts_dir)
                merge_parts(parts, h5)
            else:
                source.write(metric, h5)
            matrix = open_matrix(h5)
            if fmt == "tsv":
                write_tsv(matrix, out_dir / f"{metric}.tsv")
            ordination, method = _pcoa(matrix, settings, args.seed)
            if fmt == "hdf5":
                add_pcoa(h5, ordination, method)
            else:
                h5.unlink()
            write_pcoa_tables(ordination, out_dir, metric, int(settings["pcoa_dimensions"]))
            plot_pcoa(ordination, metadata, args.color_column or None, metric, out_dir / f"pcoa_{metric}.png")
        if settings["faith_pd"]:
            values = pd.DataFrame({"sample": sample_ids, "faith_pd": source.faith_pd()})
            with atomic_path(out_dir / "faith_pd.tsv") as tmp:
                values.to_csv(tmp, sep="\t", index=False)


def output_names(settings: dict, fmt: str) -> list[str]:
    """The files of ``--out-dir``, published all or none (`aam.io.atomic.publish_together`)."""
    names = [f"{metric}{SUFFIX[fmt]}" for metric in settings["metrics"]]
    names += [f"pcoa_{metric}.{ext}" for metric in settings["metrics"] for ext in ("tsv", "txt", "png")]
    return names + (["faith_pd.tsv"] if settings["faith_pd"] else [])


def _pcoa(matrix, settings: dict, seed: int):
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
