"""Benchmark training throughput under contention: 2 training jobs side by side against 1 alone.

    python scripts/bench_contention.py [--samples 320] [--epochs 3] [--cores 2]

What `snakemake --cores 2` does with two training jobs of 1 thread each (`aam.threads`: a job
never runs more threads than the cores it was given): the real `aam pretrain` stage, as separate
processes, on a synthetic study (tests/helpers/aam_synthetic.py: a 64-dim, 2-layer model, ASV limit 32,
batch 8). Measured in the same run:

- one job alone with all the cores (``--threads cores``) and with 1 thread: the fair share of
  each of 2 jobs is half the better of the two;
- 2 jobs side by side, ``--threads cores/2`` each (the policy);
- 2 jobs side by side, ``--threads cores`` each (each job takes every core: oversubscribed, as
  torch's default does), for comparison;
- one job alone with all the cores and spinning OpenMP waits (``OMP_WAIT_POLICY=ACTIVE``; the
  ``aam`` command sets PASSIVE unless told otherwise), for comparison.

Prints each job's training samples per second (the stage's own figure: samples of the optimizer
steps over the wall time of `fit`) and the fraction of the fair share (goal: >= 0.8), with the
load average before and after: on a machine that other work shares, absolute figures mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.aam_synthetic import write_study  # noqa: E402

MODEL = {"embedding_dim": 64, "layers": 2, "heads": 4, "ff_dim": 128, "dropout": 0.0,
         "asv_encoder": "transformer"}


def settings(epochs: int) -> dict:
    return {
        "data": {"asv_limit": 32, "batch_size": 8},
        "model": MODEL,
        "pretrain": {"trainer": {"max_epochs": epochs, "patience": None, "progress_bar": False,
                                 "warmup_steps": 5, "log_every_n_steps": 50, "accelerator": "cpu"}},
    }


def write_data(folder: Path, samples: int) -> None:
    """The synthetic study, its token caches rebuilt with a rarefaction depth (100 reads), as the
    workflow's tokenize rule leaves them after rarefy."""
    import pandas as pd

    from aam.data.token_caches import build

    write_study(folder, n_samples=samples + 40, n_train=samples, n_val=40, n_features=120)
    ids = pd.read_parquet(folder / "counts.parquet")["sample"].unique()
    # Only the rarefied table's sample IDs and depth reach the caches: one feature holding the depth.
    header, row = "\t".join(["#OTU ID", *ids]), "\t".join(["asv0"] + ["100"] * len(ids))
    (folder / "rarefied.tsv").write_text(f"{header}\n{row}\n")
    tokens = folder / "tokens"
    build(folder / "features.parquet", folder / "counts.parquet", folder / "rarefied.tsv",
          tokens / "features.parquet", tokens / "samples.parquet", max_bp=32, force=True)


def start(data: Path, out: Path, threads: int, epochs: int, wait: str | None = None) -> subprocess.Popen:
    """One `aam pretrain` job with `threads` threads (and OMP_WAIT_POLICY `wait`, else the default)."""
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if wait:
        env["OMP_WAIT_POLICY"] = wait
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "aam.cli", "pretrain", "--tokens-dir", str(data / "tokens"),
               "--splits", str(data / "splits.tsv"), "--tree", str(data / "tree.nwk"),
               "--settings", json.dumps(settings(epochs)), "--seed", "1", "--threads", str(threads),
               "--out-dir", str(out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(jobs: list[tuple[subprocess.Popen, Path]]) -> list[float]:
    """The jobs' training samples per second."""
    rates = []
    for proc, out in jobs:
        text, _ = proc.communicate()
        if proc.returncode:
            sys.exit(f"training job failed:\n{text[-3000:]}")
        rates.append(json.loads((out / "timing.json").read_text())["train_samples_per_s"])
    return rates


def run(data: Path, tmp: Path, name: str, threads: list[int], epochs: int, wait: str | None = None
        ) -> list[float]:
    jobs = [(start(data, tmp / f"{name}{k}", t, epochs, wait), tmp / f"{name}{k}")
            for k, t in enumerate(threads)]
    return finish(jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=320, help="training samples of the synthetic study")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2, help="cores of the machine to share (2 jobs)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    half = max(1, args.cores // 2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        write_data(data, args.samples)
        alone_all = run(data, tmp, "alone_all", [args.cores], args.epochs)[0]
        alone_one = run(data, tmp, "alone_one", [half], args.epochs)[0]
        policy = run(data, tmp, "policy", [half, half], args.epochs)
        oversubscribed = run(data, tmp, "over", [args.cores, args.cores], args.epochs)
        spinning = run(data, tmp, "spin", [args.cores], args.epochs, wait="ACTIVE")[0]
    fair = max(alone_all, alone_one) / 2
    print(f"AAM pretraining (`aam pretrain`), {args.samples} training samples x {args.epochs} epochs, "
          f"batch 8, {MODEL}")
    print(f"  1 job alone, {args.cores} threads    : {alone_all:7.1f} samples/s")
    print(f"  1 job alone, {args.cores} threads, spinning waits: {spinning:7.1f} samples/s")
    print(f"  1 job alone, {half} thread(s)    : {alone_one:7.1f} samples/s   fair share of 2 jobs: "
          f"{fair:.1f} samples/s each")
    for label, rates in ((f"2 jobs, {half} thread(s) each", policy),
                         (f"2 jobs, {args.cores} threads each", oversubscribed)):
        fractions = [r / fair for r in rates]
        print(f"  {label:26s}: {rates[0]:7.1f} + {rates[1]:7.1f} samples/s = "
              f"{min(fractions):.2f} / {max(fractions):.2f} of the fair share (min / max)")
    print(f"  {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
