"""Diagnose why UniFrac pretraining does not transfer, on the benchmark's own folds (read-only).

Why: the bundled encoder (UniFrac-pretrained on an 8-study corpus) fine-tuned ranks below training
from scratch on the benchmark (docs/benchmark.md, "Candidates and combinations"). Two measurements,
each on every task's 5 x 2 grouped folds beside the baselines' and AAM runs' per-fold scores:

(a) Does the pretraining target carry the task's signal? The study's unweighted UniFrac distances
    alone, read by distance-weighted kNN (``unifrac_knn``) and by a linear model of each sample's
    distances to training samples (``unifrac_dissimilarity``), with kNN on the Aitchison distance
    (Euclidean on CLR, what ``linear_clr`` reads) as the control for the kNN learner.
(b) Does the bundled encoder's frozen representation carry more task signal than the same
    architecture at random initialisation, or with its own weights shuffled within each tensor?
    A linear probe on the frozen pooled sample embeddings (``probe_pretrained``, ``probe_random``,
    ``probe_permuted``); and how well each embedding's Euclidean distances reproduce the study's
    UniFrac (Pearson r over all sample pairs).

Every probe chooses its one setting by grouped inner CV on the fold's training samples only
(aam.evaluate.probes); a fold whose test samples differ from the baselines' is refused. Nothing is
written under the results folder; ``--out`` writes the per-fold scores (TSV) elsewhere.

    nice -n 19 env OMP_NUM_THREADS=1 python scripts/diagnose_pretraining.py --results results_benchmark
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from safetensors.torch import load_file
from scipy.spatial.distance import pdist, squareform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from absent_inputs import skip_if_absent  # noqa: E402

from aam.evaluate.baselines import clr  # noqa: E402
from aam.evaluate.cv import paired_tests  # noqa: E402
from aam.evaluate.fold_baselines import fold_data  # noqa: E402
from aam.evaluate.frozen_encoder import INITS, cache_embeddings, frozen_encoder  # noqa: E402
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics  # noqa: E402
from aam.evaluate.probes import nested_probe  # noqa: E402
from aam.io.atomic import write_text  # noqa: E402
from aam.io.biom import read_table, table_to_csr  # noqa: E402
from aam.io.distance_matrix import MatrixFile  # noqa: E402
from aam.pretrained import bundled_dir  # noqa: E402

REFERENCES = ("linear_clr", "random_forest", "aam", "aam_bundled", "aam_bundled_arch")
# (model, reference): the paired comparisons printed per task and over tasks.
PAIRS = (("unifrac_knn", "linear_clr"), ("unifrac_dissimilarity", "linear_clr"),
         ("unifrac_knn", "aitchison_knn"), ("probe_pretrained", "probe_random"),
         ("probe_pretrained", "probe_permuted"), ("probe_pretrained", "linear_clr"),
         ("probe_pretrained", "aam_bundled"), ("probe_random", "aam"), ("aam_bundled", "aam"))


def pair_distance_r(embedding: np.ndarray, distances: np.ndarray) -> float:
    """Pearson r of the embeddings' Euclidean distances and a distance matrix over all pairs."""
    return float(np.corrcoef(pdist(embedding), squareform(distances, checks=False))[0, 1])


def weight_change(run_dir: Path, pretrained: dict[str, torch.Tensor]) -> float:
    """How far fine-tuning moved the encoder: ||W_finetuned - W_pretrained|| / ||W_pretrained||
    over every weight of the encoder (Frobenius norms of all its tensors together)."""
    tuned = load_file(str(run_dir / "model.safetensors"))
    weights = {k: w for k, w in pretrained.items() if w.is_floating_point()}  # not the boolean buffers
    moved = sum(float(((tuned[f"base.{k}"] - w) ** 2).sum()) for k, w in weights.items())
    return (moved / sum(float((w ** 2).sum()) for w in weights.values())) ** 0.5


