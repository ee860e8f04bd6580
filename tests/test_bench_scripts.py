"""`make bench`: every benchmark runs, one whose inputs are absent is skipped with one line, and a
failing one does not stop the others."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,args", [
    ("bench_corpus.py", ["--studies-root", "/nonexistent/studies", "--tree", "/nonexistent/tree.nwk"]),
    ("bench_cv_ibd.py", ["--results", "/nonexistent/ibd2538"]),
    ("bench_tree.py", ["--tree", "/nonexistent/tree.qza", "--table", "/nonexistent/table.qza"]),
    ("bench_training.py", ["--results", "/nonexistent/ibd2538"]),
    ("bench_seq_models.py", ["--fasta", "/nonexistent/seqs.fasta"]),
    ("bench_classify.py", ["--reference", "/nonexistent/ref.fasta"]),
    ("tune_classify.py", ["--fasta", "/nonexistent/seqs.fasta", "--out", "/nonexistent/out.tsv"]),
])
def test_benchmark_without_its_inputs_is_skipped_in_one_line(script, args):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: skipped, input absent: /nonexistent")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bench_runs_every_benchmark_and_lists_the_failures(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    stamp = tmp_path / ".venv" / ".installed"
    stamp.write_text("")
    os.utime(tmp_path / "pyproject.toml", (0, 0))  # older than the stamp: no setup runs
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "bench_a.py").write_text("print('a ran')\nraise SystemExit(1)\n")
    (scripts / "bench_b.py").write_text("print('b ran')\n")
    done = subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "bench"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert "a ran" in done.stdout and "b ran" in done.stdout
    assert done.returncode != 0 and "failed: scripts/bench_a.py" in done.stdout


def test_benchmark_run_passes_targets_to_snakemake(tmp_path):
    # `benchmark_run.py -- TARGET` runs only TARGET's jobs; placed after --configfile (which takes
    # several values), the target was read as a second config file and snakemake stopped.
    import yaml

    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = tmp_path / "results" / "ibd2538" / "ingest" / "samples.parquet"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_run.py"), "--configfile",
                           str(tmp_path / "config.yaml"), "--", str(target), "-n"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "rule ingest:" in done.stdout and "rule tokenize:" not in done.stdout
    assert (tmp_path / "results" / "timing" / "timing.json").exists()


def test_benchmark_timing_parts_of_each_benchmark_file():
    # Every job's benchmark file maps to one part: the run-wide versions job (benchmarks/versions.tsv)
    # once raised IndexError after a whole benchmark run, losing its timing tables.
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_run", REPO / "scripts" / "benchmark_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = {
        "versions.tsv": ("versions", "-"),
        "leaderboard.tsv": ("summaries", "-"),
        "kostic/ingest.tsv": ("prepare data", "kostic"),
        "kostic/cv_split/r1.tsv": ("prepare data", "kostic"),
        "kostic/cv/r0f1/baselines/diagnosis.tsv": ("baselines", "kostic"),
        "kostic/cv/r1f4/finetune/aam/diagnosis.tsv": ("finetune (aam)", "kostic"),
        "kostic/cv/r1f4/evaluate/aam/diagnosis.tsv": ("evaluate (aam)", "kostic"),
        "kostic/cv_summary/diagnosis.tsv": ("summaries", "kostic"),
    }
    assert {path: module.part_of(Path(path)) for path in expected} == expected


def test_benchmark_results_folder_follows_the_merged_configs(tmp_path):
    # A config merged after the benchmark's that names another results folder (new folds: `seed:` and
    # `results:`) once left --fresh deleting, and the timing reading, the benchmark's own folder.
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_run", REPO / "scripts" / "benchmark_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "seed.yaml").write_text("seed: 7\nresults: results_s7\n")
    (tmp_path / "runs.yaml").write_text("aam: {runs: {}}\n")
    base = "config/benchmark.yaml"
    assert module.results_folder([base]) == "results_benchmark"
    assert module.results_folder([base, str(tmp_path / "runs.yaml")]) == "results_benchmark"
    seed, runs = str(tmp_path / "seed.yaml"), str(tmp_path / "runs.yaml")
    assert module.results_folder([base, seed, runs]) == "results_s7"
    # --seed: the draw's own folder beside the config's, named for the seed, and snakemake told both
    assert module.results_folder([base], 2027) == "results_benchmark_s2027"
    assert module.seed_flags([base], 2027) == ["--config", "seed=2027", "results=results_benchmark_s2027"]
    assert module.seed_flags([base], None) == []


def test_benchmark_run_with_a_seed_runs_its_own_folder(tmp_path):
    # `benchmark_run.py --seed 7`: snakemake plans every job in <results>_s7 and the timing lands there
    import yaml

    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = tmp_path / "results_s7" / "ibd2538" / "ingest" / "samples.parquet"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_run.py"), "--configfile",
                           str(tmp_path / "config.yaml"), "--seed", "7", "--", str(target), "-n"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "rule ingest:" in done.stdout and f"{tmp_path}/results/" not in done.stdout
    assert (tmp_path / "results_s7" / "timing" / "timing.json").exists()
    assert not (tmp_path / "results").exists()
