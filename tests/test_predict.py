"""`aam predict`: a fine-tuned model applied to a table gives, for the training table's own samples,
exactly what fine-tuning predicted for them; new features are counted; bad input is one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from aam.cli import main
from aam.data.train_features import TRAIN_FEATURES
from aam.io.biom import csr_to_table, write_biom
from aam.io.embeddings import read_embeddings
from aam.io.model_files import export_model, load_model
from aam.models.ensemble import EnsemblePredictor

N_SAMPLES, N_FEATURES = 48, 24
SETTINGS = {
    "data": {"asv_limit": 12, "batch_size": 4},
    "model": {"embedding_dim": 16, "layers": 1, "heads": 2, "ff_dim": 32},
    "pretrain": {"enabled": False},
    "finetune": {"trainer": {"max_epochs": 1, "limit_train_batches": 3, "warmup_steps": 1,
                             "patience": None, "progress_bar": False},
                 "forest_member": {}},  # opt-in: served here so that predict covers both members
}


def _dna(rng, n):
    return "".join(rng.choice(list("ACGT"), size=n))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny study through rarefy -> tokenize -> finetune, and its table as BIOM."""
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(3)
    samples = [f"2538.{10000 + i}" for i in range(N_SAMPLES)]
    seqs = [_dna(rng, int(rng.integers(30, 41))) for _ in range(N_FEATURES)]
    label = np.where(np.arange(N_SAMPLES) % 2 == 0, "Crohns", "Control")
    counts = rng.poisson(6, size=(N_SAMPLES, N_FEATURES)) * (rng.random((N_SAMPLES, N_FEATURES)) < 0.6)
    counts[label == "Crohns", 0] += 30
    counts[:4] //= 10  # four shallow samples: below the depth, left out everywhere
    counts[:, N_FEATURES - 1] = 0
    counts[-3:, N_FEATURES - 1] = 9  # one feature only in test samples: unseen in training
    ingest = root / "ingest"
    ingest.mkdir()
    pq.write_table(pa.table({"feature_id": seqs, "sequence": seqs}), ingest / "features.parquet")
    rows, cols = np.nonzero(counts)
    pq.write_table(pa.table({"sample": [samples[i] for i in rows], "feature": [seqs[j] for j in cols],
                             "count": counts[rows, cols].astype(np.int64)}), ingest / "counts.parquet")
    pd.DataFrame({"sample": samples, "ibd": label}).to_parquet(ingest / "samples.parquet", index=False)
    split = ["train"] * 32 + ["val"] * 8 + ["test"] * 8
    pd.DataFrame({"sample": samples, "split": split}).to_csv(root / "splits.tsv", sep="\t", index=False)
    depth = 60
    assert main(["rarefy", "--table", str(ingest / "counts.parquet"), "--depth", str(depth), "--seed", "7",
                 "--out", str(root / "rarefied.biom"), "--dropped", str(root / "dropped.tsv")]) == 0
    assert main(["tokenize", "--features", str(ingest / "features.parquet"), "--counts",
                 str(ingest / "counts.parquet"), "--rarefied", str(root / "rarefied.biom"),
                 "--out-dir", str(root / "tokens"), "--settings", '{"max_bp": 36}']) == 0
    model = root / "model"
    assert main(["finetune", "--tokens-dir", str(root / "tokens"), "--splits", str(root / "splits.tsv"),
                 "--samples", str(ingest / "samples.parquet"), "--target-column", "ibd",
                 "--task", "classification", "--settings", json.dumps(SETTINGS), "--seed", "7",
                 "--threads", "1", "--out-dir", str(model)]) == 0
    write_biom(csr_to_table(sp.csr_matrix(counts), samples, seqs), root / "table.biom")
    return {"root": root, "model": model, "counts": counts, "samples": samples, "seqs": seqs,
            "split": np.array(split), "depth": depth}


def _predict(t, out, *extra):
    return main(["predict", "--model-dir", str(t["model"]), "--table", str(t["root"] / "table.biom"),
                 "--threads", "1", "--out-dir", str(out), *extra])


