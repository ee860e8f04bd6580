"""Build the new-reads test set of `eval_taxonomy.py --test-fasta`: Greengenes 13_8 V4 reads that
the tuned taxonomy defaults never saw.

The reads are the 150-nt V4 sequences of Greengenes 13_8 97 % OTUs in
`../shared/data/pretrain_corpus/gg13_8_97_otus.v4_150nt.fasta` (its README says how they were cut)
whose OTU ID is not in the reference `../shared/data/gg13_8_v4/v4_20k.fasta` (on which `aam
classify`'s defaults were tuned) and whose sequence is identical to none of the reference's: so
they are disjoint from every read the defaults were chosen on, by ID and by sequence. Their
taxonomy is Greengenes' own, `gg_13_8_otus/taxonomy/97_otu_taxonomy.txt.gz` in the
`qiime-default-reference` 0.1.3 sdist on PyPI, read straight from the tarball:

    pip download qiime-default-reference==0.1.3 --no-deps --no-binary :all: -d downloads
    python scripts/new_reads_gg13_8.py --tarball downloads/qiime-default-reference-0.1.3.tar.gz \
        --out-dir new_reads

writes `reads.fasta` (19,068 reads, IDs sorted as strings) and `taxonomy.tsv` (feature_id,
taxonomy: q2-feature-classifier's format), both or neither. Skips in one line if an input is absent.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TAXONOMY_MEMBER = "qiime_default_reference/gg_13_8_otus/taxonomy/97_otu_taxonomy.txt.gz"


def greengenes_taxonomy(tarball: str) -> dict[str, str]:
    """{OTU ID: taxonomy string} of Greengenes 13_8 97 % OTUs, from the qiime-default-reference sdist."""
    with tarfile.open(tarball) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(TAXONOMY_MEMBER)), None)
        if member is None:
            sys.exit(f"{tarball}: no {TAXONOMY_MEMBER} in the archive (is it qiime-default-reference 0.1.3?)")
        text = gzip.decompress(tar.extractfile(member).read()).decode()
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        otu, sep, taxonomy = line.partition("\t")
        if not sep:
            sys.exit(f"{tarball}:{TAXONOMY_MEMBER} line {n}: no tab between OTU ID and taxonomy")
        out[otu.strip()] = taxonomy.strip()
    return out


def new_reads(corpus: dict[str, str], reference: dict[str, str]) -> dict[str, str]:
    """The corpus reads whose ID is not a reference ID and whose sequence is no reference sequence."""
    seen = {s.upper() for s in reference.values()}
    return {i: s for i, s in corpus.items() if i not in reference and s.upper() not in seen}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tarball", default="downloads/qiime-default-reference-0.1.3.tar.gz")
    p.add_argument("--corpus", default=str(SHARED / "pretrain_corpus" / "gg13_8_97_otus.v4_150nt.fasta"))
    p.add_argument(
        "--exclude",
        default=str(SHARED / "gg13_8_v4" / "v4_20k.fasta"),
        help="the reference the defaults were tuned on: its IDs and sequences are left out",
    )
    p.add_argument("--out-dir", required=True)
    args = p.parse_args()
    skip_if_absent(__file__, {"--tarball": args.tarball, "--corpus": args.corpus, "--exclude": args.exclude})

    from aam.io.atomic import publish_together
    from aam.io.fasta import read_fasta

    taxonomy = greengenes_taxonomy(args.tarball)
    reads = new_reads(read_fasta(args.corpus), read_fasta(args.exclude))
    missing = [i for i in reads if i not in taxonomy]
    if missing:
        sys.exit(f"{args.corpus}: read '{missing[0]}' has no Greengenes taxonomy ({len(missing)} such reads)")
    ids = sorted(reads)
    with publish_together(args.out_dir, ["reads.fasta", "taxonomy.tsv"]) as tmp:
        (tmp / "reads.fasta").write_text("".join(f">{i}\n{reads[i]}\n" for i in ids))
        (tmp / "taxonomy.tsv").write_text(
            "feature_id\ttaxonomy\n" + "".join(f"{i}\t{taxonomy[i]}\n" for i in ids)
        )
    print(f"{len(ids)} new reads -> {args.out_dir}/reads.fasta, taxonomy.tsv")


if __name__ == "__main__":
    main()