def task_rows(root: Path, target: dict, encoder: Path, seed: int) -> list[dict]:
    """Per fold and model the test score (measure ``test``) and how far fine-tuning moved the
    bundled encoder (``weight_change``); per encoder the r of its embedding distances with the
    study's UniFrac (``unifrac_r``)."""
    name, column, task = target["name"], target["column"], target["type"]
    unifrac = MatrixFile(root / "unifrac" / "unweighted.tsv")
    d_unifrac, ids = unifrac.to_array(), unifrac.ids
    at = {s: i for i, s in enumerate(ids)}
    counts, table_ids, _ = table_to_csr(read_table(root / "rarefied" / "table.biom"))
    table_row = {s: i for i, s in enumerate(table_ids)}
    logs = clr(counts.toarray()[[table_row[s] for s in ids]], 0.5)
    d_aitchison = squareform(pdist(logs))
    embeddings, rows = {}, []
    for init in INITS:
        start = time.perf_counter()
        emb_ids, emb = cache_embeddings(frozen_encoder(encoder, init, seed), root / "tokens", seed)
        row_of = {s: i for i, s in enumerate(emb_ids)}
        missing = [s for s in ids if s not in row_of]
        if missing:
            raise SystemExit(f"{root / 'tokens'}: no embedding for sample {missing[0]} of the UniFrac matrix")
        embeddings[init] = emb[[row_of[s] for s in ids]]
        r = pair_distance_r(embeddings[init], d_unifrac)
        rows.append({"fold": "all", "model": f"embedding_{init}", "measure": "unifrac_r", "score": r,
                     "chosen": ""})
        print(f"  {init}: {len(ids)} embeddings in {time.perf_counter() - start:.0f} s, "
              f"r(embedding distance, UniFrac) {r:.3f}", flush=True)
    summary = json.loads((root / "cv_summary" / name / "summary.json").read_text())
    classes_json = json.dumps(target["classes"]) if target.get("classes") else ""
    for split in sorted((root / "cv" / "split").glob("r*/r*f*.tsv")):
        fold = split.stem
        data = fold_data(str(root / "rarefied" / "table.biom"), str(split),
                         str(root / "ingest" / "samples.parquet"), column, task, classes_json,
                         target.get("positive_class") or "", ("train", "val"))
        baselines = json.loads((root / "cv" / fold / "baselines" / name / "metrics.json").read_text())
        if data.fold_samples["test"] != baselines["test_samples"]:
            raise SystemExit(f"{split}: test samples differ from those of the baselines' {fold}")
        order = np.array([at[s] for s in data.train_ids + data.test_ids])
        y = np.concatenate([data.y_train, data.y_test])
        train, test = np.arange(len(data.train_ids)), np.arange(len(data.train_ids), len(order))
        groups = list(data.groups) + [None] * len(data.test_ids)
        inputs = {"unifrac_knn": ("knn", d_unifrac), "unifrac_dissimilarity": ("dissimilarity", d_unifrac),
                  "aitchison_knn": ("knn", d_aitchison),
                  **{f"probe_{init}": ("linear", embeddings[init]) for init in INITS}}
        for model, (probe, x) in inputs.items():
            x = x[np.ix_(order, order)] if probe != "linear" else x[order]
            pred, proba, chosen = nested_probe(probe, x, y, groups, train, test, task, data.classes, seed)
            score = compute_metrics(task, data.y_test, pred, proba, data.classes)[PRIMARY_METRIC[task]]
            rows.append({"fold": fold, "model": model, "measure": "test", "score": score,
                         "chosen": json.dumps(chosen)})
        for model in REFERENCES:
            per_fold = summary["models"].get(model, {}).get("per_fold", {})
            if fold in per_fold:
                rows.append({"fold": fold, "model": model, "measure": "test", "score": per_fold[fold],
                             "chosen": ""})
        tuned = root / "cv" / fold / "models" / "aam_bundled" / "finetune" / name
        if (tuned / "model.safetensors").exists():
            rows.append({"fold": fold, "model": "aam_bundled", "measure": "weight_change",
                         "score": weight_change(tuned, load_file(str(encoder / "model.safetensors"))),
                         "chosen": ""})
        print(f"  {fold}: " + ", ".join(f"{r['model']} {r['score']:.3f}" for r in rows if r["fold"] == fold),
              flush=True)
    return rows


