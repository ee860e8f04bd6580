"""Corpus pretraining throughput and peak memory as the corpus grows (issue 10).

Trains the same model for the same number of optimizer steps on three nested subsets of the
pretraining corpus (about 1,000 samples, about 3,000, all studies) and prints, per subset, the
samples it holds, training samples/s and the process's peak resident memory, each as a ratio to the
smallest subset measured in the same run. Memory must not grow with the corpus: batches are drawn
from one study at a time and rarefied when drawn, with no N x N matrix and no dense table.

Each subset runs in its own process (peak RSS is per process). Needs the studies' token caches,
e.g. from the workflow (`snakemake --configfile config/corpus/ibd_corpus.yaml --cores 2
corpus_tokenize` targets), under --studies-root/<study>/tokens/.

    python scripts/bench_corpus.py --studies-root results_corpus/corpus/gg13_8/studies \\
        --tree ../shared/data/pretrain_corpus/gg13_8_97_otus.tree.nwk --steps 30 --threads 2

Those are the defaults (config/corpus/ibd_corpus.yaml's layout); where a study's token cache or the
tree is absent the script says so in one line and exits 0, as `make bench` expects.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from absent_inputs import skip_if_absent  # noqa: E402

SMALL = ["mlrepo_claesson", "mlrepo_kostic", "mlrepo_sokol", "mlrepo_turnbaugh", "ag_debug"]
MEDIUM = SMALL + ["pgp", "qa10394"]
ALL = MEDIUM + ["hmp_v13"]
SETTINGS = {
    "data": {"asv_limit": 256, "batch_size": 8},
    # the sizes of config/corpus/ibd_corpus.yaml's encoders; the ASV encoder comes from --asv-encoder
    "model": {"embedding_dim": 64, "asv_layers": 1, "sample_layers": 2, "heads": 4, "ff_dim": 256,
              "dropout": 0.0},
    "pretrain": {"crop_min_bp": 90},
}


def child(args: argparse.Namespace) -> None:
    """One subset: build the data and model, train --steps optimizer steps, print JSON."""
    import tempfile

    import torch

    from aam.config import definition, validate
    from aam.data.corpus import CorpusDataModule, CorpusStudy
    from aam.training.engine import TrainerSettings, fit
    from aam.training.pretrain import corpus_module

    torch.set_num_threads(args.threads)
    studies = [CorpusStudy(s, Path(args.studies_root) / s / "tokens", args.tree, args.depth)
               for s in args.subset.split(",")]
    start = time.perf_counter()
    dm = CorpusDataModule(studies, SETTINGS["data"], val_fraction=0.03, seed=1, crop_min_bp=90)
    load_s = time.perf_counter() - start
    raw = json.loads(json.dumps(SETTINGS))
    raw["model"]["asv_encoder"] = args.asv_encoder
    settings = validate(raw, definition("aam_run"), where="bench")
    trainer = TrainerSettings(max_epochs=1, limit_train_batches=args.steps, limit_val_batches=1,
                              warmup_steps=5, patience=None, progress_bar=False, num_threads=args.threads,
                              seed=1)
    _, module = corpus_module(settings, dm, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(module, tmp, datamodule=dm)
    n_seen = result.global_step * dm.batch_size
    print(json.dumps({
        "studies": len(studies),
        "samples": len(dm.train_dataset) + len(dm.val_dataset),
        "load_s": round(load_s, 2),
        "samples_per_s": n_seen / result.wall_time_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies-root", default="results_corpus/corpus/gg13_8/studies",
                        help="folder with <study>/tokens/ caches (default: config/corpus/ibd_corpus.yaml's)")
    parser.add_argument("--tree", default="../shared/data/pretrain_corpus/gg13_8_97_otus.tree.nwk",
                        help="the corpus tree (Newick)")
    parser.add_argument("--depth", type=int, default=1000, help="rarefaction depth of every study")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per subset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--asv-encoder", choices=["kmer", "transformer", "both"], default="kmer",
                        help="the model's ASV encoder (kmer: the schema default)")
    parser.add_argument("--subset", help=argparse.SUPPRESS)  # internal: run one subset
    args = parser.parse_args()
    if args.subset:
        child(args)
        return
    caches = [Path(args.studies_root) / study / "tokens" / "samples.parquet" for study in ALL]
    absent = [path for path in caches if not path.exists()]
    skip_if_absent(__file__, {"--studies-root": str(absent[0] if absent else caches[0]), "--tree": args.tree})
    rows = []
    for subset in (SMALL, MEDIUM, ALL):
        cmd = [sys.executable, __file__, "--studies-root", args.studies_root, "--tree", args.tree,
               "--depth", str(args.depth), "--steps", str(args.steps), "--threads", str(args.threads),
               "--asv-encoder", args.asv_encoder, "--subset", ",".join(subset)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    ref = rows[0]
    print(f"corpus pretraining ({args.asv_encoder} ASV encoder), {args.steps} optimizer steps of batch 8"
          f" per subset, {args.threads} threads")
    print(f"{'studies':>7} {'samples':>7} {'samples/s':>10} {'ratio':>6} {'peak RSS MiB':>13} {'ratio':>6}"
          f" {'load s':>7}")
    for r in rows:
        print(f"{r['studies']:>7} {r['samples']:>7} {r['samples_per_s']:>10.2f} "
              f"{r['samples_per_s'] / ref['samples_per_s']:>6.2f} {r['peak_rss_mib']:>13.0f} "
              f"{r['peak_rss_mib'] / ref['peak_rss_mib']:>6.2f} {r['load_s']:>7.2f}")


if __name__ == "__main__":
    main()
