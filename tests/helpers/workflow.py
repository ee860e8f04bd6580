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
