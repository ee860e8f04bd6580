"""scripts/gpu_check.py --cpu: the GPU check runs end to end on CPU (tiny step counts, the demo
config's small models) and reports UniFrac agreement, a throughput line for every model, and the
real training engine's fit for pretraining and fine-tuning in 1 process and with DDP (2 gloo
processes, the path that NCCL takes on GPUs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--cpu", "--config",
         str(REPO / "config" / "config.yaml"), "--work", str(tmp_path), "--cores", "2",
         "--unifrac-samples", "40", "--steps", "1", "--warmup", "0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-3000:]
    diffs = re.findall(r"(\w+) (float32|float64) on cpu: .* max \|diff\| to CPU fp64 (\S+)", out)
    assert {(m, d) for m, d, _ in diffs} == {(m, d) for m in ("unweighted", "weighted_normalized",
                                                               "weighted_unnormalized")
                                             for d in ("float32", "float64")}
    for _, dtype, diff in diffs:
        assert float(diff) <= (1e-5 if dtype == "float32" else 1e-12)
    models = r"(pretraining|fine-tuning \(ibd\)|contrastive training)"
    rates = re.findall(models + r" (bf16|fp32): +([\d.]+) samples/s", out)
    assert len(rates) == 6 and all(float(r) > 0 for *_, r in rates)
    fits = re.findall(r"fit +(pretraining|fine-tuning) cpu x(\d) \(([^)]*)\): +([\d.]+) samples/s", out)
    assert {(task, world) for task, world, _, _ in fits} == {(t, w) for t in ("pretraining", "fine-tuning")
                                                             for w in ("1", "2")}
    assert all(float(rate) > 0 for *_, rate in fits)
    assert all(kind.startswith("DDP gloo") for _, world, kind, _ in fits if world == "2")
