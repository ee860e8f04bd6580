"""scripts/tune_classify.py's rule on a hand-worked example: the setting with the largest smallest
genus F lead over q2 on the dense protocols, over its own table and, with --also, over other
references' tables too (a setting another table lacks is not eligible)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from tune_classify import DENSE, PROTOCOLS, choose, dense_leads  # noqa: E402


def _row(bayes, threshold, leads):
    setting = {"bayes_temperature": bayes, "genus_floor_margin": None, "genus_floor_scale": 0.02,
               "threshold": threshold}
    lead = dict(zip(DENSE, leads, strict=True)) | {p: 0.0 for p in PROTOCOLS if p not in DENSE}
    return setting, {p: 0.8 for p in PROTOCOLS}, lead


def _table(path: Path, rows: dict[tuple[str, str], list[float]]) -> Path:
    header = ["bayes_temperature", "genus_floor_margin", "genus_floor_scale", "threshold",
              *(f"{p} {k}" for p in PROTOCOLS for k in ("F", "lead"))]
    lines = ["\t".join(header)]
    for (bayes, threshold), leads in rows.items():
        lead = dict(zip(DENSE, leads, strict=True))
        lines.append("\t".join([bayes, "none", "-", threshold,
                                *(f"{v:.4f}" for p in PROTOCOLS for v in (0.8, lead.get(p, 0.0)))]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_rule_over_one_and_over_two_references(tmp_path):
    rows = [_row(1.0, 0.25, [0.013, 0.087, 0.035]),  # smallest 0.013
            _row(2.0, 0.25, [0.018, 0.081, 0.022]),  # smallest 0.018: the choice on its own
            _row(4.0, 0.3, [0.008, 0.105, 0.044])]
    assert choose(rows, [])[0]["bayes_temperature"] == 2.0
    other = dense_leads(_table(tmp_path / "v34.tsv", {("1", "0.25"): [-0.004, 0.066, 0.006],
                                                      ("2", "0.25"): [-0.002, 0.058, -0.011],
                                                      ("4", "0.3"): [-0.010, 0.075, 0.014]}))
    assert other[("1", "none", "-", "0.25")] == pytest.approx([-0.004, 0.066, 0.006])
    # smallest over both: 1 -> -0.004, 2 -> -0.011, 4 -> -0.010
    assert choose(rows, [other])[0]["bayes_temperature"] == 1.0
    # a setting the other table lacks is not eligible, even with the best smallest lead
    partial = dense_leads(_table(tmp_path / "partial.tsv", {("4", "0.3"): [0.5, 0.5, 0.5]}))
    assert choose(rows, [partial])[0]["bayes_temperature"] == 4.0
    with pytest.raises(SystemExit):
        choose(rows, [dense_leads(_table(tmp_path / "none.tsv", {("8", "0.2"): [0.1, 0.1, 0.1]}))])


def test_a_table_of_something_else_is_refused_in_one_line(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("sample\tvalue\nA\t1\n")
    with pytest.raises(SystemExit, match=f"{path}: not a table of tune_classify.py"):
        dense_leads(str(path))
