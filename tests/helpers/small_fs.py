"""Run a command with one folder on a tiny or a read-only filesystem, as a user's full disk or
read-only share would be, without root and without touching a real disk.

The folder gets a tmpfs mounted in a private mount namespace (`unshare --map-root-user --mount`,
util-linux): only the command sees it, and it vanishes with the command. Where user namespaces are
not allowed, `available()` is False and the tests that need it skip.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@functools.cache
def available() -> bool:
    """True when this machine lets an unprivileged process mount a tmpfs in its own namespace."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c",
                                   f"mount -t tmpfs -o size=16k tmpfs {shlex.quote(folder)}"],
                                  capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


@dataclass
class Result:
    returncode: int
    stderr: str
    files: list[str]  # every path left under the folder, relative to it, after the command

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def aam(*args: str) -> list[str]:
    """The `aam` command line for this interpreter (the tests' own sources on sys.path)."""
    return [sys.executable, "-m", "aam.cli", *args]


def run_on(folder: Path, command: list[str], *, size: str = "16k", read_only: bool = False,
           prepare: list[str] = (), cwd: Path | None = None, timeout: int = 600) -> Result:
    """Run `command` with `folder` on a fresh tmpfs of `size` bytes (e.g. "16k"), read-only when
    asked. `prepare` are folders (relative to `folder`) made before it turns read-only. Returns the
    exit status, stderr and what the command left in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder.parent / f".{folder.name}.listing"
    q = shlex.quote
    script = [f"mount -t tmpfs -o size={size} tmpfs {q(str(folder))} || exit 99"]
    script += [f"mkdir -p {q(str(folder / p))} || exit 99" for p in prepare]
    if read_only:
        script.append(f"mount -o remount,ro {q(str(folder))} || exit 99")
    script += [" ".join(q(c) for c in command),
               "status=$?",
               f"(cd {q(str(folder))} && find . -mindepth 1 | sort) > {q(str(listing))}",
               "exit $status"]
    done = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", "\n".join(script)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert done.returncode != 99, f"could not set up the filesystem: {done.stderr}"
    files = [line[2:] for line in listing.read_text().splitlines()] if listing.exists() else []
    listing.unlink(missing_ok=True)
    return Result(done.returncode, done.stderr, files)
