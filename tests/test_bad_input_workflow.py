"""Bad input and bad config under `snakemake`: what the user sees in Snakemake's own output.

A stage's one-line error must reach Snakemake's output (not only the rule's log), config names
that would leave the results folder are rejected with a line naming the key, and logs and
benchmarks sit under the configured results folder.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from test_workflow import REPO, snakemake

SMALL = REPO / "tests" / "data" / "prepare"


def small_config(workdir: Path, table: Path | None = None, **overrides) -> Path:
    """A config with one small dataset (tests/data/prepare) and no training runs or sequence sets."""
    config = {
        "results": str(workdir / "out"),
        "datasets": {
            "small": {
                "table": str(table or SMALL / "table.tsv"),
                "tree": str(SMALL / "tree.nwk"),
                "metadata": str(SMALL / "metadata.tsv"),
                "group_column": "host_subject_id",
                "targets": [{"name": "dx", "column": "diagnosis", "type": "classification"}],
            }
        },
        "aam": {"runs": {}},
        "sequences": {},
        "seq_models": {"runs": {}},
        **overrides,
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_stage_error_line_appears_in_snakemake_output_and_logs_sit_under_results(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text((SMALL / "table.tsv").read_text().replace("\t40\t", "\t-40\t"))
    small_config(tmp_path, table=bad)
    result = snakemake(tmp_path, "--cores", "1", str(tmp_path / "out/small/ingest/counts.parquet"))
    text = result.stdout + result.stderr
    assert result.returncode != 0
    error_lines = [line for line in text.splitlines() if line.startswith("aam ingest: error:")]
    assert len(error_lines) == 1, text[-3000:]
    assert "bad.tsv" in error_lines[0] and "negative counts" in error_lines[0]
    # The log and the benchmark folder belong to this results folder, not to the working directory.
    assert (tmp_path / "out/logs/small/ingest.log").read_text().strip().endswith(error_lines[0])
    assert not (tmp_path / "logs").exists()
    assert not (tmp_path / "out/small/ingest").exists() or not any((tmp_path / "out/small/ingest").iterdir())


def test_logs_and_benchmarks_follow_the_results_folder(tmp_path):
    small_config(tmp_path)
    result = snakemake(tmp_path, "-n", str(tmp_path / "out/small/splits.tsv"))
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert f"log: {tmp_path}/out/logs/small/ingest.log" in text
    assert f"benchmark: {tmp_path}/out/benchmarks/small/ingest.tsv" in text
