"""Sequence augmentations for contrastive views: substitutions, small indels, random crops.

Each operation works on one sequence as a uint8 array with a NumPy Generator (vectorized per
sequence). Guarantees, whatever the rates:
- the alphabet is kept: substituted and inserted bases are drawn from A C G T, and every other
  character of the output comes from the input;
- the length stays within [min_len, max_len]: crops never go below `min_len` (or the input length,
  if that is shorter), deletions are skipped where they would, and the result is cut to `max_len`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass
class AugmentConfig:
    substitution_rate: float = 0.01  # per base
    insertion_rate: float = 0.005  # indel events per base
    deletion_rate: float = 0.005
    max_indel: int = 2  # longest insertion / deletion (bases)
    crop_fraction: float = 0.9  # a crop keeps a uniform fraction in [crop_fraction, 1]
    crop_prob: float = 0.5  # probability to crop at all
    min_len: int = 32
    max_len: int = 1024

    def __post_init__(self) -> None:
        for name in ("substitution_rate", "insertion_rate", "deletion_rate", "crop_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment {name} must be in [0, 1], got {v}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"augment crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.max_indel < 1 or self.min_len < 1 or self.max_len < self.min_len:
            raise ValueError("augment needs max_indel >= 1 and 1 <= min_len <= max_len")

    def to_dict(self) -> dict:
        return asdict(self)


def substitute(seq: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Replace each base with probability `rate` by one of the three other bases (ACGT)."""
    out = seq.copy()
    hit = np.flatnonzero(rng.random(len(seq)) < rate)
    if len(hit):
        code = np.searchsorted(_BASES, out[hit])  # 0..3 for ACGT, anything else >= 0 as well
        code = np.where(np.isin(out[hit], _BASES), code, 0)
        shift = rng.integers(1, 4, size=len(hit))
        out[hit] = _BASES[(code + shift) % 4]
    return out


def delete(seq: np.ndarray, rate: float, max_len: int, floor: int, rng: np.random.Generator) -> np.ndarray:
    """Delete runs of 1..max_len bases starting at positions drawn with probability `rate`.

    Never goes below `floor` bases: events beyond that are dropped."""
    n = len(seq)
    starts = np.flatnonzero(rng.random(n) < rate)
    if not len(starts):
        return seq
    lengths = rng.integers(1, max_len + 1, size=len(starts))
    keep = np.ones(n, dtype=bool)
    budget = n - floor
    for s, ln in zip(starts, lengths, strict=True):  # few events per sequence
        removed = int((~keep).sum())
        span = keep[s : s + ln]
        if removed + int(span.sum()) > budget:
            break
        keep[s : s + ln] = False
    return seq[keep]


def insert(seq: np.ndarray, rate: float, max_len: int, rng: np.random.Generator) -> np.ndarray:
    """Insert runs of 1..max_len random bases before positions drawn with probability `rate`."""
    n = len(seq)
    pos = np.flatnonzero(rng.random(n) < rate)
    if not len(pos):
        return seq
    lengths = rng.integers(1, max_len + 1, size=len(pos))
    new = _BASES[rng.integers(0, 4, size=int(lengths.sum()))]
    return np.insert(seq, np.repeat(pos, lengths), new)


def crop(seq: np.ndarray, min_fraction: float, floor: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of uniform length in [max(floor, min_fraction * n), n] at a random start."""
    n = len(seq)
    lo = min(n, max(floor, int(np.ceil(min_fraction * n))))
    length = int(rng.integers(lo, n + 1))
    start = int(rng.integers(0, n - length + 1))
    return seq[start : start + length]


class Augmenter:
    """Apply crop -> deletions -> insertions -> substitutions, then enforce the length bounds."""

    def __init__(self, config: AugmentConfig | dict | None = None) -> None:
        if isinstance(config, dict):
            config = AugmentConfig(**config)
        self.config = config or AugmentConfig()

    def __call__(self, seq: str | bytes | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        if isinstance(seq, str):
            seq = seq.encode("ascii", errors="replace")
        arr = np.frombuffer(seq, dtype=np.uint8) if isinstance(seq, bytes) else np.asarray(seq, np.uint8)
        floor = min(len(arr), c.min_len)
        if c.crop_prob > 0 and rng.random() < c.crop_prob:
            arr = crop(arr, c.crop_fraction, floor, rng)
        if c.deletion_rate > 0:
            arr = delete(arr, c.deletion_rate, c.max_indel, floor, rng)
        if c.insertion_rate > 0:
            arr = insert(arr, c.insertion_rate, c.max_indel, rng)
        if c.substitution_rate > 0:
            arr = substitute(arr, c.substitution_rate, rng)
        return arr[: c.max_len]

    def augment_str(self, seq: str, rng: np.random.Generator) -> str:
        return self(seq, rng).tobytes().decode("ascii")
