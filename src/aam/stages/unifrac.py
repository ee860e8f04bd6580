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

import pandas as pd

from aam.data.unifrac import METRICS
from aam.data.unifrac_jobs import TableMatrices, settings_from
from aam.data.unifrac_outputs import output_names, read_samples, write_metric
from aam.errors import InputError
from aam.io.atomic import atomic_path, publish_together
from aam.io.distance_matrix import SUFFIX, choose_format
from aam.threads import use_threads

log = logging.getLogger(__name__)


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
    metadata = read_samples(args.samples, sample_ids) if args.samples else None
    if metadata is not None and args.color_column and args.color_column not in metadata.columns:
        raise InputError(f"{args.samples}: color column {args.color_column!r} is not in the sample metadata")
    source = TableMatrices(counts, sample_ids, feature_ids, args.table, args.tree, settings)
    every = {name for f in SUFFIX for name in output_names({"metrics": METRICS, "faith_pd": True}, f)}
    owned = "|".join(re.escape(name) for name in sorted(every))  # of other settings: replaced too
    with publish_together(args.out_dir, output_names(settings, fmt), owned=owned) as out_dir:
        for metric in settings["metrics"]:
            parts = None
            if args.parts_dir:
                parts = [Path(args.parts_dir) / f"{metric}.part{i}.h5" for i in range(args.parts)]
                log.info("%s UniFrac: merging %d part files from %s", metric, len(parts), args.parts_dir)
            write_metric(source, metric, fmt, out_dir, settings, args.seed, parts, metadata,
                         args.color_column or None)
        if settings["faith_pd"]:
            values = pd.DataFrame({"sample": sample_ids, "faith_pd": source.faith_pd()})
            with atomic_path(out_dir / "faith_pd.tsv") as tmp:
                values.to_csv(tmp, sep="\t", index=False)
