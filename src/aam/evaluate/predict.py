"""Predictions of a trained AAM model: run it over a loader, turn its outputs into a table in the
target's own labels or units, and the fixed-rarefaction loader of a split that evaluation uses.

`aam finetune` (its predictions, the selection's inner folds), `aam predict` (a new table) and the
benchmarks predict through these, so a sample is rarefied and scored the same way everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


@torch.no_grad()
def predict(model, loader, device: torch.device) -> dict[str, np.ndarray]:
    """Row (sample index), raw output, sample embedding and target (when the loader has one) of
    every sample of ``loader``, in eval mode; empty for an empty loader."""
    model.eval().to(device)
    rows, outs, embs, trues = [], [], [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["tokens"], batch["asv_index"], batch["asv_mask"], batch["asv_counts"])
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
    """A loader over a split with the fixed evaluation rarefaction (train included)."""
    from torch.utils.data import DataLoader

    from aam.data.datasets import RarefiedSamples

    ds = {"train": dm.train_dataset, "val": dm.val_dataset, "test": dm.test_dataset}[split]
    if ds.train:
        ds = RarefiedSamples(ds.samples, ds.rows, ds.depth, ds.asv_limit, ds.selection, ds.seed, False,
                             ds.targets)
    return DataLoader(ds, batch_size=dm.batch_size, shuffle=False, collate_fn=dm.collate)
