"""scripts/new_reads_gg13_8.py on a hand-made corpus, reference and qiime-default-reference-like
tarball: a read leaves the test set for its ID or its sequence being the reference's; a read without
Greengenes taxonomy is refused in one line, with no output; absent inputs are skipped in one line."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "new_reads_gg13_8.py"
MEMBER = "qiime-default-reference-0.1.3/qiime_default_reference/gg_13_8_otus/taxonomy/97_otu_taxonomy.txt.gz"


def _inputs(tmp_path: Path, taxonomy: str) -> list[str]:
    data = gzip.compress(taxonomy.encode())
    with tarfile.open(tmp_path / "qdr.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    # corpus: 4 reads; the reference holds ID 20 (another sequence) and 30's sequence (in lower case)
    (tmp_path / "corpus.fasta").write_text(">40\nACGTAA\n>20\nACGTCC\n>30\nACGTGG\n>100\nACGTTT\n")
    (tmp_path / "ref.fasta").write_text(">20\nTTTTTT\n>7\nacgtgg\n")
    return ["--tarball", str(tmp_path / "qdr.tar.gz"), "--corpus", str(tmp_path / "corpus.fasta"),
            "--exclude", str(tmp_path / "ref.fasta")]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_new_reads_are_disjoint_from_the_reference_by_id_and_sequence(tmp_path):
    lineage = "k__Bacteria; p__P; c__C; o__O; f__F; g__G{}; s__"
    taxonomy = "".join(f"{i}\t{lineage.format(i)}\n" for i in (20, 30, 40, 100))
    done = _run([*_inputs(tmp_path, taxonomy), "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0, done.stderr
    # reads 40 and 100 stay, in string order of their IDs ("100" < "40")
    assert (tmp_path / "out" / "reads.fasta").read_text() == ">100\nACGTTT\n>40\nACGTAA\n"
    assert (tmp_path / "out" / "taxonomy.tsv").read_text() == (
        f"feature_id\ttaxonomy\n100\t{lineage.format(100)}\n40\t{lineage.format(40)}\n"
    )


def test_a_read_without_taxonomy_is_refused_in_one_line_without_output(tmp_path):
    taxonomy = "40\tk__Bacteria; p__P\n"  # no line for read 100
    done = _run([*_inputs(tmp_path, taxonomy), "--out-dir", str(tmp_path / "out")])
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"{tmp_path / 'corpus.fasta'}: read '100' has no Greengenes "
                                                "taxonomy (1 such reads)"]
    assert not (tmp_path / "out").exists()


def test_absent_inputs_are_skipped_in_one_line(tmp_path):
    args = _inputs(tmp_path, "")
    args[1] = "/nonexistent/qdr.tar.gz"
    done = _run([*args, "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 0
    assert done.stdout.strip().splitlines() == [
        "new_reads_gg13_8.py: skipped, input absent: /nonexistent/qdr.tar.gz (set --tarball)"
    ]
    assert not (tmp_path / "out").exists()
