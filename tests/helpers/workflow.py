"""Driving the workflow as a user does: a config with absolute data paths, `snakemake` in its own
working directory, the rules a dry run plans."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SNAKEFILE = REPO / "workflow" / "Snakefile"
DEMO_CONFIG = REPO / "config" / "config.yaml"
TEST_CONFIG = REPO / ".test" / "config.yaml"  # the demo with every training job cut to a few steps


# Shipped configs merged into another one (snakemake --configfile BASE OVERLAY), never run alone
OVERLAYS = {"config/benchmark_candidates.yaml": "config/benchmark.yaml",
            "config/benchmark_pretrain.yaml": "config/benchmark.yaml",
            "config/benchmark_bundled.yaml": "config/benchmark.yaml"}


def shipped_config(name: str) -> dict:
    """A shipped config (path relative to the repository) as Snakemake reads it: an overlay merged
    into its base."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / name).read_text())
    if name in OVERLAYS:
        base = yaml.safe_load((REPO / OVERLAYS[name]).read_text())
        update_config(base, config)
        config = base
    return config


def write_config(workdir: Path, source: Path = DEMO_CONFIG, **overrides) -> Path:
    """A config (the demo's by default) with absolute data paths and results under `workdir`;
    top-level keys overridden."""
    config = yaml.safe_load(source.read_text())
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


def single_split() -> dict:
    """The demo's evaluate section without cross-validation: the runs trained and scored on the
    split (split/splits.tsv), compared in comparison/ (the path of a config without evaluate.cv)."""
    evaluate = yaml.safe_load(DEMO_CONFIG.read_text())["evaluate"]
    evaluate.pop("cv")
    return evaluate


def snakemake(workdir: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "-d", str(workdir)]
    cmd += ["--configfile", str(config or workdir / "config.yaml"), *args]
    # Rules call `aam`: the environment that runs the tests must be first on PATH.
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env, timeout=900)


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names of the jobs a dry run plans (from its job table)."""
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    return set(re.findall(r"^rule (\w+):", text, flags=re.MULTILINE))


# Baselines that fit in a second or two: a smaller forest, fewer boosting rounds.
FAST_BASELINES = {"random_forest": {"n_estimators": 50, "search_estimators": 10},
                  "hist_gradient_boosting": {"max_iter": 20}}


def small_ibd(workdir: Path) -> dict:
    """8 subjects of the demo's IBD 2538 (4 Control, 4 Crohns), 8 samples each, as a dataset entry;
    4 more table samples of a ninth subject lack metadata (pretraining only)."""
    import biom
    import h5py

    from aam.io.metadata import read_metadata

    demo = REPO / "data/demo/ibd2538"
    table = biom.load_table(str(demo / "table.biom"))
    meta = read_metadata(demo / "metadata.tsv")
    meta = meta.loc[[s for s in table.ids("sample") if s in meta.index]]
    subjects = ["s1000300", "s1000500", "s1000600", "s1000700"]  # Control
    subjects += ["s1002500", "s1003100", "s1003400", "s1002700"]  # Crohns
    keep = [s for subject in subjects for s in list(meta.index[meta["host_subject_id"] == subject])[:8]]
    unlabelled = list(meta.index[meta["host_subject_id"] == "s1000100"])[:4]
    sub = table.filter(keep + unlabelled, axis="sample", inplace=False).remove_empty(axis="observation")
    with h5py.File(workdir / "table.biom", "w") as fh:
        sub.to_hdf5(fh, "test")
    lines = (demo / "metadata.tsv").read_text().splitlines()
    wanted = set(keep)
    (workdir / "metadata.tsv").write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.split("\t", 1)[0] in wanted]) + "\n"
    )
    return {
        "table": str(workdir / "table.biom"),
        "sequences": None,
        "tree": str(demo / "tree.nwk"),
        "metadata": str(workdir / "metadata.tsv"),
        "group_column": "host_subject_id",
        "color_column": "ibd",
        "targets": [{"name": "ibd", "column": "ibd", "type": "classification"}],
    }