def test_predictions_on_the_training_table_equal_finetunes_own(trained, tmp_path):
    out = tmp_path / "pred"
    assert _predict(trained, out) == 0
    ours = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample": str}).set_index("sample")
    theirs = pd.read_csv(trained["model"] / "predictions.tsv", sep="\t", dtype={"sample": str})
    assert set(theirs["split"]) == {"val", "test"} and len(theirs) > 10
    mine = ours.loc[theirs["sample"]]
    assert (mine["y_pred"].to_numpy() == theirs["y_pred"].to_numpy()).all()
    for c in ("prob_Control", "prob_Crohns"):
        np.testing.assert_allclose(mine[c].to_numpy(), theirs[c].to_numpy(), atol=2e-6)
    # the sample embeddings too (same layout, same vectors), for train samples as well
    ids, _, vectors = read_embeddings(out / "embeddings.parquet")
    fids, fsplit, fvectors = read_embeddings(trained["model"] / "embeddings.parquet")
    pos = {s: i for i, s in enumerate(ids)}
    np.testing.assert_allclose(vectors[[pos[s] for s in fids]], fvectors, atol=1e-5)
    assert set(fsplit) == {"train", "val", "test"}

    summary = json.loads((out / "predict.json").read_text())
    counts, depth = trained["counts"], trained["depth"]
    deep = counts.sum(axis=1) >= depth
    assert summary["n_predicted"] == int(deep.sum()) == len(ours)
    assert sorted(summary["left_out"]) == sorted(np.array(trained["samples"])[~deep]) and (~deep).sum() >= 4
    train_rows = deep & (trained["split"] == "train")
    seen = counts[train_rows].sum(axis=0) > 0
    present = counts[deep].sum(axis=0) > 0
    assert summary["n_features"] == int(present.sum())
    assert summary["n_unseen_features"] == int((present & ~seen).sum()) >= 1
    expected = counts[deep][:, present & ~seen].sum() / counts[deep].sum()
    assert summary["unseen_read_fraction"] == pytest.approx(expected)
    assert summary["provenance"]["seed"] == 7 and summary["depth"] == depth


@pytest.mark.parametrize("key", ["sequence", "feature"])
def test_a_readout_over_every_asv_predicts_new_tables_as_fine_tuning_did(trained, tmp_path, key):
    """asv_readout_scope: all reads the ASVs beyond data.asv_limit (12 of up to 23 here): `aam
    predict` must hand the model every ASV of each sample (and, keyed by feature, their IDs' keys),
    as fine-tuning's batches did."""
    root = trained["root"]
    settings = json.loads(json.dumps(SETTINGS))
    settings["model"].update({"asv_readout": "clr", "asv_readout_scope": "all", "asv_readout_key": key})
    model = tmp_path / "model"
    assert main(["finetune", "--tokens-dir", str(root / "tokens"), "--splits", str(root / "splits.tsv"),
                 "--samples", str(root / "ingest" / "samples.parquet"), "--target-column", "ibd",
                 "--task", "classification", "--settings", json.dumps(settings), "--seed", "7",
                 "--threads", "1", "--out-dir", str(model)]) == 0
    config = json.loads((model / "model.json").read_text())["config"]
    assert (config["asv_readout_scope"], config["asv_readout_key"]) == ("all", key)
    assert (trained["counts"] > 0).sum(axis=1).max() > settings["data"]["asv_limit"]
    out = tmp_path / "pred"
    assert main(["predict", "--model-dir", str(model), "--table", str(root / "table.biom"),
                 "--threads", "1", "--out-dir", str(out)]) == 0
    ours = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample": str}).set_index("sample")
    theirs = pd.read_csv(model / "predictions.tsv", sep="\t", dtype={"sample": str})
    for c in ("prob_Control", "prob_Crohns"):
        np.testing.assert_allclose(ours.loc[theirs["sample"], c].to_numpy(), theirs[c].to_numpy(), atol=2e-6)
    # the readout learned coefficients (training moved it off its zero start)
    from safetensors.torch import load_file
    weights = load_file(model / "model.safetensors")
    readout = [v for k, v in weights.items() if k.endswith("asv_readout.weight")]
    assert readout and float(readout[0].abs().sum()) > 0


