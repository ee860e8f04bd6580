"""Sequence augmentations keep the alphabet and the length bounds, and are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from aam.data.augment import AugmentConfig, Augmenter, crop, delete, insert, substitute


def _seq(n, seed=0, alphabet="ACGT"):
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(alphabet), n))


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(),
        AugmentConfig(
            substitution_rate=0.3,
            insertion_rate=0.2,
            deletion_rate=0.3,
            max_indel=5,
            crop_fraction=0.3,
            crop_prob=1.0,
            min_len=40,
            max_len=160,
        ),
        AugmentConfig(
            substitution_rate=1.0,
            insertion_rate=1.0,
            deletion_rate=1.0,
            max_indel=3,
            crop_fraction=0.1,
            crop_prob=1.0,
            min_len=100,
            max_len=150,
        ),
    ],
)
def test_length_bounds_and_alphabet(cfg):
    aug = Augmenter(cfg)
    rng = np.random.default_rng(1)
    for i in range(200):
        seq = _seq(150, seed=i, alphabet="ACGTN" if i % 2 else "ACGT")
        out = aug.augment_str(seq, rng)
        assert cfg.min_len <= len(out) <= cfg.max_len
        assert set(out) <= set("ACGT") | set(seq)


def test_short_input_is_never_padded():
    out = Augmenter(AugmentConfig(min_len=50, crop_prob=1.0, deletion_rate=0.5)).augment_str(
        "ACGTACGT", np.random.default_rng(0)
    )
    assert len(out) >= 8 - 0 and set(out) <= set("ACGT")


def test_rates_zero_is_identity():
    cfg = AugmentConfig(substitution_rate=0, insertion_rate=0, deletion_rate=0, crop_prob=0)
    seq = _seq(150)
    assert Augmenter(cfg).augment_str(seq, np.random.default_rng(0)) == seq


def test_substitution_changes_each_hit_base_and_keeps_length():
    seq = np.frombuffer(_seq(1000).encode(), np.uint8)
    out = substitute(seq, 1.0, np.random.default_rng(0))
    assert len(out) == len(seq) and (out != seq).all()
    assert 0.0 < (substitute(seq, 0.05, np.random.default_rng(0)) != seq).mean() < 0.1


def test_indels_and_crop_change_length_as_expected():
    seq = np.frombuffer(_seq(1000).encode(), np.uint8)
    rng = np.random.default_rng(0)
    assert len(insert(seq, 0.05, 2, rng)) > len(seq)
    assert 900 <= len(delete(seq, 0.5, 4, 900, rng)) < len(seq)
    c = crop(seq, 0.5, 10, rng)
    assert 500 <= len(c) <= 1000 and c.tobytes() in seq.tobytes()


def test_seeded():
    aug = Augmenter(AugmentConfig(substitution_rate=0.1, insertion_rate=0.05, deletion_rate=0.05))
    seq = _seq(150)
    a = aug.augment_str(seq, np.random.default_rng([1, 2, 3]))
    b = aug.augment_str(seq, np.random.default_rng([1, 2, 3]))
    assert a == b


def test_bad_rate_is_rejected():
    with pytest.raises(ValueError, match="substitution_rate"):
        AugmentConfig(substitution_rate=1.5)
