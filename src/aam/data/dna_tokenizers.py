"""Tokenizers for the DNA sequence models: overlapping k-mers (DNABERT-style) and characters.

Both share five special tokens with fixed IDs::

    [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4

followed by the alphabet: for `KmerTokenizer` all 4^k k-mers over ACGT in lexicographic order
(ID = 5 + base-4 number of the k-mer with A=0 C=1 G=2 T=3); for `CharTokenizer` the characters
A C G T N.

IUPAC treatment (explicit):
- input is upper-cased first;
- k-mers: a k-mer containing N, another IUPAC ambiguity code or any non-ACGT character is [UNK];
- characters: the IUPAC ambiguity codes (N R Y S W K M B D H V) are N; any other character
  (e.g. '-', '*', digits) is [UNK].

Encoding is vectorized with NumPy: all sequences of a batch are concatenated into one uint8
buffer, k-mer codes come from a sliding window dot product, and the per-sequence k-mer starts are
gathered in one fancy-indexing step, with no Python loop per character.

Decoding: with the k-mer tokenizer each k-mer writes its bases at its start position; bases that
only [UNK] k-mers cover decode as N. A sequence of ACGT round-trips exactly when the stride is at
most k and (length - k) is a multiple of the stride (always so for stride 1); otherwise the tail
that no k-mer reaches is lost (as in DNABERT).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aam.errors import InputError
from aam.io.atomic import write_text

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)
IUPAC_AMBIGUOUS = "NRYSWKMBDHV"

# byte -> base code: A C G T -> 0..3, everything else 4 (invalid for a k-mer)
_BASE_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _BASE_CODE[ord(_c)] = _i
    _BASE_CODE[ord(_c.lower())] = _i


def _to_buffer(seqs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate sequences into one upper-case uint8 buffer; return (buffer, offsets, lengths)."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs), dtype=np.int64)
    if len(seqs) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    joined = "".join(seqs).upper().encode("ascii", errors="replace")
    return np.frombuffer(joined, dtype=np.uint8), offsets, lengths


class _BaseTokenizer:
    """Shared batch encoding: per-sequence token positions into a padded matrix + attention mask."""

    kind = "base"
    k = 1
    stride = 1

    def __init__(self, add_special_tokens: bool = True) -> None:
        self.add_special_tokens = bool(add_special_tokens)

    # --- to implement: unit codes for every window start of the buffer -------------------------
    def _unit_ids(self, buf: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def vocab(self) -> list[str]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    def n_tokens(self, length: int) -> int:
        """Number of tokens (without specials) for a sequence of `length` characters."""
        return max(0, (length - self.k) // self.stride + 1) if length >= self.k else 0

    # --- encoding --------------------------------------------------------------------------------
    def batch_encode(
        self, seqs: Sequence[str], max_length: int | None = None, pad_to: int | None = None
    ) -> dict[str, np.ndarray]:
        """Encode a batch: `input_ids` (N, L) int64 padded with [PAD], `attention_mask` (N, L) bool.

        `max_length` caps L (tokens including [CLS]/[SEP]; the sequence's tokens are cut, [SEP]
        kept); `pad_to` pads L up to at least that width (fixed shapes).
        """
        seqs = list(seqs)
        n = len(seqs)
        n_extra = 2 if self.add_special_tokens else 0
        if n == 0:
            width = max(pad_to or 0, n_extra)
            return {
                "input_ids": np.zeros((0, width), dtype=np.int64),
                "attention_mask": np.zeros((0, width), dtype=bool),
            }
        buf, offsets, lengths = _to_buffer(seqs)
        units = self._unit_ids(buf)
        counts = np.where(lengths >= self.k, (lengths - self.k) // self.stride + 1, 0)
        if max_length is not None:
            counts = np.minimum(counts, max(0, max_length - n_extra))
        total = int(counts.sum())
        width = int(counts.max()) + n_extra
        if pad_to is not None:
            width = max(width, pad_to)
        ids = np.zeros((n, width), dtype=np.int64)
        row = np.repeat(np.arange(n), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(total) - first  # position of each token within its sequence
        starts = np.repeat(offsets, counts) + rank * self.stride
        col = rank + (1 if self.add_special_tokens else 0)
        ids[row, col] = units[starts]
        if self.add_special_tokens:
            ids[:, 0] = CLS_ID
            ids[np.arange(n), counts + 1] = SEP_ID
        mask = np.arange(width)[None, :] < (counts + n_extra)[:, None]
        return {"input_ids": ids, "attention_mask": mask}

    def encode(self, seq: str, max_length: int | None = None) -> np.ndarray:
        """Token IDs of one sequence (1-D int64, no padding)."""
        out = self.batch_encode([seq], max_length=max_length)
        return out["input_ids"][0][out["attention_mask"][0]]

    # --- decoding --------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        raise NotImplementedError

    def batch_decode(self, ids: np.ndarray) -> list[str]:
        return [self.decode(row) for row in np.asarray(ids)]

    # --- persistence -----------------------------------------------------------------------------
    def settings(self) -> dict:
        return {
            "type": self.kind,
            "k": self.k,
            "stride": self.stride,
            "add_special_tokens": self.add_special_tokens,
            "vocab": self.vocab,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary and settings as JSON (atomically)."""
        write_text(path, json.dumps(self.settings(), indent=1) + "\n")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BaseTokenizer) and self.settings() == other.settings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, stride={self.stride}, vocab_size={self.vocab_size})"


