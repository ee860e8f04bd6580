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

    knn = KnnSettings()
    aam = f"aam classify ({knn.threshold:g}; species {knn.threshold * knn.species_threshold_scale:g})"
    assert aam in tables and "naive Bayes, 7-mers (q2 default) (0.7)" in tables


def test_external_test_set_drops_identical_training_sequences_and_tunes_nothing(tmp_path):
    fasta, labels, _ = _reference(tmp_path)
    ref = dict(zip(fasta.read_text().split()[::2], fasta.read_text().split()[1::2], strict=True))
    # a trap: the only reference read of genus Gnew, identical to a test read. Dropped from training
    # (as the test read's copy must be), Gnew is a genus training lacks under a family it holds:
    # the one novel-genus read. Kept, the genus would be seen and that protocol empty.
    trap = "".join(np.random.default_rng(7).choice(list("ACGT"), 120))
    with fasta.open("a") as f:
        f.write(f">trap\n{trap}\n")
    tax = "k__Bacteria; p__P; c__C; o__O; f__F{}; g__{}; s__"
    with labels.open("a") as f:
        f.write(f"trap\t{tax.format(0, 'Gnew')}\n")
    rng = np.random.default_rng(1)
    test, rows = [], ["feature_id\ttaxonomy"]
    for f_, g in [(0, 0), (0, 2), (1, 1), (1, 2)]:  # new reads of seen genera: 2 % of bases changed
        read = np.array(list(ref[f">r{f_}{g}0"]))
        read[rng.random(120) < 0.02] = "T"
        test.append((f"n{f_}{g}", "".join(read), tax.format(f_, f"G{f_}{g}")))
    test += [  # two copies of reference reads (one in lower case) and the trap's
        ("c1", ref[">r000"], tax.format(0, "G00")),
        ("c2", ref[">r115"].lower(), tax.format(1, "G11")),
        ("t", trap, tax.format(0, "Gnew")),
    ]
    (tmp_path / "test.fasta").write_text("".join(f">{i}\n{seq}\n" for i, seq, _ in test))
    (tmp_path / "test.tsv").write_text("\n".join(rows + [f"{i}\t{t}" for i, _, t in test]) + "\n")
    out = tmp_path / "eval"
    cmd = [sys.executable, str(REPO / "scripts" / "eval_taxonomy.py"), "--fasta", str(fasta),
           "--labels", str(labels), "--test-fasta", str(tmp_path / "test.fasta"), "--test-labels",
           str(tmp_path / "test.tsv"), "--novel-ranks", "genus", "--out-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["external"] == {"train_reads": 49 - 3, "dropped_identical": 3, "test_reads": 7}
    assert "training on 46 reference reads (3 identical to a test read dropped)" in done.stdout
    new, unseen = m["protocols"]["new reads"], m["protocols"]["new reads: genus unseen"]
    assert set(m["protocols"]) == {"new reads", "new reads: genus unseen"}
    assert new["test_reads"] == 7 and new["aam"]["default"]["genus"]["reads"] == 7
    assert unseen["test_reads"] == 1 and unseen["left_out_taxa"] == 1
    # 6 of the 7 test genera are in training
    assert new["accuracy"]["nb7"]["genus"]["seen_reads"] == 6
    # nothing is chosen on the test set: every classifier is scored at its default threshold
    from aam.evaluate.taxonomy import KnnSettings

    knn = KnnSettings()
    species = knn.threshold * knn.species_threshold_scale
    for res in (new, unseen):
        assert [res[n]["rank_thresholds"] for n in ("aam", "nb7", "nb8")] == [
            [knn.threshold] * 6 + [species], [0.7] * 7, [0.7] * 7]
    assert set(new["aam_minus"]) == {"nb7", "nb8"}
    # the seen genera are far apart: aam's best call names all 6 of their reads
    assert new["accuracy"]["aam"]["genus"]["seen at 0"] == 1.0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "pr_curve.png", "tables.md"]


def test_eval_taxonomy_without_its_inputs_is_skipped_in_one_line(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "eval_taxonomy.py"), "--fasta", "/nonexistent/s.fasta",
           "--out-dir", str(tmp_path / "e")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("eval_taxonomy.py: skipped, input absent")
    assert not (tmp_path / "e").exists()
