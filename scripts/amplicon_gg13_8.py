"""Build a Greengenes 13_8 reference of another amplicon than V4, for `eval_taxonomy.py --fasta
--labels`: do `aam classify`'s defaults, chosen on V4 reads, hold on another region?

`aam classify`'s defaults (threshold, naive Bayes temperature, k-mer and alignment settings) were
tuned on 150-nt V4 reads of `../shared/data/gg13_8_v4`. This cuts each Greengenes 13_8 97 % OTU
(`gg_13_8_otus/rep_set/97_otus.fasta.gz` of the `qiime-default-reference` 0.1.3 sdist on PyPI, read
straight from the tarball, with its taxonomy) at a primer pair, as q2-feature-classifier's
`extract-reads` does for its users' amplicons: the sequence between the end of the forward primer's
first match and the start of the reverse primer's reverse complement's first match after it
(IUPAC codes as regex classes, no mismatches; the pretrain corpus's V4 cut matched 515F the same
way). Defaults: V3-V4, 341F CCTACGGGNGGCWGCAG and 805R GACTACHVGGGTATCTAATCC (Illumina's 16S
protocol). OTUs without both matches, or with an amplicon outside `--min-length`..`--max-length`,
are left out, and so are the IDs and sequences of `--exclude` (the test draw, when drawing a
tuning reference); `--n` of the rest are drawn (`--seed`). `--truncate 150` keeps each amplicon's
first 150 nt, as the V4 reads of `../shared` were cut: with 515F / 806R and `--n 0` that is the
whole Greengenes 13_8 97 % set as 150-nt V4 reads, a reference of the size users classify against:

    pip download qiime-default-reference==0.1.3 --no-deps --no-binary :all: -d downloads
    python scripts/amplicon_gg13_8.py --tarball downloads/qiime-default-reference-0.1.3.tar.gz \
        --out-dir gg13_8_v34
    python scripts/eval_taxonomy.py --fasta gg13_8_v34/reference.fasta \
        --labels gg13_8_v34/taxonomy.tsv --out-dir eval_v34
    python scripts/amplicon_gg13_8.py --tarball downloads/qiime-default-reference-0.1.3.tar.gz \
        --exclude gg13_8_v34/reference.fasta --seed 1 --out-dir gg13_8_v34_tune
    python scripts/amplicon_gg13_8.py --tarball downloads/qiime-default-reference-0.1.3.tar.gz \
        --forward GTGYCAGCMGCCGCGGTAA --reverse GGACTACNVGGGTWTCTAAT --min-length 200 \
        --max-length 300 --truncate 150 --n 0 --out-dir gg13_8_v4_all

writes `reference.fasta` (IDs sorted as strings) and `taxonomy.tsv` (feature_id, taxonomy:
q2-feature-classifier's format), both or neither. Skips in one line if the tarball is absent.
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402
from new_reads_gg13_8 import greengenes_taxonomy  # noqa: E402

REP_SET_MEMBER = "qiime_default_reference/gg_13_8_otus/rep_set/97_otus.fasta.gz"
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "[AG]", "Y": "[CT]", "S": "[CG]", "W": "[AT]",
         "K": "[GT]", "M": "[AC]", "B": "[CGT]", "D": "[AGT]", "H": "[ACT]", "V": "[ACG]", "N": "[ACGT]"}
COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")


def primer_pattern(primer: str) -> re.Pattern:
    """A regex matching `primer` with its IUPAC codes as classes (a read's own ambiguity codes do not
    match them: an exact match on unambiguous bases)."""
    try:
        return re.compile("".join(IUPAC[b] for b in primer.upper()))
    except KeyError as err:
        raise SystemExit(f"primer {primer!r}: {err.args[0]!r} is not an IUPAC nucleotide code") from None


def reverse_complement(primer: str) -> str:
    return primer.upper().translate(COMPLEMENT)[::-1]


def amplicon(seq: str, forward: re.Pattern, reverse_rc: re.Pattern) -> str | None:
    """The sequence between the forward primer's first match and the first match of the reverse
    primer's reverse complement after it (upper-cased); None without both."""
    seq = seq.upper()
    f = forward.search(seq)
    if f is None:
        return None
    r = reverse_rc.search(seq, f.end())
    return None if r is None else seq[f.end() : r.start()]


