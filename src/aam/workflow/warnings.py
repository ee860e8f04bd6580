"""The stages' warnings of one Snakemake run, for its console output.

Every rule sends its stage's output to a log under ``{results}/logs/``, so a warning such as "the
model predicts one class for every test sample" would stay in a file nobody opens. The Snakefile's
``onsuccess``/``onerror`` handlers print, at the end of a run, every WARNING line the package's own
loggers wrote to a log that this run wrote (modified since the run started), after the log's name.
Reading the logs afterwards, rather than echoing from each rule's shell command, keeps the rules'
commands unchanged (Snakemake reruns a rule whose command changes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The stages' logging format: "<date> <time> WARNING aam.<module>: <message>"
WARNING_LINE = re.compile(r"^\S+ \S+ WARNING (aam\.[\w.]+): (.*)$")


def warnings_since(log_dir: str | os.PathLike, since: float) -> list[str]:
    """``<log>: <message> (<logger>)`` for each package warning in a log under `log_dir` modified at
    or after `since` (seconds since the epoch), logs in path order."""
    found = []
    root = Path(log_dir)
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*.log")):
        try:
            if path.stat().st_mtime < since:
                continue
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            match = WARNING_LINE.match(line)
            if match:
                found.append(f"{path}: {match.group(2)} ({match.group(1)})")
    return found


def report(log_dir: str | os.PathLike, since: float) -> str:
    """The block the Snakefile prints: nothing when there is no warning."""
    found = warnings_since(log_dir, since)
    if not found:
        return ""
    return "\n".join([f"Warnings of this run's stages ({len(found)}; the logs say more):", *found])