def test_ids_that_are_not_dna_take_sequences_and_new_features_are_counted(trained, tmp_path):
    root = tmp_path
    counts = np.concatenate([trained["counts"], np.zeros((N_SAMPLES, 1), dtype=np.int64)], axis=1)
    counts[10, -1] = 25  # a feature no model ever saw, in one sample
    ids = [f"ASV{j}" for j in range(N_FEATURES + 1)]
    seqs = trained["seqs"] + ["ACGT" * 9]
    (root / "seqs.fasta").write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs, strict=True)))
    frame = pd.DataFrame(counts.T, columns=trained["samples"])
    frame.insert(0, "#OTU ID", ids)
    frame.to_csv(root / "table.tsv", sep="\t", index=False)
    out = root / "pred"
    assert main(["predict", "--model-dir", str(trained["model"]), "--table", str(root / "table.tsv"),
                 "--sequences", str(root / "seqs.fasta"), "--threads", "1", "--out-dir", str(out)]) == 0
    assert _predict(trained, root / "plain") == 0
    def read(path):
        return pd.read_csv(path / "predictions.tsv", sep="\t", dtype={"sample": str}).set_index("sample")

    a = json.loads((out / "predict.json").read_text())
    b = json.loads((root / "plain" / "predict.json").read_text())
    assert a["n_unseen_features"] == b["n_unseen_features"] + 1
    # the linear member matches features by ID: it knows none of these (a warning says so),
    assert a["linear_member_read_fraction"] == 0.0 and b["linear_member_read_fraction"] > 0.9
    # so does the forest member (on here), by the features its trees split on
    assert a["forest_member_read_fraction"] == 0.0 and b["forest_member_read_fraction"] > 0.2
    # the neural members read sequences: alone, they predict the renamed table as the original
    model, meta = load_model(trained["model"])
    neural = root / "neural"
    neural.mkdir()
    shutil.copy(trained["model"] / TRAIN_FEATURES, neural / TRAIN_FEATURES)
    export_model(EnsemblePredictor.of(list(model.members)), neural,
                 extra={k: v for k, v in meta.items() if k not in ("model_class", "config")})
    sequences = ["--sequences", str(root / "seqs.fasta")]
    for table, folder, extra in ((root / "table.tsv", "ours", sequences),
                                 (trained["root"] / "table.biom", "theirs", [])):
        assert main(["predict", "--model-dir", str(neural), "--table", str(table), *extra, "--threads", "1",
                     "--out-dir", str(root / folder)]) == 0
    ours, plain = read(root / "ours"), read(root / "theirs")
    same = plain.index[plain.index != trained["samples"][10]]
    pd.testing.assert_frame_equal(ours.loc[same], plain.loc[same])


