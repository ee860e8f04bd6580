"""Training progress as a person reads it: one line per epoch (or every N steps) in the log,
Lightning's messages once and without advertisements, a tqdm bar only on a terminal."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import TinyModule, loaders  # noqa: E402

from aam.training.engine import TrainerSettings, fit  # noqa: E402
from aam.training.progress import batch_size_of, format_duration, progress_bar_enabled  # noqa: E402


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aam.training.progress"]


def test_one_line_per_epoch_with_losses_metric_rate_and_time_left(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train, val = loaders(n=64, batch=8)
    s = TrainerSettings.from_dict(dict(max_epochs=3, lr=1e-2, warmup_steps=2, progress_bar=False,
                                       patience=None, seed=1))
    result = fit(TinyModule(s), tmp_path, train_dataloaders=train, val_dataloaders=val)
    lines = _lines(caplog)
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {epoch}/3  step {8 * epoch}/24  train/loss ")
        for part in ("val/loss ", "(monitor val/loss ", "samples/s", "elapsed "):
            assert part in line, line
    assert "left ~" in lines[0]
    # the logged losses are the per-epoch history's
    for line, (_, row) in zip(lines, result.history.iterrows(), strict=True):
        logged = float(re.search(r"  val/loss (\S+)", line).group(1))
        assert logged == pytest.approx(row["val/loss"], rel=1e-3)
    best = min(result.history["val/loss"])
    assert float(re.search(r"best (\S+)\)", lines[-1]).group(1)) == pytest.approx(best, rel=1e-3)


def test_every_n_steps_adds_step_lines(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train, val = loaders(n=64, batch=8)
    s = TrainerSettings.from_dict(dict(max_epochs=2, lr=1e-2, warmup_steps=2, progress_bar=False,
                                       patience=None, seed=1, progress_every_n_steps=3))
    fit(TinyModule(s), tmp_path, train_dataloaders=train, val_dataloaders=val)
    steps = [line for line in _lines(caplog) if "val/loss" not in line]
    # 16 optimizer steps: lines at 3, 6, ..., 15
    assert [int(re.search(r"step (\d+)/16", line).group(1)) for line in steps] == [3, 6, 9, 12, 15]
    assert all("train/loss" in line and "samples/s" in line for line in steps)


def test_lightning_messages_appear_once_without_advertisements():
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')\n"
        "from lightning.pytorch.utilities.rank_zero import rank_zero_info\n"
        "from aam.training.progress import quiet_lightning\n"
        "quiet_lightning()\n"
        "rank_zero_info('GPU available: hello')\n"
        "rank_zero_info('Tip: try installing [litlogger](https://pypi.org/project/litlogger/)')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("GPU available: hello") == 1
    assert "litlogger" not in done.stderr


def test_progress_bar_auto_only_on_a_terminal(monkeypatch):
    assert progress_bar_enabled(True) and not progress_bar_enabled(False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert not progress_bar_enabled("auto")
    with pytest.raises(Exception, match="progress_bar"):
        TrainerSettings.from_dict({"progress_bar": "sometimes"})


def test_batch_size_counts_samples():
    assert batch_size_of({"tokens": torch.zeros(40, 5), "sample_index": torch.arange(8)}) == 8
    assert batch_size_of({"input_ids": torch.zeros(64, 9), "group": torch.arange(32)}) == 32
    assert batch_size_of((torch.zeros(7, 4), torch.zeros(7))) == 7
    assert batch_size_of(torch.zeros(5, 3)) == 5


def test_format_duration():
    durations = (4.2, 61, 3599, 3600 * 5 + 60 * 7)
    assert [format_duration(s) for s in durations] == ["4s", "1m01s", "59m59s", "5h07m"]
