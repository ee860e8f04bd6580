"""Benchmark UniFrac: aam (torch) against scikit-bio and Striped UniFrac (`ssu`), plus per-batch timing.

    .venv/bin/python scripts/bench_unifrac.py [--quick] [--threads N] [--skbio-samples N]

Datasets: the demo table (470 samples x 9,970 ASVs) and a synthetic one (2,000 samples x 20,000
tips, ~1,000 features per sample). For each metric it prints our time, scikit-bio's, ssu's (when
the `ssu` command is on PATH: Debian's `unifrac-tools`), the ratios, the largest difference to the
references and the peak memory (resident set growth of this process for ours; max RSS of the child
for ssu). scikit-bio is pure Python per pair here: on a subset of samples it is timed and scaled by
the number of pairs, and the line says so. Finally the per-batch function: 32 samples x 1,000
features over the 20,000-tip tree, one thread.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aam.data.unifrac import METRICS, PhyloIndex, batch_distances, unifrac_matrix  # noqa: E402

SSU_METHOD = {"unweighted": "unweighted_fp64", "weighted_normalized": "weighted_normalized_fp64",
              "weighted_unnormalized": "weighted_unnormalized_fp64"}


def random_tree_newick(n_tips: int, rng: np.random.Generator, names: list[str] | None = None) -> str:
    """A random rooted bifurcating tree (random joins) with exponential branch lengths."""
    names = names if names is not None else [f"t{i}" for i in range(n_tips)]
    text: list[str | None] = list(names)
    active = list(range(n_tips))
    lengths = rng.exponential(0.05, 2 * n_tips)
    while len(active) > 1:
        pair = []
        for _ in range(2):
            j = int(rng.integers(len(active)))
            active[j], active[-1] = active[-1], active[j]
            pair.append(active.pop())
        a, b = pair
        text.append(f"({text[a]}:{lengths[a]:.6f},{text[b]}:{lengths[b]:.6f})")
        text[a] = text[b] = None
        active.append(len(text) - 1)
    return text[active[0]] + ";"


def synthetic_table(n_samples: int, n_features: int, per_sample: int,
                    rng: np.random.Generator) -> sp.csr_matrix:
    """Samples x features counts: features drawn by lognormal popularity, ~per_sample per sample."""
    popularity = rng.lognormal(0.0, 1.5, n_features)
    popularity /= popularity.sum()
    rows, cols, vals = [], [], []
    for i in range(n_samples):
        k = int(rng.integers(per_sample // 2, per_sample * 3 // 2))
        chosen = rng.choice(n_features, size=k, replace=False, p=popularity)
        rows.append(np.full(k, i))
        cols.append(chosen)
        vals.append(np.ceil(rng.lognormal(1.0, 1.2, k)))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_samples, n_features))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_ours(tree_text, ids, counts, metric, threads):
    import torch

    torch.set_num_threads(threads)
    before = rss_mb()
    t0 = time.perf_counter()
    index = PhyloIndex.from_newick(tree_text, ids)
    dm = unifrac_matrix(index, counts, metric)
    elapsed = time.perf_counter() - t0
    return elapsed, dm, max(peak_rss_mb() - before, 0.0)


def time_skbio(tree_text, ids, counts, metric, n_sub):
    """scikit-bio's beta_diversity on the first n_sub samples, scaled by the number of pairs."""
    import io

    import skbio
    from skbio.diversity import beta_diversity

    tree = skbio.TreeNode.read(io.StringIO(tree_text), convert_underscores=False)
    n = counts.shape[0]
    sub = min(n, n_sub)
    dense = counts[:sub].toarray()
    if metric == "unweighted":
        name, kwargs = "unweighted_unifrac", {}
    else:
        name, kwargs = "weighted_unifrac", {"normalized": metric == "weighted_normalized"}
    t0 = time.perf_counter()
    dm = beta_diversity(name, dense, ids=[f"s{i}" for i in range(sub)], taxa=list(ids), tree=tree,
                        validate=False, **kwargs)
    elapsed = time.perf_counter() - t0
    scale = (n * (n - 1) / 2) / (sub * (sub - 1) / 2)
    return elapsed * scale, dm.data, sub < n


