"""Same config and seed, same bytes: the stages run twice from a clean results folder, one run after
the other in the same folder, give byte-identical artifacts.

Every file the two runs write is compared byte for byte, except these, which record when or how
fast a run went (docs/outputs.md, "Reruns"):

- ``timing.json`` beside each model.json: the fit's wall time and samples per second;
- ``logs/tensorboard/.../events.out.tfevents.<time>.<host>.<pid>.*``: TensorBoard's own log, named
  and stamped by the clock;
- in each ``.qza``, the archive's and the execution's UUIDs and the execution's start, end and
  duration (action.yaml), which QIIME 2 requires to be new for every artifact; every other byte of
  the archive's members is compared, and the zip entries are dated 1980-01-01.

The run is the workflow's AAM chain as its rules call it (ingest, split, rarefy, unifrac, tokenize,
pretrain, fine-tuning from the pretrained encoder, baselines, evaluate, QIIME 2 export) on 36 samples
of the demo, in this process so that PyTorch is imported once.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import h5py
import pytest
import scipy.sparse as sp
from helpers.workflow import FAST_BASELINES, small_ibd

from aam.cli import main
from aam.io.biom import csr_to_table, write_biom
from aam.io.qza_payloads import feature_table

TRAINER = {"max_epochs": 2, "limit_train_batches": 2, "warmup_steps": 1, "patience": None,
           "progress_bar": False}
RUN = {"data": {"asv_limit": 32, "batch_size": 8},
       "model": {"embedding_dim": 32, "layers": 1, "heads": 2, "ff_dim": 64},
       "pretrain": {"unifrac_metric": "unweighted", "trainer": TRAINER},
       "finetune": {"trainer": {**TRAINER, "monitor": "val/loss"}}}
# Written by the clock, not by the data (the module docstring says why each may differ).
CLOCK_FILES = re.compile(r"(^|/)timing\.json$|(^|/)events\.out\.tfevents\.[^/]+$")
QZA_CLOCK = re.compile(rb"(uuid: [0-9a-f-]{36}|start: \S+|end: \S+|duration: [^\n]+)")


def run_chain(data: dict, out: Path) -> None:
    """The AAM branch of the workflow on `data` (a dataset entry), results under `out`."""
    ingest, model = out / "ingest", out / "models"
    samples, splits = ingest / "samples.parquet", out / "split/splits.tsv"
    rarefied, counts = out / "rarefied/table.biom", ingest / "counts.parquet"
    seed = ["--seed", "42"]
    target = ["--target-column", "ibd", "--task", "classification", "--target", "ibd"]
    steps = [
        ["ingest", "--table", data["table"], "--tree", data["tree"], "--metadata", data["metadata"],
         "--group-column", "host_subject_id", "--targets",
         json.dumps([{"name": "ibd", "column": "ibd", "type": "classification"}]), "--out-dir", str(ingest)],
        ["split", "--samples", str(samples), "--group-column", "host_subject_id", "--stratify-column", "ibd",
         *seed, "--out", str(splits), "--summary", str(out / "split/summary.tsv")],
        ["rarefy", "--table", str(counts), "--samples", str(samples), "--depth", "auto",
         "--min-sample-fraction", "0.9", *seed, "--out", str(rarefied),
         "--dropped", str(out / "rarefied/dropped.tsv")],
        ["unifrac", "--table", str(rarefied), "--tree", str(ingest / "tree.nwk"), "--samples", str(samples),
         "--color-column", "ibd", "--settings", json.dumps({"metrics": ["unweighted"]}), "--threads", "1",
         "--format", "tsv", *seed, "--out-dir", str(out / "unifrac")],
        ["tokenize", "--features", str(ingest / "features.parquet"), "--counts", str(counts),
         "--rarefied", str(rarefied), "--out-dir", str(out / "tokens"), "--settings", '{"max_bp": 150}'],
        ["pretrain", "--tokens-dir", str(out / "tokens"), "--splits", str(splits), "--tree",
         str(ingest / "tree.nwk"), "--settings", json.dumps(RUN), *seed, "--threads", "1",
         "--out-dir", str(model / "pretrain")],
        ["finetune", "--tokens-dir", str(out / "tokens"), "--splits", str(splits), "--samples", str(samples),
         *target, "--pretrain-dir", str(model / "pretrain"), "--settings", json.dumps(RUN), *seed,
         "--threads", "1", "--out-dir", str(model / "finetune")],
        ["baselines", "--rarefied", str(rarefied), "--splits", str(splits), "--samples", str(samples),
         *target, "--dataset", "small", *seed, "--settings", json.dumps(FAST_BASELINES), "--threads", "1",
         "--out-dir", str(out / "baselines")],
        ["evaluate", "--finetune-dir", str(model / "finetune"), "--pretrain-dir", str(model / "pretrain"),
         "--baselines", str(out / "baselines"), "--splits", str(splits), "--samples", str(samples), *target,
         "--run", "pretrained", "--dataset", "small", "--out-dir", str(out / "eval")],
        ["export-qza", "--type", "FeatureTable[Frequency]", "--input", str(rarefied),
         "--out", str(out / "qiime2/rarefied_table.qza")],
        ["export-qza", "--type", "SampleData[ClassifierPredictions]", "--input",
         str(out / "eval/predictions.tsv"), "--source-provenance", str(out / "eval/metrics.json"),
         "--out", str(out / "qiime2/predictions.qza")],
    ]
    for argv in steps:
        assert main(argv) == 0, argv[0]


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def qza_members(path: Path) -> dict[str, bytes]:
    """A .qza's members under names without the archive's UUID, its clock fields masked."""
    with zipfile.ZipFile(path) as archive:
        assert {entry.date_time for entry in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        members = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
    masked = ("metadata.yaml", "provenance/metadata.yaml", "provenance/action/action.yaml")
    for name in masked:
        members[name] = QZA_CLOCK.sub(lambda m: m.group(0).split(b":")[0], members[name])
    # checksums.md5 holds the md5s of the masked files: compare the others' lines
    members["checksums.md5"] = b"".join(line for line in members["checksums.md5"].splitlines(True)
                                        if not line.rstrip().endswith(tuple(n.encode() for n in masked)))
    return members


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")


def test_a_rerun_gives_byte_identical_artifacts(tmp_path):
    data = small_ibd(tmp_path)
    out = tmp_path / "results"
    run_chain(data, out)
    first = tmp_path / "first"
    out.rename(first)
    run_chain(data, out)

    before, after = files(first), files(out)
    clock = sorted(name for name in before if CLOCK_FILES.search(name))
    assert sorted(set(before) - set(clock)) == sorted(name for name in after if not CLOCK_FILES.search(name))
    assert [name for name in clock if name.endswith(".json")] == ["models/finetune/timing.json",
                                                                  "models/pretrain/timing.json"]
    assert json.loads(before["models/pretrain/timing.json"].read_text())["wall_time_s"] > 0
    archives = [name for name in before if name.endswith(".qza")]
    assert len(archives) == 2 and len(before) > 40
    differing = [name for name in before
                 if name not in clock and name not in archives
                 and before[name].read_bytes() != after[name].read_bytes()]
    assert differing == []
    for name in archives:
        assert before[name].read_bytes() != after[name].read_bytes()  # new UUIDs, as QIIME 2 wants
        assert qza_members(before[name]) == qza_members(after[name]), name
    # The checkpoints are among the identical files: weights, optimizer and RNG states, and the
    # paths of their own folder (the same results folder gives the same paths).
    # Fine-tuning trains the default seed ensemble of two: each member's checkpoints.
    assert {"models/pretrain/checkpoints/last.ckpt", "models/finetune/members/m0/checkpoints/best.ckpt",
            "models/finetune/members/m1/checkpoints/best.ckpt"} <= set(before)


def test_the_rarefied_table_and_its_qza_payload_are_the_same_bytes(tmp_path, monkeypatch):
    """The BIOM creation date is $SOURCE_DATE_EPOCH (or 1970), not the clock, in rarefied/table.biom
    and in the FeatureTable .qza's feature-table.biom alike."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    write_biom(csr_to_table(sp.csr_matrix([[1, 0], [2, 3]]), ["s1", "s2"], ["f1", "f2"]), tmp_path / "t.biom")
    with h5py.File(tmp_path / "t.biom") as fh:
        assert fh.attrs["creation-date"] == "1970-01-02T00:00:00"
    payload = feature_table(tmp_path / "t.biom")["feature-table.biom"]
    (tmp_path / "p.biom").write_bytes(payload)
    with h5py.File(tmp_path / "p.biom") as fh:
        assert fh.attrs["creation-date"] == "1970-01-02T00:00:00"
    shutil.copy(tmp_path / "t.biom", tmp_path / "again.biom")
    assert feature_table(tmp_path / "again.biom") == feature_table(tmp_path / "t.biom")