def comparisons(frame: pd.DataFrame) -> pd.DataFrame:
    """Per pair: per task the mean difference and per-fold wins-losses (Wilcoxon p), and over tasks."""
    out = []
    for model, ref in PAIRS:
        if not {model, ref} <= set(frame["model"]):
            continue
        wide = frame[frame["model"].isin([model, ref])].pivot_table(index=["task", "fold"], columns="model",
                                                                   values="score")
        wide = wide.dropna()
        row = {"pair": f"{model} - {ref}"}
        task_means = []
        for task, sub in wide.groupby(level="task"):
            t = paired_tests((sub[model] - sub[ref]).tolist())
            task_means.append(t["mean"])
            row[task] = f"{t['mean']:+.3f} {t['wins']}-{t['losses']} p{t['wilcoxon_p']:.2f}"
        over = paired_tests(task_means)
        row["over tasks"] = (f"{over['mean']:+.3f} {over['wins']}-{over['losses']} "
                             f"sign p{over['sign_p']:.2f} Wilcoxon p{over['wilcoxon_p']:.2f}")
        out.append(row)
    return pd.DataFrame(out).set_index("pair").T


def report(frame: pd.DataFrame) -> None:
    """Print the CV means per task and over tasks, each encoder's UniFrac r, how far fine-tuning
    moved the bundled encoder's weights, and the paired tests."""
    pd.set_option("display.width", 250)
    scores = frame[frame["measure"] == "test"]
    means = scores.pivot_table(index="model", columns="task", values="score", aggfunc="mean")
    means["mean over tasks"] = means.mean(axis=1)
    print("\nCV mean per task (AUROC; R^2 for regression):")
    print(means.sort_values("mean over tasks", ascending=False).round(3).to_string())
    print("\nr(embedding Euclidean distance, unweighted UniFrac) over all sample pairs:")
    r = frame[frame["measure"] == "unifrac_r"]
    print(r.pivot_table(index="model", columns="task", values="score").round(3).to_string())
    moved = frame[frame["measure"] == "weight_change"]
    if len(moved):
        print("\nfine-tuning moved the bundled encoder's weights by (||dW|| / ||W||, mean over folds):")
        print(moved.groupby("task")["score"].mean().round(3).to_string())
    print("\nPaired differences (mean, per-fold wins-losses, Wilcoxon p):")
    print(comparisons(scores).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results_benchmark", help="the benchmark's results folder")
    parser.add_argument("--config", default="config/benchmark.yaml", help="its config (datasets, targets)")
    parser.add_argument("--datasets", nargs="*", help="only these datasets (default: all in the config)")
    parser.add_argument("--encoder", default=None, help="pretrained encoder folder (default: bundled)")
    parser.add_argument("--out", help="write the per-fold scores here (TSV), after each task")
    parser.add_argument("--report", nargs="+", metavar="TSV", help="print the report of --out files")
    args = parser.parse_args()
    if args.report:
        report(pd.concat([pd.read_csv(f, sep="\t", keep_default_na=False) for f in args.report]))
        return
    skip_if_absent(__file__, {"--results": args.results, "--config": args.config})
    torch.set_num_threads(1)
    config = yaml.safe_load(Path(args.config).read_text())
    seed = int(config.get("seed", 42))
    encoder = Path(args.encoder) if args.encoder else bundled_dir()
    rows = []
    for dataset in args.datasets or list(config["datasets"]):
        root = Path(args.results) / dataset
        for target in config["datasets"][dataset]["targets"]:
            task_name = f"{dataset}/{target['name']}"
            if not (root / "cv_summary" / target["name"] / "summary.json").exists():
                print(f"{task_name}: no cross-validation summary under {root}; left out")
                continue
            print(task_name, flush=True)
            rows += [{"task": task_name, **r} for r in task_rows(root, target, encoder, seed)]
            if args.out:
                write_text(args.out, pd.DataFrame(rows).to_csv(sep="\t", index=False))
    if not rows:
        raise SystemExit(f"no task of {args.config} has a cross-validation summary under {args.results}")
    report(pd.DataFrame(rows))


if __name__ == "__main__":
    main()
