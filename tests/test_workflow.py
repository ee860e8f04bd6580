"""The Snakemake workflow as a user drives it: config validation, the DAG, rerun behaviour, profiles.

Each test runs `snakemake` in its own working directory with a copy of the demo config (or of
`.test/config.yaml`, the demo cut to a few training steps) whose paths point at the bundled data, so
tests never touch the repository's own results/ or .snakemake/.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aam.io.qza import read_archive

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from check_report import check_report, find_chromium  # noqa: E402
from helpers.workflow import (  # noqa: E402
    FAST_BASELINES,
    TEST_CONFIG,
    planned_rules,
    single_split,
    small_ibd,
    snakemake,
    write_config,
)


def test_unknown_config_key_is_an_error(tmp_path):
    write_config(tmp_path, bogus_key=1)
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "bogus_key" in result.stdout + result.stderr


def test_config_value_of_wrong_type_is_an_error(tmp_path):
    write_config(tmp_path, seed="forty-two")
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "forty-two" in result.stdout + result.stderr


def test_dry_run_lists_every_stage(tmp_path):
    write_config(tmp_path, evaluate=single_split())
    rules = planned_rules(snakemake(tmp_path, "-n"))
    stages = {"ingest", "split", "rarefy", "unifrac", "tokenize", "pretrain", "finetune", "evaluate"}
    assert stages | {"compare"} <= rules


def training_jobs(result: subprocess.CompletedProcess) -> dict[str, str]:
    """The planned training jobs' text (last of each rule) by rule name."""
    planned_rules(result)
    jobs = (result.stdout + result.stderr).split("rule ")
    return {job.split(":", 1)[0]: job for job in jobs
            if job.startswith(("pretrain:", "finetune:", "seq_train:", "seq_train_contrastive:"))}


def test_without_a_gpu_training_jobs_reserve_none_and_with_one_they_reserve_it(tmp_path):
    write_config(tmp_path, training={"threads": 1, "gpus": 0}, evaluate=single_split())
    result = snakemake(tmp_path, "-n", "-p")
    assert "Using workflow specific profile" in result.stdout + result.stderr
    jobs = training_jobs(result)
    assert {"pretrain", "finetune", "seq_train", "seq_train_contrastive"} <= set(jobs)
    for job in jobs.values():
        assert "gpu=0" in job and "--threads 1 " in job
        assert shell_line(job).startswith("aam ")  # local shell lines are plain `aam ...` commands
    write_config(tmp_path, training={"threads": 2, "gpus": 1}, evaluate=single_split())
    for job in training_jobs(snakemake(tmp_path, "-n", "-p", "--cores", "4")).values():
        assert "gpu=1" in job and "--threads 2 " in job  # the default profile allows gpu=1


def test_lint_reports_nothing(tmp_path):
    write_config(tmp_path)
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Lints for" not in result.stdout + result.stderr


def test_slurm_profile_dry_run_requests_gpus_for_training(tmp_path):
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n", "--workflow-profile", str(REPO / "workflow/profiles/slurm"))
    rules = planned_rules(result)
    assert {"pretrain", "finetune_cv"} <= rules


def test_a_multi_node_run_asks_slurm_for_gpus_per_node_and_one_task_per_gpu(tmp_path):
    config = yaml.safe_load(write_config(tmp_path, evaluate=single_split()).read_text())
    run = next(iter(config["aam"]["runs"]))
    config["aam"]["runs"][run]["pretrain"].setdefault("trainer", {}).update(devices=4, num_nodes=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "-n", "-p", "--workflow-profile", str(REPO / "workflow/profiles/slurm"))
    jobs = {job.split(":", 1)[0]: job for job in (result.stdout + result.stderr).split("rule ")[1:]}
    pretrain, finetune = jobs["pretrain"], jobs["finetune"]
    for text in ("gpu=0", "gres=gpu:4", "nodes=2", "tasks_per_node=4", "mpi=srun", "--signal=USR1@300"):
        assert text in pretrain, text
    # The fine-tuning of the same run keeps one process on one GPU; no srun on the shell line (the
    # stage starts its own job step: tests/test_slurm.py).
    assert "gres=gpu:1" in finetune and "mpi=0" in finetune
    assert all(not shell_line(job).startswith("srun") and shell_line(job).startswith("aam ")
               for job in (pretrain, finetune))


def shell_line(job: str) -> str:
    return re.search(r"Shell command: (.*)", job).group(1)


