"""The Snakemake report as a person sees it in a browser: its first screen shows the results page's
headline table, at a laptop's 1280x800 and at 1920x1080 (scripts/check_report.py, headless Chromium).

The report is built by Snakemake from the workflow's own front page (workflow/report/workflow.rst)
and a results page that `aam summary` writes from small artifacts, with a versions table long
enough that the page is taller than the window: the case in which Snakemake's template used to
centre the page and hide its top. Skipped where Chromium is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(Path(__file__).parent))
from check_report import check_report, find_chromium  # noqa: E402
from helpers.results import write_toy_results  # noqa: E402

from aam.cli import main  # noqa: E402

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed")
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

SNAKEFILE = """
report: {workflow_rst!r}

rule summary:
    output:
        report("results/summary.html", caption={caption!r}, category="Results",
               labels={{"file": "summary.html"}}),
    shell:
        "cp {page} {{output}}"
"""


def build_report(tmp_path: Path, wide: bool = False) -> Path:
    """The report of the toy results; `wide` ends the page with a table wider than a laptop's window
    (as the demo's table of three baselines and notes is beside its rule graph)."""
    plan = write_toy_results(tmp_path / "artifacts")
    versions = tmp_path / "versions.tsv"
    rows = [("dependency", f"package-{i}", f"1.{i}.0") for i in range(40)]
    pd.DataFrame(rows, columns=["kind", "name", "version"]).to_csv(versions, sep="\t", index=False)
    page = tmp_path / "page.html"
    assert main(["summary", "--results", str(tmp_path / "artifacts"), "--settings", json.dumps(plan),
                 "--versions", str(versions), "--out", str(page)]) == 0
    if wide:
        cells = "".join(f"<td>an_unbreakable_cell_{i:02d}</td>" for i in range(12))
        head, tail = page.read_text().rsplit("</div>", 1)  # the results fragment's end
        page.write_text(f"{head}<table><tr>{cells}</tr></table></div>{tail}")
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(
        workflow_rst=str(REPO / "workflow" / "report" / "workflow.rst"),
        caption=str(REPO / "workflow" / "report" / "summary.rst"), page=page))
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for args in (["--cores", "1"], ["--report", "report.html"]):
        done = subprocess.run([str(SNAKEMAKE), "-s", "Snakefile", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return tmp_path / "report.html"


def test_first_screen_shows_the_headline_table(tmp_path):
    report = build_report(tmp_path)
    results = check_report(report, [(1280, 800), (1920, 1080)], out_dir=tmp_path / "shots")
    for m in results:
        assert m["resultsHeight"] > m["height"]  # the page is taller than the window
        assert m["heading"] == "AAM beside the baselines"
        assert m["visible"], m
        assert Path(m["screenshot"]).stat().st_size > 10_000


def test_a_page_wider_than_the_window_starts_beside_the_menu(tmp_path):
    # Centred in Snakemake's scrolling pane, a page wider than the pane overflowed on both sides: its
    # left edge, the headline's start included, went under the menu, out of reach of the scroll bar.
    report = build_report(tmp_path, wide=True)
    [m] = check_report(report, [(1280, 800)], out_dir=tmp_path / "shots")
    assert m["heading"] == "AAM beside the baselines"
    assert m["visible"], m