def time_ssu(tree_text, ids, counts, metric, threads, workdir):
    import biom

    table_path = workdir / "table.biom"
    tree_path = workdir / "tree.nwk"
    if not table_path.exists():
        table = biom.Table(counts.T.tocsr(), observation_ids=list(ids),
                           sample_ids=[f"s{i}" for i in range(counts.shape[0])])
        import h5py

        with h5py.File(table_path, "w") as fh:
            table.to_hdf5(fh, "bench")
        tree_path.write_text(tree_text)
    out = workdir / f"{metric}.dm"
    cmd = ["ssu", "-i", str(table_path), "-t", str(tree_path), "-m", SSU_METHOD[metric], "-o", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"    ssu failed: {proc.stderr.strip()[:300]}")
        return None, None, None
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    import skbio

    dm = skbio.DistanceMatrix.read(str(out))
    order = np.argsort([int(s[1:]) for s in dm.ids])
    return elapsed, dm.data[np.ix_(order, order)], child_peak


def bench_dataset(name, tree_text, ids, counts, args, metrics):
    print(f"\n== {name}: {counts.shape[0]} samples x {counts.shape[1]} features, "
          f"{args.threads} thread(s) ==")
    workdir = Path(tempfile.mkdtemp(prefix="bench_unifrac_"))
    try:
        for metric in metrics:
            ours_s, dm, ours_mb = time_ours(tree_text, ids, counts, metric, args.threads)
            line = f"  {metric:22s} aam {ours_s:8.2f} s (+{ours_mb:6.0f} MB peak)"
            if not args.no_skbio:
                sk_s, sk_dm, scaled = time_skbio(tree_text, ids, counts, metric, args.skbio_samples)
                sub = sk_dm.shape[0]
                diff = np.abs(sk_dm - dm[:sub, :sub]).max()
                label = f"extrapolated from {sub} samples" if scaled else "full"
                line += (f" | scikit-bio {sk_s:9.1f} s ({label}) ratio {sk_s / ours_s:7.0f}x,"
                         f" max|diff| {diff:.1e}")
            if shutil.which("ssu"):
                ssu_s, ssu_dm, ssu_mb = time_ssu(tree_text, ids, counts, metric, args.threads, workdir)
                if ssu_s is not None:
                    diff = np.abs(ssu_dm - dm).max()
                    line += (f" | ssu {ssu_s:7.2f} s (max RSS {ssu_mb:5.0f} MB) ratio {ssu_s / ours_s:5.2f}x,"
                             f" max|diff| {diff:.1e}")
            else:
                line += " | ssu not on PATH"
            print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bench_batch(tree_text, ids, counts, rng):
    import torch

    torch.set_num_threads(1)
    index = PhyloIndex.from_newick(tree_text, ids)
    n_features = len(ids)
    print(f"\n== per batch: 32 samples x 1,000 features over {n_features} tips, 1 thread ==")
    batch = np.zeros((32, n_features))
    for i in range(32):
        chosen = rng.choice(n_features, 1000, replace=False)
        batch[i, chosen] = np.ceil(rng.lognormal(1.0, 1.2, 1000))
    union = np.flatnonzero(batch.sum(0))
    for dtype in (torch.float64, torch.float32):
        b = torch.as_tensor(batch[:, union], dtype=dtype)
        idx = torch.as_tensor(union)
        for metric in METRICS:
            batch_distances(index, b, idx, metric)
            n_rep = 20
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n_rep):
                batch_distances(index, b, idx, metric)
            ms = (time.perf_counter() - t0) / n_rep * 1000
            cpu_ms = (time.process_time() - c0) / n_rep * 1000
            print(f"  {str(dtype):14s} {metric:22s} {ms:6.2f} ms wall, {cpu_ms:6.2f} ms CPU per batch"
                  f" (union of features {len(union)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skbio-samples", type=int, default=100,
                        help="samples on which scikit-bio is timed (then scaled by the number of pairs)")
    parser.add_argument("--no-skbio", action="store_true")
    parser.add_argument("--quick", action="store_true", help="demo data only")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS))
    args = parser.parse_args()

    import biom

    demo = ROOT / "data" / "demo" / "ibd2538"
    table = biom.load_table(str(demo / "table.biom"))
    ids = list(table.ids("observation"))
    counts = table.matrix_data.T.tocsr().astype(np.float64)
    bench_dataset("demo ibd2538", (demo / "tree.nwk").read_text(), ids, counts, args, args.metrics)
    if args.quick:
        return
    rng = np.random.default_rng(0)
    n_tips = 20_000
    ids = [f"t{i}" for i in range(n_tips)]
    tree_text = random_tree_newick(n_tips, rng, ids)
    counts = synthetic_table(2_000, n_tips, 1_000, rng)
    bench_dataset("synthetic", tree_text, ids, counts, args, args.metrics)
    bench_batch(tree_text, ids, counts, rng)


if __name__ == "__main__":
    main()
