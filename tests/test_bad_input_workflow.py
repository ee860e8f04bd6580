"""Bad input and bad config under `snakemake`: what the user sees in Snakemake's own output.

A stage's one-line error must reach Snakemake's output (not only the rule's log), config names
that would leave the results folder are rejected with a line naming the key, and logs and
benchmarks sit under the configured results folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import small_fs
from helpers.workflow import OVERLAYS, REPO, SNAKEFILE, SNAKEMAKE, shipped_config, snakemake, write_config

from aam.config import check_config
from aam.errors import InputError

SMALL = REPO / "tests" / "data" / "prepare"


def small_config(workdir: Path, table: Path | None = None, **overrides) -> Path:
    """A config with one small dataset (tests/data/prepare) and no training runs or sequence sets."""
    config = {
        "results": str(workdir / "out"),
        "datasets": {
            "small": {
                "table": str(table or SMALL / "table.tsv"),
                "tree": str(SMALL / "tree.nwk"),
                "metadata": str(SMALL / "metadata.tsv"),
                "group_column": "host_subject_id",
                "targets": [{"name": "dx", "column": "diagnosis", "type": "classification"}],
            }
        },
        "aam": {"runs": {}},
        "sequences": {},
        "seq_models": {"runs": {}},
        **overrides,
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_stage_error_line_appears_in_snakemake_output_and_logs_sit_under_results(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text((SMALL / "table.tsv").read_text().replace("\t40\t", "\t-40\t"))
    small_config(tmp_path, table=bad)
    result = snakemake(tmp_path, "--cores", "1", str(tmp_path / "out/small/ingest/counts.parquet"))
    text = result.stdout + result.stderr
    assert result.returncode != 0
    error_lines = [line for line in text.splitlines() if line.startswith("aam ingest: error:")]
    assert len(error_lines) == 1, text[-3000:]
    assert "bad.tsv" in error_lines[0] and "negative counts" in error_lines[0]
    # Snakemake's own error block carries the same line (it printed "message: None")
    assert f"message: {error_lines[0]}" in text and "message: None" not in text, text[-3000:]
    # The log and the benchmark folder belong to this results folder, not to the working directory.
    assert (tmp_path / "out/logs/small/ingest.log").read_text().strip().endswith(error_lines[0])
    assert not (tmp_path / "logs").exists()
    assert not (tmp_path / "out/small/ingest").exists() or not any((tmp_path / "out/small/ingest").iterdir())


def test_every_rule_logs_under_results_and_shows_its_error_line(tmp_path):
    """Every job of the demo DAG: log and benchmark under the results folder, shell through logged()."""
    write_config(tmp_path)
    result = snakemake(tmp_path, "-n", "-p")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    jobs = [job for job in text.split("\nrule ")[1:] if not job.startswith("all:")]
    assert len(jobs) >= 15
    results = tmp_path / "results"
    for job in jobs:
        name = job.split(":", 1)[0]
        assert f"log: {results}/logs/" in job, name
        assert f"benchmark: {results}/benchmarks/" in job, name
        assert "|| { status=$?; tail -n 1 " in job, name


def _with_bad_name(config: dict, kind: str, bad: str) -> tuple[dict, str]:
    """The demo config with one dataset, run, target or sequence-set name replaced; the key's path."""
    if kind == "dataset":
        config["datasets"] = {bad: config["datasets"]["ibd2538"]}
        return config, "datasets"
    if kind == "run":
        config["aam"]["runs"] = {bad: config["aam"]["runs"]["scratch"]}
        return config, "aam/runs"
    if kind == "target":
        config["datasets"]["ibd2538"]["targets"][0]["name"] = bad
        return config, "datasets/ibd2538/targets/0/name"
    if kind == "sequence set":
        config["sequences"] = {bad: config["sequences"]["gg13_8_v4_3k"]}
        return config, "sequences"
    config["seq_models"]["runs"] = {bad: config["seq_models"]["runs"]["vq_small"]}
    return config, "seq_models/runs"


