"""Benchmark AAM pretraining steps on CPU: samples per second and peak memory.

Runs real pretraining steps (re-rarefied batches from the token caches, per-batch UniFrac targets,
masked nucleotides, forward + backward + AdamW) for a model size, after warm-up steps, and prints
samples/s and the process's peak resident memory. The reference is the DESIGN's figure for the
PyTorch port (jbk708/aam) on the same data and size class: 64-dim, 2 layers, ASV limit 256,
batch 8 on 2 cores = 0.68 samples/s at 6.7 GiB. With several sizes it also prints each one's time
per sample as a multiple of the first's (e.g. `--sizes defaults original`: the schema's default
sizes against the original AAM's, docs/benchmark.md "Defaults").

Needs the workflow's prepared data (default: results/ibd2538/, e.g. after `make demo`):
    python scripts/bench_training.py [--results results/ibd2538] [--steps 10] [--threads 2] [--sizes ...]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

PORT_SAMPLES_PER_S = 0.68
PORT_PEAK_GIB = 6.7

# the schema's default options (k-mer ASV vectors, affine UniFrac head), for the two default sizes
_SCHEMA_OPTIONS = {"asv_encoder": "kmer", "unifrac_affine": True}
SIZES = {
    # name: (model settings, asv_limit)
    "demo": ({"embedding_dim": 64, "layers": 2, "heads": 4, "ff_dim": 128, "dropout": 0.0}, 64),
    "design-64d-2l-256": ({"embedding_dim": 64, "layers": 2, "heads": 4, "ff_dim": 256, "dropout": 0.1}, 256),
    # the schema's defaults (config/benchmark.yaml's `aam` run) and the ones before them (the original
    # AAM's sizes, config/full.yaml): docs/benchmark.md, "Defaults"
    "defaults": ({"embedding_dim": 64, "layers": 2, "heads": 4, "ff_dim": 128, "dropout": 0.0,
                  **_SCHEMA_OPTIONS}, 128),
    "original": ({"embedding_dim": 128, "layers": 4, "heads": 4, "ff_dim": 1024, "dropout": 0.1,
                  **_SCHEMA_OPTIONS}, 1024),
}


def bench(name: str, model: dict, asv_limit: int, args) -> tuple[float, float]:
    from aam.data.datasets import AAMDataModule
    from aam.data.unifrac import PhyloIndex
    from aam.models.aam import AAMConfig
    from aam.training.aam_modules import PretrainModule

    res = Path(args.results)
    dm = AAMDataModule(res / "tokens", res / "split" / "splits.tsv",
                       {"asv_limit": asv_limit, "batch_size": 8}, seed=42)
    index = PhyloIndex.from_newick(res / "ingest" / "tree.nwk", list(dm.feature_ids))
    cfg = AAMConfig(**model, max_bp=dm.max_bp, asv_limit=asv_limit)
    module = PretrainModule(cfg, {"lr": 1e-3, "schedule": "none"}, index)
    module.log = lambda *a, **k: None  # no trainer attached
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    loader = iter(dm.train_dataloader())
    module.train()

    def step():
        batch = next(loader)
        loss = module.training_step(batch, 0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return batch["asv_index"].shape[0]

    for _ in range(args.warmup):
        step()
    start, n = time.perf_counter(), 0
    for _ in range(args.steps):
        n += step()
    rate = n / (time.perf_counter() - start)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{name:>20}: {rate:6.2f} samples/s ({rate / PORT_SAMPLES_PER_S:5.1f}x the port's "
          f"{PORT_SAMPLES_PER_S}), peak memory so far {peak_gib:.2f} GiB (port {PORT_PEAK_GIB} GiB); "
          f"{sum(p.numel() for p in module.parameters()):,} parameters")
    return rate, peak_gib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/ibd2538")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES))
    args = parser.parse_args()
    # the workflow's token caches (make demo writes them)
    skip_if_absent(__file__, {"--results": str(Path(args.results) / "tokens" / "samples.parquet")})
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rates = {}
    for name in args.sizes:
        model, limit = SIZES[name]
        rates[name] = bench(name, model, limit, args)[0]
    first = args.sizes[0]
    for name in args.sizes[1:]:
        print(f"{name:>20}: {rates[first] / rates[name]:5.1f}x the time per sample of {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
