"""Scale benchmark: ingest -> rarefy -> unifrac -> tokenize + a pretraining epoch at 10k-50k samples.

    python scripts/bench_scale.py --sizes 10000 30000 50000 --work /tmp/scale \\
        [--corpus ../shared/data/pretrain_corpus]

For each size a seeded corpus-like table is made (scripts/synthetic_table.py: Greengenes 97 % OTUs,
richness and depth of the 8-study pretraining corpus), then each stage runs as its own `aam`
process, as Snakemake runs it, and the script records its wall time and peak resident memory
(the child's ru_maxrss from wait4) beside the load average (1 min) before and after, for a machine
shared with other work. The unifrac stage writes unweighted UniFrac in HDF5 (``--precision``,
float32 by default: unifrac's fp32 layout) with its PCoA and Faith's PD; pretraining is one epoch of
a small AAM model (``--pretrain-batches`` limits it for a quick run).

Printed: a table size x stage (seconds, peak GB, load), the growth exponent of each stage's time
and memory between consecutive sizes (log ratio of time / log ratio of sizes: 1 linear, 2
quadratic), the goal line for the largest size (ingest + rarefy + unifrac + tokenize within 1 hour
and 8 GB), and the ratio of the HDF5 unifrac stage to the TSV one (the previous default format)
measured at the smallest size in the same run (``--no-reference`` skips it). Results also go to
``--work``/bench_scale.json. Big files are removed after each size unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "pretrain_corpus"
PIPELINE = ("ingest", "rarefy", "unifrac", "tokenize")
PRETRAIN_SETTINGS = {
    "data": {"asv_limit": 64, "batch_size": 32},
    "model": {"embedding_dim": 32, "layers": 1, "heads": 2, "ff_dim": 64, "dropout": 0.0},
    "pretrain": {
        "enabled": True,
        "unifrac_metric": "unweighted",
        "trainer": {
            "max_epochs": 1,
            "lr": 0.001,
            "warmup_steps": 10,
            "patience": None,
            "progress_bar": False,
            "log_every_n_steps": 50,
        },
    },
}


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_stage(name: str, argv: list[str], log_path: Path, threads: int) -> dict:
    """Run one `aam` stage as a child process: wall seconds, its peak RSS (GB), load before/after."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    before = load()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "aam.cli", *argv], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"{name} failed (exit {code}); {log_path}:\n" + "\n".join(tail))
    result = {
        "seconds": round(seconds, 1),
        "peak_gb": round(usage.ru_maxrss / 2**20, 2),
        "load_before": before,
        "load_after": load(),
    }
    print(
        f"  {name:9s} {result['seconds']:8.1f} s  {result['peak_gb']:6.2f} GB  load {before:.1f} -> "
        f"{result['load_after']:.1f}",
        flush=True,
    )
    return result


def generate_table(n: int, args, folder: Path, corpus: Path) -> None:
    """scripts/synthetic_table.py: an n-sample table of the corpus's OTUs under `folder`/input."""
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "synthetic_table.py"),
            "--samples",
            str(n),
            "--out-dir",
            str(folder / "input"),
            "--seed",
            str(args.seed),
            "--corpus",
            str(corpus),
        ],
        check=True,
    )
    print(f"  (table generated in {time.perf_counter() - t0:.0f} s)", flush=True)


def stage_commands(args, folder: Path, corpus: Path, unifrac: dict) -> dict[str, list]:
    """The `aam` command line of each stage, in pipeline order (pretraining last)."""
    seed, threads = str(args.seed), str(args.threads)
    pretrain = json.loads(json.dumps(PRETRAIN_SETTINGS))
    if args.pretrain_batches:
        pretrain["pretrain"]["trainer"]["limit_train_batches"] = args.pretrain_batches
    return {
        "ingest": ["ingest", "--table", folder / "input/table.biom",
                   "--tree", corpus / "gg13_8_97_otus.tree.nwk",
                   "--sequences", corpus / "gg13_8_97_otus.v4_150nt.fasta",
                   "--metadata", folder / "input/metadata.tsv", "--group-column", "host_subject_id",
                   "--out-dir", folder / "ingest"],
        "rarefy": ["rarefy", "--table", folder / "ingest/counts.parquet",
                   "--samples", folder / "ingest/samples.parquet", "--depth", "auto", "--seed", seed,
                   "--out", folder / "rarefied/table.biom", "--dropped", folder / "rarefied/dropped.tsv"],
        "unifrac": ["unifrac", "--table", folder / "rarefied/table.biom",
                    "--tree", folder / "ingest/tree.nwk", "--samples", folder / "ingest/samples.parquet",
                    "--color-column", "study",
                    "--out-dir", folder / "unifrac", "--settings", json.dumps(unifrac), "--seed", seed,
                    "--threads", threads],
        "tokenize": ["tokenize", "--features", folder / "ingest/features.parquet",
                     "--counts", folder / "ingest/counts.parquet",
                     "--rarefied", folder / "rarefied/table.biom",
                     "--out-dir", folder / "tokens"],
        "split": ["pretrain-split", "--counts", folder / "ingest/counts.parquet",
                  "--samples", folder / "ingest/samples.parquet", "--group-column", "host_subject_id",
                  "--val-fraction", "0.1", "--seed", seed, "--out", folder / "pretrain_splits.tsv"],
        "pretrain": ["pretrain", "--tokens-dir", folder / "tokens",
                     "--splits", folder / "pretrain_splits.tsv",
                     "--tree", folder / "ingest/tree.nwk", "--settings", json.dumps(pretrain), "--seed", seed,
                     "--threads", threads, "--out-dir", folder / "pretrain"],
    }


