"""Snakemake's own CPU time while it runs a DAG: its defaults against the local profile's settings.

Why: on the benchmark (~1,000 jobs on 2 cores) the Snakemake process itself used half a core or
more, and its share grew as jobs finished. Two causes, both in Snakemake 9's job scheduler:
- the default job rate limiter (`--max-jobs-per-timespan 100/1s`) arms a one-second timer after
  every scheduling round, and every timer's round arms another: each finished job starts one more
  such chain, so after N jobs the scheduler runs about N rounds a second;
- every round resets and stats the ready jobs, and the default ILP scheduler solves a linear
  program (PuLP/CBC) in it.
`workflow/profiles/default/config.yaml` sets `scheduler: greedy` and `scheduler-subsample: 16`;
`scripts/benchmark_run.py` adds a 60 s rate-limit timespan (`RATE_LIMIT_FLAGS`), which delays the
exit by up to 60 s (the timers are not daemon threads) and so stays out of the profile.

The measurement: a synthetic DAG of `--jobs` jobs that each sleep `--sleep` seconds (no CPU of their
own) and read a few input files, run with `--cores` slots three times: Snakemake's defaults, the
profile's settings, and the benchmark's (profile + rate limit); the CPU time of Snakemake and its
children (the sleeping jobs cost almost none), the wall time (exit delay included), and the
ratios to the defaults, measured in the same run.

    .venv/bin/python scripts/bench_scheduler.py                 # 240 jobs of 1 s on 4 slots, ~4 min
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_run import RATE_LIMIT_FLAGS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "default" / "config.yaml"
SCHEDULER_KEYS = ("scheduler", "scheduler-subsample", "max-jobs-per-timespan")

SNAKEFILE = """
N = int(config["jobs"])
rule all:
    input: expand("out/{i}.txt", i=range(N))
rule job:
    input: "in/a.txt", "in/b.txt", "in/c.txt"
    output: "out/{i}.txt"
    shell: "sleep %s && echo {wildcards.i} > {output}"
"""


def profile_flags() -> list[str]:
    """The local profile's scheduler settings as command-line flags (the profile itself also sets
    resources that a synthetic DAG does not need)."""
    profile = yaml.safe_load(PROFILE.read_text())
    flags: list[str] = []
    for key in SCHEDULER_KEYS:
        if key in profile:
            flags += [f"--{key}", str(profile[key])]
    return flags


def run_once(workdir: Path, cores: int, jobs: int, flags: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (Snakemake and its children) of one run from scratch."""
    for out in (workdir / "out").glob("*"):
        out.unlink()
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--cores", str(cores), "--config", f"jobs={jobs}", "--quiet", "all", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=240)
    p.add_argument("--cores", type=int, default=4, help="job slots (the jobs sleep: no CPU needed)")
    p.add_argument("--sleep", type=float, default=1.0, help="seconds each job sleeps")
    args = p.parse_args()
    flags = profile_flags()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "Snakefile").write_text(SNAKEFILE % args.sleep)
        (workdir / "in").mkdir()
        for name in "abc":
            (workdir / "in" / f"{name}.txt").write_text(name)
        (workdir / "out").mkdir()
        runs = {
            "Snakemake defaults": [],
            "local profile": flags,
            "benchmark (profile + rate limit)": flags + RATE_LIMIT_FLAGS,
        }
        measured = {name: run_once(workdir, args.cores, args.jobs, extra) for name, extra in runs.items()}
    ideal = args.jobs * args.sleep / args.cores
    print(f"{args.jobs} jobs of {args.sleep:g} s on {args.cores} slots (ideal wall {ideal:.0f} s)")
    default_wall, default_cpu = measured["Snakemake defaults"]
    for name, extra in runs.items():
        wall, cpu = measured[name]
        print(
            f"{name:33s} wall {wall:6.1f} s ({wall / default_wall:.2f}x), "
            f"CPU {cpu:6.1f} s ({cpu / default_cpu:.2f}x)  {' '.join(extra)}"
        )


if __name__ == "__main__":
    main()
