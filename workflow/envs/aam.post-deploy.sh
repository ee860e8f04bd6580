#!/usr/bin/env bash
# Snakemake runs this inside the new environment from its working directory, the repository root
# (conda environment files cannot name a local path reliably: Snakemake copies them elsewhere).
set -euo pipefail
python -m pip install --no-deps -e .
