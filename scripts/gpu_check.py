"""Check a GPU: CUDA UniFrac against the CPU, and training throughput of the configured models.

    python scripts/gpu_check.py                   # on the GPU(s); under 10 minutes
    python scripts/gpu_check.py --cpu             # the same on CPU with tiny step counts

What it prints (one line per measurement):
- UniFrac on the demo table (IBD2538, rarefied as the workflow rarefies it): every metric in fp32
  and fp64 on the device, the largest absolute difference to the CPU fp64 result, and the times.
- AAM pretraining and fine-tuning (the config's first AAM run with pretraining; the dataset's first
  target) and the contrastive DNA model (the config's first contrastive seq_models run), each in
  bf16 autocast and fp32: samples/s over timed optimizer steps after warm-up steps, peak GPU memory,
  and the epoch time that rate implies (training samples / rate). Steps are plain forward + backward
  + AdamW on the real batches (re-rarefied samples, per-batch UniFrac, masking, augmentation), so
  data loading in the training process counts, as it does in training; validation does not.
- The real training engine (`aam.training.engine.fit`, as the pretrain and finetune stages run it,
  with the run's own trainer settings and precision, stopped after warm-up + timed steps): on the
  CPU (1 process), on 1 GPU, and with DDP over all GPUs (NCCL, one process per GPU, launched as
  torchrun would) when there are 2 or more: samples/s over the timed steps, peak GPU memory and the
  GPU/CPU speed ratio. With ``--cpu``: 1 process, and DDP with 2 CPU processes (gloo).

The model sizes come from the config (default `config/full.yaml`), never from this script. The
data are prepared by the workflow itself (ingest, split, rarefy, tokenize, seq_prepare: Snakemake
under `--work`, default `results/gpu_check`, kept for the next run; where Snakemake is not
installed, data prepared elsewhere and carried in `--work` are used as they are).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from aam.config import check_config  # noqa: E402


def prepare(config_path: Path, work: Path, cores: int) -> tuple[dict, Path]:
    """The validated config (data paths made absolute, results under `work`) and its results folder;
    runs Snakemake for the prepared data the checks read."""
    config = yaml.safe_load(config_path.read_text())
    base = config_path.resolve().parent.parent if config_path.parent.name == "config" else Path.cwd()
    for entry in list(config.get("datasets", {}).values()) + list(config.get("sequences", {}).values()):
        for key in ("table", "sequences", "tree", "metadata", "fasta", "labels", "text"):
            value = entry.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                entry[key] = str((base / value).resolve())
    config["results"] = str((work / "results").resolve())
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    checked = check_config(copy.deepcopy(config), where=str(config_path))
    results = Path(config["results"])
    dataset = next(iter(checked["datasets"]))
    targets = [results / dataset / p for p in ("tokens/samples.parquet", "split/splits.tsv",
                                                "ingest/tree.nwk", "ingest/samples.parquet",
                                                "rarefied/table.biom")]
    seq = first_contrastive(checked)
    if seq is not None:
        targets.append(results / "sequences" / next(iter(checked["sequences"])) / "prepared.parquet")
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists() and all(t.exists() for t in targets):
        # prepared on another machine and carried to a GPU machine that has no Snakemake
        print(f"no Snakemake here: using the data prepared under {results}", flush=True)
        return checked, results / dataset
    env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(snakemake), *map(str, targets), "-s", str(ROOT / "workflow" / "Snakefile"), "-d", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", str(cores)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"data preparation failed:\n{(done.stdout + done.stderr)[-3000:]}")
    print(f"data prepared under {results} ({time.perf_counter() - start:.0f} s)", flush=True)
    return checked, results / dataset


def first_contrastive(config: dict) -> tuple[str, dict] | None:
    runs = config.get("seq_models", {}).get("runs", {})
    name = next((n for n, r in runs.items() if r.get("kind", "contrastive") == "contrastive"), None)
    return None if name is None or not config.get("sequences") else (name, runs[name])


# ------------------------------------------------------------------------------------------ UniFrac
def check_unifrac(data: Path, device: torch.device, max_samples: int | None) -> None:
    from aam.data.unifrac import METRICS, PhyloIndex, unifrac_matrix
    from aam.io.biom import read_table, table_to_csr

    counts, sample_ids, feature_ids = table_to_csr(read_table(data / "rarefied" / "table.biom"))
    if max_samples:
        counts, sample_ids = counts[:max_samples], sample_ids[:max_samples]
    index = PhyloIndex.from_newick(data / "ingest" / "tree.nwk", list(feature_ids))
    print(f"UniFrac: {len(sample_ids)} samples x {len(feature_ids)} features, {index.n_branches} branches")
    for metric in METRICS:
        start = time.perf_counter()
        reference = unifrac_matrix(index, counts, metric, dtype=torch.float64, device="cpu")
        cpu_s = time.perf_counter() - start
        for dtype in (torch.float32, torch.float64):
            unifrac_matrix(index, counts[:8], metric, dtype=dtype, device=device)  # warm-up
            sync(device)
            start = time.perf_counter()
            result = unifrac_matrix(index, counts, metric, dtype=dtype, device=device)
            sync(device)
            took = time.perf_counter() - start
            diff = float(np.abs(result - reference).max())
            print(f"  {metric:>22} {str(dtype)[6:]:>7} on {device.type}: {took:7.3f} s "
                  f"(CPU fp64 {cpu_s:.3f} s, {cpu_s / took:6.1f}x); max |diff| to CPU fp64 {diff:.2e}",
                  flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------ training
def timed_steps(name: str, module, batches, count, n_train: int, device: torch.device, bf16: bool,
                warmup: int, steps: int) -> None:
    """Forward + backward + AdamW steps on `batches`; prints samples/s, peak memory, epoch time."""
    module.log = lambda *args, **kwargs: None  # no trainer attached
    module.to(device).train()
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

    def step(batch) -> int:
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.training_step(batch, 0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return count(batch)

    for _ in range(warmup):
        step(next(batches))
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        n += step(next(batches))
    sync(device)
    rate = n / (time.perf_counter() - start)
    memory = (f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:6.2f} GiB"
              if device.type == "cuda" else "peak GPU memory n/a")
    epoch_min = n_train / rate / 60
    print(f"  {name:>34} {'bf16' if bf16 else 'fp32'}: {rate:9.1f} samples/s, {memory}, "
          f"epoch of {n_train} samples {epoch_min:7.2f} min ({steps} steps)", flush=True)
    module.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()


def endless(loader):
    while True:
        yield from loader


def check_aam(config: dict, data: Path, device: torch.device, warmup: int, steps: int) -> None:
    from aam.data.datasets import AAMDataModule
    from aam.data.unifrac import PhyloIndex
    from aam.models.aam import AAMConfig
    from aam.training.aam_modules import FinetuneModule, PretrainModule

    runs = config["aam"]["runs"]
    name = next((n for n, r in runs.items() if r["pretrain"].get("enabled")), next(iter(runs), None))
    if name is None:
        print("AAM: the config has no aam run")
        return
    run = runs[name]
    seed = config["seed"]
    dataset = next(iter(config["datasets"].values()))
    samples = lambda b: int(b["asv_index"].shape[0])  # noqa: E731
    dm = AAMDataModule(data / "tokens", data / "split" / "splits.tsv", run["data"], seed=seed)
    index = PhyloIndex.from_newick(data / "ingest" / "tree.nwk", list(dm.feature_ids))
    cfg = AAMConfig(**run["model"], max_bp=dm.max_bp, asv_limit=dm.asv_limit)
    pre = run["pretrain"]
    print(f"AAM run {name!r}: {run['model']}, asv_limit {dm.asv_limit}, batch {dm.batch_size}")
    for bf16 in (True, False):
        torch.manual_seed(seed)
        module = PretrainModule(cfg, {}, index, unifrac_metric=pre["unifrac_metric"],
                                mask_rate=pre["mask_rate"])
        timed_steps("pretraining", module, endless(dm.train_dataloader()), samples, len(dm.train_dataset),
                    device, bf16, warmup, steps)
    if not dataset["targets"]:
        return
    target = dataset["targets"][0]
    dm = AAMDataModule(data / "tokens", data / "split" / "splits.tsv", run["data"], seed=seed,
                       target={"column": target["column"], "type": target["type"]},
                       metadata=data / "ingest" / "samples.parquet")
    n_out = dm.n_classes if target["type"] == "classification" else 1
    fcfg = AAMConfig(**run["model"], max_bp=dm.max_bp, asv_limit=dm.asv_limit, task=target["type"],
                     n_outputs=n_out)
    for bf16 in (True, False):
        torch.manual_seed(seed)
        module = FinetuneModule(fcfg, {}, freeze_base=bool(run["finetune"].get("freeze_base")))
        timed_steps(f"fine-tuning ({target['name']})", module, endless(dm.train_dataloader()), samples,
                    len(dm.train_dataset), device, bf16, warmup, steps)


def check_contrastive(config: dict, results: Path, device: torch.device, warmup: int, steps: int) -> None:
    from aam.data.augment import AugmentConfig, Augmenter
    from aam.data.dna_tokenizers import make_tokenizer
    from aam.data.seq_collection import check_ranks, label_codes, read_prepared
    from aam.data.sequence_datasets import SequenceCollator, SequenceDataModule, SequenceDataset
    from aam.models.contrastive import ContrastiveConfig
    from aam.training.seq_modules import ContrastiveModule
    from aam.training.seq_train import resolve_settings

    found = first_contrastive(config)
    if found is None:
        print("contrastive DNA model: the config has no contrastive seq_models run")
        return
    name, raw = found
    settings = resolve_settings(raw)
    collection = next(iter(config["sequences"]))
    frame = read_prepared(str(results / "sequences" / collection / "prepared.parquet"))
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    tokenizer = make_tokenizer(settings["tokenizer"])
    ranks = check_ranks(settings["label_ranks"], "label_ranks")
    supervised = settings["loss"] in ("supcon", "auto") and ranks and all(r in train for r in ranks)
    labels = label_codes(train, ranks, np.ones(len(train), dtype=bool)) if supervised else None
    seqs = train["sequence"].tolist()
    aug = AugmentConfig(**settings["augment"])
    max_seq = int(max(len(s) for s in seqs))
    aug.max_len = min(aug.max_len, max_seq + 2 * aug.max_indel * 4)
    max_tokens = tokenizer.n_tokens(max(max_seq, aug.max_len)) + 2
    mcfg = ContrastiveConfig.from_dict({"pad_id": 0, **settings["model"], "vocab_size": tokenizer.vocab_size,
                                        "max_len": max_tokens})
    batch = int(settings["trainer"].get("batch_size", 8))
    ds = SequenceDataset(seqs, labels, 2, Augmenter(aug), config["seed"])
    dm = SequenceDataModule(ds, None, SequenceCollator(tokenizer, max_tokens), batch, 0, config["seed"])
    print(f"contrastive DNA run {name!r} on {collection!r}: {settings['model']}, batch {batch}, "
          f"{len(seqs)} training sequences")
    for bf16 in (True, False):
        torch.manual_seed(config["seed"])
        module = ContrastiveModule(mcfg, {}, "supcon" if supervised else "ntxent",
                                   float(settings["temperature"]), settings["rank_weights"])
        timed_steps("contrastive training", module, endless(dm.train_dataloader()),
                    lambda b: len(b["group"]) // int(b["n_views"]), len(seqs), device, bf16, warmup, steps)


# ------------------------------------------------------------------------------- the real fit
FIT_TASKS = ("pretraining", "fine-tuning")


def fit_worker(spec: dict) -> None:
    """One process of the real `fit` (engine), as a training stage runs it; rank 0 prints
    ``FIT {json}``: samples/s over the timed steps (all ranks), peak GPU memory, precision."""
    import lightning as L

    from aam.data.datasets import AAMDataModule
    from aam.data.unifrac import PhyloIndex
    from aam.models.aam import AAMConfig
    from aam.training.aam_modules import FinetuneModule, PretrainModule
    from aam.training.engine import TrainerSettings, fit, seed_everything

    config = json.loads(Path(spec["config"]).read_text())
    data, seed = Path(spec["data"]), config["seed"]
    runs = config["aam"]["runs"]
    run = runs[next((n for n, r in runs.items() if r["pretrain"].get("enabled")), next(iter(runs)))]
    stage = "pretrain" if spec["task"] == "pretraining" else "finetune"
    warmup, steps = int(spec["warmup"]), int(spec["steps"])
    trainer = {**run[stage].get("trainer", {}), "max_steps": warmup + steps, "max_epochs": 1000,
               "accumulate_grad_batches": 1, "limit_val_batches": 1, "patience": None,
               "progress_bar": False, "resume": False, "restore_best": False, "seed": seed,
               "accelerator": spec["accelerator"], "devices": int(spec["world"]), "num_nodes": 1}
    settings = TrainerSettings.from_dict(trainer)
    seed_everything(seed)
    if stage == "pretrain":
        dm = AAMDataModule(data / "tokens", data / "split" / "splits.tsv", run["data"], seed=seed)
        index = PhyloIndex.from_newick(data / "ingest" / "tree.nwk", list(dm.feature_ids))
        cfg = AAMConfig(**run["model"], max_bp=dm.max_bp, asv_limit=dm.asv_limit)
        module = PretrainModule(cfg, settings, index, unifrac_metric=run["pretrain"]["unifrac_metric"],
                                mask_rate=run["pretrain"]["mask_rate"])
    else:
        target = next(iter(config["datasets"].values()))["targets"][0]
        dm = AAMDataModule(data / "tokens", data / "split" / "splits.tsv", run["data"], seed=seed,
                           target={"column": target["column"], "type": target["type"]},
                           metadata=data / "ingest" / "samples.parquet")
        n_out = dm.n_classes if target["type"] == "classification" else 1
        cfg = AAMConfig(**run["model"], max_bp=dm.max_bp, asv_limit=dm.asv_limit, task=target["type"],
                        n_outputs=n_out)
        module = FinetuneModule(cfg, settings)

    class StepTimer(L.Callback):
        """Wall time and samples of the training batches after the warm-up ones."""

        def __init__(self) -> None:
            self.start, self.end, self.samples = None, None, 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warmup and self.start is None:
                sync(pl_module.device)
                if pl_module.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(pl_module.device)
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.start is not None:
                sync(pl_module.device)
                self.end = time.perf_counter()
                self.samples += int(batch["asv_index"].shape[0])

    timer = StepTimer()
    result = fit(module, Path(spec["out"]), datamodule=dm, callbacks=[timer])
    on_gpu = result.accelerator == "gpu"
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None
    rates = module.all_ranks(timer.samples / max(timer.end - timer.start, 1e-9))
    peaks = module.all_ranks(peak)
    if result.global_rank == 0:
        print("FIT " + json.dumps({"rate": sum(rates), "peak_gib": None if peak is None else max(peaks),
                                   "world": result.world_size, "accelerator": result.accelerator,
                                   "steps": steps, "batch": dm.batch_size,
                                   "precision": str(settings.precision)}), flush=True)


def launch_fit(spec: dict, world: int) -> dict:
    """`world` processes of `fit_worker` (as torchrun starts them: LOCAL_RANK, WORLD_SIZE, ...)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        if world > 1:
            env.update({"LOCAL_RANK": str(rank), "NODE_RANK": "0", "WORLD_SIZE": str(world),
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        cmd = [sys.executable, str(Path(__file__).resolve()), "--fit-worker",
               json.dumps({**spec, "world": world, "out": f"{spec['out']}/{spec['accelerator']}{world}"})]
        procs.append(subprocess.Popen(cmd, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    outs = [p.communicate()[0] for p in procs]
    failed = [out for p, out in zip(procs, outs, strict=True) if p.returncode]
    if failed:
        sys.exit(f"fit ({spec['task']}, {spec['accelerator']} x{world}) failed:\n{failed[0][-3000:]}")
    line = next(x for x in outs[0].splitlines() if x.startswith("FIT "))
    return json.loads(line[4:])


def check_fit(config: dict, data: Path, work: Path, on_gpu: bool, warmup: int, steps: int) -> None:
    """The real fit for pretraining and fine-tuning: CPU, 1 GPU and DDP over all GPUs (NCCL); with
    --cpu, 1 CPU process and 2 (gloo)."""
    checked = work / "checked_config.json"
    checked.write_text(json.dumps(config))
    n_gpus = torch.cuda.device_count() if on_gpu else 0
    ddp = [("gpu", n_gpus)] if n_gpus >= 2 else []
    layouts = [("gpu", 1), *ddp] if on_gpu else [("cpu", 2)]
    tasks = FIT_TASKS if next(iter(config["datasets"].values()))["targets"] else FIT_TASKS[:1]
    for task in tasks:
        spec = {"task": task, "config": str(checked), "data": str(data), "out": str(work / "fit" / task),
                "warmup": warmup, "steps": steps}
        # CPU steps are slow at GPU sizes: a few are enough for the ratio
        few = {"warmup": 1, "steps": min(steps, 3)} if on_gpu else {}
        cpu = launch_fit({**spec, "accelerator": "cpu", **few}, 1)
        print(f"  fit {task:>12} cpu x1 ({cpu['precision']} asked): {cpu['rate']:9.1f} samples/s", flush=True)
        for accelerator, world in layouts:
            got = launch_fit({**spec, "accelerator": accelerator}, world)
            memory = "n/a" if got["peak_gib"] is None else f"{got['peak_gib']:.2f} GiB"
            kind = ("1 device" if world == 1 else "DDP NCCL" if accelerator == "gpu" else "DDP gloo")
            print(f"  fit {task:>12} {accelerator} x{world} ({kind}, {got['precision']}): "
                  f"{got['rate']:9.1f} samples/s, peak GPU memory {memory}, "
                  f"{got['rate'] / cpu['rate']:.1f}x the CPU", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on CPU with tiny step counts")
    parser.add_argument("--config", default=str(ROOT / "config" / "full.yaml"))
    parser.add_argument("--work", default="results/gpu_check", help="working folder (prepared data)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 30; 2 with --cpu)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5; 1 with --cpu)")
    parser.add_argument("--unifrac-samples", type=int, default=None,
                        help="first N samples for UniFrac (default all; 60 with --cpu)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores for data preparation")
    parser.add_argument("--fit-worker", help=argparse.SUPPRESS)  # one process of check_fit
    args = parser.parse_args()
    if args.fit_worker:
        fit_worker(json.loads(args.fit_worker))
        return 0
    if args.cpu:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("no CUDA device; run with --cpu for the CPU version", file=sys.stderr)
        return 2
    steps = args.steps or (2 if args.cpu else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.cpu else 5)
    max_samples = args.unifrac_samples or (60 if args.cpu else None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; config {args.config}", flush=True)
    start = time.perf_counter()
    config, data = prepare(Path(args.config), Path(args.work), args.cores)
    check_unifrac(data, device, max_samples)
    check_aam(config, data, device, warmup, steps)
    check_contrastive(config, Path(config["results"]), device, warmup, steps)
    print("training engine (fit):", flush=True)
    check_fit(config, data, Path(args.work), device.type == "cuda", warmup, steps)
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
