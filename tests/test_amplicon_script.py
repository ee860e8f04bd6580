"""scripts/amplicon_gg13_8.py on a hand-made qiime-default-reference-like tarball: each OTU's
amplicon worked out by hand (IUPAC primers, the first matches, the reverse primer's reverse
complement), OTUs without both primers or outside the length range left out, an earlier draw's IDs
and sequences excluded; absent inputs skipped in one line."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "amplicon_gg13_8.py"
ROOT = "qiime-default-reference-0.1.3/qiime_default_reference/gg_13_8_otus/"
LINEAGE = "k__Bacteria; p__P; c__C; o__O; f__F; g__G{}; s__"

# forward primer ACGR (regex ACG[AG]); reverse primer TTYC, whose reverse complement is GRAA
OTUS = {
    "1": "ttACGAcccgggGAAAtt",  # forward ACGA; first GRAA after it: GGAA inside GGGGAAA -> CCCGG
    "2": "ACGGTTTTGAAA",  # forward ACGG, reverse GAAA -> TTTT
    "3": "ACGATTTT",  # no reverse primer: left out
    "4": "ACGA" + "C" * 10 + "GAAA",  # amplicon of 10 nt > --max-length 8: left out
    "5": "GAAAACGATT",  # the reverse primer only before the forward one: left out
    "6": "CCACGATTATGAAACC",  # amplicon TTAT, a sequence of the excluded draw: left out
    "7": "ACGACCAAGGAA",  # amplicon CCAA, but ID 7 is in the excluded draw: left out
    "8": "ACGNAAAAGAAA",  # N in the read does not match the primer's R: left out
}


def _tarball(tmp_path: Path) -> Path:
    members = {
        ROOT + "rep_set/97_otus.fasta.gz": "".join(f">{i}\n{s}\n" for i, s in OTUS.items()),
        ROOT + "taxonomy/97_otu_taxonomy.txt.gz": "".join(f"{i}\t{LINEAGE.format(i)}\n" for i in OTUS),
    }
    path = tmp_path / "qdr.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = gzip.compress(text.encode())
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_amplicons_are_cut_between_the_primers_first_matches(tmp_path):
    (tmp_path / "earlier.fasta").write_text(">7\nGGGG\n>99\nttat\n")
    done = _run(["--tarball", str(_tarball(tmp_path)), "--forward", "ACGR", "--reverse", "TTYC",
                 "--min-length", "2", "--max-length", "8", "--n", "0",
                 "--exclude", str(tmp_path / "earlier.fasta"), "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "reference.fasta").read_text() == ">1\nCCCGG\n>2\nTTTT\n"
    assert (tmp_path / "out" / "taxonomy.tsv").read_text() == (
        f"feature_id\ttaxonomy\n1\t{LINEAGE.format(1)}\n2\t{LINEAGE.format(2)}\n")
    # 1, 2, 6 and 7 hold an amplicon of 2-8 nt; 6 and 7 are then excluded
    assert done.stdout.startswith("4 of 8 OTUs hold the amplicon (2-8 nt); 2 drawn")


def test_truncate_keeps_each_amplicons_first_bases_after_the_length_bounds(tmp_path):
    # the same OTUs as above (bounds 2-8 on the whole amplicon), each cut to its first 3 nt; a
    # 2-nt amplicon would stay 2 nt
    done = _run(["--tarball", str(_tarball(tmp_path)), "--forward", "ACGR", "--reverse", "TTYC",
                 "--min-length", "2", "--max-length", "8", "--truncate", "3", "--n", "0",
                 "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0, done.stderr
    reads = (tmp_path / "out" / "reference.fasta").read_text().split()
    cut = dict(zip(reads[::2], reads[1::2], strict=True))
    assert cut == {">1": "CCC", ">2": "TTT", ">6": "TTA", ">7": "CCA"}


def test_a_draw_is_seeded(tmp_path):
    tarball = str(_tarball(tmp_path))
    outs = []
    for name in ("a", "b"):
        done = _run(["--tarball", tarball, "--forward", "ACGR", "--reverse", "TTYC", "--min-length", "2",
                     "--max-length", "8", "--n", "2", "--seed", "3", "--out-dir", str(tmp_path / name)])
        assert done.returncode == 0, done.stderr
        outs.append((tmp_path / name / "reference.fasta").read_text())
    assert outs[0] == outs[1] and outs[0].count(">") == 2


def test_reverse_complement_by_hand():
    sys.path.insert(0, str(REPO / "scripts"))
    from amplicon_gg13_8 import reverse_complement

    # 805R GACTACHVGGGTATCTAATCC: complement CTGATGDBCCCATAGATTAGG, reversed
    assert reverse_complement("GACTACHVGGGTATCTAATCC") == "GGATTAGATACCCBDGTAGTC"


def test_absent_inputs_are_skipped_in_one_line(tmp_path):
    done = _run(["--tarball", "/nonexistent/qdr.tar.gz", "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0
    assert done.stdout.strip().splitlines() == [
        "amplicon_gg13_8.py: skipped, input absent: /nonexistent/qdr.tar.gz (set --tarball)"
    ]
    assert not (tmp_path / "out").exists()