def rep_set(tarball: str) -> dict[str, str]:
    """{OTU ID: sequence} of Greengenes 13_8 97 % OTUs, from the qiime-default-reference sdist."""
    import tempfile

    from aam.io.fasta import read_fasta

    with tarfile.open(tarball) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(REP_SET_MEMBER)), None)
        if member is None:
            sys.exit(f"{tarball}: no {REP_SET_MEMBER} in the archive (is it qiime-default-reference 0.1.3?)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "97_otus.fasta.gz"  # read_fasta reads gzip
            path.write_bytes(tar.extractfile(member).read())
            return read_fasta(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tarball", default="downloads/qiime-default-reference-0.1.3.tar.gz")
    p.add_argument("--forward", default="CCTACGGGNGGCWGCAG", help="forward primer (default 341F)")
    p.add_argument("--reverse", default="GACTACHVGGGTATCTAATCC", help="reverse primer (default 805R)")
    p.add_argument("--min-length", type=int, default=300)
    p.add_argument("--max-length", type=int, default=500)
    p.add_argument("--truncate", type=int, default=0,
                   help="keep each amplicon's first N nt (0: all), as the 150-nt V4 reads of ../shared were "
                        "cut; the length bounds apply before it")
    p.add_argument("--n", type=int, default=20000, help="OTUs drawn (0: all that have the amplicon)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", default=None,
                   help="a FASTA (an earlier draw): its IDs and amplicons are not drawn again, so a tuning "
                        "reference stays disjoint from the test reference")
    p.add_argument("--out-dir", required=True)
    args = p.parse_args()
    inputs = {"--tarball": args.tarball}
    if args.exclude:
        inputs["--exclude"] = args.exclude
    skip_if_absent(__file__, inputs)
    if args.truncate < 0:
        sys.exit(f"--truncate {args.truncate}: the number of bases to keep must be 0 (all) or more")

    import numpy as np

    from aam.io.atomic import publish_together
    from aam.io.fasta import read_fasta

    forward, reverse_rc = primer_pattern(args.forward), primer_pattern(reverse_complement(args.reverse))
    taxonomy = greengenes_taxonomy(args.tarball)
    sequences = rep_set(args.tarball)
    cut = {}
    for otu, seq in sequences.items():
        a = amplicon(seq, forward, reverse_rc)
        if a is not None and args.min_length <= len(a) <= args.max_length:
            cut[otu] = a[: args.truncate] if args.truncate else a
    missing = [otu for otu in cut if otu not in taxonomy]
    if missing:
        sys.exit(f"{args.tarball}: OTU '{missing[0]}' has no Greengenes taxonomy ({len(missing)} such OTUs)")
    excluded = read_fasta(args.exclude) if args.exclude else {}
    seen = {seq.upper() for seq in excluded.values()}
    ids = sorted(otu for otu in cut if otu not in excluded and cut[otu] not in seen)
    if args.n and args.n < len(ids):
        pick = np.random.default_rng(args.seed).choice(len(ids), args.n, replace=False)
        ids = sorted(ids[i] for i in pick)
    lengths = np.array([len(cut[i]) for i in ids])
    with publish_together(args.out_dir, ["reference.fasta", "taxonomy.tsv"]) as tmp:
        (tmp / "reference.fasta").write_text("".join(f">{i}\n{cut[i]}\n" for i in ids))
        (tmp / "taxonomy.tsv").write_text(
            "feature_id\ttaxonomy\n" + "".join(f"{i}\t{taxonomy[i]}\n" for i in ids)
        )
    print(f"{len(cut):,} of {len(sequences):,} OTUs hold the amplicon ({args.min_length}-{args.max_length} "
          f"nt); {len(ids):,} drawn, length median {int(np.median(lengths))} nt -> "
          f"{args.out_dir}/reference.fasta, taxonomy.tsv")


if __name__ == "__main__":
    main()
