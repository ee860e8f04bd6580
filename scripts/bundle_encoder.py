"""Copy a corpus encoder (results/corpus/{corpus}/{run}/) into the package as a bundled encoder,
with a model card written from its model.json, timing.json and metrics.csv.

    python scripts/bundle_encoder.py results_corpus/corpus/gg13_8/small gg13_8_v4_small \\
        --hardware "2 shared CPU cores (x86-64), nice 10" --note "..."

Writes src/aam/pretrained/<name>/{model.safetensors, model.json, metrics.csv, MODEL_CARD.md} and
refuses a bundle of 20 MB or more. The card's figures are the ones the run recorded: the restored
(best) epoch's validation UniFrac R^2 and nucleotide accuracy, steps, samples seen, wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 20 * 1024 * 1024

LICENCES = """\
| source | studies | licence |
|---|---|---|
| twbattaglia/MicrobeDS @ e6a624d | hmp_v13, qa10394 | CC0 (package DESCRIPTION) |
| biocore/American-Gut @ 68fd6d4 | pgp, ag_debug | Modified BSD (repository LICENSE) |
| knights-lab/MLRepo @ 4bbfee9 | mlrepo_claesson, _kostic, _sokol, _turnbaugh | MIT (repository LICENSE) |
| Greengenes 13_8 (qiime-default-reference 0.1.3) | tree, V4 sequences | CC BY-SA 3.0 Unported |

The weights are a model trained on these data, not the data; Greengenes asks for attribution
(McDonald et al. 2012, ISME J 6:610-618) and share-alike terms for adaptations of its data."""


def best_row(history: pd.DataFrame, monitor: str, mode: str) -> pd.Series:
    col = history[monitor].astype(float)
    return history.loc[col.idxmin() if mode == "min" else col.idxmax()]


def layers(cfg: dict, key: str) -> int:
    return cfg[key] if cfg.get(key) is not None else cfg["layers"]


def fmt(value) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "n/a"


def card(name: str, meta: dict, timing: dict, history: pd.DataFrame, size: int, hardware: str,
         note: str) -> str:
    trainer, training, corpus = meta["trainer"], meta["training"], meta["corpus"]
    best = best_row(history, trainer["monitor"], trainer["mode"])
    last = history.iloc[-1]
    cfg = meta["config"]
    studies = "\n".join(f"| {s} | {v['depth']} | {v['n_train']} | {v['n_val']} |"
                        for s, v in corpus["studies"].items())
    nuc = best.get("val/nucleotide_accuracy")
    has_nuc = nuc is not None and pd.notna(nuc)
    nuc_text = fmt(nuc) if has_nuc else "n/a (no nucleotide objective in this encoder)"
    crop = f"{meta.get('crop_min_bp')}-{cfg['max_bp']}"
    r2 = f"{fmt(best.get('val/unifrac_r2'))} | {fmt(last.get('val/unifrac_r2'))}"
    objectives = " and masked nucleotides" if has_nuc else ""
    return f"""# Bundled encoder `{name}`

An AAM SequenceEncoder (ASV encoder + sample encoder + UniFrac head) pretrained on UniFrac
({meta['unifrac_metric']}, per batch){objectives} across the public 16S studies of
the pretraining corpus (Greengenes 13_8 97 % OTUs; each OTU's 150 nt after the 515F primer).
Fine-tune from it with `pretrain: {{from: bundled}}` (or `aam finetune --bundled {name}`).

{note}

## Input it expects
Nucleotide tokens of V4 reads that start right after the 515F primer (GTGYCAGCMGCCGCGGTAA), up
to {cfg['max_bp']} nt. Pretraining cut every ASV to a random prefix of {crop} nt, so reads of
those lengths from that position (deblur's 100-nt V4 ASVs, for one) are what it was trained on.
At most {cfg['asv_limit']} ASVs per sample (`data.asv_limit` of a fine-tuning run must not exceed it).

## Model
`model.json` holds the whole config: embedding {cfg['embedding_dim']}, ASV encoder
`{cfg.get('asv_encoder', 'transformer')}` ({layers(cfg, 'asv_layers')} layers), sample encoder
{layers(cfg, 'sample_layers')} layers, {cfg['heads']} heads, feed-forward {cfg['ff_dim']}, dropout
{cfg['dropout']}; {training['n_parameters']:,} parameters; `model.safetensors` is {size / 1e6:.2f} MB.

## Data
{corpus['n_train']} training and {corpus['n_val']} validation samples (a seeded {corpus['val_fraction']:.0%}
of each study held out), rarefied afresh every epoch to each study's depth; samples with fewer
reads left out; batches drawn from one study at a time.

| study | depth | train | val |
|---|---|---|---|
{studies}

## Training
{training['optimizer_steps']} optimizer steps of batch {meta['data']['batch_size']}
({training['optimizer_steps'] * meta['data']['batch_size']:,} samples seen; {training['epochs']} epochs of
{trainer['limit_train_batches']} batches), lr {trainer['lr']} ({trainer['schedule']}, warmup
{trainer['warmup_steps']} steps), {timing['wall_time_s'] / 60:.1f} minutes
({timing['train_samples_per_s']:.2f} samples/s) on {hardware}; torch {training['torch']},
{platform.python_implementation()} {platform.python_version()}.

## Validation
Held-out samples of the corpus; the weights are those of epoch {int(best['epoch'])} (best
`{trainer['monitor']}`).


| metric | restored epoch | last epoch |
|---|---|---|
| UniFrac R^2 (predicted vs true distances, pairs within a batch) | {r2} |
| UniFrac MAE | {fmt(best.get('val/unifrac_mae'))} | {fmt(last.get('val/unifrac_mae'))} |
| masked-nucleotide accuracy | {nuc_text} | {fmt(last.get('val/nucleotide_accuracy'))} |

`metrics.csv` has every epoch.

## Data licences
{LICENCES}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a corpus run's folder (model.safetensors, model.json, "
                        "timing.json, metrics.csv)")
    parser.add_argument("name", help="bundle name: src/aam/pretrained/<name>/")
    parser.add_argument("--hardware", required=True, help="what it was trained on, in words")
    parser.add_argument("--note", default="", help="a paragraph for the card (caveats)")
    args = parser.parse_args()
    src = Path(args.run_dir)
    meta = json.loads((src / "model.json").read_text())
    if meta.get("stage") != "corpus_pretrain":
        raise SystemExit(f"{src}: not a corpus encoder (stage {meta.get('stage')!r})")
    timing = json.loads((src / "timing.json").read_text())
    history = pd.read_csv(src / "metrics.csv")
    size = (src / "model.safetensors").stat().st_size
    if size >= LIMIT:
        raise SystemExit(f"{src}: weights are {size / 1e6:.1f} MB, the bundle limit is 20 MB")
    out = ROOT / "src" / "aam" / "pretrained" / args.name
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json", "metrics.csv"):
        shutil.copyfile(src / name, out / name)
    (out / "MODEL_CARD.md").write_text(card(args.name, meta, timing, history, size, args.hardware, args.note))
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"bundled {src} as {out} ({total / 1e6:.2f} MB); torch {torch.__version__}")


if __name__ == "__main__":
    main()