def test_datasets_sit_side_by_side(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = config["datasets"]["ibd2538"]
    write_config(tmp_path, datasets={"first": dict(demo), "second": dict(demo)})
    result = snakemake(tmp_path, "-n")
    planned_rules(result)
    text = result.stdout
    assert "results/first/ingest" in text and "results/second/ingest" in text


@pytest.mark.slow
def test_changed_depth_reruns_rarefy_and_dependents_not_ingest(tmp_path):
    write_config(tmp_path)
    rarefied = str(tmp_path / "results/ibd2538/rarefied/table.biom")
    done = snakemake(tmp_path, "--cores", "2", rarefied)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    unchanged = planned_rules(snakemake(tmp_path, "-n", rarefied))
    assert not unchanged & {"ingest", "rarefy"}

    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["rarefy"] = {**config.get("rarefy", {}), "depth": 1000}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rules = planned_rules(snakemake(tmp_path, "-n"))
    assert "rarefy" in rules
    assert "ingest" not in rules
    assert {"unifrac", "tokenize"} <= rules


def most_training_jobs_at_once(log: str) -> int:
    """The most training jobs running at the same time, from Snakemake's job starts and ends."""
    running, most, rule = set(), 0, None
    for line in log.splitlines():
        started = re.match(r"(?:local)?rule (\w+):", line)
        if started:
            rule = started.group(1)
        elif (jobid := re.match(r"\s+jobid: (\d+)", line)) and rule:
            if rule in ("pretrain", "finetune", "seq_train", "seq_train_contrastive"):
                running.add(jobid.group(1))
                most = max(most, len(running))
            rule = None
        elif finished := re.match(r"Finished jobid: (\d+)", line):
            running.discard(finished.group(1))
    return most


@pytest.mark.slow
def test_whole_workflow_runs_end_to_end_and_reports(tmp_path):
    write_config(tmp_path, TEST_CONFIG)
    done = snakemake(tmp_path, "--cores", "2")
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    # No GPU here: training jobs (one thread each, .test/config.yaml) run side by side on the 2 cores.
    assert most_training_jobs_at_once(done.stdout + done.stderr) == 2
    results = tmp_path / "results"
    metrics = json.loads(next(results.glob("ibd2538/eval/pretrained/ibd/metrics.json")).read_text())
    assert metrics  # the evaluate stage's own tests check its content
    bundled = json.loads((results / "ibd2538/models/bundled/finetune/ibd/model.json").read_text())
    assert bundled["pretrained"] and "gg13_8_v4_small" in bundled["pretrained_from"]
    assert (results / "ibd2538" / "comparison" / "comparison.tsv").read_text().count("\n") >= 3
    assert list((results / "sequences").glob("*/eval/*/metrics.json"))
    assert_qiime2_artifacts(results)
    # the stages' warnings of the run (e.g. one-class predictions) end Snakemake's console output
    warned = [line for log in (results / "logs").rglob("*.log") for line in log.read_text().splitlines()
              if " WARNING aam." in line]
    if warned:
        assert "Warnings of this run's stages" in done.stderr
        assert warned[0].split(": ", 1)[1] in done.stderr

    again = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # Same config and seed, trained again in a new process: identical predictions on CPU. The
    # fine-tuning of the pretrained run (from the pretraining already done); only its predictions
    # are asked for, so nothing downstream reruns (tests/test_reproducible.py reruns every stage,
    # pretraining included, and compares every artifact's bytes).
    predictions = [results / "ibd2538/models/pretrained/finetune/ibd/predictions.tsv"]
    before = [path.read_bytes() for path in predictions]
    retrained = snakemake(tmp_path, "--cores", "2", *map(str, predictions),  # targets before
                          "--forcerun", "finetune")
    assert retrained.returncode == 0, (retrained.stdout + retrained.stderr)[-3000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", retrained.stdout + retrained.stderr, re.MULTILINE))
    assert ran == {"finetune"}
    assert [path.read_bytes() for path in predictions] == before

    report = snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, (report.stdout + report.stderr)[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 100_000
    assert_report_opens_with_results(tmp_path / "report.html", results)
    if find_chromium() is not None:  # and the front page shows it without scrolling
        seen = check_report(tmp_path / "report.html", [(1280, 800)], out_dir=tmp_path / "shots")
        assert seen[0]["visible"], seen


def assert_qiime2_artifacts(results: Path) -> None:
    """qiime2.export wrote each artifact with its semantic type (tests/test_qza_export.py checks
    their formats)."""
    expected = {
        "ibd2538/qiime2/rarefied_table.qza": "FeatureTable[Frequency]",
        "ibd2538/qiime2/unweighted_unifrac_distance_matrix.qza": "DistanceMatrix",
        "ibd2538/qiime2/unweighted_unifrac_pcoa_results.qza": "PCoAResults",
        "ibd2538/qiime2/faith_pd_vector.qza": "SampleData[AlphaDiversity]",
        "ibd2538/qiime2/eval/pretrained/ibd/predictions.qza": "SampleData[ClassifierPredictions]",
        "ibd2538/qiime2/eval/pretrained/ibd/probabilities.qza": "SampleData[Probabilities]",
        "ibd2538/qiime2/eval/pretrained/ibd/embeddings.qza": "ImmutableMetadata",
        "sequences/gg13_8_v4_3k/qiime2/classify/contrastive_small/taxonomy.qza": "FeatureData[Taxonomy]",
    }
    for path, kind in expected.items():
        archive = read_archive(results / path)
        assert archive.type == kind and archive.checksum_mismatches() == [], path
    ids = pd.read_csv(results / "ibd2538/eval/pretrained/ibd/predictions.tsv", sep="\t", dtype=str)["sample"]
    predicted = read_archive(results / "ibd2538/qiime2/eval/pretrained/ibd/predictions.qza").data()
    assert predicted["predictions.tsv"].decode().split("\n")[1].split("\t")[0] == ids[0]


def assert_report_opens_with_results(report: Path, results: Path) -> None:
    """The report's front page (the workflow description) holds the headline table: each run's
    primary test metric beside the forest's, as comparison.tsv has them, then the split summary."""
    page = report.read_text()
    match = re.search(r"var workflow_desc = (\".*?\");\n", page)
    assert match, "no workflow description in the report"
    front = json.loads(match.group(1))
    assert 'id="headline-ibd2538"' in front and 'id="splits-ibd2538"' in front
    assert front.index('id="headline-ibd2538"') < front.index('id="splits-ibd2538"')
    assert front.index('id="headline-ibd2538"') < front.index("AAM Workflow ran on")
    table = front[front.index('id="headline-ibd2538"'):]
    table = table[: table.index("</table>")]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in table.split("<tr>")[2:]]
    comparison = pd.read_csv(results / "ibd2538" / "comparison" / "comparison.tsv", sep="\t")
    assert [(r[0], r[1]) for r in rows] == list(zip(comparison["target"], comparison["run"], strict=True))
    assert [r[4] for r in rows] == [f"{v:.3f}" for v in comparison["aam"]]
    assert [r[5] for r in rows] == [f"{v:.3f}" for v in comparison["random_forest"]]
    assert 'id="sequences-contrastive"' in front and "naive Bayes accuracy" in front
    assert 'id="sequences-taxonomy"' in front and "aam classify P / R / F" in front


def test_a_configfile_replaces_the_demo_config(tmp_path):
    write_config(tmp_path, sequences={}, seq_models={"runs": {}})
    rules = planned_rules(snakemake(tmp_path, "-n"))
    assert "ingest" in rules
    assert not any(rule.startswith("seq_") for rule in rules)


def shell_commands(text: str) -> list[str]:
    """The `Shell command: aam ...` lines of a dry run with -p, any launcher prefix (the srun that
    training rules add under SLURM) taken out."""
    return [re.sub(r"^Shell command: .*?(?=\baam [a-z-]+ --)", "Shell command: ", line)
            for line in text.splitlines() if line.startswith("Shell command:") and "aam " in line]


def cv_config(workdir: Path, folds: int = 3, **overrides) -> Path:
    """config/ibd_cv.yaml with absolute data paths and results under `workdir`."""
    config = yaml.safe_load((REPO / "config" / "ibd_cv.yaml").read_text())
    config["evaluate"]["cv"]["folds"] = folds
    config.update(overrides)
    for dataset in config["datasets"].values():
        for key in ("table", "tree", "metadata"):
            dataset[key] = str(REPO / dataset[key])
    config["results"] = str(workdir / "results")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_cv_dry_run_fans_out_the_folds(tmp_path):
    cv_config(tmp_path, folds=5)
    result = snakemake(tmp_path, "-n")
    rules = planned_rules(result)
    assert {"cv_split", "pretrain_split", "finetune_cv", "evaluate_cv", "baselines_cv", "cv_summary",
            "leaderboard"} <= rules
    assert not rules & {"finetune", "evaluate", "baselines", "compare"}  # the folds are the results
    text = result.stdout + result.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text, flags=re.MULTILINE))
    # 5 folds x 2 runs (pretrained, scratch), one pretraining for all folds, one baselines job per fold
    assert counts["finetune_cv"] == "10" and counts["evaluate_cv"] == "10" and counts["pretrain"] == "1"
    assert counts["baselines_cv"] == "5"
    for fold in ("r0f0", "r0f4"):
        assert f"results/ibd2538/cv/{fold}/models/scratch/finetune/ibd/model.safetensors" in text
        assert f"--splits {tmp_path}/results/ibd2538/cv/split/r0/{fold}.tsv" in text
    assert "--fold r0f4" in text and f"--baselines {tmp_path}/results/ibd2538/cv/r0f4/baselines/ibd" in text
    assert "ibd2538/cv/r0f5" not in text
    assert "--splits " + str(tmp_path / "results/ibd2538/pretrain_splits.tsv") in text


