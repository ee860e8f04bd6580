"""Stage `aam unifrac-part`: one row-block job of a fanned-out UniFrac matrix.

For tables too large for one job (``unifrac.parts: N`` in the config), N jobs of this stage (on a
cluster, N SLURM jobs at once) each compute their share of the matrix's tiles, a contiguous run of
the upper triangle's tiles of equal length, and write them to ``--out`` (HDF5, the matrix's full
shape, only this part's chunks stored). `aam unifrac --parts-dir` then merges the N files, copying
raw chunks, and runs the PCoA: the result equals a single job's matrix.

Inputs: the rarefied table and the pruned tree, as `aam unifrac`; ``--metric``, ``--part`` (0-based)
and ``--parts``; ``--settings``: the config's ``unifrac:`` section (precision, block_size, device
and backend must be those of the merging job's settings, which they are in the workflow).
"""

from __future__ import annotations

import argparse

from aam.data.unifrac_jobs import TableMatrices, settings_from
from aam.errors import InputError
from aam.io.atomic import atomic_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="rarefied/table.biom")
    parser.add_argument("--tree", required=True, help="ingest/tree.nwk (rooted, covering the table)")
    parser.add_argument("--metric", required=True, help="the UniFrac metric of this part")
    parser.add_argument("--part", type=int, required=True, help="this job's part, 0-based")
    parser.add_argument("--parts", type=int, required=True, help="number of parts of the matrix")
    parser.add_argument("--out", required=True, help="the part's HDF5 file to write")
    parser.add_argument("--settings", help="the config's `unifrac:` section as JSON or a YAML file")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")


def run(args: argparse.Namespace) -> None:
    import torch

    settings = settings_from(args.settings)
    if args.metric not in settings["metrics"]:
        raise InputError(f"--metric {args.metric}: not among the settings' metrics {settings['metrics']}")
    if not 0 <= args.part < args.parts:
        raise InputError(f"--part {args.part}: must lie in 0..{args.parts - 1} (--parts {args.parts})")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from aam.io.biom import read_table, table_to_csr

    counts, sample_ids, feature_ids = table_to_csr(read_table(args.table))
    matrices = TableMatrices(counts, sample_ids, feature_ids, args.table, args.tree, settings)
    with atomic_path(args.out) as tmp:
        matrices.write(args.metric, tmp, part=args.part, parts=args.parts)
