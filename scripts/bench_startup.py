"""Benchmark: the fixed cost that every Snakemake invocation and every stage pays before any work.

Measured in this run, each against the way it was done before (the reference):

- the config schema (``aam.config.load_schema``), asked for N times in one process as a config
  check does: parsed once with libyaml and copied, against PyYAML's pure-Python parser each time;
- the installed versions the Snakefile passes to the `versions` rule
  (``aam.versions.declared_versions``): one metadata lookup per declared package, against reading
  every installed distribution's metadata;
- a whole `snakemake -n` of the tests' small config (`.test/config.yaml`), the median of
  ``--repeats`` runs: printed for scale, since the Snakefile's parse and DAG are the rest of it.

Prints each time and the ratio reference / ours. Measured here (2 cores shared with a benchmark
run): schema x4 0.060 s vs 1.31 s (21.8x), versions 0.026 s vs 0.225 s (8.8x); the dry run 4.2 s.

Usage: python scripts/bench_startup.py [--loads 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

from aam import config as aam_config
from aam import versions

REPO = Path(__file__).resolve().parents[1]


def timed(function, repeats: int) -> float:
    """The median wall seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def schema_by_pure_python(loads: int) -> None:
    text = resources.files("aam.schema").joinpath("config.schema.yaml").read_text()
    for _ in range(loads):
        yaml.safe_load(text)


def schema_as_now(loads: int) -> None:
    aam_config._parsed_schema.cache_clear()  # a new process: the first load parses
    for _ in range(loads):
        aam_config.load_schema()


def versions_from_every_distribution() -> dict[str, str]:
    installed = {versions._normalized(k): v for k, v in versions.installed_packages().items()}
    return {name: installed.get(versions._normalized(name), "not installed") for name in versions._declared()}


def dry_run_seconds(repeats: int) -> float | None:
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        return None
    with tempfile.TemporaryDirectory() as work:
        config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
        for entry in [*config["datasets"].values(), *config.get("sequences", {}).values()]:
            for key, value in entry.items():
                if isinstance(value, str) and value.startswith("data/"):
                    entry[key] = str(REPO / value)
        config["results"] = str(Path(work) / "results")
        (Path(work) / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = [str(snakemake), "-n", "-s", str(REPO / "workflow" / "Snakefile"), "-d", work,
               "--configfile", str(Path(work) / "config.yaml")]
        env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        return timed(lambda: subprocess.run(cmd, capture_output=True, env=env, check=True), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=4, help="schema loads per config check")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    assert versions.declared_versions().items() >= versions_from_every_distribution().items()
    reference = timed(lambda: schema_by_pure_python(args.loads), args.repeats)
    ours = timed(lambda: schema_as_now(args.loads), args.repeats)
    print(f"schema x{args.loads}: ours {ours:.3f} s, pure-Python parse each time {reference:.3f} s, "
          f"ratio {reference / ours:.1f}x")
    importlib.metadata.version("pyyaml")  # warm the metadata finder for both sides alike
    reference = timed(versions_from_every_distribution, args.repeats)
    ours = timed(versions.declared_versions, args.repeats)
    print(f"declared versions: ours {ours:.3f} s, every distribution read {reference:.3f} s, "
          f"ratio {reference / ours:.1f}x")
    dry = dry_run_seconds(args.repeats)
    if dry is not None:
        print(f"snakemake -n of .test/config.yaml: {dry:.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
