"""Shared fixtures: paths to the bundled demo data and to ../shared/data when it is present, and the
three-study corpus. Shared helpers (data writers, drivers) are in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Tests run on 2 cores beside each other; keep BLAS and torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The minute-long tests (marked ``slow``) first, in their file order. pytest-xdist's worksteal
    gives each worker a contiguous share of this order and lets an idle worker take from another's
    queue: with the long tests at the front they start at once, and the short ones fill in around
    them, instead of a worker starting a 4-minute test when every other queue has run dry."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_ibd() -> Path:
    """The bundled IBD 2538 demo: table.biom, tree.nwk, metadata.tsv."""
    return DEMO / "ibd2538"


@pytest.fixture(scope="session")
def demo_gg() -> Path:
    """The bundled Greengenes 13_8 V4 demo subset: v4_3k.fasta, v4_3k.taxonomy.tsv."""
    return DEMO / "gg13_8_v4"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (the QIIME 2 originals, the 20k Greengenes set); skips where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three studies: a and b on tree A (overlapping features), c on tree B (other tips)
    (tests/test_corpus.py, tests/test_runs.py)."""
    from helpers.corpus import random_tree, write_study

    from aam.data.corpus import CorpusStudy

    tmp = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(11)
    tips_a = [f"otu{i}" for i in range(40)]
    tips_b = [f"x{i}" for i in range(25)]
    (tmp / "A.nwk").write_text(random_tree(tips_a, rng))
    (tmp / "B.nwk").write_text(random_tree(tips_b, rng))
    studies = [
        CorpusStudy("a", write_study(tmp / "a", tips_a[:30], 21, rng, prefix="a"), str(tmp / "A.nwk"), 60),
        CorpusStudy("b", write_study(tmp / "b", tips_a[10:], 13, rng, prefix="b"), str(tmp / "A.nwk"), 40),
        CorpusStudy("c", write_study(tmp / "c", tips_b, 11, rng, prefix="c"), str(tmp / "B.nwk"), 50),
    ]
    return tmp, studies
