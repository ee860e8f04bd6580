"""AAM nucleotide tokenizer: DNA strings to fixed-width uint8 token rows.

Vocabulary (fixed, shared with the model's embedding table):

====== ===== =========================================================
token  id    meaning
====== ===== =========================================================
PAD    0     padding after the end of a sequence
A C G T 1-4  the four nucleotides (U is read as T)
N      5     N and every other IUPAC ambiguity code (R Y S W K M B D H V)
MASK   6     masked position (set by the masked-nucleotide objective, never by encoding)
====== ===== =========================================================

Input is upper-cased. A sequence longer than ``max_bp`` is cut to its first ``max_bp`` bases; cuts
are counted and reported in :class:`EncodeStats` (and logged), never silent. A character that is
not an IUPAC nucleotide code (gaps ``-``/``.`` included) is an :class:`aam.errors.InputError`
naming the sequence.

Encoding is one NumPy lookup over the bytes of all sequences at once: the sequences are joined
into one byte buffer, every byte is mapped through a 256-entry table, and the codes are scattered
into a ``[n, max_bp]`` matrix by a flat index computed from the sequence offsets. There is no
Python loop per character, and the loop per sequence only gathers lengths.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aam.errors import InputError

log = logging.getLogger(__name__)

PAD = 0
A, C, G, T = 1, 2, 3, 4
N = 5
MASK = 6
VOCAB_SIZE = 7
TOKENS = ("[PAD]", "A", "C", "G", "T", "N", "[MASK]")

INVALID = 255
_AMBIGUOUS = "NRYSWKMBDHV"


def _lookup_table() -> np.ndarray:
    table = np.full(256, INVALID, dtype=np.uint8)
    for chars, code in (("A", A), ("C", C), ("G", G), ("T", T), ("U", T)):
        for ch in chars:
            table[ord(ch)] = code
            table[ord(ch.lower())] = code
    for ch in _AMBIGUOUS:
        table[ord(ch)] = N
        table[ord(ch.lower())] = N
    table.setflags(write=False)
    return table


LOOKUP = _lookup_table()
_DECODE = np.frombuffer(b"\x00ACGTN*", dtype=np.uint8)  # MASK decodes to '*', PAD to nothing


@dataclass
class EncodeStats:
    """What encoding did to the input: how many sequences were cut, and the longest one seen."""

    n_sequences: int = 0
    n_truncated: int = 0
    max_length_seen: int = 0
    n_empty: int = 0

    def merge(self, other: EncodeStats) -> EncodeStats:
        return EncodeStats(
            self.n_sequences + other.n_sequences,
            self.n_truncated + other.n_truncated,
            max(self.max_length_seen, other.max_length_seen),
            self.n_empty + other.n_empty,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "n_sequences": self.n_sequences,
            "n_truncated": self.n_truncated,
            "max_length_seen": self.max_length_seen,
            "n_empty": self.n_empty,
        }


class NucleotideTokenizer:
    """Encode DNA sequences to ``uint8`` token rows of width ``max_bp`` (see the module docstring).

    >>> tok = NucleotideTokenizer(max_bp=6)
    >>> tok.encode(["ACgtn", "ACGTACGT"]).tolist()
    [[1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 1, 2]]
    >>> tok.last_stats.n_truncated
    1
    """

    def __init__(self, max_bp: int = 150):
        if int(max_bp) < 1:
            raise ValueError(f"max_bp must be >= 1, got {max_bp}")
        self.max_bp = int(max_bp)
        self.last_stats = EncodeStats()

    # Settings that change the tokens: they go into every cache's metadata.
    def settings(self) -> dict:
        return {
            "tokenizer": "aam-nucleotide",
            "version": 1,
            "max_bp": self.max_bp,
            "vocab": list(TOKENS),
        }

    def encode(
        self, sequences: Sequence[str | bytes], ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Tokens ``[n, max_bp]`` (uint8), padded with 0. ``ids`` name sequences in error messages.

        Sets ``self.last_stats``; a warning is logged if any sequence was cut.
        """
        tokens, lengths, stats = self.encode_with_lengths(sequences, ids)
        return tokens

    def encode_with_lengths(
        self, sequences: Sequence[str | bytes], ids: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray, EncodeStats]:
        """Like :meth:`encode`, also returning kept lengths (int32, <= max_bp) and the stats."""
        n = len(sequences)
        max_bp = self.max_bp
        if n == 0:
            self.last_stats = EncodeStats()
            return np.zeros((0, max_bp), dtype=np.uint8), np.zeros(0, dtype=np.int32), self.last_stats
        full_len = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
        data = _join_ascii(sequences, ids)
        codes = LOOKUP[np.frombuffer(data, dtype=np.uint8)]
        if (codes == INVALID).any():
            self._raise_invalid(codes, full_len, sequences, ids)
        stats = EncodeStats(
            n_sequences=n,
            n_truncated=int((full_len > max_bp).sum()),
            max_length_seen=int(full_len.max()),
            n_empty=int((full_len == 0).sum()),
        )
        kept = np.minimum(full_len, max_bp)
        if stats.n_truncated:
            # Rare path: keep the first max_bp codes of each sequence (validation saw every byte).
            starts = np.zeros(n, dtype=np.int64)
            np.cumsum(full_len[:-1], out=starts[1:])
            long = np.flatnonzero(full_len > max_bp)
            keep = np.ones(codes.size, dtype=bool)
            for i in long:  # one slice per cut sequence, not per character
                keep[starts[i] + max_bp : starts[i] + full_len[i]] = False
            codes = codes[keep]
            log.warning(
                "%d of %d sequences are longer than max_bp=%d and were cut (longest %d nt)",
                stats.n_truncated, n, max_bp, stats.max_length_seen,
            )
        if (kept == max_bp).all():
            out = codes.reshape(n, max_bp).copy()
        else:
            out = np.zeros((n, max_bp), dtype=np.uint8)
            out[np.arange(max_bp) < kept[:, None]] = codes  # row-major fill = sequence order
        self.last_stats = stats
        return out, kept.astype(np.int32), stats

    @staticmethod
    def _raise_invalid(codes, full_len, sequences, ids) -> None:
        _raise_at(int(np.flatnonzero(codes == INVALID)[0]), full_len, sequences, ids)

    @staticmethod
    def decode(tokens: np.ndarray) -> list[str]:
        """Token rows back to strings (PAD dropped, ambiguity codes as 'N', MASK as '*')."""
        tokens = np.atleast_2d(np.asarray(tokens, dtype=np.uint8))
        if tokens.size and tokens.max() >= VOCAB_SIZE:
            raise ValueError(f"token ids must be < {VOCAB_SIZE}")
        chars = _DECODE[tokens]
        return [row[row != 0].tobytes().decode("ascii") for row in chars]


