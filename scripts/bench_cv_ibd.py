"""AAM variants against the random forest in grouped K-fold CV on IBD 2538, in-process.

Usage (after the workflow has prepared the dataset, e.g.
``snakemake --cores 2 results_ibd/ibd2538/tokens/samples.parquet --configfile config/ibd_cpu.yaml``):

    OMP_NUM_THREADS=1 python scripts/bench_cv_ibd.py [--results results_ibd/ibd2538]
        [--variants kmer,kmer_pretrained] [--variants-file more.json] [--folds 5] [--out cv.tsv]

Every model is trained and tested on the same folds: ``aam.data.split.cv_folds`` (grouped by
``host_subject_id``, stratified by ``ibd``, seeded; 15 % of each fold's training subjects validate).
The forest is the evaluate stage's baseline (500 trees on the relative abundances of
``rarefied/table.biom``, trained on train + val); each AAM variant is the library's own
pretraining and fine-tuning (``PretrainModule``, ``FinetuneModule``, ``engine.fit``; early stopping
and the best epoch by validation AUROC) with its settings validated and completed by the config
schema (``aam_run``), exactly as a Snakemake run would get them. A variant is a mapping of
``aam_run`` sections (data, model, pretrain, finetune); ``pretrain.enabled`` chooses pretrained or
scratch. Pretraining sees the fold's train and val tables (never the test fold's, never a target).

Printed: per fold and model the test AUROC, then mean +- sd per model and the paired difference to
the forest of the same run (mean, and folds won); pretraining's best validation UniFrac R^2.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import tempfile
import time
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import torch
from absent_inputs import skip_if_absent

from aam.config import load_settings
from aam.data.datasets import AAMDataModule
from aam.data.split import cv_folds
from aam.evaluate.baselines import plain_forest, relative_abundance
from aam.evaluate.metrics import auroc

FAST_TRAINER = {"progress_bar": False, "log_every_n_steps": 10, "num_threads": 1}

# The variants of the ablation (README, "IBD 2538: AAM against the forest"). Sizes are small so that
# a variant's 5 folds train in minutes on one core.
SMALL = {"embedding_dim": 64, "asv_layers": 1, "sample_layers": 2, "heads": 4, "ff_dim": 128, "dropout": 0.0}
FINETUNE = {"trainer": {"max_epochs": 20, "lr": 0.001, "warmup_steps": 30, "patience": 6,
                        "monitor": "val/auroc", "mode": "max"}}
PRETRAIN = {"enabled": True, "trainer": {"max_epochs": 10, "lr": 0.001, "warmup_steps": 30, "patience": 4,
                                         "monitor": "val/unifrac_loss"}}
OLD = {"asv_encoder": "transformer", "abundance_input": False, "pooling": "attention", "asv_dropout": 0.0,
       "unifrac_affine": False}
VARIANTS: dict[str, dict] = {
    "original": {"model": SMALL | OLD, "pretrain": {"enabled": False}, "finetune": FINETUNE},
    "kmer": {"model": SMALL | OLD | {"asv_encoder": "kmer"}, "pretrain": {"enabled": False},
             "finetune": FINETUNE},
    "kmer_abundance": {"model": SMALL | OLD | {"asv_encoder": "kmer", "abundance_input": True,
                                                "pooling": "abundance"},
                       "pretrain": {"enabled": False}, "finetune": FINETUNE},
}
VARIANTS |= {
    "kmer_pretrained": {**VARIANTS["kmer"], "model": VARIANTS["kmer"]["model"] | {"unifrac_affine": True},
                        "pretrain": PRETRAIN},
    "kmer_pool": {**VARIANTS["kmer"], "model": VARIANTS["kmer"]["model"] | {"pooling": "abundance"}},
    "kmer_abundance_reg": {**VARIANTS["kmer_abundance"],
                           "model": VARIANTS["kmer_abundance"]["model"] | {"asv_dropout": 0.2},
                           "finetune": {"trainer": FINETUNE["trainer"] | {"weight_decay": 0.1}}},
    "kmer_abundance_pretrained_euclid": {**VARIANTS["kmer_abundance"], "pretrain": PRETRAIN},
    "kmer_abundance_pretrained": {**VARIANTS["kmer_abundance"], "pretrain": PRETRAIN,
                                  "model": VARIANTS["kmer_abundance"]["model"] | {"unifrac_affine": True}},
}


def deep_update(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = deep_update(out[key], value) if nested else copy.deepcopy(value)
    return out


def run_settings(variant: dict) -> dict:
    """The variant completed by the schema's defaults (as the Snakefile validates a run)."""
    settings = {"data": {"asv_limit": 256, "batch_size": 8}} | copy.deepcopy(variant)
    for section in ("pretrain", "finetune"):
        trainer = settings.setdefault(section, {}).setdefault("trainer", {})
        for key, value in FAST_TRAINER.items():
            trainer.setdefault(key, value)
    return load_settings(json.dumps(settings), "aam_run")


