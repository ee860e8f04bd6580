"""scripts/eval_taxonomy.py end to end on a small synthetic reference: every protocol, classifier
and output, pooled test reads that are the whole reference (random folds) or exactly the reads of
the left-out genera; and the one-line skip without its inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _reference(tmp_path: Path) -> tuple[Path, Path, dict]:
    """2 families x 3 genera x 8 reads of 120 nt, each genus a mutated copy of its family's root."""
    rng = np.random.default_rng(0)
    fasta, rows, per_genus = [], ["feature_id\ttaxonomy"], {}
    for f in range(2):
        root = rng.choice(list("ACGT"), 120)
        for g in range(3):
            genus = root.copy()
            hit = rng.random(120) < 0.08
            genus[hit] = rng.choice(list("ACGT"), hit.sum())
            for r in range(8):
                read = genus.copy()
                hit = rng.random(120) < 0.02
                read[hit] = rng.choice(list("ACGT"), hit.sum())
                rid = f"r{f}{g}{r}"
                fasta.append(f">{rid}\n{''.join(read)}")
                rows.append(f"{rid}\tk__Bacteria; p__P; c__C; o__O; f__F{f}; g__G{f}{g}; s__")
                per_genus[f"G{f}{g}"] = per_genus.get(f"G{f}{g}", 0) + 1
    (tmp_path / "ref.fasta").write_text("\n".join(fasta) + "\n")
    (tmp_path / "ref.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "ref.fasta", tmp_path / "ref.tsv", per_genus


def test_eval_taxonomy_runs_every_protocol_and_classifier(tmp_path):
    fasta, labels, per_genus = _reference(tmp_path)
    out = tmp_path / "eval"
    cmd = [sys.executable, str(REPO / "scripts" / "eval_taxonomy.py"), "--fasta", str(fasta),
           "--labels", str(labels), "--folds", "3", "--novel-ranks", "genus", "--out-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "pr_curve.png", "tables.md"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_reads"] == 48 and set(m["speed"]) == {"aam", "nb7", "nb8"}
    random, novel = m["protocols"]["random"], m["protocols"]["novel genus"]
    assert random["test_reads"] == 48 and random["aam"]["default"]["genus"]["reads"] == 48
    # all 6 genera branch (3 per family) and are left out once: every read is a novel-genus query
    assert novel["left_out_taxa"] == 6 and novel["test_reads"] == sum(per_genus.values())
    assert m["speed"]["nb7"]["fit_time_vs_nb7"] == 1.0
    for name in ("aam", "nb7", "nb8"):
        s = novel[name]["default"]
        kinds = ("match", "overclassification", "underclassification", "misclassification")
        assert sum(s[k] for k in kinds) == 48
        assert len(random[name]["curve"]) == 21
    # the genera are far apart: on random folds q2's naive Bayes and aam name nearly every genus
    for name in ("aam", "nb7"):
        assert random[name]["default"]["genus"]["f"] > 0.9
    tables = (out / "tables.md").read_text()
    from aam.evaluate.taxonomy import KnnSettings

    aam = f"aam classify ({KnnSettings().threshold:g})"
    assert aam in tables and "naive Bayes, 7-mers (q2 default) (0.7)" in tables


def test_eval_taxonomy_without_its_inputs_is_skipped_in_one_line(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "eval_taxonomy.py"), "--fasta", "/nonexistent/s.fasta",
           "--out-dir", str(tmp_path / "e")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("eval_taxonomy.py: skipped, input absent")
    assert not (tmp_path / "e").exists()
