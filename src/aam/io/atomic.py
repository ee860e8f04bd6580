"""Atomic outputs: write to a temporary name beside the target, rename at the end.

A stage that fails half-way must leave no partial output that Snakemake or a user could mistake
for a finished artifact. One file: `atomic_path`. Several files of one stage: `publish_together`
(all or none, by renaming one folder).

A write that fails for the destination's sake (a full disk, a read-only or forbidden folder) leaves
the helpers as one `OutputError` naming the output, not the hidden temporary name, with the
operating system's words for the cause; the temporary file or folder is removed first. So every
stage reports a full disk the same way, and the CLI prints it as one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from aam.errors import InputError, OutputError, destination_cause


@contextlib.contextmanager
def destination(target: str | os.PathLike) -> Iterator[None]:
    """Turn a failed write inside the block into an `OutputError` naming `target` and the cause,
    when the destination is to blame (full, read-only, forbidden); other errors pass unchanged."""
    try:
        yield
    except (InputError, OutputError):
        raise
    except Exception as err:
        cause = destination_cause(err)
        if cause is None:
            raise
        raise OutputError(f"{target}: cannot write: {cause}") from err


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to `target`; rename it onto `target` if the block succeeds."""
    target = Path(target)
    with destination(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            # mkstemp creates 0600 files; give the output the permissions a plain open() would.
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to `target`; it replaces `target` if the block succeeds."""
    target = Path(target)
    with destination(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            yield tmp_path
            _swap_in(tmp_path, target)
        finally:
            if tmp_path.exists():
                shutil.rmtree(tmp_path)


def _swap_in(new: Path, target: Path) -> None:
    """Put the folder `new` in the place of `target` by renames only: the old folder is renamed aside
    first and removed last, so at every moment `target` is the complete old folder, absent, or the
    complete new one (a kill in between leaves a hidden `.NAME.*.old` sibling, never a mix)."""
    os.chmod(new, 0o777 & ~_umask())
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


@contextlib.contextmanager
def publish_together(
    folder: str | os.PathLike, names: Sequence[str], owned: str | None = None
) -> Iterator[Path]:
    """Publish the outputs of a stage that writes several files: all of them, or none.

    Yields an empty temporary folder beside `folder`; the stage writes the files `names` into it.
    When the block succeeds the temporary folder takes the place of `folder` by renames only
    (`_swap_in`), so a reader, or a kill at any point, finds the complete previous set, no folder,
    or the complete new set: never some files new and some old or missing. Leftovers of a killed
    run (hidden `.NAME.*.tmp` / `.NAME.*.old` siblings) are removed first. `folder` must hold
    nothing but these outputs, so that replacing it loses nothing of the user's; `owned`, a regular
    expression, names further files that are this stage's too (the outputs of other settings: a
    fold or a metric no longer asked for), which go with the old set.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise InputError(f"{folder}: exists and is not a folder")
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in names and not _leftover(p.name)
                         and not (owned and re.fullmatch(owned, p.name)))
        if foreign:
            raise InputError(
                f"{folder}: holds files that are not this stage's outputs (e.g. '{foreign[0]}'); "
                "give the stage a folder of its own"
            )
    with destination(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        stale = [*folder.parent.glob(f".{folder.name}.*.tmp"), *folder.parent.glob(f".{folder.name}.*.old")]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
        try:
            try:
                yield tmp
            except OutputError as err:  # from a helper writing into tmp: name the real output
                raise OutputError(str(err).replace(str(tmp), str(folder))) from err.__cause__
            missing = [name for name in names if not (tmp / name).is_file()]
            if missing:
                raise RuntimeError(f"publish_together: {missing} were not written")
            _swap_in(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)


@contextlib.contextmanager
def publish_files(targets: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Publish several output files of one stage given as paths (``--out``, ``--dropped``, ...).

    Yields one temporary path per target, in order. Where the targets share a folder that holds
    nothing else (or does not exist yet: the workflow gives every multi-output stage a folder of
    its own), they are published by `publish_together`, all or none at every moment, a kill
    included. Where they do not (a stage run by hand into a folder shared with other files), each
    file is written to a hidden temporary name and all are renamed at the very end: a failure
    leaves none of the new files, and only a kill during those final renames could leave some.
    """
    paths = [Path(t) for t in targets]
    folder = paths[0].parent
    names = [p.name for p in paths]
    own_folder = (
        all(p.parent == folder for p in paths)
        and len(set(names)) == len(names)
        and (not folder.exists() or all(c.name in names or _leftover(c.name) for c in folder.iterdir()))
    )
    if own_folder and folder != Path("."):
        with publish_together(folder, names) as tmp:
            yield [tmp / name for name in names]
        return
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]


def _leftover(name: str) -> bool:
    """A temporary file of `atomic_path` left by a killed run."""
    return name.startswith(".") and name.endswith(".tmp")


def _umask() -> int:
    """The process umask (reading it requires setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
