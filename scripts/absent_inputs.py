"""Skip a benchmark whose input files are absent (data outside the repository, e.g. ../shared).

`make bench` runs every scripts/bench_*.py, each to its end, and lists the ones that failed; a
benchmark that needs data a clone does not hold (../shared, or the outputs of `make demo`) says in
one line which file is missing and how to point at it, and exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path


def skip_if_absent(script: str, inputs: dict[str, str]) -> None:
    """Exit 0 with one line naming each absent input (flag -> path) when any is missing."""
    missing = {flag: path for flag, path in inputs.items() if not Path(path).exists()}
    if missing:
        listed = ", ".join(f"{path} (set {flag})" for flag, path in missing.items())
        print(f"{Path(script).name}: skipped, input absent: {listed}")
        sys.exit(0)
