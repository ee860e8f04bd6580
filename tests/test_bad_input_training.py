"""Bad or hostile checkpoints met by the training engine (every training stage goes through it).

A corrupt or truncated last.ckpt is set aside (renamed, never deleted) with a warning and training
starts afresh; a tampered one cannot make the engine run a pickle payload or read a file outside the
run's own checkpoint folder.
"""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from helpers.engine import TinyModule, loaders, settings

from aam.errors import InputError
from aam.training.engine import FINISHED, fit


class Payload:
    """Unpickling this runs code: it writes the file `marker` (what an attacker's payload would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def unfinished_run(out):
    """A run that trained 1 of 3 epochs and stopped: its checkpoints are resumable."""
    train, val = loaders()
    fit(TinyModule(settings(max_epochs=1)), out, train_dataloaders=train, val_dataloaders=val)
    (out / "checkpoints" / FINISHED).unlink()
    return out / "checkpoints"


def resume(out):
    train, val = loaders()
    return fit(TinyModule(settings(max_epochs=3)), out, train_dataloaders=train, val_dataloaders=val)


def test_an_unfinished_run_resumes(tmp_path):
    unfinished_run(tmp_path)
    assert resume(tmp_path).resumed


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_last_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, caplog, damage):
    ckpt_dir = unfinished_run(tmp_path)
    last = ckpt_dir / "last.ckpt"
    data = last.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage]
    last.write_bytes(bad)
    with caplog.at_level(logging.WARNING):
        result = resume(tmp_path)
    assert not result.resumed and result.global_step == 3 * 8
    warning = next(r.getMessage() for r in caplog.records if "set aside" in r.getMessage())
    assert str(last) in warning and "training starts afresh" in warning and "\n" not in warning
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("checkpoints.set-aside-")]
    assert len(aside) == 1 and (aside[0] / "last.ckpt").read_bytes() == bad  # renamed, not deleted
    assert (ckpt_dir / "last.ckpt").exists()  # the new run's own


def _tamper(last, **changes):
    """Rewrite the ModelCheckpoint state of `last`, as plain data (it still loads with weights_only)."""
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("ModelCheckpoint"):
            state.update(changes)
    torch.save(checkpoint, last)


def test_checkpoint_pointing_outside_its_folder_never_runs_the_payload(tmp_path, caplog):
    ckpt_dir = unfinished_run(tmp_path / "run")
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "elsewhere" / "evil.ckpt"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps({"state_dict": Payload(str(marker))}))
    _tamper(ckpt_dir / "last.ckpt", best_model_path=str(evil), best_model_score=torch.tensor(-1.0))
    with caplog.at_level(logging.WARNING):
        result = resume(tmp_path / "run")
    assert not marker.exists()
    assert not result.resumed
    assert result.best_model_path and str(ckpt_dir) in result.best_model_path
    assert any("outside the run's checkpoint folder" in r.getMessage() for r in caplog.records)
    assert evil.exists()  # and nothing outside was touched


def test_checkpoint_naming_a_file_to_delete_outside_its_folder_is_set_aside(tmp_path):
    ckpt_dir = unfinished_run(tmp_path / "run")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    score = torch.tensor(9.0)
    _tamper(ckpt_dir / "last.ckpt", kth_best_model_path=str(victim), best_k_models={str(victim): score})
    assert not resume(tmp_path / "run").resumed
    assert victim.read_text() == "keep me"


def test_best_checkpoint_with_a_pickle_payload_inside_the_folder_is_refused(tmp_path):
    ckpt_dir = unfinished_run(tmp_path)
    marker = tmp_path / "payload_ran"
    evil = ckpt_dir / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": Payload(str(marker))}))
    # a best score nothing beats, so that the run keeps pointing at the planted file
    score = torch.tensor(-1.0)
    _tamper(
        ckpt_dir / "last.ckpt",
        best_model_path=str(evil),
        best_model_score=score,
        best_k_models={str(evil): score},
        kth_best_model_path=str(evil),
        kth_value=score,
    )
    with pytest.raises(InputError, match="cannot load the best checkpoint as plain data") as info:
        resume(tmp_path)
    assert "evil.ckpt" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
