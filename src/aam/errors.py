"""The errors the CLI prints as a single line (and exits non-zero) instead of a traceback: bad input,
a destination that cannot be written, a preempted training run."""

from __future__ import annotations

import errno
import os
import re


class InputError(Exception):
    """Bad user input: the message names the file, ID or line and what is wrong with it."""


class Preempted(Exception):
    """Training stopped on a preemption signal (SIGUSR1 / SIGTERM) after saving a checkpoint; a
    rerun of the same command resumes from it. The CLI exits with :data:`PREEMPTED_EXIT`."""


PREEMPTED_EXIT = 75  # EX_TEMPFAIL: a temporary failure, try again


# Set by the Snakefile: a stage then runs inside the workflow, whose users know settings by config key
WORKFLOW_ENV = "AAM_WORKFLOW"


def setting_name(flag: str, config_key: str) -> str:
    """How an error message names a setting: by the command-line flag the user typed when a stage runs
    by hand (``--sequences``), by its config key when it runs inside the workflow, where the user never
    typed the flag (``datasets.<name>.sequences``)."""
    return config_key if os.environ.get(WORKFLOW_ENV) else flag


class OutputError(Exception):
    """An output could not be written: the destination is full, read-only or not ours to write. The
    message names the path and the cause (the operating system's words, e.g. "No space left on
    device"). The CLI exits with :data:`OUTPUT_EXIT`."""


OUTPUT_EXIT = 74  # EX_IOERR: an input/output error, not bad input

# errno of a write that failed for the destination's sake (full, read-only, forbidden), not the data's
DESTINATION_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
# Libraries in C and Rust report a failed write as an exception whose text carries the errno: HDF5
# (h5py) as "errno = 28", Rust's std::io (safetensors) as "(os error 28)"
_TEXT_ERRNO = re.compile(r"errno = (\d+)|os error (\d+)")


def destination_cause(err: BaseException) -> str | None:
    """The operating system's words for a write that failed because of its destination ("No space
    left on device", "Read-only file system", ...), or None for any other error. Follows the chain of
    causes, so a library's wrapped OSError counts too."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = current.errno if isinstance(current, OSError) else None
        if code is None:
            match = _TEXT_ERRNO.search(str(current))
            code = int(match.group(1) or match.group(2)) if match else None
        if code in DESTINATION_ERRNOS:
            return os.strerror(code)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None
