"""What Snakemake says when a job fails, and a results folder that cannot be written, before any job.

Snakemake 9's error block for a failed job prints ``message: None`` for every rule without a
``message:`` (its formatter prints the rule message whenever the log record has text, and the local
executor passes none). :func:`show_stage_errors` puts the failed job's own one-line error there
instead: the last line of its log, which is the stage's ``aam <stage>: error: ...`` (or a
traceback's last line). It wraps one method of Snakemake's Job; where that method is missing or
differs (another Snakemake version), it changes nothing and Snakemake prints what it printed.

:func:`check_results_folder` stops the workflow with one line when the results folder cannot be
written (read-only, not ours, a full disk): otherwise the first settings file written while the
DAG is built failed with a traceback.
"""

from __future__ import annotations

import errno
import inspect
import os
from pathlib import Path

from aam.errors import OutputError

_WRAPPED = "_aam_stage_errors"


def last_log_line(paths) -> str | None:
    """The last non-blank line of the first readable log in `paths`, or None."""
    for path in paths or []:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 4096))
                lines = [ln.strip() for ln in handle.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            continue
        lines = [ln for ln in lines if ln]
        if lines:
            return lines[-1]
    return None


def show_stage_errors() -> bool:
    """Make Snakemake's error block show a failed job's own error line instead of ``message: None``;
    True when installed (idempotent)."""
    try:
        from snakemake.jobs import Job
    except ImportError:
        return False
    original = getattr(Job, "get_log_error_info", None)
    if original is None or getattr(original, _WRAPPED, False):
        return original is not None
    if list(inspect.signature(original).parameters)[:2] != ["self", "msg"]:
        return False

    def get_log_error_info(self, msg=None, *args, **kwargs):
        if msg is None:
            msg = last_log_line(getattr(self, "log", None)) or "failed; see the log below"
        return original(self, msg, *args, **kwargs)

    setattr(get_log_error_info, _WRAPPED, True)
    Job.get_log_error_info = get_log_error_info
    return True


def check_results_folder(results: str) -> None:
    """`OutputError` naming the results folder and the cause when it cannot be written: the nearest
    folder that exists on its path is read-only, not writable by this user, or on a full disk."""
    folder = Path(results).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    cause = None
    if not os.access(existing, os.W_OK | os.X_OK):
        stats = os.statvfs(existing)
        code = errno.EROFS if stats.f_flag & os.ST_RDONLY else errno.EACCES
        cause = os.strerror(code)
    elif os.statvfs(existing).f_bavail == 0:
        cause = os.strerror(errno.ENOSPC)
    if cause:
        where = "" if existing == folder else f" (in {existing})"
        raise OutputError(f"results: {results}: cannot write{where}: {cause}")
