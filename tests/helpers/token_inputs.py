"""The token-cache builder's inputs in miniature: four features, three samples (one tie)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = {"f0": "ACGTACGTAA", "f1": "ccggttaa", "f2": "NNACGT", "f3": "TTTTTTTTTTTT"}
COUNTS = [  # sample, feature, count (long); s2 has a tie between f1 and f3
    ("s1", "f0", 5), ("s1", "f2", 9), ("s1", "f1", 1),
    ("s2", "f3", 4), ("s2", "f1", 4), ("s2", "f0", 10),
    ("s0", "f2", 3),
]


def write_inputs(folder, counts=COUNTS, feature_as_index=False):
    """f.parquet (feature_id, sequence) and c.parquet (sample, feature, count) under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(FEATURES)
    pq.write_table(pa.table({"feature_id": ids, "sequence": list(FEATURES.values())}), folder / "f.parquet")
    feats = [ids.index(f) if feature_as_index else f for _, f, _ in counts]
    pq.write_table(
        pa.table({"sample": [s for s, _, _ in counts], "feature": feats, "count": [c for *_, c in counts]}),
        folder / "c.parquet",
    )
    return folder / "f.parquet", folder / "c.parquet"
