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
from helpers.engine import TinyModule, loaders  # noqa: E402

from aam.training.engine import TrainerSettings, fit  # noqa: E402
from aam.training.progress import (  # noqa: E402
    batch_size_of,
    format_duration,
    progress_bar_enabled,
    time_left,
)


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
    assert "run left ~" in lines[0]
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


def test_time_left_covers_the_rest_of_the_run():
    # 5 steps in 10 s, 20 steps in all: 15 steps to go at 2 s each, whatever the epoch
    assert time_left(10.0, 5, 20, 5) == pytest.approx(30.0)
    # resumed at step 8: 4 steps since in 6 s, at step 12 of 20
    assert time_left(6.0, 4, 20, 12) == pytest.approx(12.0)
    assert time_left(3.0, 0, 20, 0) is None and time_left(3.0, 2, None, 2) is None


BAR_RUN = """
import sys
sys.path.insert(0, {tests!r})
from helpers.engine import TinyModule, loaders
from aam.training.engine import TrainerSettings, fit
train, val = loaders(n=48, batch=8)
s = TrainerSettings.from_dict(dict(max_epochs=2, lr=1e-2, warmup_steps=2, progress_bar=True,
                                   patience=None, seed=1))
fit(TinyModule(s), {out!r}, train_dataloaders=train, val_dataloaders=val)
"""


def run_in_terminal(rows: int, columns: int, code: str) -> str:
    """What `code` writes to a pseudo-terminal of `rows` x `columns` (0 x 0: a terminal with no size)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal's size is set before Python starts
        os.execv(sys.executable, [sys.executable, "-c", code])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    out = b""
    while select.select([fd], [], [], 300)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


@pytest.mark.parametrize("rows,columns", [(0, 0), (24, 100)])
def test_terminal_bar_shows_the_run_time_left_even_without_a_terminal_size(tmp_path, rows, columns):
    out = run_in_terminal(rows, columns, BAR_RUN.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    bars = [line for line in out.replace("\r", "\n").splitlines() if "%|" in line]
    assert bars, out[-2000:]
    assert any("run left=~" in line for line in bars), bars[-3:]
