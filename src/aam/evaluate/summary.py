"""The tables a person reads first: results per dataset and target, the data behind them.

Each function turns artifacts the stages wrote (comparison.tsv, cv_summary/{target}/summary.tsv, splits.tsv,
rarefied/dropped.tsv, faith_pd.tsv, the sequence models' metrics.json) into a small pandas table;
`html_table` renders one for the Snakemake report. Nothing here trains or scores: the numbers are
the stages' own.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aam.data.split import MISSING_CLASS, split_summary
from aam.evaluate.baselines import BASELINES, LABELS

SPLITS = ("train", "val", "test")


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _mean_sd(mean, sd) -> str:
    if mean is None or pd.isna(mean):
        return ""
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None and not pd.isna(sd) else f"{mean:.3f}"


def headline(comparison: pd.DataFrame) -> pd.DataFrame:
    """One row per target and run of the single split: the primary test metric of the run beside each
    baseline, and the run minus the best baseline."""
    rows = []
    baselines = [b for b in BASELINES if b in comparison.columns]
    has_note = "degenerate" in comparison.columns and comparison["degenerate"].notna().any()
    for r in comparison.to_dict("records"):
        row = {
            "target": r["target"],
            "run": r["run"],
            "test samples": r.get("n_test"),
            "metric": r["metric"],
            "AAM": _fmt(r.get("aam")),
        }
        row.update({LABELS[b]: _fmt(r.get(b)) for b in baselines})
        best = r.get("best_baseline")
        row["AAM − best baseline"] = _fmt(r.get("difference"))
        row["best baseline"] = LABELS.get(best, "") if isinstance(best, str) else ""
        if has_note:
            note = r.get("degenerate")
            row["note"] = "" if note is None or pd.isna(note) else str(note)
        rows.append(row)
    return pd.DataFrame(rows)


def cv_table(cv_summary: pd.DataFrame) -> pd.DataFrame:
    """One target's cross-validation (a cv_summary TSV) as read first: per model the folds, the
    mean ± sd of the metric, and against each baseline the mean per-fold difference with the folds
    won and lost and the corrected t-test's p (aam.evaluate.cv); degenerate folds where there were any."""
    baselines = [b for b in BASELINES if f"vs_{b}_difference" in cv_summary.columns]
    rows = []
    for r in cv_summary.to_dict("records"):
        row = {"model": LABELS.get(r["model"], r["model"]), "metric": r["metric"],
               "folds": "" if pd.isna(r["n_folds"]) else int(r["n_folds"]),
               "mean ± sd": _mean_sd(r.get("mean"), r.get("sd"))}
        for b in baselines:
            diff = r.get(f"vs_{b}_difference")
            if diff is None or pd.isna(diff):
                row[f"vs {LABELS[b]}"] = ""
                continue
            row[f"vs {LABELS[b]}"] = (f"{diff:+.3f} ({int(r[f'vs_{b}_wins'])}/{int(r[f'vs_{b}_losses'])}, "
                                     f"p {_fmt(r.get(f'vs_{b}_corrected_p'))})")
        if r.get("degenerate_folds"):
            row["degenerate folds"] = int(r["degenerate_folds"])
        rows.append(row)
    return pd.DataFrame(rows).astype(object).fillna("")


def fold_sizes(folds: pd.DataFrame) -> pd.DataFrame:
    """The cross-validation folds as read beside their scores (cv-split's summary.tsv: fold, split,
    class, samples, groups): per fold the samples (groups) of train, val and test, and the test
    part per class, so that a reader sees how many subjects each fold's score rests on."""
    def cell(r) -> str:
        return f"{int(r['samples'])} ({int(r['groups'])})"

    rows = []
    for fold, part in folds.groupby("fold", sort=False):
        every = part[part["class"] == "all"].set_index("split")
        row = {"fold": fold, **{f"{s}: samples (groups)": cell(every.loc[s]) if s in every.index else ""
                                for s in ("train", "val", "test")}}
        test = part[(part["split"] == "test") & (part["class"] != "all")]
        row["test by class"] = ", ".join(f"{r['class']} {cell(r)}" for r in test.to_dict("records"))
        rows.append(row)
    return pd.DataFrame(rows).astype(object)


