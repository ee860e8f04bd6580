"""The Snakemake workflow as a user drives it: config validation, the DAG, rerun behaviour, profiles.

Each test runs `snakemake` in its own working directory with a copy of the demo config whose paths
point at the bundled data, so tests never touch the repository's own results/ or .snakemake/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def write_config(workdir: Path, **overrides) -> Path:
    """The demo config with absolute data paths and results under `workdir`; top-level keys overridden."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(overrides)
    for dataset in config["datasets"].values():
        for key in ("table", "sequences", "tree", "metadata"):
            if dataset.get(key):
                dataset[key] = str(REPO / dataset[key])
    for seqset in config.get("sequences", {}).values():
        for key, value in seqset.items():
            if isinstance(value, str) and value.startswith("data/"):
                seqset[key] = str(REPO / value)
    config["results"] = str(workdir / "results")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--configfile", str(config or workdir / "config.yaml"), *args]
    # Rules call `aam`: the environment that runs the tests must be first on PATH.
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=900)


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names of the jobs a dry run plans (from its job table)."""
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    return set(re.findall(r"^rule (\w+):", text, flags=re.MULTILINE))


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
    write_config(tmp_path)
    rules = planned_rules(snakemake(tmp_path, "-n"))
    stages = {"ingest", "split", "rarefy", "unifrac", "tokenize", "pretrain", "finetune", "evaluate"}
    assert stages | {"compare"} <= rules


def test_training_rules_declare_a_gpu_and_the_default_profile_allows_one(tmp_path):
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n")
    planned_rules(result)
    assert "Using workflow specific profile" in result.stdout + result.stderr
    jobs = (result.stdout + result.stderr).split("rule ")
    training = [job for job in jobs if job.startswith(("pretrain:", "finetune:", "seq_train:"))]
    assert training and all("gpu=1" in job for job in training)


def test_lint_reports_nothing(tmp_path):
    write_config(tmp_path)
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Lints for" not in result.stdout + result.stderr


def test_slurm_profile_dry_run_requests_gpus_for_training(tmp_path):
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n", "--workflow-profile", str(REPO / "workflow/profiles/slurm"))
    rules = planned_rules(result)
    assert {"pretrain", "finetune"} <= rules


def test_a_multi_node_run_asks_slurm_for_one_task_per_gpu_and_starts_them_with_srun(tmp_path):
    config = yaml.safe_load(write_config(tmp_path).read_text())
    run = next(iter(config["aam"]["runs"]))
    config["aam"]["runs"][run]["pretrain"].setdefault("trainer", {}).update(devices=4, num_nodes=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "-n", "-p", "--workflow-profile", str(REPO / "workflow/profiles/slurm"))
    jobs = {job.split(":", 1)[0]: job for job in (result.stdout + result.stderr).split("rule ")[1:]}
    pretrain, finetune = jobs["pretrain"], jobs["finetune"]
    for text in ("gpu=8", "nodes=2", "tasks_per_node=4", "tasks_per_gpu=1", "mpi=srun", "--signal=USR1@300"):
        assert text in pretrain, text
    assert "srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8" in pretrain
    # The fine-tuning of the same run keeps one process on one GPU.
    assert "gpu=1" in finetune and "mpi=0" in finetune and "srun --nodes=1 --ntasks-per-node=1" in finetune


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


def tiny_config(workdir: Path) -> Path:
    """The demo config with every training job cut to a few steps: the whole DAG in a few minutes."""
    path = write_config(workdir)
    config = yaml.safe_load(path.read_text())
    for run in config["aam"]["runs"].values():
        for phase in ("pretrain", "finetune"):
            if "trainer" in run.get(phase, {}):
                run[phase]["trainer"].update(max_epochs=1, limit_train_batches=3)
    for run in config["seq_models"]["runs"].values():
        run["trainer"].update(max_epochs=1)
    config["evaluate"]["random_forest"]["n_estimators"] = 50
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
def test_whole_workflow_runs_end_to_end_and_reports(tmp_path):
    tiny_config(tmp_path)
    done = snakemake(tmp_path, "--cores", "2")
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    results = tmp_path / "results"
    metrics = json.loads(next(results.glob("ibd2538/eval/pretrained/ibd/metrics.json")).read_text())
    assert metrics  # the evaluate stage's own tests check its content
    bundled = json.loads((results / "ibd2538/models/bundled/finetune/ibd/model.json").read_text())
    assert bundled["pretrained"] and "gg13_8_v4_small" in bundled["pretrained_from"]
    assert (results / "ibd2538" / "comparison.tsv").read_text().count("\n") >= 3
    assert list((results / "sequences").glob("*/eval/*/metrics.json"))

    again = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # Same config and seed, trained again from scratch: identical predictions on CPU.
    predictions = sorted(results.glob("ibd2538/models/*/finetune/ibd/predictions.tsv"))
    before = [path.read_bytes() for path in predictions]
    retrained = snakemake(tmp_path, "--cores", "2", "--forcerun", "pretrain", "finetune")
    assert retrained.returncode == 0, (retrained.stdout + retrained.stderr)[-3000:]
    assert [path.read_bytes() for path in predictions] == before

    report = snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert report.returncode == 0, (report.stdout + report.stderr)[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 100_000
    assert_report_opens_with_results(tmp_path / "report.html", results)


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
    comparison = pd.read_csv(results / "ibd2538" / "comparison.tsv", sep="\t")
    assert [(r[0], r[1]) for r in rows] == list(zip(comparison["target"], comparison["run"], strict=True))
    assert [r[4] for r in rows] == [f"{v:.3f}" for v in comparison["aam"]]
    assert [r[5] for r in rows] == [f"{v:.3f}" for v in comparison["random_forest"]]
    assert 'id="sequences-contrastive"' in front and "naive Bayes accuracy" in front


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
    assert settings["finetune"]["trainer"]["max_epochs"] == run["finetune"]["trainer"]["max_epochs"]
    assert settings["model"]["embedding_dim"] == run["model"]["embedding_dim"]

    run["finetune"]["trainer"]["max_epochs"] += 1
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


def test_predict_entry_naming_an_unknown_target_is_one_config_error(tmp_path):
    entry = {"dataset": "ibd2538", "run": "scratch", "target": "age", "table": "t.biom"}
    write_config(tmp_path, predict={"again": entry})
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "predict/again: target 'age' is not one of dataset 'ibd2538''s targets ['ibd']" in result.stderr
