"""The warnings printed at the end of a Snakemake run: the package's WARNING lines of the logs this
run wrote, nothing from older logs or other loggers."""

from __future__ import annotations

import os
import time

from aam.workflow.warnings import report, warnings_since


def test_only_this_runs_package_warnings(tmp_path):
    logs = tmp_path / "logs" / "ibd2538" / "evaluate" / "scratch"
    logs.mkdir(parents=True)
    new = logs / "ibd.log"
    new.write_text(
        "2026-01-02 10:00:00,001 INFO aam.stages.evaluate: random forest: 300 training samples\n"
        "2026-01-02 10:00:01,002 WARNING aam.stages.evaluate: degenerate predictions of the AAM model: "
        "one class (Control) for all 58 test samples\n"
        "2026-01-02 10:00:01,003 WARNING lightning.pytorch: something from Lightning\n"
    )
    old = tmp_path / "logs" / "ingest.log"
    old.write_text("2026-01-01 09:00:00,000 WARNING aam.stages.ingest: 3 samples dropped\n")
    started = time.time() - 5
    os.utime(old, (started - 3600, started - 3600))
    found = warnings_since(tmp_path / "logs", started)
    assert found == [f"{new}: degenerate predictions of the AAM model: one class (Control) for all 58 test "
                     "samples (aam.stages.evaluate)"]
    assert report(tmp_path / "logs", started).splitlines()[0].startswith("Warnings of this run's stages (1;")
    assert report(tmp_path / "logs", time.time() + 60) == ""
    assert warnings_since(tmp_path / "absent", 0) == []