def split_before_after(
    splits: pd.DataFrame, dropped: Sequence[str], classes: pd.Series | None
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Samples and groups per split (and class) as split, and after rarefaction dropped samples.

    `splits` has columns sample, split, group; `classes` maps sample -> class (the stratify column)
    or is None. Returns the table and, per split, the groups (subjects) that lost every sample.
    """
    frame = splits[["sample", "split", "group"]].copy()
    strata = None if classes is None else [classes.get(s) for s in frame["sample"]]
    before = split_summary(frame, strata)
    kept_mask = ~frame["sample"].isin(set(dropped)).to_numpy()
    kept = frame[kept_mask].reset_index(drop=True)
    after = split_summary(kept, None if strata is None else [c for c, k in zip(strata, kept_mask, strict=True)
                                                             if k])
    table = before.merge(after, on=["split", "class"], how="left", suffixes=(" (split)", " (rarefied)"))
    table = table.fillna(0)
    for column in table.columns[2:]:
        table[column] = table[column].astype(int)
    table = table.rename(columns={"samples (split)": "samples", "groups (split)": "groups",
                                  "samples (rarefied)": "samples after rarefaction",
                                  "groups (rarefied)": "groups after rarefaction"})
    lost = {}
    for split in SPLITS:
        groups_before = set(frame.loc[frame["split"] == split, "group"].dropna().astype(str))
        groups_after = set(kept.loc[kept["split"] == split, "group"].dropna().astype(str))
        gone = sorted(groups_before - groups_after)
        if gone:
            lost[split] = gone
    return table, lost


def dropped_samples(dropped: pd.DataFrame, splits: pd.DataFrame, classes: pd.Series | None) -> pd.DataFrame:
    """The samples rarefaction dropped, with their reads, split, group and class."""
    where = splits.set_index("sample")
    table = pd.DataFrame({
        "sample": dropped["sample"].astype(str),
        "reads": dropped["reads"],
        "split": [where["split"].get(s, "") for s in dropped["sample"]],
        "group": [where["group"].get(s, "") if "group" in where else "" for s in dropped["sample"]],
    })
    if classes is not None:
        table["class"] = [classes.get(s, MISSING_CLASS) for s in table["sample"]]
    return table.fillna("")


def faith_pd_summary(faith: pd.DataFrame, splits: pd.DataFrame, classes: pd.Series | None) -> pd.DataFrame:
    """Faith's PD of the rarefied samples per split (and class): n, mean, median, min, max."""
    split_of = dict(zip(splits["sample"].astype(str), splits["split"], strict=True))
    frame = pd.DataFrame({"sample": faith["sample"].astype(str), "pd": faith["faith_pd"].astype(float)})
    frame["split"] = [split_of.get(s, "unassigned") for s in frame["sample"]]
    frame["class"] = "all" if classes is None else [
        classes.get(s) if isinstance(classes.get(s), str) else MISSING_CLASS for s in frame["sample"]
    ]
    groups = [("all", "all", frame)]
    for split in [*SPLITS, "unassigned"]:
        part = frame[frame["split"] == split]
        if len(part):
            groups.append((split, "all", part))
            if classes is not None:
                groups += [(split, c, part[part["class"] == c]) for c in sorted(part["class"].unique())]
    rows = [{"split": s, "class": c, "samples": len(p), "mean": _fmt(p["pd"].mean()),
             "median": _fmt(p["pd"].median()), "min": _fmt(p["pd"].min()), "max": _fmt(p["pd"].max())}
            for s, c, p in groups if len(p)]
    return pd.DataFrame(rows)


def sequence_rows(collection: str, run: str, metrics: dict) -> list[dict]:
    """Rows of the sequence-model table: kNN on the embeddings beside naive Bayes per rank
    (contrastive runs), or reconstruction and codebook figures (VQ runs)."""
    if metrics.get("kind") == "contrastive":
        rows = []
        for rank, m in metrics.get("ranks", {}).items():
            knn, nb = m.get("knn_accuracy"), m.get("naive_bayes_accuracy")
            rows.append({
                "collection": collection, "run": run, "kind": "contrastive", "rank": rank,
                "test sequences": m.get("n_test"),
                f"{metrics.get('knn_k', 1)}-NN accuracy": _fmt(knn),
                "naive Bayes accuracy": _fmt(nb),
                "model − naive Bayes": "" if knn is None or nb is None else _fmt(knn - nb),
            })
        return rows
    return [{
        "collection": collection,
        "run": run,
        "kind": "vq" if metrics.get("quantize", True) else "autoencoder",
        "test blocks": metrics.get("n_test_blocks"),
        "reconstruction accuracy": _fmt(metrics.get("reconstruction_accuracy")),
        "codebook usage": _fmt(metrics.get("codebook_usage")),
        "perplexity": _fmt(metrics.get("perplexity"), 1),
        "bits per nucleotide": _fmt(metrics.get("bits_per_nucleotide"), 2),
    }]


def taxonomy_rows(collection: str, run: str, metrics: dict) -> list[dict]:
    """Rows of the taxonomy table: per rank, `aam classify`'s precision / recall / F-measure at its
    thresholds beside q2-feature-classifier's default naive Bayes at 0.7 (seq-evaluate's
    `taxonomy`, tax-credit's definitions), and the difference of the F-measures. What a user of
    `aam classify` gets is the truncated assignment, not the embedding's nearest neighbour, so the
    page shows both. Empty without a taxonomy evaluation (no labels, or no test split)."""
    taxonomy = metrics.get("taxonomy") or {}
    ours, theirs = taxonomy.get("aam classify"), taxonomy.get("naive Bayes, 7-mers (q2 default)")
    if not ours or not theirs:
        return []
    rows = []
    for rank, m in ours.get("ranks", {}).items():
        q2 = theirs.get("ranks", {}).get(rank)
        if not m.get("reads") or not q2:
            continue
        rows.append({
            "collection": collection, "run": run, "rank": rank, "test sequences": m["reads"],
            "aam classify P / R / F": " / ".join(_fmt(m[k]) for k in ("precision", "recall", "f")),
            "q2 naive Bayes P / R / F": " / ".join(_fmt(q2[k]) for k in ("precision", "recall", "f")),
            "F: aam − q2": _fmt(m["f"] - q2["f"]),
        })
    return rows


def evaluation_tables(metrics: dict) -> tuple[pd.DataFrame, list[tuple[str, pd.DataFrame]]]:
    """One evaluate metrics.json as tables: the test (and validation) metrics of the model and each
    baseline, one row each; for classification the confusion matrix of each on the test split."""
    rows = []
    for where in ("test", "val"):
        label = "val (seen in training)" if where == "val" and metrics.get("val_seen_in_training") else where
        for model, m in (metrics.get(where) or {}).items():
            if not m:
                continue
            row = {"split": label, "model": _label(model)}
            row.update({k: v for k, v in m.items() if k not in ("confusion_matrix", "classes")})
            rows.append(row)
    confusion = []
    classes = metrics.get("classes") or []
    for model, m in (metrics.get("test") or {}).items():
        matrix = (m or {}).get("confusion_matrix")
        if matrix and classes:
            frame = pd.DataFrame(matrix, columns=[f"predicted {c}" for c in classes])
            frame.insert(0, "true class", classes)
            confusion.append((f"{_label(model)}: test confusion matrix", frame))
    return pd.DataFrame(rows), confusion


def _label(model: str) -> str:
    return "AAM" if model == "aam" else LABELS.get(model, model)


def html_table(frame: pd.DataFrame, table_id: str | None = None) -> str:
    """An HTML table (values escaped) with inline borders: the report's styles leave tables bare."""
    cell = "border:1px solid #ccc;padding:2px 6px;text-align:left"
    head = "".join(f'<th style="{cell};background:#f2f2f2">{html.escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td style="{cell}">{html.escape(_fmt(v))}</td>' for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return (f'<div style="overflow-x:auto"><table{ident} style="border-collapse:collapse;font-size:0.85em">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
