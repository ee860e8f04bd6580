"""Streaming FASTA reader: plain or gzip, wrapped lines, any case.

Written by hand because the readers of scikit-bio and Biopython build objects per record, which
is far slower than we need for millions of records, and we want `InputError`s that name the file
and line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from aam.errors import InputError


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a text file, transparently decompressing gzip (detected by its magic bytes)."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Turn what Python raises for a file that is not (gzip-compressed) UTF-8 text into one
    `InputError` naming the file: a truncated or corrupt gzip stream, binary content."""
    try:
        yield
    except EOFError:
        raise InputError(f"{path}: truncated gzip file (it ends before the end of its stream)") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path}: corrupt gzip file ({err})") from None
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: not a text file (byte 0x{err.object[err.start]:02x} is not UTF-8 text); expected "
            "FASTA or plain DNA text, optionally gzip-compressed"
        ) from None


def iter_fasta(path: str | os.PathLike, *, allow_empty_sequence: bool = False) -> Iterator[tuple[str, str]]:
    """Yield (id, sequence) per record; the ID is the header up to the first whitespace.

    Sequences are upper-cased and wrapped lines joined. A file without records, text before the
    first header, or a record without sequence is an `InputError` naming the file and line.
    """
    n_records = 0
    with reading(path), open_text(path) as fh:
        header: str | None = None
        header_line = 0
        chunks: list[str] = []
        for line_no, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if header is not None:
                    yield _finish(path, header, header_line, chunks, allow_empty_sequence)
                    n_records += 1
                parts = line[1:].split(maxsplit=1)
                if not parts:
                    raise InputError(f"{path}: line {line_no}: FASTA header without an ID")
                header, header_line, chunks = parts[0], line_no, []
            elif header is None:
                raise InputError(f"{path}: line {line_no}: text before the first '>' header; not FASTA")
            else:
                chunks.append(line)
        if header is not None:
            yield _finish(path, header, header_line, chunks, allow_empty_sequence)
            n_records += 1
    if n_records == 0:
        raise InputError(f"{path}: no FASTA records")


def _finish(
    path: str | os.PathLike, header: str, line_no: int, chunks: list[str], allow_empty: bool
) -> tuple[str, str]:
    seq = "".join(chunks).upper()
    if not seq and not allow_empty:
        raise InputError(f"{path}: line {line_no}: record '{header}' has no sequence")
    return header, seq


def read_fasta(path: str | os.PathLike) -> dict[str, str]:
    """Read a whole FASTA file into {id: sequence}; duplicate IDs are an `InputError`."""
    records: dict[str, str] = {}
    for rec_id, seq in iter_fasta(path):
        if rec_id in records:
            raise InputError(f"{path}: duplicate sequence ID '{rec_id}'")
        records[rec_id] = seq
    return records
