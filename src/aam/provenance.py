"""Provenance of an artifact: the package version, the git commit of the code, and the settings.

Every ``model.json`` and ``metrics.json`` carries a ``provenance`` block, as QIIME 2 users expect
of an artifact: which code made it (``aam_version``, ``git_commit`` when the package runs from a
git checkout, ``git_dirty`` when that checkout has uncommitted changes) and with which settings and
seed. Nothing time-dependent goes in, so the same code, config and seed still give identical files.

The settings recorded are the ones the stage used, not only the ones it was given: a thread count
from ``--threads`` (the rule's threads) replaces the config's, a pretrained encoder's sizes replace
the run's model section (`used_settings`).
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import aam

SOURCE_DIR = Path(aam.__file__).resolve().parent


def package_version() -> str:
    return aam.__version__


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the package runs from; (None, None) outside one (a wheel).

    A checkout counts only if its top level holds this package's ``pyproject.toml``, so a package
    installed inside some other repository reports no commit rather than a wrong one.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(SOURCE_DIR), *args], capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    root = Path(top).resolve() if top else None
    if root is None or SOURCE_DIR.parent.parent != root or not (root / "pyproject.toml").exists():
        return None, None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ":/src")
    return commit, None if status is None else bool(status)


def provenance(settings: Any = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """The ``provenance`` block: version, commit, and (when given) the settings and seed used."""
    commit, dirty = git_state()
    block: dict[str, Any] = {"aam_version": package_version(), "git_commit": commit, "git_dirty": dirty}
    if settings is not None:
        block["settings"] = settings
    if seed is not None:
        block["seed"] = int(seed)
    block.update(extra)
    return block


def used_settings(settings: dict[str, Any], **used: Any) -> dict[str, Any]:
    """A copy of `settings` with the values the stage actually used in place: keyword names are
    paths with ``__`` between levels (``finetune__trainer=trainer.as_dict()``), a value of None
    removes the key."""
    out = copy.deepcopy(settings)
    for path, value in used.items():
        *parents, last = path.split("__")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out