def test_the_demo_cross_validates_every_run_beside_the_baselines(tmp_path):
    """The demo's results are folds, not a 4-subject split: its 3 runs and the baselines on the
    same 5 grouped folds, one pretraining for all folds, the summary and the leaderboard."""
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n")
    rules = planned_rules(result)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.MULTILINE))
    assert (counts["finetune_cv"], counts["evaluate_cv"], counts["baselines_cv"]) == ("15", "15", "5")
    assert counts["pretrain"] == "1" and {"cv_split", "cv_summary", "leaderboard"} <= rules
    assert not rules & {"finetune", "evaluate", "baselines", "compare"}


@pytest.mark.slow
def test_the_demos_fine_tunings_predict_both_classes(tmp_path):
    """A demo run that predicts one class for every test sample is a defect. Fold r0f1 as the demo
    cuts it, fine-tuned from scratch and from the bundled encoder with the demo's settings: neither
    model's test predictions are one class. (With early stopping on that fold's 3-subject validation
    loss, the bundled run kept its epoch-2 weights and predicted Control for all 81 test samples.)"""
    write_config(tmp_path, sequences={}, seq_models={"runs": {}}, qiime2={"export": False})
    models = tmp_path / "results" / "ibd2538" / "cv" / "r0f1" / "models"
    # the fine-tunings' own predictions: the fold's baselines and evaluations are not needed for this
    wanted = [str(models / run / "finetune" / "ibd" / "predictions.tsv") for run in ("scratch", "bundled")]
    done = snakemake(tmp_path, "--cores", "2", *wanted)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    for run, path in zip(("scratch", "bundled"), wanted, strict=True):
        predictions = pd.read_csv(path, sep="\t")
        tested = predictions[predictions["split"] == "test"]
        assert len(tested) > 40 and set(tested["y_true"]) == {"Control", "Crohns"}
        assert set(tested["y_pred"]) == {"Control", "Crohns"}, run