def bench_size(n: int, args, folder: Path) -> dict:
    """Generate an n-sample table, run every stage on it (each timed in its own process), and record
    the matrix size; at the smallest size also the TSV float64 UniFrac reference."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus)
    generate_table(n, args, folder, corpus)
    unifrac = {
        "metrics": ["unweighted"],
        "precision": args.precision,
        "format": "hdf5",
        "block_size": args.block_size,
        "pcoa_dimensions": 10,
    }
    stages = stage_commands(args, folder, corpus, unifrac)
    results = {}
    for name, argv in stages.items():
        if name in ("split", "pretrain") and args.no_pretrain:
            continue
        results[name] = run_stage(name, [str(a) for a in argv], folder / f"{name}.log", args.threads)
    h5 = folder / "unifrac" / "unweighted.h5"
    results["unifrac"]["matrix_gb"] = round(h5.stat().st_size / 2**30, 3)
    if args.reference and n == min(args.sizes):
        tsv = {**unifrac, "format": "tsv", "precision": "float64"}
        argv = [str(a) for a in stages["unifrac"]]
        argv[argv.index("--settings") + 1] = json.dumps(tsv)
        argv[argv.index("--out-dir") + 1] = str(folder / "unifrac_tsv")
        results["unifrac_tsv_reference"] = run_stage(
            "unifrac (TSV, float64: reference)", argv, folder / "unifrac_tsv.log", args.threads
        )
        results["unifrac_tsv_reference"]["matrix_gb"] = round(
            (folder / "unifrac_tsv" / "unweighted.tsv").stat().st_size / 2**30, 3
        )
    with open(folder / "rarefied/dropped.tsv") as fh:
        results["kept_samples"] = n - (sum(1 for _ in fh) - 1)
    return results


def exponent(a: float, b: float, n1: int, n2: int) -> float:
    return math.log(max(b, 1e-9) / max(a, 1e-9)) / math.log(n2 / n1)


def report(all_results: dict, sizes: list[int]) -> None:
    stages = [s for s in (*PIPELINE, "split", "pretrain") if s in all_results[sizes[0]]]
    print("\nsize x stage: seconds, peak GB (load 1 min before -> after)")
    print("| stage | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for stage in stages:
        cells = [
            f"{r['seconds']:.0f} s, {r['peak_gb']:.2f} GB "
            f"(load {r['load_before']:.0f}->{r['load_after']:.0f})"
            for r in (all_results[n][stage] for n in sizes)
        ]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    for i in range(1, len(sizes)):
        n1, n2 = sizes[i - 1], sizes[i]
        parts = []
        for stage in stages:
            a, b = all_results[n1][stage], all_results[n2][stage]
            parts.append(
                f"{stage} t^{exponent(a['seconds'], b['seconds'], n1, n2):.2f} "
                f"mem^{exponent(a['peak_gb'], b['peak_gb'], n1, n2):.2f}"
            )
        print(f"growth exponents {n1:,} -> {n2:,}: " + ", ".join(parts))
    largest = all_results[sizes[-1]]
    total = sum(largest[s]["seconds"] for s in PIPELINE)
    peak = max(largest[s]["peak_gb"] for s in PIPELINE)
    ok = total <= 3600 and peak <= 8
    print(
        f"goal at {sizes[-1]:,} samples: ingest + rarefy + unifrac + tokenize {total:.0f} s "
        f"(<= 3600), peak {peak:.2f} GB (<= 8): {'met' if ok else 'NOT met'}"
    )
    ref = all_results[sizes[0]].get("unifrac_tsv_reference")
    if ref:
        ours = all_results[sizes[0]]["unifrac"]
        print(
            f"unifrac stage at {sizes[0]:,}: HDF5 {ours['seconds']:.0f} s, {ours['matrix_gb']:.2f} GB vs "
            f"TSV {ref['seconds']:.0f} s, {ref['matrix_gb']:.2f} GB: "
            f"time ratio {ours['seconds'] / ref['seconds']:.2f}, "
            f"size ratio {ours['matrix_gb'] / max(ref['matrix_gb'], 1e-9):.2f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 50_000])
    parser.add_argument("--work", required=True, help="scratch folder (tens of GB at 50k samples)")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("float32", "float64"), default="float32")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--pretrain-batches", type=int, default=0, help="limit the epoch (0: a full epoch)")
    parser.add_argument("--no-pretrain", action="store_true")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep each size's files")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    all_results: dict = {}
    summary = work / "bench_scale.json"
    for n in sizes:
        print(f"{n:,} samples (load {load():.1f}):", flush=True)
        all_results[n] = bench_size(n, args, work / f"n{n}")
        summary.write_text(json.dumps({str(k): v for k, v in all_results.items()}, indent=1))
        if not args.keep:
            for big in ("unifrac", "unifrac_tsv", "input", "ingest", "rarefied", "tokens", "pretrain"):
                shutil.rmtree(work / f"n{n}" / big, ignore_errors=True)
    report(all_results, sizes)


if __name__ == "__main__":
    main()
