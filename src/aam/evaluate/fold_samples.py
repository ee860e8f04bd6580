"""Which samples of a split (or a cross-validation fold) every model trains on and is scored on.

The AAM fine-tuning (aam.data.datasets.AAMDataModule) and the baselines must score the very same
test samples, so both follow one rule, written here for the baselines and checked against the
data module by the tests:

- a sample counts if it is in the rarefied table (rarefaction dropped the shallow ones) and has a
  value for the target (``aam.io.metadata.read_target_column``: missing values, and for a target
  with ``classes`` the samples of other classes, are left out);
- classification: the classes are the sorted labels of the ``train`` split, and samples of any
  split whose class is not among them are left out (no model can predict an unseen class).

`samples_fingerprint` names a set of test samples in one string, and `split_fingerprints` each split
of a fold, so that evaluations and summaries can check that the models they compare were trained,
validated and scored on identical folds (the samples each model's own files name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

SPLITS = ("train", "val", "test")


def evaluation_samples(
    split_of: Mapping[str, str], labels: Mapping[str, str], present: Iterable[str], task: str
) -> tuple[dict[str, list[str]], list[str] | None]:
    """Per split the samples that are trained on or scored (in `split_of` order), and the classes.

    `split_of`: sample -> train/val/test (splits.tsv); `labels`: sample -> raw target value (only
    the samples that have one); `present`: the samples of the rarefied table.
    """
    present = set(present)
    kept = {name: [s for s, sp in split_of.items() if sp == name and s in present and s in labels]
            for name in SPLITS}
    if task == "regression":
        return kept, None
    if task != "classification":
        raise ValueError(f"unknown task {task!r}")
    classes = sorted({labels[s] for s in kept["train"]})
    known = set(classes)
    return {name: [s for s in samples if labels[s] in known] for name, samples in kept.items()}, classes


def samples_fingerprint(samples: Iterable[str]) -> str:
    """SHA-256 of the sorted, newline-joined sample IDs: equal exactly for equal sets of samples."""
    return hashlib.sha256("\n".join(sorted(set(map(str, samples)))).encode()).hexdigest()


def split_fingerprints(samples: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """`samples_fingerprint` of each of train, val and test (an absent split: no samples)."""
    return {name: samples_fingerprint(samples.get(name, ())) for name in SPLITS}


def fold_mismatch(ours: Mapping[str, str] | None, theirs: Mapping[str, str] | None) -> str | None:
    """The first split whose samples differ between two `split_fingerprints`, None where they agree
    or either is unknown (files written before the fingerprints were)."""
    if not ours or not theirs:
        return None
    return next((name for name in SPLITS if ours.get(name) != theirs.get(name)), None)


def positive_last(classes: list[str], positive: str) -> list[str]:
    """The two classes with `positive` second: binary AUROC, the ROC curve and the confusion matrix
    take classes[1] as the positive class (the target's positive_class; default: sorted order)."""
    if positive not in classes:
        raise ValueError(f"{positive!r} is not one of the classes {classes}")
    if len(classes) != 2:
        raise ValueError(f"a positive class needs two classes; there are {len(classes)}: {classes}")
    return [c for c in classes if c != positive] + [positive]
