"""A fitted random forest as a module: the forest member of a fine-tuned AAM ensemble.

q2-sample-classifier's random forest (the ``random_forest`` baseline of
:mod:`aam.evaluate.baselines`: trees on each sample's relative abundances) with its trees held as
tensors, so that the model file stays one ``model.safetensors`` + ``model.json`` and loading it
never unpickles anything (a scikit-learn estimator can only be saved by pickling). The trees of the
forest are laid end to end: node ``i`` splits on feature ``feature[i]`` (an index into ``keys``; -1 at
a leaf) at ``threshold[i]``, goes to ``left[i]`` when the sample's value is at most the threshold and
to ``right[i]`` otherwise, and a leaf holds ``value[i]``, its class probabilities (classification)
or its mean target (regression). The output is the mean of the trees' leaves, as scikit-learn's
``predict_proba`` / ``predict`` computes it.

Features are matched by the 63-bit key of their ID (:func:`aam.data.datasets.feature_id_keys`), as
the linear member matches them (:mod:`aam.models.linear_clr`), in the batch's ``present_keys`` and
``unifrac_counts``: the model's evaluation rarefaction draw, as the baseline reads a rarefied table
(:mod:`aam.training.forest_member` says why not the scaled counts). A sample's relative abundances
are taken over all of its features, those the trees never split on included. scikit-learn compares
a float32 copy of the features with float64 thresholds; so does this module, so the same sample
lands in the same leaves.

Why not a library: ONNX or Hummingbird would convert the trees, but add a runtime dependency for one
traversal loop; the loop below walks every tree at once, one level per step.
"""

from __future__ import annotations

import torch
from torch import nn


class ForestModule(nn.Module):
    """Outputs [B, n_outputs] of a random forest on relative abundances: log-probabilities of the
    classes (classification) or the standardized prediction (regression)."""

    def __init__(self, n_features: int, n_nodes: int, n_trees: int, n_outputs: int, task: str):
        super().__init__()
        if min(n_features, n_nodes, n_trees) < 1:
            raise ValueError(f"a forest member needs features, nodes and trees, got {n_features}, {n_nodes}, "
                             f"{n_trees}")
        self.task = task
        # filled by aam.training.forest_member; the sorted keys of the features the trees split on
        self.register_buffer("keys", torch.zeros(n_features, dtype=torch.int64))
        self.register_buffer("roots", torch.zeros(n_trees, dtype=torch.int32))
        self.register_buffer("feature", torch.full((n_nodes,), -1, dtype=torch.int32))
        self.register_buffer("threshold", torch.zeros(n_nodes, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(n_nodes, dtype=torch.int32))
        self.register_buffer("right", torch.zeros(n_nodes, dtype=torch.int32))
        self.register_buffer("value", torch.zeros(n_nodes, n_outputs, dtype=torch.float32))

    def features(self, present_keys: torch.Tensor, present_counts: torch.Tensor) -> torch.Tensor:
        """present_keys [F] (the batch's features), present_counts [B, F] -> [B, n_features] relative
        abundances of the trees' features (over each sample's total), rounded to float32 as
        scikit-learn rounds them, held in float64 for the comparison with the thresholds."""
        counts = present_counts.double()
        totals = counts.sum(dim=1, keepdim=True)
        shares = torch.where(totals > 0, counts / totals.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
        n = self.keys.numel()
        where = torch.searchsorted(self.keys, present_keys).clamp(max=n - 1)
        known = self.keys[where] == present_keys
        x = torch.zeros(counts.shape[0], n, dtype=torch.float64, device=counts.device)
        x[:, where[known]] = shares[:, known]
        return x.float().double()

    def leaves(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n_trees] the leaf each sample reaches in each tree."""
        feature, left, right = self.feature.long(), self.left.long(), self.right.long()
        node = self.roots.long().expand(x.shape[0], -1).clone()
        while True:
            split_on = feature[node]
            inner = split_on >= 0
            if not bool(inner.any()):
                return node
            value = torch.gather(x, 1, split_on.clamp(min=0))
            step = torch.where(value <= self.threshold[node], left[node], right[node])
            node = torch.where(inner, step, node)

    def forward(self, present_keys: torch.Tensor, present_counts: torch.Tensor) -> torch.Tensor:
        mean = self.value[self.leaves(self.features(present_keys, present_counts))].double().mean(dim=1)
        if self.task == "regression":
            return mean
        return torch.log(mean)
