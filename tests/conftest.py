"""Shared fixtures: paths to the bundled demo data and to ../shared/data when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on 2 cores beside each other; keep BLAS and torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
SHARED_DATA = REPO.parent / "shared" / "data"


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