def test_bad_input_is_one_line(trained, tmp_path, capsys):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    (empty / "model.json").write_text("{}")
    assert main(["predict", "--model-dir", str(empty), "--table", str(trained["root"] / "table.biom"),
                 "--out-dir", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model.safetensors" in err[0] and str(empty) in err[0]

    garbage = tmp_path / "table.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert main(["predict", "--model-dir", str(trained["model"]), "--table", str(garbage),
                 "--out-dir", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(garbage) in err[0] and "not a feature table" in err[0]

    hashes = tmp_path / "hashes.tsv"
    hashes.write_text("#OTU ID\ts1\nabc123\t5\n")
    assert main(["predict", "--model-dir", str(trained["model"]), "--table", str(hashes),
                 "--out-dir", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not DNA sequences" in err[0]
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def _table_of(tmp_path, counts, seqs, samples, name="new.biom"):
    write_biom(csr_to_table(sp.csr_matrix(counts), samples, seqs), tmp_path / name)
    return tmp_path / name


def test_no_feature_in_common_with_training_is_an_error(trained, tmp_path, capsys):
    """Another amplicon region, say: every feature unseen. It exited 0 with an INFO line."""
    rng = np.random.default_rng(11)
    other = ["".join(rng.choice(list("ACGT"), size=35)) for _ in trained["seqs"]]
    table = _table_of(tmp_path, trained["counts"], other, trained["samples"])
    out = tmp_path / "pred"
    code = main(["predict", "--model-dir", str(trained["model"]), "--table", str(table),
                 "--out-dir", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"aam predict: error: {table}: none of its") and "training sample" in err[-1]
    assert not out.exists()


def _unseen_share(trained, tmp_path, n_new: int):
    """The training table with the reads of its `n_new` most abundant features moved to new ones."""
    rng = np.random.default_rng(5)
    order = np.argsort(-trained["counts"].sum(axis=0))
    seqs = list(trained["seqs"])
    for j in order[:n_new]:
        seqs[j] = "".join(rng.choice(list("ACGT"), size=35))
    return _table_of(tmp_path, trained["counts"], seqs, trained["samples"], name=f"new{n_new}.biom")


@pytest.mark.parametrize("threshold", [None, 0.95])
def test_a_share_of_unseen_reads_above_the_threshold_is_a_warning(trained, tmp_path, caplog, threshold):
    table = _unseen_share(trained, tmp_path, 12)
    out = tmp_path / "pred"
    extra = [] if threshold is None else ["--warn-unseen-fraction", str(threshold)]
    caplog.set_level("INFO")
    assert main(["predict", "--model-dir", str(trained["model"]), "--table", str(table), "--threads", "1",
                 "--out-dir", str(out), *extra]) == 0
    summary = json.loads((out / "predict.json").read_text())
    share = summary["unseen_read_fraction"]
    assert 0.5 < share < 0.95, share
    assert summary["warn_unseen_fraction"] == (0.5 if threshold is None else threshold)
    warnings = [r.message for r in caplog.records
                if r.levelname == "WARNING" and "no training sample had" in r.message]
    assert len(warnings) == (1 if threshold is None else 0)
    if warnings:
        assert f"{100 * share:.1f}%" in warnings[0] and "--warn-unseen-fraction" in warnings[0]


def test_the_unseen_share_is_recorded_even_without_the_training_list(trained, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained["model"], model, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    (model / "train_features.parquet").unlink()
    out = tmp_path / "pred"
    assert main(["predict", "--model-dir", str(model), "--table", str(trained["root"] / "table.biom"),
                 "--threads", "1", "--out-dir", str(out)]) == 0
    summary = json.loads((out / "predict.json").read_text())
    assert summary["unseen_read_fraction"] is None and summary["n_unseen_features"] is None


@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_a_damaged_model_file_is_one_line(trained, tmp_path, capsys, damage):
    """It printed a SafetensorError traceback; aam finetune --pretrain-dir already said it in one line."""
    import pickle

    model = tmp_path / "model"
    shutil.copytree(trained["model"], model, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    weights = model / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.write_bytes(pickle.dumps({"state_dict": {"w": [0.0] * 10}}))
    out = tmp_path / "pred"
    assert main(["predict", "--model-dir", str(model), "--table", str(trained["root"] / "table.biom"),
                 "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aam predict: error: {weights}: not a readable safetensors")
    assert not out.exists()


@pytest.mark.parametrize(("in_workflow", "named"), [(False, "(--sequences)"),
                                                    (True, "(predict.<name>.sequences)")])
def test_errors_name_the_flag_by_hand_and_the_config_key_in_the_workflow(trained, tmp_path, capsys,
                                                                         monkeypatch, in_workflow, named):
    from aam.errors import WORKFLOW_ENV

    monkeypatch.delenv(WORKFLOW_ENV, raising=False)
    if in_workflow:
        monkeypatch.setenv(WORKFLOW_ENV, "1")
    hashes = tmp_path / "hashes.tsv"
    hashes.write_text("#OTU ID\ts1\nabc123\t5\n")
    assert main(["predict", "--model-dir", str(trained["model"]), "--table", str(hashes),
                 "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"no representative sequences were given {named}"), err[-1]
