"""Streaming readers for DNA collections cut into fixed-length blocks (VQ-Transformer input).

One alphabet for every DNA input of the sequence branch (FASTA records and plain text alike): the
IUPAC nucleotide codes A C G T U R Y S W K M B D H V N, any case; U is read as T (RNA sequences
such as SILVA's). Anything else (protein letters such as E F I L P Q, X, gaps '-' '.', digits) is an
`InputError` naming the file and the record or character offset. The tokenizers then see A C G T
and the ambiguity codes only (see `aam.data.dna_tokenizers`: a k-mer with an ambiguity code is
[UNK]; the character tokenizer reads every ambiguity code as N).

Plain-text DNA is one long text of concatenated sequence: whitespace and newlines are ignored,
letters are upper-cased, and any character that is not an IUPAC nucleotide code is an
`InputError` naming the file and character offset. The file is read in chunks, so a text larger
than memory streams through. FASTA files are read record by record with `aam.io.fasta.iter_fasta`
and each record is cut separately (blocks never span two records).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from aam.errors import InputError
from aam.io.fasta import iter_fasta, open_text, reading

IUPAC = "ACGTNRYSWKMBDHVU"
_VALID = np.zeros(256, dtype=bool)
for _c in IUPAC:
    _VALID[ord(_c)] = True
_WHITESPACE = re.compile(r"\s+")
_U_TO_T = str.maketrans("U", "T")


def dna_records(ids: Sequence[str], seqs: Sequence[str], source: str | os.PathLike) -> list[str]:
    """Check upper-cased DNA records against the IUPAC codes and read U as T.

    The first character outside the alphabet is an `InputError` naming `source`, the record's ID
    and the position (1-based). One vectorized lookup over all records joined.
    """
    joined = np.frombuffer("".join(seqs).encode("ascii", errors="replace"), dtype=np.uint8)
    bad = np.flatnonzero(~_VALID[joined])
    if bad.size:
        ends = np.cumsum([len(s) for s in seqs])
        i = int(np.searchsorted(ends, bad[0], side="right"))
        pos = int(bad[0]) - (int(ends[i - 1]) if i else 0)
        raise InputError(
            f"{source}: record '{ids[i]}': character {seqs[i][pos]!r} at position {pos + 1} is not an "
            f"IUPAC nucleotide code ({' '.join(IUPAC)})"
        )
    return [s.translate(_U_TO_T) for s in seqs]


def is_fasta(path: str | os.PathLike) -> bool:
    """True when the first non-blank character of the file is '>'."""
    with reading(path), open_text(path) as fh:
        for line in fh:
            stripped = line.strip()
            if stripped:
                return stripped.startswith(">")
    return False


def iter_dna_text(path: str | os.PathLike, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Yield upper-case chunks of a plain-text DNA file with whitespace removed, validated."""
    offset = 0
    with reading(path), open_text(path) as fh:
        while True:
            raw = fh.read(chunk_chars)
            if not raw:
                break
            text = _WHITESPACE.sub("", raw).upper()
            if text.startswith(">") or ">" in text:
                raise InputError(f"{path}: '>' found in a plain-text DNA file; use the FASTA input for FASTA")
            arr = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
            bad = np.flatnonzero(~_VALID[arr])
            if len(bad):
                raise InputError(
                    f"{path}: character {text[bad[0]]!r} at DNA position {offset + int(bad[0])} "
                    "is not an IUPAC nucleotide code"
                )
            offset += len(text)
            if text:
                yield text.translate(_U_TO_T)


def iter_text_blocks(
    path: str | os.PathLike, block_len: int, stride: int | None = None, drop_last: bool = True
) -> Iterator[str]:
    """Cut a plain-text DNA file into blocks of `block_len` characters every `stride` characters."""
    if block_len < 1:
        raise ValueError("block_len must be >= 1")
    stride = stride or block_len
    buf = ""
    for chunk in iter_dna_text(path):
        buf += chunk
        start = 0
        while start + block_len <= len(buf):
            yield buf[start : start + block_len]
            start += stride
        buf = buf[start:]
    if buf and not drop_last and len(buf) < block_len:
        yield buf


def iter_fasta_blocks(
    path: str | os.PathLike, block_len: int, stride: int | None = None
) -> Iterator[tuple[str, str]]:
    """Yield (record_id, block) for every full block of every FASTA record."""
    stride = stride or block_len
    for rec_id, seq in iter_fasta(path):
        for start in range(0, len(seq) - block_len + 1, stride):
            yield rec_id, seq[start : start + block_len]


def read_blocks(
    path: str | os.PathLike, block_len: int, stride: int | None = None, max_blocks: int | None = None
) -> np.ndarray:
    """Read blocks of a FASTA or plain-text DNA file into an (n, block_len) uint8 character array."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if is_fasta(path):
        blocks = (b for _, b in iter_fasta_blocks(path, block_len, stride))
    else:
        blocks = iter_text_blocks(path, block_len, stride)
    out: list[bytes] = []
    for block in blocks:
        out.append(block.encode("ascii", errors="replace"))
        if max_blocks is not None and len(out) >= max_blocks:
            break
    if not out:
        raise InputError(f"{path}: no DNA block of {block_len} characters")
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(len(out), block_len).copy()
