"""Predictions of a trained AAM model: run it over a loader, turn its outputs into a table in the
target's own labels or units, and the fixed-rarefaction loader of a split that evaluation uses.

`aam finetune` (its predictions, the selection's inner folds), `aam predict` (a fine-tuned model's
folder applied to a new table) and the benchmarks predict through these, so a sample is rarefied
and scored the same way everywhere.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aam.errors import InputError

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model, loader, device: torch.device) -> dict[str, np.ndarray]:
    """Row (sample index), raw output, sample embedding and target (when the loader has one) of
    every sample of ``loader``, in eval mode; empty for an empty loader."""
    from aam.models.aam import predictor_inputs

    model.eval().to(device)
    rows, outs, embs, trues = [], [], [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(*predictor_inputs(model.config, batch))
        rows.append(batch["sample_index"].cpu())
        outs.append(out["target"].float().cpu())
        embs.append(out["sample_embedding"].float().cpu())
        if "target" in batch:
            trues.append(batch["target"].cpu())
    if not rows:
        return {}
    return {"row": torch.cat(rows).numpy(), "output": torch.cat(outs).numpy(),
            "embedding": torch.cat(embs).numpy(), "target": torch.cat(trues).numpy() if trues else None}


def prediction_table(pred: dict[str, np.ndarray], split: str, dm, task: str) -> pd.DataFrame:
    """sample, split, y_true, y_pred in the target's labels or units (regression outputs are
    de-standardized with the DataModule's mean and std) and, for classification, prob_<class>."""
    samples = [dm.sample_ids[int(r)] for r in pred["row"]]
    table = pd.DataFrame({"sample": samples, "split": split})
    if task == "regression":
        table["y_true"] = pred["target"].astype(np.float64) * dm.target_std + dm.target_mean
        table["y_pred"] = pred["output"].astype(np.float64) * dm.target_std + dm.target_mean
        return table
    probs = torch.softmax(torch.from_numpy(pred["output"]), dim=-1).numpy()
    classes = np.array(dm.classes, dtype=object)
    table["y_true"] = classes[pred["target"]]
    table["y_pred"] = classes[probs.argmax(1)]
    for i, c in enumerate(dm.classes):
        table[f"prob_{c}"] = probs[:, i]
    return table


def eval_loader(dm, split: str):
    """A loader over a split with the fixed evaluation rarefaction (train included), its batches
    carrying the expected counts too (a linear member reads them)."""
    from torch.utils.data import DataLoader

    from aam.data.datasets import RarefiedSamples

    ds = {"train": dm.train_dataset, "val": dm.val_dataset, "test": dm.test_dataset}[split]
    if ds.train:
        ds = RarefiedSamples(ds.samples, ds.rows, ds.depth, ds.asv_limit, ds.selection, ds.seed, False,
                             ds.targets)
    return DataLoader(ds, batch_size=dm.batch_size, shuffle=False,
                      collate_fn=dm.collate.with_expected_counts())


MODEL_FILES = ("model.json", "model.safetensors")


def load_finetuned(model_dir: str | Path):
    """(model, meta) of a fine-tuned AAM model folder; anything else is one InputError."""
    from aam.io.model_files import load_model

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such model folder")
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise InputError(f"{model_dir}: no {' or '.join(missing)}; not a model folder of aam finetune")
    try:
        meta = json.loads((model_dir / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{model_dir / 'model.json'}: cannot read: {err}") from err
    if meta.get("stage") != "finetune":
        raise InputError(f"{model_dir}: a model of stage {meta.get('stage')!r}, not of aam finetune")
    for key in ("task", "depth", "data"):
        if key not in meta:
            raise InputError(f"{model_dir / 'model.json'}: no {key!r}; not written by aam finetune")
    try:
        model, meta = load_model(model_dir)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{model_dir}: cannot load the model: {str(err).splitlines()[0]}") from err
    return model, meta


def predict_new_samples(model, meta: dict, features, samples, rows: np.ndarray, seed: int,
                        batch_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Predictions (sample, y_pred in the target's units or classes, prob_<class>) and sample
    embeddings of the samples ``rows`` of a new table's token caches, each rarefied once to the
    model's depth with the evaluation stream keyed by ``seed``, as training rarefied its held-out
    samples."""
    depth, selection = int(meta["depth"]), meta["data"].get("selection", "abundance")
    loader = cache_loader(features, samples, rows, depth, int(meta["config"]["asv_limit"]), selection, seed,
                          batch_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    pred = predict(model, loader, device)
    log.info("predicted %d samples in %.1f s on %s", rows.size, time.perf_counter() - start, device.type)

    table = pd.DataFrame({"sample": [str(samples.sample_ids[int(r)]) for r in pred["row"]]})
    if meta["task"] == "regression":
        table["y_pred"] = pred["output"].reshape(-1).astype(np.float64) * float(meta["target_std"]) + float(
            meta["target_mean"])
    else:
        classes = list(meta["classes"])
        probs = torch.softmax(torch.from_numpy(pred["output"]), dim=-1).numpy()
        table["y_pred"] = np.asarray(classes, dtype=object)[probs.argmax(1)]
        for i, c in enumerate(classes):
            table[f"prob_{c}"] = probs[:, i]
    return table, pred["embedding"]


def cache_loader(features, samples, rows: np.ndarray, depth: int, asv_limit: int, selection: str, seed: int,
                 batch_size: int):
    """A loader over the samples ``rows`` of a table's token caches, each rarefied once to ``depth``
    with the evaluation stream keyed by ``seed`` (the draw a training run with that seed makes for
    its held-out samples, whatever their split), ``selection`` ``asv_limit`` features each."""
    from torch.utils.data import DataLoader

    from aam.data.datasets import Collate, RarefiedSamples, feature_id_keys

    log.info("rarefying %d samples to %d reads (seed %d, evaluation stream), %s %d features each",
             rows.size, depth, seed, selection, asv_limit)
    dataset = RarefiedSamples(samples, rows, depth, asv_limit, selection, seed, False)
    collate = Collate(features.tokens, keys=feature_id_keys(features.feature_ids), expected_counts=True)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
