"""Run setup and the one fit-then-export of every training stage (aam.training.runs): under data
parallelism every rank trains and only rank 0 writes. Ranks are faked by replacing the engine's fit
with one that returns at once as the given rank would (no training, no second process), so that
each training stage is run to its end on rank 1 and on rank 0."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.sequences import write_labelled_set
from helpers.stages import stage

from aam.cli import main
from aam.errors import InputError
from aam.training import runs
from aam.training.engine import FitResult, NonFiniteLossError

MODEL_FILES = ("model.safetensors", "model.json")


@dataclass
class TinyConfig:
    width: int = 3


class Tiny(torch.nn.Module):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.linear = torch.nn.Linear(config.width, 1)


class Holder:
    """What the training stages pass: a LightningModule-like object holding the model."""

    def __init__(self):
        self.model = Tiny(TinyConfig())


def fake_result(rank: int) -> FitResult:
    history = pd.DataFrame({"epoch": [0], "step": [1], "train/loss": [0.5]})
    return FitResult(history=history, best_model_path=None, best_score=None, n_parameters=4, n_trainable=4,
                     wall_time_s=0.1, global_step=1, epochs=1, resumed=False, accelerator="cpu",
                     global_rank=rank, world_size=2)


@pytest.fixture
def monitor_fit(monkeypatch):
    """Replace the engine's fit (as aam.training.runs calls it) by one that trains nothing and
    returns as the rank set in ``state["rank"]`` would; ``state["fits"]`` counts the calls."""
    state = {"rank": 1, "fits": 0}

    def fit(module, out_dir, datamodule=None, fingerprint=None, **_):
        state["fits"] += 1
        return fake_result(state["rank"])

    monkeypatch.setattr(runs, "fit", fit)
    return state


@pytest.mark.parametrize("global_rank", [0, 1])
def test_only_rank_zero_runs_the_outputs_hook_and_writes(tmp_path, monitor_fit, global_rank):
    monitor_fit["rank"] = global_rank
    called = []

    def outputs(result):
        called.append(result.global_rank)
        (tmp_path / "side.tsv").write_text("x\n")
        return {"stage": "test"}

    result = runs.fit_and_export(Holder(), tmp_path, fingerprint={}, outputs=outputs, what="testing",
                                 samples_per_step=4)
    assert result.global_rank == global_rank and monitor_fit["fits"] == 1
    written = sorted(p.name for p in tmp_path.iterdir())
    if global_rank:
        assert written == [] and called == []
    else:
        assert written == ["metrics.csv", "model.json", "model.safetensors", "side.tsv", "timing.json"]
        assert called == [0]
        assert json.loads((tmp_path / "model.json").read_text())["stage"] == "test"
        # 1 step of 4 samples on each of 2 ranks in 0.1 s; the clock stays out of model.json
        timing = json.loads((tmp_path / "timing.json").read_text())
        assert timing == {"wall_time_s": 0.1, "train_samples_per_s": 80.0}
        assert "wall_time" not in (tmp_path / "model.json").read_text()
        assert pd.read_csv(tmp_path / "metrics.csv")["train/loss"].tolist() == [0.5]


def test_an_ensemble_publishes_once_and_only_if_every_fit_was_rank_zero(tmp_path):
    holder = Holder()
    assert not runs.publish(holder.model, tmp_path, [fake_result(0), fake_result(1)], outputs=dict,
                            history=pd.DataFrame(), timing={})
    assert not list(tmp_path.iterdir())
    assert runs.publish(holder.model, tmp_path, [fake_result(0), fake_result(0)], outputs=dict,
                        history=pd.DataFrame({"epoch": [0]}), timing={}, history_name="history.csv")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["history.csv", "model.json", "model.safetensors", "timing.json"]


def test_a_diverged_fit_is_one_line_naming_the_stage(tmp_path, monkeypatch):
    def fit(*_, **__):
        raise NonFiniteLossError("loss is nan at epoch 0, batch 3 (optimizer step 2)")

    monkeypatch.setattr(runs, "fit", fit)
    with pytest.raises(InputError, match="^corpus pretraining diverged: loss is nan at epoch 0") as err:
        runs.train(Holder(), tmp_path, fingerprint={}, what="corpus pretraining")
    assert "\n" not in str(err.value)


def test_corpus_pretraining_writes_nothing_off_rank_zero(corpus, tmp_path, monitor_fit):
    """The corpus stage once exported on every rank (its copy of fit-then-export had lost the
    guard): now on rank 1 its folder stays empty, on rank 0 it gets the encoder and the history."""
    from aam.stages import corpus_pretrain

    _, studies = corpus
    entries = [{"name": s.name, "tokens_dir": str(s.tokens_dir), "tree": s.tree, "depth": s.depth}
               for s in studies]
    settings = {"data": {"asv_limit": 16, "batch_size": 4},
                "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32},
                "pretrain": {"trainer": {"num_threads": 1}}}
    argv = ["--studies", json.dumps(entries), "--settings", json.dumps(settings), "--val-fraction", "0.2"]
    stage(corpus_pretrain, *argv, "--out-dir", str(tmp_path / "rank1"))
    assert not (tmp_path / "rank1").exists() or not list((tmp_path / "rank1").iterdir())
    monitor_fit["rank"] = 0
    stage(corpus_pretrain, *argv, "--out-dir", str(tmp_path / "rank0"))
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {*MODEL_FILES, "metrics.csv", "timing.json"}


def test_a_contrastive_run_writes_its_reference_on_rank_zero_only(tmp_path, monitor_fit):
    """seq-train wrote reference.parquet before its rank check; now the whole folder is rank 0's."""
    fasta, tax = write_labelled_set(tmp_path)
    prepared = tmp_path / "prepared.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--labels", str(tax), "--out", str(prepared)]) == 0
    run = {"kind": "contrastive", "tokenizer": {"type": "kmer", "k": 4, "stride": 2},
           "model": {"dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "proj_hidden": 16, "proj_dim": 8},
           "label_ranks": ["genus"], "trainer": {"num_threads": 1}}
    argv = ["seq-train", "--prepared", str(prepared), "--settings", json.dumps(run), "--out-dir"]
    assert main([*argv, str(tmp_path / "rank1")]) == 0
    assert not (tmp_path / "rank1").exists() or not list((tmp_path / "rank1").iterdir())
    monitor_fit["rank"] = 0
    assert main([*argv, str(tmp_path / "rank0")]) == 0
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {
        *MODEL_FILES, "tokenizer.json", "history.csv", "reference.parquet", "timing.json"}


def test_settings_take_the_config_seed_the_rule_threads_and_the_stage_monitor():
    trainer = runs.trainer_settings({"trainer": {"monitor": "auto"}}, seed=7, threads=3, where="t",
                                    auto_monitor=("val/auroc", "max"))
    assert (trainer.seed, trainer.num_threads, trainer.monitor, trainer.mode) == (7, 3, "val/auroc", "max")
    own = runs.trainer_settings({"trainer": {"seed": 1}}, seed=7, threads=None, where="t")
    assert own.seed == 1 and own.monitor == "val/loss"


def test_reading_a_model_folder_needs_no_lightning():
    """predict, embed and classify read model folders through aam.io.model_files: loading the
    bundled encoder, and importing those stages, imports no Lightning."""
    code = (
        "import sys\n"
        "from aam import pretrained\n"
        "from aam.io.model_files import load_model\n"
        "import aam.stages.predict, aam.stages.embed, aam.stages.classify, aam.evaluate.classify_reads\n"
        "model, meta = load_model(pretrained.bundled_dir())\n"
        "assert type(model).__name__ == 'SequenceEncoder', meta['model_class']\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
