"""What the tabular members of a fine-tuned AAM model share: the linear member
(:mod:`aam.training.linear_member`) and the forest member (:mod:`aam.training.forest_member`) are
fitted on the same samples, read from the model's own evaluation batches so that each module sees
at prediction what its fit saw, and are recorded in ``model.json`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn


@dataclass
class FittedMember:
    """A fitted member: its baseline's name, the module, its weight in the ensemble, the fit's
    record and the module's sizes."""

    model: str
    module: nn.Module
    weight: float
    params: dict
    search: list[dict] = field(default_factory=list)
    n_train: int = 0
    seconds: float = 0.0
    sizes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """model.json's record (no time: a rerun writes a byte-identical model.json)."""
        return {"model": self.model, "weight": self.weight, "params": self.params, "search": self.search,
                "n_train": self.n_train, **self.sizes}


# what a member reads of an evaluation batch: (feature keys, counts over them)
EXPECTED_COUNTS = ("table_keys", "expected_counts")  # each sample's counts scaled to the depth
DRAW_COUNTS = ("present_keys", "unifrac_counts")  # the model's evaluation rarefaction draw


def training_counts(dm, splits: Sequence[str] = ("train", "val"), fields: tuple[str, str] = EXPECTED_COUNTS,
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(sample IDs, counts [samples, features], feature keys [features], targets) of the samples of
    ``splits`` as the model's evaluation batches give them: by default every feature of a sample
    with its count scaled to the depth (``expected_counts`` with ``table_keys``; ``fields``
    :data:`DRAW_COUNTS`: the features of its evaluation draw with their drawn counts). Features are
    every one of these samples, in ascending key order."""
    from aam.evaluate.predict import eval_loader

    key_field, count_field = fields
    samples, key_parts, count_parts, targets = [], [], [], []
    for split in splits:
        for batch in eval_loader(dm, split):
            samples += [dm.sample_ids[int(r)] for r in batch["sample_index"]]
            key_parts.append(batch[key_field].numpy())
            count_parts.append(batch[count_field].numpy())
            targets.append(batch["target"].numpy())
    keys = np.unique(np.concatenate(key_parts)) if key_parts else np.zeros(0, dtype=np.int64)
    counts = np.zeros((len(samples), keys.size), dtype=np.float64)
    start = 0
    for part_keys, part in zip(key_parts, count_parts, strict=True):
        counts[start:start + part.shape[0], np.searchsorted(keys, part_keys)] = part
        start += part.shape[0]
    return samples, counts, keys, np.concatenate(targets) if targets else np.zeros(0)


@dataclass
class TrainingSet:
    """What a member of the model is fitted on: the train + val samples (train first, each split in
    the order ``splits.tsv`` lists it, as the baselines read a fold), their counts scaled to the
    depth over ``keys``, targets (class names; regression: standardized, the model's own units),
    groups and the classes seen (None for regression)."""

    samples: list[str]
    counts: np.ndarray
    keys: np.ndarray
    y: np.ndarray
    groups: list
    classes: list[str] | None


def training_set(dm, splits_path: str | Path, task: str, fields: tuple[str, str] = EXPECTED_COUNTS,
                 ) -> TrainingSet:
    """The :class:`TrainingSet` of ``dm``'s train + val samples, their counts read from the batches'
    ``fields`` (:func:`training_counts`); the groups are those of ``splits_path``."""
    from aam.io.splits import read_groups, read_splits

    samples, counts, keys, targets = training_counts(dm, fields=fields)
    split_of, group_of = read_splits(splits_path), read_groups(splits_path)
    position = {s: i for i, s in enumerate(split_of)}
    order = sorted(range(len(samples)), key=lambda i: (split_of[samples[i]] != "train", position[samples[i]]))
    samples, counts, targets = [samples[i] for i in order], counts[order], targets[order]
    if task == "classification":
        y = np.asarray(dm.classes, dtype=object)[targets.astype(np.int64)]
        classes = sorted(set(y))
    else:
        y, classes = targets.astype(np.float64), None
    return TrainingSet(samples, counts, keys, y, [group_of.get(s) for s in samples], classes)