def pretrain(settings: dict, tokens: Path, splits: Path, tree: Path, index_cache: dict, seed: int,
             out: Path) -> tuple[dict, float]:
    from aam.data.unifrac import PhyloIndex
    from aam.training.aam_modules import PretrainModule
    from aam.training.engine import fit
    from aam.training.runs import model_config, trainer_settings

    pre = settings["pretrain"]
    dm = AAMDataModule(tokens, splits, settings["data"], seed=seed)
    if "index" not in index_cache:
        index_cache["index"] = PhyloIndex.from_newick(tree, list(dm.feature_ids))
    cfg = model_config(settings["model"], dm)
    module = PretrainModule(cfg, trainer_settings(pre, seed, 1, "pretrain.trainer"), index_cache["index"],
                            unifrac_metric=pre["unifrac_metric"], mask_rate=pre["mask_rate"],
                            unifrac_weight=pre["unifrac_weight"], nucleotide_weight=pre["nucleotide_weight"])
    result = fit(module, out, datamodule=dm)
    r2 = result.history["val/unifrac_r2"].max() if "val/unifrac_r2" in result.history else float("nan")
    return module.model.state_dict(), float(r2)


def finetune(settings: dict, tokens: Path, splits: Path, samples: Path, seed: int, out: Path,
             base_state: dict | None) -> tuple[float, float]:
    from aam.evaluate.predict import eval_loader, predict
    from aam.training.aam_modules import FinetuneModule
    from aam.training.engine import fit
    from aam.training.finetune import class_weight_vector
    from aam.training.runs import model_config, trainer_settings

    fine = settings["finetune"]
    dm = AAMDataModule(tokens, splits, settings["data"], seed=seed,
                       target={"column": "ibd", "type": "classification"}, metadata=samples)
    cfg = model_config(settings["model"], dm, task="classification", n_outputs=int(dm.n_classes))
    weights = class_weight_vector(fine["class_weights"], dm.classes, dm.class_counts)
    module = FinetuneModule(cfg, trainer_settings(fine, seed, 1, "finetune.trainer"), loss=fine["loss"],
                            class_weights=weights, count_weight=fine["count_weight"],
                            base_lr_scale=fine["base_lr_scale"] if base_state is not None else 1.0,
                            readout_lr_scale=fine["readout_lr_scale"])
    if base_state is not None:
        module.model.base.load_state_dict(base_state, strict=True)
    module.model.freeze_base(bool(fine["freeze_base"]))
    result = fit(module, out, datamodule=dm)
    pred = predict(module.model, eval_loader(dm, "test"), torch.device("cpu"))
    probs = torch.softmax(torch.from_numpy(pred["output"]), -1).numpy()
    truth = np.asarray(dm.classes, dtype=object)[pred["target"]]
    best_val = float(result.best_score) if result.best_score is not None else float("nan")
    return float(auroc(truth, probs, dm.classes)), best_val


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results_ibd/ibd2538", help="the workflow's results/{dataset}")
    p.add_argument("--variants", default="kmer,kmer_pretrained",
                   help=f"comma-separated variant names: {', '.join(VARIANTS)}")
    p.add_argument("--variants-file", help="JSON {name: variant or {'base': name, ...overrides}}")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", default=None, help="comma-separated fold numbers (1-based) to run")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--target", default="ibd")
    p.add_argument("--group", default="host_subject_id")
    p.add_argument("--out", help="per-fold results TSV")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "aam"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)

    variants = dict(VARIANTS)
    if args.variants_file:
        for name, spec in json.loads(Path(args.variants_file).read_text()).items():
            spec = dict(spec)
            base = spec.pop("base", None)
            variants[name] = deep_update(variants[base], spec) if base else spec
    chosen = [v for v in args.variants.split(",") if v]
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {sorted(variants)}")

    results = Path(args.results)
    # the workflow's tokenize output (see the usage line above for the command that makes it)
    skip_if_absent(__file__, {"--results": str(results / "tokens" / "samples.parquet")})
    tokens, tree = results / "tokens", results / "ingest" / "tree.nwk"
    samples = results / "ingest" / "samples.parquet"
    table = biom.load_table(str(results / "rarefied" / "table.biom"))
    ids = [str(s) for s in table.ids()]
    x = relative_abundance(table.matrix_data.T.toarray())
    meta = pd.read_parquet(samples).astype({"sample": str}).set_index("sample")
    labelled = [s for s in ids if str(meta.loc[s, args.target]).lower() not in ("", "nan", "none")]
    frame = meta.loc[labelled, [args.group, args.target]].reset_index()
    folds = cv_folds(frame, args.group, args.target, args.folds, 1, args.seed)
    fold_names = list(dict.fromkeys(folds["fold"]))
    if args.only_folds:
        fold_names = [fold_names[int(i) - 1] for i in args.only_folds.split(",")]
    row_of = {s: i for i, s in enumerate(ids)}
    print(f"{len(labelled)} samples, {frame[args.group].nunique()} subjects, {len(fold_names)} folds; "
          f"variants: {', '.join(chosen)}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_cv_") as tmp:
        tmp = Path(tmp)
        index_cache: dict = {}
        pretrained: dict[str, tuple[dict, float]] = {}
        for fold in fold_names:
            part = folds[folds["fold"] == fold]
            splits = tmp / f"{fold}.tsv"
            part[["sample", "split"]].to_csv(splits, sep="\t", index=False)
            split_of = dict(zip(part["sample"], part["split"], strict=True))
            train = [row_of[s] for s in labelled if split_of[s] in ("train", "val")]
            test = [row_of[s] for s in labelled if split_of[s] == "test"]
            y = meta[args.target].reindex(ids).to_numpy(dtype=object)
            classes = sorted(set(y[train]))
            t0 = time.perf_counter()
            res = plain_forest(x[train], y[train], x[test], "classification", seed=args.seed, classes=classes)
            score = auroc(y[test], res.proba, classes)
            rows.append({"fold": fold, "model": "forest", "auroc": score,
                         "seconds": time.perf_counter() - t0})
            print(f"{fold}: train+val {len(train)}, test {len(test)}: forest AUROC {score:.3f}", flush=True)
            for name in chosen:
                settings = run_settings(variants[name])
                t0 = time.perf_counter()
                base_state, r2 = None, float("nan")
                if settings["pretrain"].get("enabled"):
                    arch = {k: settings[k] for k in ("data", "model", "pretrain")}
                    key = json.dumps(arch, sort_keys=True) + str(fold)
                    if key not in pretrained:
                        pretrained[key] = pretrain(settings, tokens, splits, tree, index_cache, args.seed,
                                                   tmp / f"pre_{len(pretrained)}")
                    base_state, r2 = pretrained[key]
                score, val = finetune(settings, tokens, splits, samples, args.seed, tmp / f"ft_{name}_{fold}",
                                      base_state)
                rows.append({"fold": fold, "model": name, "auroc": score, "val_auroc": val,
                             "unifrac_r2": r2, "seconds": time.perf_counter() - t0})
                print(f"{fold}: {name} AUROC {score:.3f} (best val AUROC {val:.3f}, pretraining val "
                      f"UniFrac R^2 {r2:.3f}; {rows[-1]['seconds']:.0f} s)", flush=True)

    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, sep="\t", index=False, float_format="%.4f")
    forest_scores = table[table["model"] == "forest"].set_index("fold")["auroc"]
    print(f"\n{'model':<28} {'AUROC mean +- sd':>18} {'- forest':>9} {'wins':>5} {'R^2':>6}")
    for name in ["forest", *chosen]:
        part = table[table["model"] == name].set_index("fold")
        diff = part["auroc"] - forest_scores.reindex(part.index)
        r2 = part["unifrac_r2"].mean() if "unifrac_r2" in part else float("nan")
        print(f"{name:<28} {part['auroc'].mean():>9.3f} +- {part['auroc'].std(ddof=1):.3f} "
              f"{diff.mean():>+9.3f} {int((diff > 0).sum()):>3}/{len(diff)} {r2:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
