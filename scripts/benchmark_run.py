"""Run the benchmark (config/benchmark.yaml) through Snakemake and time it: the whole run and each part.

Usage (what `make benchmark` runs; from the repository root, with ../shared/data beside it):

    .venv/bin/python scripts/benchmark_run.py [--fresh] [--cores 2] [--configfile config/benchmark.yaml]
    .venv/bin/python scripts/benchmark_run.py \
        --configfile config/benchmark.yaml config/benchmark_candidates.yaml   # candidate AAM runs
    .venv/bin/python scripts/benchmark_run.py --report-only      # the timing table of the last run
    .venv/bin/python scripts/benchmark_run.py --seed 2027        # make benchmark SEED=2027

`--seed N` draws new grouped folds and training seeds (snakemake `--config seed=N`) into a folder of
their own, `<results>_sN` (results_benchmark_s2027): a further draw of the same benchmark, which
scripts/pool_fold_draws.py pools with the others.

The run is one `snakemake --cores N --resources gpu=N` (N training jobs side by side, one thread each),
so the numbers are the workflow's own. While it runs, the load average (/proc/loadavg) is sampled
every 30 s: the machine may be shared, and a timing means little without the load beside it.
Afterwards the Snakemake benchmark files of the jobs this run executed (results/benchmarks/**, one
per job: wall seconds, CPU seconds, mean load) are summed per part (data preparation, the baselines,
each AAM run's fine-tuning and evaluation, the summaries) and per dataset. Written to
<results>/timing/ (timing_<extra config>/ for a run with merged configs): timing.tsv (parts),
timing_datasets.tsv, timing.json (the whole run: wall time, cores, load samples). `--fresh`
deletes the results folder first, so that every job runs and is timed (a measurement of the whole
benchmark); without it only the jobs still to do run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PREPARE = {"ingest", "rarefy", "split", "cv_split", "tokenize", "unifrac", "pretrain_split"}


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def part_of(relative: Path) -> tuple[str, str]:
    """(part, dataset) of a benchmark file's path under results/benchmarks/."""
    parts = relative.with_suffix("").parts
    if len(parts) == 1:  # the run-wide jobs: leaderboard, summary, versions
        return ("summaries" if parts[0] in ("leaderboard", "summary") else parts[0]), "-"
    dataset = parts[0]
    inner = parts[3:] if len(parts) > 3 and parts[1] == "cv" else parts[1:]  # {dataset}/cv/{fold}/...
    kind = inner[0]
    if kind in PREPARE:
        return "prepare data", dataset
    if kind == "baselines":
        return "baselines", dataset
    if kind in ("finetune", "evaluate", "pretrain"):
        return f"{kind} ({inner[1]})", dataset
    if kind in ("cv_summary", "compare"):
        return "summaries", dataset
    return kind, dataset