def _raise_at(flat_pos: int, full_len: np.ndarray, sequences, ids) -> None:
    """Raise the InputError for the invalid character at ``flat_pos`` of the joined input."""
    ends = np.cumsum(full_len)
    i = int(np.searchsorted(ends, flat_pos, side="right"))
    offset = flat_pos - (int(ends[i - 1]) if i else 0)
    seq = sequences[i]
    if isinstance(seq, bytes | bytearray | memoryview):
        seq = bytes(seq).decode("latin-1")
    name = ids[i] if ids is not None else f"#{i}"
    preview = seq[:40] + ("..." if len(seq) > 40 else "")
    raise InputError(
        f"sequence {name!s}: character {seq[offset]!r} at position {offset + 1} is not an IUPAC "
        f"nucleotide code (sequence starts {preview!r})"
    )


def _join_ascii(sequences: Sequence[str | bytes], ids) -> bytes:
    """All sequences as one byte string (one C-level join); non-ASCII text is an InputError."""
    if all(isinstance(s, str) for s in sequences):
        joined = "".join(sequences)
        try:
            return joined.encode("ascii")
        except UnicodeEncodeError as err:
            full_len = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
            _raise_at(err.start, full_len, sequences, ids)
    return b"".join(s.encode("latin-1", "replace") if isinstance(s, str) else bytes(s) for s in sequences)


def encode(sequences: Sequence[str | bytes], max_bp: int = 150, ids: Sequence[str] | None = None):
    """Shorthand for ``NucleotideTokenizer(max_bp).encode(sequences, ids)``."""
    return NucleotideTokenizer(max_bp).encode(sequences, ids)