@pytest.mark.slow
def test_tiny_cross_validation_end_to_end(tmp_path):
    """2 folds x 2 runs with a few training steps: every fold's models and baselines tested on that
    fold's test samples, each sample tested once, the summary and the leaderboard."""
    path = cv_config(tmp_path, folds=2, sequences={}, seq_models={"runs": {}})
    config = yaml.safe_load(path.read_text())
    config["datasets"] = {"ibd2538": small_ibd(tmp_path)}
    for run in config["aam"]["runs"].values():
        run["data"] = {"asv_limit": 32, "batch_size": 8}
        run["model"].update(embedding_dim=32, ff_dim=64)
        for phase in ("pretrain", "finetune"):
            if "trainer" in run.get(phase, {}):
                run[phase]["trainer"].update(max_epochs=1, limit_train_batches=2, limit_val_batches=2,
                                             warmup_steps=1, patience=None)
    config["evaluate"]["baselines"].update(FAST_BASELINES)
    # named: null combines with none here, since the runs serve both baselines inside their models
    config["evaluate"]["combine"] = ["random_forest", "linear_clr", "random_forest+linear_clr"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    results = tmp_path / "results" / "ibd2538"
    done = snakemake(tmp_path, "--resources", "gpu=2", "--cores", "2",
                     str(results / "cv_summary/ibd/summary.json"),
                     str(tmp_path / "results/benchmark/leaderboard.tsv"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]

    folds = pd.read_csv(results / "cv/split/r0/folds.tsv", sep="\t", dtype={"sample": str})
    rarefied = set(pd.read_csv(results / "rarefied/dropped.tsv", sep="\t", dtype={"sample": str})["sample"])
    tested = []
    for fold in ("r0f0", "r0f1"):
        expected = set(folds.loc[(folds["fold"] == int(fold[-1])) & (folds["split"] == "test"), "sample"])
        for run in ("pretrained", "scratch"):
            pred = pd.read_csv(results / f"cv/{fold}/eval/{run}/ibd/predictions.tsv", sep="\t",
                               dtype={"sample": str})
            assert set(pred["sample"]) == expected - rarefied  # the AAM and the baselines: the fold's test
            columns = ["random_forest_pred", "linear_clr_pred", "hist_gradient_boosting_pred",
                       "aam+random_forest_pred", "aam+linear_clr_pred",
                       "aam+random_forest+linear_clr_pred"]  # evaluate.combine, as named above
            assert pred[columns].notna().all().all()
        base = pd.read_csv(results / f"cv/{fold}/baselines/ibd/predictions.tsv", sep="\t",
                           dtype={"sample": str})
        assert set(base["sample"]) == expected - rarefied  # fit once per fold, on the same test samples
        tested += sorted(pred["sample"])
    assert len(tested) == len(set(tested))  # each sample tested once
    summary = json.loads((results / "cv_summary/ibd/summary.json").read_text())
    assert summary["folds"] == ["r0f0", "r0f1"]
    combined = {f"{run}+{b} (mean)" for run in ("pretrained", "scratch")
                for b in ("random_forest", "linear_clr", "random_forest+linear_clr")}
    assert set(summary["models"]) == {"pretrained", "scratch", *combined, "random_forest", "linear_clr",
                                      "hist_gradient_boosting"}
    assert {summary["models"][m]["kind"] for m in combined} == {"combined"}
    assert summary["models"]["pretrained"]["versus"]["linear_clr"]["n"] == 2
    board = pd.read_csv(tmp_path / "results/benchmark/leaderboard.tsv", sep="\t")
    assert set(board["model"]) == set(summary["models"]) and (board["n_tasks"] == 1).all()
    assert (results / "cv_summary/ibd/summary.png").exists()
    # pretraining ran once, on every table sample
    pretrain = pd.read_csv(results / "pretrain_splits.tsv", sep="\t", dtype={"sample": str})
    unlabelled = set(pretrain["sample"]) - set(folds["sample"])
    assert len(unlabelled) == 4 and len(pretrain) == len(folds) // 2 + 4  # the table samples without metadata
    again = snakemake(tmp_path, "-n", str(results / "cv_summary/ibd/summary.json"))
    assert "Nothing to be done" in again.stdout + again.stderr
    # a second repeat adds its own jobs and reruns none of the first repeat's
    config["evaluate"]["cv"]["repeats"] = 2
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    more = snakemake(tmp_path, "-n", str(results / "cv_summary/ibd/summary.json"))
    planned = more.stdout + more.stderr
    assert more.returncode == 0, planned[-3000:]
    assert "cv/r1f0/models/scratch" in planned and "cv/split/r1/r1f1.tsv" in planned
    reran = re.findall(r"output: [^\n]*cv/(r0f\d)/(?:models|baselines|eval)", planned)
    assert reran == [], reran
    assert "cv/split/r0/" not in re.sub(r"input: [^\n]*", "", planned)


def test_shell_lines_show_a_settings_file_not_its_json(tmp_path):
    """`printshellcmds` shows a short --settings (a file named by the JSON's hash): the training
    settings still reach the stage whole, and a changed setting changes the argument (rerun)."""
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n", "-p")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    commands = shell_commands(text)
    inline = [m for c in commands for m in re.findall(r"'\{.*?\}'", c)]
    assert commands and inline and max(len(m) for m in inline) <= 110  # short JSON stays readable
    finetune = next(c for c in commands if "aam finetune" in c and "scratch" in c)
    path = Path(re.search(r"--settings (\S+)", finetune).group(1))
    settings = json.loads(path.read_text())
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    run = config["aam"]["runs"]["scratch"]
    trainer = run["finetune"]["trainer"]
    assert settings["finetune"]["trainer"]["limit_train_batches"] == trainer["limit_train_batches"]
    assert settings["finetune"]["trainer"]["max_epochs"] == "auto"  # the schema's default, filled in
    assert settings["model"]["embedding_dim"] == run["model"]["embedding_dim"]

    trainer["limit_train_batches"] += 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    again = snakemake(tmp_path, "-n", "-p")
    line = next(c for c in shell_commands(again.stdout + again.stderr)
                if c.startswith("Shell command: aam finetune") and "scratch" in c)
    assert re.search(r"--settings (\S+)", line).group(1) != str(path)


def test_external_test_set_and_classify_rules(tmp_path):
    demo = REPO / "data" / "demo" / "gg13_8_v4"
    seqset = {
        "fasta": str(demo / "v4_3k.fasta"),
        "labels": str(demo / "v4_3k.taxonomy.tsv"),
        "test": {"fasta": str(tmp_path / "test.fasta"), "labels": str(tmp_path / "test.tsv")},
        "classify": str(tmp_path / "reads.qza"),
    }
    for name in ("test.fasta", "test.tsv", "reads.qza"):
        (tmp_path / name).write_text("")
    write_config(tmp_path, datasets={}, sequences={"gg": seqset})
    result = snakemake(tmp_path, "-n", "-p")
    rules = planned_rules(result)
    assert {"seq_prepare", "seq_train_contrastive", "seq_embed", "seq_classify"} <= rules
    text = result.stdout
    assert f"--test-fasta {tmp_path / 'test.fasta'}" in text
    assert f"--test-labels {tmp_path / 'test.tsv'}" in text
    assert f"--reads {tmp_path / 'reads.qza'}" in text and "classify/contrastive_small/taxonomy.tsv" in text


def test_predict_section_plans_a_predict_job_per_table(tmp_path):
    table = REPO / "data" / "demo" / "ibd2538" / "table.biom"
    entry = {"dataset": "ibd2538", "run": "scratch", "target": "ibd", "table": str(table)}
    write_config(tmp_path, predict={"again": entry}, sequences={}, seq_models={"runs": {}})
    result = snakemake(tmp_path, "-n", "-p")
    assert "predict" in planned_rules(result)
    line = next(c for c in result.stdout.splitlines() if c.startswith("Shell command: aam predict"))
    model = tmp_path / "results" / "ibd2538" / "models" / "scratch" / "finetune" / "ibd"
    assert f"--model-dir {model}" in line and f"--table {table}" in line
    assert f"--out-dir {tmp_path / 'results' / 'ibd2538' / 'predict' / 'again'}" in line
    assert "--warn-unseen-fraction 0.5 " in line  # the schema's default reaches the stage


def test_predict_entry_naming_an_unknown_target_is_one_config_error(tmp_path):
    entry = {"dataset": "ibd2538", "run": "scratch", "target": "age", "table": "t.biom"}
    write_config(tmp_path, predict={"again": entry})
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "predict/again: target 'age' is not one of dataset 'ibd2538''s targets ['ibd']" in result.stderr


def test_continue_on_study_pretrains_the_bundled_encoder_on_the_dataset_before_fine_tuning(tmp_path):
    """A run with `from: bundled, continue_on_study: true`: rule pretrain starts from the bundled
    encoder (--init-dir) and writes the run's own encoder, which fine-tuning then starts from;
    with `from: study` the key is an error that names the run."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    runs = config["aam"]["runs"]
    adapted = json.loads(json.dumps(runs["bundled"]))
    adapted["pretrain"] = {"from": "bundled", "continue_on_study": True,
                           "trainer": runs["pretrained"]["pretrain"]["trainer"]}
    write_config(tmp_path, aam={"runs": {"adapted": adapted}})
    result = snakemake(tmp_path, "-n", "-p")
    assert "pretrain" in planned_rules(result)
    text = result.stdout + result.stderr
    encoder = tmp_path / "results/ibd2538/models/adapted/pretrain"
    assert f"--out-dir {encoder} --init-dir {REPO}/src/aam/pretrained/gg13_8_v4_small" in text
    assert f"--pretrain-dir {encoder}" in text

    adapted["pretrain"] = {"continue_on_study": True}
    write_config(tmp_path, aam={"runs": {"adapted": adapted}})
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    message = "aam/runs/adapted/pretrain: continue_on_study needs from: corpus or bundled"
    assert message in result.stdout + result.stderr
