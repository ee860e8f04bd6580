"""A tiny regression model on the training engine: fits in a second, for the engine's own tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aam.training.engine import EngineModule, TrainerSettings


@dataclass
class TinyConfig:
    d_in: int = 4
    d_hidden: int = 8
    dropout: float = 0.2


class Tiny(nn.Module):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.d_in, config.d_hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.d_hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


class TinyModule(EngineModule):
    def __init__(self, settings, nan_at_step: int | None = None):
        super().__init__(settings)
        self.model = Tiny(TinyConfig())
        self.nan_at_step = nan_at_step

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.model(x), y)
        if self.nan_at_step is not None and self.global_step >= self.nan_at_step:
            loss = loss * float("nan")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.mse_loss(self.model(x), y), on_epoch=True)


def loaders(n=64, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    train = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    val = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=batch)
    return train, val


def settings(**kw):
    base = dict(max_epochs=4, lr=1e-2, warmup_steps=2, progress_bar=False, patience=None, seed=1)
    base.update(kw)
    return TrainerSettings.from_dict(base)