class KmerTokenizer(_BaseTokenizer):
    """Overlapping k-mers with a configurable stride; vocabulary 4^k + 5 specials."""

    kind = "kmer"

    def __init__(self, k: int = 6, stride: int = 1, add_special_tokens: bool = True) -> None:
        super().__init__(add_special_tokens)
        if not 1 <= k <= 12:
            raise ValueError(f"k must be in 1..12, got {k}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.k = int(k)
        self.stride = int(stride)
        self._powers = (4 ** np.arange(self.k - 1, -1, -1)).astype(np.int64)
        self._vocab: list[str] | None = None

    @property
    def vocab(self) -> list[str]:
        if self._vocab is None:
            kmers = ["".join(p) for p in itertools.product("ACGT", repeat=self.k)]
            self._vocab = SPECIAL_TOKENS + kmers
        return self._vocab

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + 4**self.k

    def _unit_ids(self, buf: np.ndarray) -> np.ndarray:
        codes = _BASE_CODE[buf]
        if len(codes) < self.k:
            return np.zeros(0, dtype=np.int64)
        bad = np.concatenate([[0], np.cumsum(codes == 4, dtype=np.int64)])
        n_bad = bad[self.k :] - bad[: -self.k]  # invalid characters in each window
        windows = np.lib.stride_tricks.sliding_window_view(codes.astype(np.int64), self.k)
        values = windows @ self._powers + N_SPECIAL
        values[n_bad > 0] = UNK_ID
        return values

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[(ids == UNK_ID) | (ids >= N_SPECIAL)]  # drop [PAD] [CLS] [SEP] [MASK]
        if len(ids) == 0:
            return ""
        length = (len(ids) - 1) * self.stride + self.k
        out = np.full(length, ord("N"), dtype=np.uint8)  # also gaps when stride > k
        known = ids >= N_SPECIAL
        vals = ids[known] - N_SPECIAL
        digits = (vals[:, None] // self._powers[None, :]) % 4  # (n_known, k) base codes
        pos = (np.flatnonzero(known) * self.stride)[:, None] + np.arange(self.k)[None, :]
        out[pos.ravel()] = np.frombuffer(b"ACGT", dtype=np.uint8)[digits.ravel()]
        return out.tobytes().decode("ascii")


class CharTokenizer(_BaseTokenizer):
    """One token per character: A C G T N (+ specials); other IUPAC codes are N, other text [UNK]."""

    kind = "char"
    ALPHABET = "ACGTN"

    def __init__(self, add_special_tokens: bool = True) -> None:
        super().__init__(add_special_tokens)
        table = np.full(256, UNK_ID, dtype=np.int64)
        for c in IUPAC_AMBIGUOUS:
            table[ord(c)] = N_SPECIAL + 4
        for i, c in enumerate("ACGT"):
            table[ord(c)] = N_SPECIAL + i
        self._table = table

    @property
    def vocab(self) -> list[str]:
        return SPECIAL_TOKENS + list(self.ALPHABET)

    def _unit_ids(self, buf: np.ndarray) -> np.ndarray:
        return self._table[buf]

    def encode_codes(self, buf: np.ndarray) -> np.ndarray:
        """Token IDs of an upper-case uint8 character array of any shape (no specials)."""
        return self._table[buf]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[(ids == UNK_ID) | (ids >= N_SPECIAL)]
        chars = np.frombuffer(b"?????ACGTN", dtype=np.uint8)
        out = chars[np.where(ids == UNK_ID, N_SPECIAL + 4, ids)]
        return out.tobytes().decode("ascii")


Tokenizer = KmerTokenizer | CharTokenizer


def make_tokenizer(settings: dict) -> Tokenizer:
    """Build a tokenizer from settings: {type: kmer|char, k, stride, add_special_tokens}."""
    kind = settings.get("type", "kmer")
    special = settings.get("add_special_tokens", True)
    if kind == "kmer":
        return KmerTokenizer(
            k=settings.get("k", 6), stride=settings.get("stride", 1), add_special_tokens=special
        )
    if kind == "char":
        return CharTokenizer(add_special_tokens=special)
    raise ValueError(f"unknown tokenizer type {kind!r} (kmer or char)")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved with `save`; the stored vocabulary must match the rebuilt one."""
    path = Path(path)
    try:
        settings = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read tokenizer JSON: {err}") from err
    tok = make_tokenizer(settings)
    if settings.get("vocab") is not None and settings["vocab"] != tok.vocab:
        raise InputError(f"{path}: stored vocabulary does not match a {tok!r}")
    return tok
