"""The workflow's logic (aam.workflow) without Snakemake: targets, settings files, pretraining
sources, corpus resolution, the training layout and its SLURM resources, and the config checks that
stop a bad config before the DAG is built. Expected values are written out by hand from the config."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from aam import pretrained
from aam.config import check_config
from aam.errors import InputError
from aam.workflow import commands, resources, sequences, settings, sources, targets

REPO = Path(__file__).resolve().parents[1]
BUNDLED = str(REPO / "src" / "aam" / "pretrained" / "gg13_8_v4_small")


def demo(tmp_path: Path, **overrides) -> dict:
    """The demo config, validated (defaults filled), results under tmp_path; top-level keys replaced."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(overrides, results=str(tmp_path / "res"))
    return check_config(config, where="demo")


def single_split_demo(tmp_path: Path, **overrides) -> dict:
    """The demo without evaluate.cv: its runs trained and scored on the single split."""
    evaluate = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["evaluate"]
    evaluate.pop("cv")
    return demo(tmp_path, evaluate=evaluate, **overrides)


def with_corpus(tmp_path: Path) -> dict:
    """The demo with a corpus of three studies (two on the corpus's tree, one on its own) and runs
    that fine-tune from it, from the bundled encoder continued on the study, and from scratch."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["pretrain_corpus"] = {
        "gut": {
            "tree": "corpus.nwk",
            "depth": 500,
            "studies": {
                "a": {"table": "a.biom", "metadata": "a.tsv"},
                "b": {"table": "b.biom", "metadata": "b.tsv", "depth": 2000, "sequences": "b.fasta"},
                "c": {"table": "c.biom", "metadata": "c.tsv", "tree": "c.nwk"},
            },
            "runs": {"all": {}, "no_a": {"exclude": ["a"]}},
        }
    }
    runs = config["aam"]["runs"]
    runs["corpus"] = copy.deepcopy(runs["scratch"]) | {"pretrain": {"from": "corpus", "corpus": "gut",
                                                                      "run": "no_a"}}
    runs["adapted"] = copy.deepcopy(runs["bundled"]) | {"pretrain": {"from": "bundled",
                                                                       "continue_on_study": True}}
    config["results"] = str(tmp_path / "res")
    return check_config(config, where="corpus")


# --- targets ---


def test_final_targets_of_the_demo(tmp_path):
    """The demo's: the folds' summary and the leaderboard; without evaluate.cv, each run's evaluation
    on the split and their comparison."""
    config = demo(tmp_path, qiime2={"export": False})  # its .qza files: test_qiime2_artifacts_of_the_demo
    res = f"{tmp_path}/res"
    ibd = f"{res}/ibd2538"
    data = [
        f"{ibd}/rarefied/table.biom",
        f"{ibd}/unifrac/unweighted.tsv",
        f"{ibd}/unifrac/weighted_normalized.tsv",
        f"{ibd}/unifrac/pcoa_unweighted.png",
        f"{ibd}/unifrac/pcoa_weighted_normalized.png",
        f"{ibd}/unifrac/faith_pd.tsv",
    ]
    sequences = [
        f"{res}/sequences/gg13_8_v4_3k/eval/contrastive_small/metrics.json",
        f"{res}/sequences/gg13_8_v4_3k/eval/vq_small/metrics.json",
        f"{res}/sequences/gg13_8_v4_3k/classify/contrastive_small/taxonomy.tsv",  # labelled: contrastive only
    ]
    assert targets.final_targets(config) == [*data, f"{ibd}/cv_summary/ibd/summary.json", *sequences,
                                             f"{res}/benchmark/leaderboard.tsv", f"{res}/summary.html"]
    config = single_split_demo(tmp_path, qiime2={"export": False})
    expected = [
        f"{ibd}/rarefied/table.biom",
        f"{ibd}/unifrac/unweighted.tsv",
        f"{ibd}/unifrac/weighted_normalized.tsv",
        f"{ibd}/unifrac/pcoa_unweighted.png",
        f"{ibd}/unifrac/pcoa_weighted_normalized.png",
        f"{ibd}/unifrac/faith_pd.tsv",
        f"{ibd}/eval/pretrained/ibd/metrics.json",
        f"{ibd}/eval/scratch/ibd/metrics.json",
        f"{ibd}/eval/bundled/ibd/metrics.json",
        f"{ibd}/comparison/comparison.tsv",
        f"{res}/sequences/gg13_8_v4_3k/eval/contrastive_small/metrics.json",
        f"{res}/sequences/gg13_8_v4_3k/eval/vq_small/metrics.json",
        f"{res}/sequences/gg13_8_v4_3k/classify/contrastive_small/taxonomy.tsv",  # labelled: contrastive only
        f"{res}/summary.html",
    ]
    assert targets.final_targets(config) == expected


def test_final_targets_with_cross_validation_predict_and_a_corpus(tmp_path):
    config = with_corpus(tmp_path)
    config["evaluate"]["cv"] = {"folds": 2, "repeats": 1, "val_fraction": 0.15}
    entry = {"dataset": "ibd2538", "run": "scratch", "target": "ibd", "table": "t.biom"}
    config["predict"] = {"again": entry}
    found = targets.final_targets(config)
    res = f"{tmp_path}/res"
    assert f"{res}/ibd2538/cv_summary/ibd/summary.json" in found
    assert f"{res}/ibd2538/predict/again/predictions.tsv" in found
    assert [t for t in found if t.startswith(f"{res}/corpus/")] == [f"{res}/corpus/gut/all/model.json",
                                                     f"{res}/corpus/gut/no_a/model.json"]
    assert targets.cv_folds(config) == ["r0f0", "r0f1"]
    assert targets.cv_fold_evaluations(config, "ibd2538", "ibd")[:2] == [
        f"{res}/ibd2538/cv/r0f0/eval/pretrained/ibd/metrics.json",
        f"{res}/ibd2538/cv/r0f0/eval/scratch/ibd/metrics.json",
    ]
    assert targets.scoped(config, "ibd2538", "r0f1", "splits.tsv") == f"{res}/ibd2538/cv/r0f1/splits.tsv"
    assert targets.scoped(config, "ibd2538", None, "splits.tsv") == f"{res}/ibd2538/splits.tsv"
    assert targets.splits_file(config, "ibd2538", None) == f"{res}/ibd2538/split/splits.tsv"
    assert targets.splits_file(config, "ibd2538", "r0f1") == f"{res}/ibd2538/cv/split/r0/r0f1.tsv"
    assert targets.splits_file(config, "ibd2538", "r12f3") == f"{res}/ibd2538/cv/split/r12/r12f3.tsv"
    assert f"{res}/ibd2538/cv/split/r0/summary.tsv" in targets.summary_inputs(config)


def test_targets_without_runs_plan_no_evaluation_and_say_so(tmp_path):
    config = single_split_demo(tmp_path, aam={"runs": {}}, sequences={})
    found = targets.final_targets(config)
    assert not [t for t in found if "/eval/" in t or "comparison" in t]
    assert "no model is trained" in targets.runless_targets_warning(config)
    assert targets.runless_targets_warning(single_split_demo(tmp_path)) is None
    # with cross-validation the baselines alone are cross-validated: nothing to warn of
    assert targets.runless_targets_warning(demo(tmp_path, aam={"runs": {}})) is None


def test_the_results_page_reads_every_evaluation_and_knows_the_class_column(tmp_path):
    folds = targets.summary_plan(demo(tmp_path))  # the demo's page: the folds and the leaderboard
    ibd = folds["datasets"]["ibd2538"]
    assert folds["leaderboard"] and ibd["cv"] == ["ibd"] and ibd["cv_repeats"] == 1
    assert ibd["evaluations"] == [] and not ibd["comparison"]
    config = single_split_demo(tmp_path)
    plan = targets.summary_plan(config)
    assert plan["datasets"]["ibd2538"]["class_column"] == "ibd"
    assert plan["datasets"]["ibd2538"]["evaluations"] == [["pretrained", "ibd"], ["scratch", "ibd"],
                                                          ["bundled", "ibd"]]
    assert plan["sequences"] == {"gg13_8_v4_3k": ["contrastive_small", "vq_small"]}
    inputs = targets.summary_inputs(config)
    assert f"{tmp_path}/res/ibd2538/eval/bundled/ibd/metrics.json" in inputs
    assert f"{tmp_path}/res/ibd2538/rarefied/dropped.tsv" in inputs


def test_a_text_collection_gets_vq_runs_only(tmp_path):
    config = demo(tmp_path)
    config["sequences"]["text"] = {"text": "genome.txt"}
    assert targets.seq_runs_for(config, "text") == ["vq_small"]
    assert sequences.runs_of_kind(config, "contrastive") == ["contrastive_small"]
    assert sequences.prepare_sources_arg(config, "text") == "--text genome.txt"


def test_target_and_predict_lookups_name_what_is_wrong(tmp_path):
    config = demo(tmp_path)
    assert targets.target_config(config, "ibd2538", "ibd")["column"] == "ibd"
    with pytest.raises(InputError, match="dataset ibd2538 has no target named age"):
        targets.target_config(config, "ibd2538", "age")
    config["predict"] = {"again": {"dataset": "ibd2538", "run": "scratch", "target": "ibd", "table": "t.biom",
                                   "seed": 7}}
    assert targets.predict_seed(config, "again", "ibd2538") == 7
    assert targets.predict_inputs(config, "again", "ibd2538")["model.json"] == (
        f"{tmp_path}/res/ibd2538/models/scratch/finetune/ibd/model.json")
    with pytest.raises(InputError, match="predict/again belongs to dataset ibd2538, not other"):
        targets.predict_model_dir(config, "again", "other")


# --- settings ---


def test_short_settings_are_inline_and_long_ones_a_file_named_by_their_hash(tmp_path):
    import hashlib

    config = {"results": str(tmp_path / "res")}
    assert settings.settings_arg(config, {"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    long = {"key": "x" * 200}
    path = Path(settings.settings_arg(config, long))
    text = json.dumps(long, sort_keys=True, separators=(",", ":"))
    assert path == tmp_path / "res" / ".settings" / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    assert path.read_text() == text + "\n"
    stamp = path.stat().st_mtime_ns
    assert settings.settings_arg(config, dict(long)) == str(path)  # same settings, same file, not rewritten
    assert path.stat().st_mtime_ns == stamp
    assert settings.settings_arg(config, {"key": "y" * 200}) != str(path)
    assert len(list((tmp_path / "res" / ".settings").iterdir())) == 2  # no temporary file left


def test_stage_sections_leave_out_what_changes_no_result(tmp_path):
    config = demo(tmp_path)
    section = settings.baseline_settings(config)
    assert "n_jobs" not in section and section["random_forest"]["n_estimators"] == 500
    assert "pretrain_val_fraction" not in settings.split_settings(config)
    assert set(settings.aam_run_settings(config, "scratch", "data", "model", "finetune")) == {
        "data", "model", "finetune"}
    assert "classify" not in sequences.train_settings(config, "contrastive_small")
    assert settings.classes_arg({"name": "t"}) == ""
    assert settings.classes_arg({"classes": ["b", "a"]}) == '["b","a"]'


# --- pretraining sources ---


def test_where_each_run_s_encoder_comes_from(tmp_path):
    config = with_corpus(tmp_path)
    res = f"{tmp_path}/res"
    study = f"{res}/ibd2538/models/pretrained/pretrain"
    assert sources.pretrained_dir(config, "ibd2538", "pretrained") == study
    assert sources.pretrained_inputs(config, "ibd2538", "pretrained") == [f"{study}/model.safetensors",
                                                                          f"{study}/model.json"]
    assert sources.pretrained_dir(config, "ibd2538", "scratch") is None
    assert sources.pretrained_inputs(config, "ibd2538", "scratch") == []
    assert commands.pretrain_dir_arg(config, "ibd2538", "scratch") == ""
    assert sources.pretrained_dir(config, "ibd2538", "corpus") == f"{res}/corpus/gut/no_a"
    assert sources.pretrained_dir(config, "ibd2538", "bundled") == BUNDLED
    assert commands.pretrain_dir_arg(config, "ibd2538", "bundled") == f"--pretrain-dir {BUNDLED}"
    # continue_on_study: pretrain starts from the bundled encoder; finetune from the study's pretraining
    adapted = f"{res}/ibd2538/models/adapted/pretrain"
    assert sources.init_inputs(config, "adapted") == [f"{BUNDLED}/model.safetensors", f"{BUNDLED}/model.json"]
    assert commands.init_dir_arg(config, "adapted") == f"--init-dir {BUNDLED}"
    assert commands.init_dir_arg(config, "pretrained") == ""
    assert sources.init_inputs(config, "pretrained") == []
    assert sources.pretrained_dir(config, "ibd2538", "adapted") == adapted


def test_pretraining_history_is_read_where_the_encoder_has_one(tmp_path):
    config = with_corpus(tmp_path)
    res = f"{tmp_path}/res"
    assert sources.pretrain_history_inputs(config, "ibd2538", "pretrained") == [
        f"{res}/ibd2538/models/pretrained/pretrain/metrics.csv"]
    assert sources.pretrain_history_inputs(config, "ibd2538", "scratch") == []
    shipped = (Path(BUNDLED) / "metrics.csv").exists()
    assert sources.pretrain_history_inputs(config, "ibd2538", "bundled") == (
        [f"{BUNDLED}/metrics.csv"] if shipped else [])
    # continued on the study: the study's own pretraining writes one (not there yet at planning time)
    assert sources.pretrain_history_inputs(config, "ibd2538", "adapted") == [
        f"{res}/ibd2538/models/adapted/pretrain/metrics.csv"]


# --- corpus resolution ---


def test_corpus_studies_take_the_corpus_defaults_and_runs_their_exclusions(tmp_path):
    config = with_corpus(tmp_path)
    assert sources.corpus_study(config, "gut", "a") | {} == {
        "table": "a.biom", "metadata": "a.tsv", "sequences": None, "tree": "corpus.nwk", "depth": 500}
    assert sources.corpus_study(config, "gut", "b")["depth"] == 2000
    assert sources.corpus_study_inputs(config, "gut", "b") == {
        "table": "b.biom", "tree": "corpus.nwk", "metadata": "b.tsv", "sequences": "b.fasta"}
    assert sources.corpus_run_studies(config, "gut", "all") == ["a", "b", "c"]
    assert sources.corpus_run_studies(config, "gut", "no_a") == ["b", "c"]
    res = f"{tmp_path}/res/corpus/gut"
    assert sources.corpus_studies(config, "gut", "no_a") == [
        {"name": "b", "tokens_dir": f"{res}/studies/b/tokens", "tree": "corpus.nwk", "depth": 2000},
        {"name": "c", "tokens_dir": f"{res}/studies/c/tokens", "tree": "c.nwk", "depth": 500},
    ]
    assert sources.corpus_trees(config, "gut", "all") == ["c.nwk", "corpus.nwk"]
    assert sources.corpus_pretrain_inputs(config, "gut", "no_a")[:2] == [
        f"{res}/studies/b/tokens/features.parquet", f"{res}/studies/b/tokens/samples.parquet"]
    assert sources.corpus_tokenize_settings(config, "gut") == {"max_bp": 150}
    assert sources.corpus_ingest_settings(config, "gut") == {
        "max_missing_tree_fraction": 0.1, "max_missing_sequence_fraction": 0.2}


# --- training layout and resources ---


def test_one_process_trains_unless_the_trainer_asks_for_more():
    assert resources.training_layout({}) == (1, 1)
    assert resources.training_layout({"devices": "auto", "num_nodes": 1}) == (1, 1)
    assert resources.training_resources({}, gpus_available=1) == {
        "gpu": 1, "gres": "gpu:1", "nodes": 1, "tasks": 0, "tasks_per_node": 0, "tasks_per_gpu": 0,
        "mpi": 0}


def test_without_a_gpu_here_training_jobs_reserve_none_and_take_the_configured_threads():
    config = {"training": {"threads": 3, "gpus": 0}}
    assert resources.training_resources({"devices": 2}, gpus_available=0)["gpu"] == 0
    assert resources.training_resources({"accelerator": "cpu"}, gpus_available=4)["gpu"] == 0
    assert resources.training_resources({"accelerator": "cpu"}, gpus_available=4)["gres"] == ""
    assert resources.gpus_here(config) == 0 and resources.gpus_here({"training": {"gpus": 2}}) == 2
    assert resources.inference_gpu(config) == 0 and resources.inference_gpu({"training": {"gpus": 2}}) == 1
    wc = SimpleNamespace(run="r")
    assert resources.threads_param(config, lambda w: {})(wc) == 3
    assert resources.threads_param(config, lambda w: {"num_threads": 5})(wc) == 5
    params = resources.resource_params(config, lambda w: {"devices": 2})
    assert {key: fn(wc) for key, fn in params.items()} == resources.training_resources({"devices": 2}, 0)


def test_local_gpus_are_those_cuda_visible_devices_lists(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert resources.local_gpus() == 2
    for hidden in ("", "-1", "NoDevFiles"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert resources.local_gpus() == 0


def test_data_parallel_layouts_ask_for_gpus_per_node_and_one_task_per_process():
    assert resources.training_resources({"devices": 4, "num_nodes": 2}, gpus_available=0) == {
        "gpu": 0, "gres": "gpu:4", "nodes": 2, "tasks": 0, "tasks_per_node": 4, "tasks_per_gpu": 0,
        "mpi": "srun"}
    # one process per node: the plugin takes tasks_per_node only above 1, so tasks = nodes
    assert resources.training_resources({"devices": 1, "num_nodes": 3}, gpus_available=0) == {
        "gpu": 0, "gres": "gpu:1", "nodes": 3, "tasks": 3, "tasks_per_node": 0, "tasks_per_gpu": 0,
        "mpi": "srun"}


def test_trainer_sections_of_each_kind_of_run(tmp_path):
    config = with_corpus(tmp_path)
    config["pretrain_corpus"]["gut"]["runs"]["all"]["pretrain"]["trainer"] = {"devices": 2}
    assert resources.aam_trainer(config, "pretrained", "pretrain")["max_epochs"] == 3
    assert resources.corpus_trainer(config, "gut", "all") == {"devices": 2}
    assert resources.seq_trainer(config, "vq_small")["batch_size"] == 128


# --- config checks (run by check_config, before any rule) ---


def bad(config: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        check_config(config, where="c.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("c.yaml: ")


def test_continue_on_study_needs_an_encoder_to_continue_from(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["aam"]["runs"]["scratch"]["pretrain"] = {"continue_on_study": True}
    bad(config, "aam/runs/scratch/pretrain: continue_on_study needs from: corpus or bundled")


def test_from_corpus_must_name_a_corpus_run_of_the_config(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["aam"]["runs"]["scratch"]["pretrain"] = {"from": "corpus", "corpus": "gut", "run": "all"}
    bad(config, "aam/runs/scratch/pretrain: from: corpus needs corpus and run naming an entry of "
                "pretrain_corpus (got corpus='gut', run='all')")


def test_an_unknown_bundled_encoder_is_named_with_those_there_are(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["aam"]["runs"]["bundled"]["pretrain"]["bundled"] = "nope"
    bad(config, f"aam/runs/bundled/pretrain: bundled: no bundled encoder 'nope'; bundled: "
                f"{pretrained.available()}")


def test_a_dataset_named_corpus_is_an_error(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"]["corpus"] = config["datasets"]["ibd2538"]
    bad(config, "datasets: the name 'corpus' is taken by results/corpus/")


def test_stratifying_by_a_target_the_dataset_lacks_is_an_error(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["split"]["stratify"] = "age"
    bad(config, "datasets/ibd2538: split.stratify: no target named 'age'")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["runs"]["no_a"].update(exclude=["zz"]),
         "pretrain_corpus/gut/runs/no_a/exclude: no studies ['zz']"),
        (lambda c: c["runs"]["no_a"].update(exclude=["a", "b", "c"]),
         "pretrain_corpus/gut/runs/no_a: exclude leaves no study"),
        (lambda c: c.update(tree=None), "pretrain_corpus/gut: study a has no tree, and the corpus none"),
    ],
)
def test_corpus_runs_are_checked_before_the_dag(tmp_path, change, message):
    config = with_corpus(tmp_path)
    change(config["pretrain_corpus"]["gut"])
    bad(config, message)


def test_qiime2_artifacts_of_the_demo(tmp_path):
    """qiime2.export: the core-metrics names per dataset, three files per evaluation and predict
    entry (probabilities for classification only), the taxonomy of each contrastive run; none without
    it. With evaluate.cv (the demo's) no single-split evaluation is exported, or trained for it."""
    from aam.workflow import qiime2

    new = {"new": {"dataset": "ibd2538", "run": "scratch", "target": "ibd", "table": "new.biom"}}
    folds = demo(tmp_path, predict=new)
    cv_files = qiime2.dataset_artifacts(folds, "ibd2538")
    assert not any("/ibd2538/qiime2/eval/" in f for f in cv_files)
    assert any("/ibd2538/qiime2/predict/new/" in f for f in cv_files)
    assert not any("/ibd2538/eval/" in f for f in targets.final_targets(folds))
    evaluate = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["evaluate"]
    evaluate.pop("cv")
    config = demo(tmp_path, predict=new, evaluate=evaluate)
    res = f"{tmp_path}/res"
    files = qiime2.dataset_artifacts(config, "ibd2538")
    assert targets.unifrac_format(config, "ibd2538") == "tsv"  # 470 samples
    base = [f"{res}/ibd2538/qiime2/{name}.qza" for name in (
        "rarefied_table", "unweighted_unifrac_distance_matrix", "unweighted_unifrac_pcoa_results",
        "weighted_normalized_unifrac_distance_matrix", "weighted_normalized_unifrac_pcoa_results",
        "faith_pd_vector")]
    assert files[:6] == base
    per_source = [f"{res}/ibd2538/qiime2/{source}/{name}.qza"
                  for source in ("eval/pretrained/ibd", "eval/scratch/ibd", "eval/bundled/ibd", "predict/new")
                  for name in ("predictions", "embeddings", "probabilities")]
    assert files[6:] == per_source
    assert qiime2.sequence_artifacts(config, "gg13_8_v4_3k") == [
        f"{res}/sequences/gg13_8_v4_3k/qiime2/classify/contrastive_small/taxonomy.qza"]
    assert set(files) <= set(targets.final_targets(config))
    assert qiime2.prediction_type(config, "ibd2538", "predict/new") == "SampleData[ClassifierPredictions]"
    assert qiime2.prediction_files(config, "ibd2538", "eval/scratch/ibd") == {
        "source": f"{res}/ibd2538/eval/scratch/ibd/predictions.tsv",
        "provenance": f"{res}/ibd2538/eval/scratch/ibd/metrics.json"}
    assert qiime2.embedding_files(config, "ibd2538", "eval/scratch/ibd") == {
        "source": f"{res}/ibd2538/models/scratch/finetune/ibd/embeddings.parquet",
        "provenance": f"{res}/ibd2538/models/scratch/finetune/ibd/model.json"}
    assert qiime2.embedding_files(config, "ibd2538", "predict/new")["provenance"] == \
        f"{res}/ibd2538/predict/new/predict.json"
    binary = demo(tmp_path, unifrac={**config["unifrac"], "format": "hdf5"})
    assert not any("distance_matrix" in f for f in qiime2.dataset_artifacts(binary, "ibd2538"))
    off = demo(tmp_path, qiime2={"export": False})
    assert qiime2.dataset_artifacts(off, "ibd2538") == qiime2.sequence_artifacts(off, "gg13_8_v4_3k") == []
