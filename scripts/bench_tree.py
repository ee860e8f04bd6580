"""Benchmark: load the 217k-tip SEPP insertion tree (.qza) and prune it to the table's features.

Measured on the 2-core development machine, shared with other jobs (load average 5-6):
  aam.io.newick  load 0.7-1.4 s + prune 0.1-0.2 s + write 0.05 s, about 1.1-1.7 s in all
                 (217,407 tips -> 9,970 features of table.qza; 129 table features are not in the tree)
  scikit-bio     TreeNode.read 4.1 s + shear 10.8 s = 14.9 s (`--skbio`, same run as a 1.7 s aam run)

Usage: python scripts/bench_tree.py [--tree ../shared/data/ibd2538/sepp-insertion-tree.qza]
                                    [--table ../shared/data/ibd2538/table.qza] [--skbio]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from absent_inputs import skip_if_absent

from aam.io.biom import read_table
from aam.io.newick import read_tree

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ibd2538"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(SHARED / "sepp-insertion-tree.qza"))
    parser.add_argument("--table", default=str(SHARED / "table.qza"))
    parser.add_argument("--skbio", action="store_true", help="also time scikit-bio's read + shear")
    args = parser.parse_args()
    skip_if_absent(__file__, {"--tree": args.tree, "--table": args.table})

    features = [str(f) for f in read_table(args.table).ids("observation")]
    start = time.perf_counter()
    tree = read_tree(args.tree)
    loaded = time.perf_counter()
    pruned = tree.prune(features)
    pruned_at = time.perf_counter()
    text = pruned.to_newick()
    written = time.perf_counter()
    print(
        f"aam.io.newick: {int(tree.is_tip.sum()):,} tips -> {int(pruned.is_tip.sum()):,}: "
        f"load {loaded - start:.2f} s, prune {pruned_at - loaded:.2f} s, write {written - pruned_at:.2f} s, "
        f"total {written - start:.2f} s"
    )
    if args.skbio:
        import zipfile

        import skbio

        start = time.perf_counter()
        with zipfile.ZipFile(args.tree) as zf:
            member = next(n for n in zf.namelist() if n.endswith("/data/tree.nwk"))
            newick = zf.read(member).decode()
        ref = skbio.TreeNode.read(io.StringIO(newick), format="newick", convert_underscores=False)
        loaded = time.perf_counter()
        ref = ref.shear(set(features) & {t.name for t in ref.tips()})
        sheared = time.perf_counter()
        print(
            f"scikit-bio:    load {loaded - start:.2f} s, shear {sheared - loaded:.2f} s, "
            f"total {sheared - start:.2f} s ({len(list(ref.tips())):,} tips)"
        )
    del text


if __name__ == "__main__":
    main()