@pytest.mark.parametrize("bad", ["..", ".", "a/b", ".hidden", "x y", ""])
@pytest.mark.parametrize("kind", ["dataset", "run", "target", "sequence set", "sequence run"])
def test_names_that_would_leave_the_results_folder_are_rejected(kind, bad):
    config, key = _with_bad_name(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), kind, bad)
    with pytest.raises(InputError) as info:
        check_config(config, where="my.yaml")
    message = str(info.value)
    assert message.startswith(f"my.yaml: {key}: ") and "\n" not in message, message
    assert repr(bad) in message and "not starting with '.'" in message, message


def test_allowed_names_pass():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"] = {"Study_2.v1-b": config["datasets"]["ibd2538"]}
    config["aam"]["runs"] = {"run.1": config["aam"]["runs"]["scratch"]}
    check_config(config, where="my.yaml")


def test_heads_not_dividing_embedding_dim_names_the_run():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["aam"]["runs"]["scratch"]["model"]["heads"] = 3
    with pytest.raises(
        InputError, match=r"^my.yaml: aam/runs/scratch: model: heads 3 does not divide embedding_dim 64$"
    ):
        check_config(config, where="my.yaml")
    # The default embedding_dim (64) counts too.
    config["aam"]["runs"]["scratch"]["model"] = {"heads": 5}
    with pytest.raises(
        InputError, match="aam/runs/scratch: model: heads 5 does not divide embedding_dim 64"
    ):
        check_config(config, where="my.yaml")


def test_heads_not_dividing_embedding_dim_stops_a_training_stage_run_by_hand():
    from aam.config import load_settings

    expected = r"^settings \(aam_run\): model: heads 3 does not divide embedding_dim 64$"
    with pytest.raises(InputError, match=expected):
        load_settings('{"model": {"embedding_dim": 64, "heads": 3}}', "aam_run")


def test_heads_not_dividing_dim_of_a_sequence_model_names_the_run():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["seq_models"]["runs"]["vq_small"]["model"]["heads"] = 3
    expected = "^my.yaml: seq_models/runs/vq_small/model: heads 3 does not divide dim 64$"
    with pytest.raises(InputError, match=expected):
        check_config(config, where="my.yaml")


def _runs(c):
    return c["aam"]["runs"]["scratch"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        # sizes that passed and then failed at run time (a 35 TB allocation for embedding_dim 2^31)
        (
            lambda c: _runs(c)["model"].update(embedding_dim=2**31),
            "aam/runs/scratch/model/embedding_dim: 2147483648 is greater than the maximum of 4096",
        ),
        (
            lambda c: _runs(c)["model"].update(ff_dim=10**9),
            "model/ff_dim: 1000000000 is greater than the maximum",
        ),
        (
            lambda c: _runs(c)["model"].update(layers=1000),
            "model/layers: 1000 is greater than the maximum of 64",
        ),
        (
            lambda c: _runs(c)["data"].update(asv_limit=10**7),
            "data/asv_limit: 10000000 is greater than the maximum",
        ),
        (
            lambda c: _runs(c)["data"].update(batch_size=10**6),
            "data/batch_size: 1000000 is greater than the maximum",
        ),
        (
            lambda c: c["tokenize"].update(max_bp=10**6),
            "tokenize/max_bp: 1000000 is greater than the maximum of 8192",
        ),
        (lambda c: c["rarefy"].update(depth=10**10), "rarefy/depth: 10000000000 is not valid"),
        (
            lambda c: c["seq_models"]["runs"]["vq_small"]["model"].update(codebook_size=2**40),
            "codebook_size: 1099511627776 is greater than the maximum",
        ),
        # fractions that stopped only in the split stage
        (
            lambda c: c["split"].update(fractions={"train": 1.0, "val": 0.25, "test": 0.25}),
            "split/fractions: split fractions must sum to 1, got 1.5",
        ),
        (
            lambda c: c["split"].update(fractions={"train": 0.5, "val": 0.2}),
            "split/fractions: split fractions must sum to 1, got 0.7",
        ),
        # a results folder that planned outputs at the filesystem root
        (lambda c: c.update(results=""), "results: '' should be non-empty"),
        (lambda c: c.update(results="  "), "results: '  ' is blank"),
        (lambda c: c.update(results="/"), "results: '/' is the filesystem root"),
    ],
    ids=["embedding_dim", "ff_dim", "layers", "asv_limit", "batch_size", "max_bp", "depth", "codebook",
         "fractions_1.5", "fractions_0.7", "results_empty", "results_blank", "results_root"],
)
def test_values_that_could_only_fail_later_fail_when_the_config_is_read(change, words):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    change(config)
    with pytest.raises(InputError) as caught:
        check_config(config, where="my.yaml")
    assert str(caught.value).startswith("my.yaml: ") and words in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_absurd_size_stops_a_training_stage_run_by_hand():
    from aam.config import load_settings

    expected = r"^settings \(aam_run\): model/embedding_dim: 2147483648 is greater"
    with pytest.raises(InputError, match=expected):
        load_settings('{"model": {"embedding_dim": 2147483648}}', "aam_run")


