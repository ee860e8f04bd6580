"""Benchmark data-parallel training on CPU: 2 processes (DDP, gloo) against 1 process.

    python scripts/bench_ddp.py [--samples 164] [--epochs 2]

A synthetic study (tests/helpers/aam_synthetic.py) and the DDP test's worker (tests/ddp_worker.py): AAM
pretraining of a 64-dim, 2-layer model, batch 4 per process; by default 41 batches per epoch, an
odd count, so that the last round of the 2 processes is padded. References measured in the same run:
one process with 1 thread and with 2 threads, accumulating 2 batches per step (the same global batch
and the same weights as the 2 processes: tests/test_ddp.py). Prints the training samples per second
of each (wall time of `fit`, setup included) and the ratio of 2 processes to 1, with the machine's
load average, since on a shared machine other work takes cores too. On 2 cores DDP need not be
faster (gradient all-reduce and two Python processes); it must give the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402
from helpers.aam_synthetic import write_study  # noqa: E402

WORKER = ROOT / "tests" / "ddp_worker.py"
MODEL = {"embedding_dim": 64, "layers": 2, "heads": 4, "ff_dim": 128, "asv_limit": 32}


def launch(args: dict, world: int) -> list[dict]:
    """Run the worker as `world` processes (ranks); their results."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # OpenMP waits as the `aam` command sets them (aam.threads.sleeping_waits), unless set here
    env = {**os.environ, "OMP_NUM_THREADS": str(args.get("threads", 1)),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), json.dumps({**args, "world": world, "rank": r,
                                                                        "port": port})],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            sys.exit(f"worker failed:\n{out[-3000:]}")
    out = Path(args["out"]) / "pretrain"
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def rate(results: list[dict]) -> float:
    """Training samples per second: all ranks' samples over the slowest rank's fit time."""
    n = sum(len(s) for r in results for _, _, s, padding in r["seen"] if not padding)
    return n / max(r["wall_s"] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=164, help="training samples")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        write_study(tmp / "data", n_samples=args.samples + 24, n_train=args.samples, n_val=16)
        base = {"data": str(tmp / "data"), "epochs": args.epochs, "tasks": ["pretrain"], "model": MODEL}
        one = launch({**base, "out": str(tmp / "one1"), "accumulate": 2, "threads": 1}, 1)
        one2 = launch({**base, "out": str(tmp / "one2"), "accumulate": 2, "threads": 2}, 1)
        two = launch({**base, "out": str(tmp / "two"), "threads": 1}, 2)
    reference = one[0]["state"]
    same = all(torch.allclose(two[0]["state"][k], v, rtol=1e-5, atol=1e-6) for k, v in reference.items())
    equal = sum(torch.equal(two[0]["state"][k], v) for k, v in reference.items())
    worst = max(float((two[0]["state"][k].double() - v.double()).abs().max()) for k, v in reference.items())
    r1, r12, r2 = rate(one), rate(one2), rate(two)
    print(f"AAM pretraining, {args.samples} training samples x {args.epochs} epochs, global batch 8, {MODEL}")
    print(f"  1 process, 1 thread : {r1:7.2f} samples/s")
    print(f"  1 process, 2 threads: {r12:7.2f} samples/s")
    print(f"  2 processes (DDP)   : {r2:7.2f} samples/s = {r2 / r1:.2f}x 1 process/1 thread, "
          f"{r2 / r12:.2f}x 1 process/2 threads")
    print(f"  weights of 2 processes vs 1 (accumulating 2): {equal} of {len(reference)} tensors bit-equal, "
          f"largest difference {worst:.1e}; within rtol 1e-5 / atol 1e-6: {same}")
    print(f"  {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
