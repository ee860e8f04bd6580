"""The CLR + L2 linear model as a module: the linear member of a fine-tuned AAM ensemble.

A logistic (classification) or ridge (regression) model on the centred log-ratios of a sample's
counts over a fixed list of features, ``clr(x)_j = log(x_j + p) - mean_k log(x_k + p)`` with
pseudocount p: the ``linear_clr`` baseline of :mod:`aam.evaluate.baselines`, whose fitted
coefficients :mod:`aam.training.linear_member` copies in. Features are matched by the 63-bit key of
their ID (:func:`aam.data.datasets.feature_id_keys`), which evaluation batches carry as
``table_keys`` beside the counts it reads, ``expected_counts``; a feature the fit never kept adds
nothing, and a kept feature a sample lacks counts 0, as in the baseline's table. Computed in
float64, so on the same counts its outputs are the baseline's to rounding.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearCLR(nn.Module):
    """Outputs [B, n_outputs] of a linear model on CLR-transformed counts: log-probabilities of the
    classes (classification) or the standardized prediction (regression)."""

    def __init__(self, n_features: int, n_outputs: int, task: str, pseudocount: float):
        super().__init__()
        if n_features < 1:
            raise ValueError(f"a linear member needs at least one feature, got {n_features}")
        if pseudocount <= 0:
            raise ValueError("the CLR pseudocount must be positive")
        self.task = task
        self.pseudocount = float(pseudocount)
        # sorted feature keys, and per key its coefficients; filled by aam.training.linear_member
        self.register_buffer("keys", torch.zeros(n_features, dtype=torch.int64))
        self.register_buffer("coef", torch.zeros(n_features, n_outputs, dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros(n_outputs, dtype=torch.float64))

    def features(self, present_keys: torch.Tensor, present_counts: torch.Tensor) -> torch.Tensor:
        """present_keys [F] (the batch's features), present_counts [B, F] -> CLR [B, n_features]
        over the model's features, in float64."""
        n = self.keys.numel()
        where = torch.searchsorted(self.keys, present_keys).clamp(max=n - 1)
        known = self.keys[where] == present_keys
        x = torch.zeros(present_counts.shape[0], n, dtype=torch.float64, device=present_counts.device)
        x[:, where[known]] = present_counts[:, known].double()
        logs = torch.log(x + self.pseudocount)
        return logs - logs.mean(dim=1, keepdim=True)

    def forward(self, present_keys: torch.Tensor, present_counts: torch.Tensor) -> torch.Tensor:
        z = self.features(present_keys, present_counts) @ self.coef + self.intercept
        if self.task == "regression":
            return z
        return torch.log_softmax(z, dim=-1)