def timing_tables(benchmarks: Path, since: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per part and per (part, dataset): jobs, wall and CPU seconds summed, mean load of the jobs."""
    rows = []
    for path in sorted(benchmarks.rglob("*.tsv")):
        if path.stat().st_mtime < since:
            continue  # a job of an earlier run
        frame = pd.read_csv(path, sep="\t")
        part, dataset = part_of(path.relative_to(benchmarks))
        rows.append(
            {
                "part": part,
                "dataset": dataset,
                "wall_s": float(frame["s"].iloc[-1]),
                "cpu_s": float(frame["cpu_time"].iloc[-1]),
                "mean_load": float(frame["mean_load"].iloc[-1]),
            }
        )
    jobs = pd.DataFrame(rows, columns=["part", "dataset", "wall_s", "cpu_s", "mean_load"])
    agg = {
        "jobs": ("wall_s", "size"),
        "wall_s": ("wall_s", "sum"),
        "cpu_s": ("cpu_s", "sum"),
        "mean_load": ("mean_load", "mean"),
    }
    return jobs.groupby("part").agg(**agg).reset_index(), jobs.groupby(["part", "dataset"]).agg(
        **agg
    ).reset_index()


# Snakemake 9 arms a timer of the job rate limiter's timespan after every scheduling round, and each
# timer starts another round: every finished job adds one more chain, so with the default 100/1s the
# scheduler ran about N rounds a second after N jobs, and the Snakemake process took half a core and
# more of the benchmark's 2. A 60 s timespan makes that N/60; the price, a single exit delayed by up
# to 60 s (the timers are not daemon threads), matters only for short runs, hence not in the profile.
# No local run reaches the cap of 1,000 submissions a minute. scripts/bench_scheduler.py measures it.
RATE_LIMIT_FLAGS = ["--max-jobs-per-timespan", "1000/60s"]


def results_folder(configfiles: list[str], seed: int | None = None) -> str:
    """The results folder of the merged configs: the last that names one wins, as in Snakemake's
    merge of several --configfile (a config with only `seed:` and `results:` reruns the benchmark
    on new folds in its own folder, which --fresh then clears and the timing reads); with `seed`,
    that folder with `_s<seed>` appended, so that no draw overwrites another."""
    name = "results"
    for path in configfiles:
        name = (yaml.safe_load((REPO / path).read_text()) or {}).get("results", name)
    return name if seed is None else f"{name}_s{seed}"


def seed_flags(configfiles: list[str], seed: int | None) -> list[str]:
    """Snakemake's `--config` that draws the folds and training seeds of `seed` into their own folder
    (`results_folder`); none without a seed."""
    if seed is None:
        return []
    return ["--config", f"seed={seed}", f"results={results_folder(configfiles, seed)}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configfile", nargs="+", default=["config/benchmark.yaml"],
        help="the benchmark config, then any merged into it (e.g. config/benchmark_candidates.yaml)",
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--fresh", action="store_true", help="delete the results folder first: time every job"
    )
    parser.add_argument("--report-only", action="store_true", help="only the tables of the last run")
    parser.add_argument("--seed", type=int,
                        help="another draw of folds and training seeds, in <results>_s<seed>")
    parser.add_argument("snakemake_args", nargs="*", help="more snakemake arguments (after --)")
    args = parser.parse_args()
    results = REPO / results_folder(args.configfile, args.seed)
    # beside benchmark/, the leaderboard's own folder; a run with merged configs (candidates) is
    # timed apart, so that it does not overwrite the timing of the benchmark itself
    merged = "".join(f"_{Path(extra).stem}" for extra in args.configfile[1:])
    out = results / f"timing{merged}"
    if args.report_only:
        run = json.loads((out / "timing.json").read_text())
    else:
        if args.fresh and results.exists():
            shutil.rmtree(results)
        samples: list[tuple[float, float, float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((round(time.time() - start, 1), *load_average()))
                stop.wait(30)

        snakemake = Path(sys.executable).with_name("snakemake")
        cmd = [  # targets and extra arguments first: --configfile and --set-threads take several values
            str(snakemake),
            *args.snakemake_args,
            *RATE_LIMIT_FLAGS,
            "--cores",
            str(args.cores),
            "--resources",
            f"gpu={args.cores}",
            "--set-threads",
            "finetune_cv=1",
            "baselines_cv=1",
            "evaluate_cv=1",
            *seed_flags(args.configfile, args.seed),
            "--configfile",
            *args.configfile,
        ]
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PATH": f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}",
        }
        print("$", " ".join(cmd), flush=True)
        start = time.time()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = subprocess.call(cmd, cwd=REPO, env=env)
        stop.set()
        sampler.join()
        loads = [s[1] for s in samples]
        run = {
            "command": cmd,
            "status": status,
            "fresh": args.fresh,
            "cores": args.cores,
            "start": start,
            "wall_s": round(time.time() - start, 1),
            "load_1min_mean": round(sum(loads) / len(loads), 2),
            "load_1min_max": max(loads),
            "load_samples": samples,
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "timing.json").write_text(json.dumps(run, indent=2) + "\n")
        if status != 0:
            print(f"snakemake exited with {status}", file=sys.stderr)
    parts, per_dataset = timing_tables(results / "benchmarks", run["start"])
    parts.to_csv(out / "timing.tsv", sep="\t", index=False, float_format="%.1f")
    per_dataset.to_csv(out / "timing_datasets.tsv", sep="\t", index=False, float_format="%.1f")
    print(parts.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(
        f"whole run: {run['wall_s'] / 60:.1f} min wall on {run['cores']} cores "
        f"({'every job' if run['fresh'] else 'the jobs still to do'}); load average (1 min) mean "
        f"{run['load_1min_mean']}, max {run['load_1min_max']}; "
        f"CPU seconds of the jobs: {parts['cpu_s'].sum():.0f}"
    )
    return int(run["status"])


if __name__ == "__main__":
    sys.exit(main())