def test_the_upper_bounds_let_every_shipped_config_through(tmp_path):
    from aam.config import load_config

    for path in [*(REPO / "config").glob("*.yaml"), REPO / ".test" / "config.yaml"]:
        name = path.relative_to(REPO).as_posix()
        if name in OVERLAYS:  # read merged into its base, as Snakemake reads it
            path = tmp_path / path.name
            path.write_text(yaml.safe_dump(shipped_config(name)))
        load_config(path)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c.update(results=""), ("results:", "non-empty")),
        (lambda c: c["split"].update(fractions={"train": 1.0, "val": 0.5}), ("split/fractions", "sum to 1")),
        (lambda c: c["datasets"].update({"..": c["datasets"].pop("ibd2538")}), ("datasets:", "'..'")),
        (
            lambda c: c["aam"]["runs"]["pretrained"]["model"].update(heads=6),
            ("aam/runs/pretrained", "heads 6"),
        ),
        (lambda c: c.update(seed="forty-two"), ("seed:", "'forty-two'")),
    ],
)
def test_snakemake_shows_one_line_for_a_bad_config(tmp_path, change, words):
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "config error" in line]
    assert len(lines) == 1 and lines[0].startswith(f"config error: {path}: "), result.stderr[-2000:]
    assert all(word in lines[0] for word in words), lines[0]
    assert not (tmp_path / "results").exists()


def test_a_dataset_without_a_color_column_gets_its_unifrac(tmp_path):
    """The schema's default (null) gave `--color-column  --settings` and the unifrac job failed."""
    small_config(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "color_column" not in config["datasets"]["small"]
    result = snakemake(tmp_path, "--cores", "1", str(tmp_path / "out/small/unifrac/unweighted.tsv"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (tmp_path / "out/small/unifrac/pcoa_unweighted.png").exists()


@pytest.mark.skipif(not small_fs.available(), reason="no user namespaces to mount a tmpfs")
@pytest.mark.parametrize("existing", [False, True], ids=["parent_read_only", "results_read_only"])
def test_a_read_only_results_folder_is_one_line(tmp_path, existing):
    """It was a traceback from the rules' helpers (the first settings file written for the DAG)."""
    disk = tmp_path / "disk"
    results = disk / "out" if existing else disk / "new" / "out"
    small_config(tmp_path, results=str(results))
    command = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "-d", str(tmp_path), "--configfile",
               str(tmp_path / "config.yaml"), "-n"]
    done = small_fs.run_on(disk, command, read_only=True, prepare=["out"] if existing else [],
                           cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.last_line == (f"config error: results: {results}: cannot write"
                              f"{'' if existing else f' (in {disk})'}: Read-only file system")
