"""The results page that opens the Snakemake report (summary.html): the library of `aam summary`.

The page leads with results, then the data behind them. With cross-validation: the leaderboard
(benchmark/leaderboard.html) first, then per dataset and target every AAM run and baseline over the
folds. Without: per dataset every AAM run beside the baselines on the test split and every test
metric of each model. Then per dataset the samples and groups per split and class before and after
rarefaction, the samples rarefaction dropped, the UniFrac matrices and Faith's PD; per DNA sequence
collection each model beside its reference; last the software versions. The tables themselves are
:mod:`aam.evaluate.summary`'s; this module reads the workflow's files and lays out the page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from aam.data.split import repeat_folder
from aam.errors import InputError
from aam.evaluate import summary
from aam.evaluate.baselines import LABELS

# The report's front page shows the workflow description (this page first) in a narrow column
# beside the rule graph: let it span the page so the tables fit. And Snakemake's template centres
# that view vertically in a scrolling box (tailwind's items-center on the h-screen overflow-auto
# container): a page taller than the window then starts above its top, where scrolling cannot
# reach, and the first screen showed the middle of the page. Align it to the top instead. The same
# centring, horizontal, put the left edge of a page wider than the window (the demo's table beside
# its rule graph) under the menu: `safe center` centres only what fits. scripts/check_report.py
# checks the result in Chromium.
STYLE = ("<style>.prose.max-w-lg{max-width:none}"
         "#app .h-screen.overflow-auto.items-center{align-items:flex-start;justify-content:safe center}"
         "</style>")


def _read_tsv(path: Path) -> pd.DataFrame:
    """A TSV of the results; an unreadable one is one InputError line naming it."""
    try:
        return pd.read_csv(path, sep="\t", dtype={"sample": str, "group": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None


def _classes(samples_path: Path, column: str | None) -> pd.Series | None:
    """Each sample's class in the metadata column `column` (None without a class column)."""
    if not column:
        return None
    samples = pd.read_parquet(samples_path)
    if column not in samples.columns:
        raise InputError(f"{samples_path}: no column '{column}'")
    return pd.Series(samples[column].to_numpy(dtype=object), index=samples["sample"].astype(str))


def _depth(table_path: Path) -> int | None:
    """The rarefied table's reads per sample (None when no sample is left)."""
    from aam.io.biom import read_table

    table = read_table(table_path)
    if table.shape[1] == 0:
        return None
    return int(table.sum(axis="sample")[0])


def evaluation_details(path: Path, run: str, target: str) -> str:
    """One run's metrics.json as tables, folded: the headline table above already has its number."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    scores, confusion = summary.evaluation_tables(metrics)
    positive = metrics.get("positive_class")
    facts = [f"{metrics.get('n_test')} test samples", f"{metrics.get('n_val')} validation samples"]
    baselines = metrics.get("baselines") or {}
    if baselines.get("n_train") is not None:
        splits = ", ".join(baselines.get("train_splits") or [])
        facts.append(f"baselines trained on {baselines['n_train']} samples of {splits}")
        chosen = "; ".join(f"{LABELS.get(name, name)} {m.get('params')}"
                           for name, m in (baselines.get("models") or {}).items())
        facts.append(f"chosen by inner cross-validation: {html.escape(chosen)}")
    if positive:
        facts.append(f"AUROC scores class {html.escape(str(positive))}")
    parts = [
        f"<details><summary>Run {html.escape(run)}, target {html.escape(target)}: metrics.json as tables"
        "</summary>",
        f"<p>{'; '.join(facts)}.</p>",
        summary.html_table(scores),
    ]
    for title, frame in confusion:
        parts += [f"<p>{html.escape(title)}</p>", summary.html_table(frame)]
    parts.append("</details>")
    return "\n".join(parts)


def dataset_section(root: Path, name: str, plan: dict) -> str:
    """The HTML of one dataset: results first, then the data behind them."""
    parts = [f"<h3>Dataset {html.escape(name)}</h3>", *_model_results(root, name, plan),
             *_data_behind(root, name, plan)]
    return "\n".join(parts)


def _model_results(root: Path, name: str, plan: dict) -> list[str]:
    """Every model over the cross-validation folds, or beside the baselines on the test split."""
    parts = []
    for target in plan.get("cv", []):
        parts += [
            f"<h4>Target {html.escape(target)}: AAM and the baselines over the cross-validation folds</h4>",
            "<p>Every model trained and tested on the same grouped folds; mean ± sd of the test metric "
            "(AUROC for classification, R² for regression) over the folds. Against each baseline: the "
            "mean per-fold difference (positive: the row's model wins), the folds won / lost and the "
            "p of the corrected repeated k-fold t-test, which allows for the samples that folds share "
            "(cv_summary/"
            f"{html.escape(target)}/summary.tsv has every fold, and Wilcoxon and sign tests).</p>",
            summary.html_table(summary.cv_table(_read_tsv(root / "cv_summary" / target / "summary.tsv")),
                               f"cv-{name}-{target}"),
        ]
    if plan.get("cv"):
        folds = pd.concat([_read_tsv(root / repeat_folder(r) / "summary.tsv")
                           for r in range(plan["cv_repeats"])], ignore_index=True)
        parts += [
            "<p>The folds (cv/split/r0/summary.tsv, ..., before rarefaction): samples and, in "
            "parentheses, groups of each part; no group is in two parts of a fold, and every sample is "
            "tested once per repeat.</p>",
            summary.html_table(summary.fold_sizes(folds), f"folds-{name}"),
        ]
    if plan.get("comparison"):
        comparison = _read_tsv(root / "comparison" / "comparison.tsv")
        parts += [
            "<h4>AAM beside the baselines</h4>",
            "<p>Each run's model and the baselines (trained on train + val of the rarefied table, "
            "hyperparameters chosen by inner cross-validation) scored on the same test samples: AUROC "
            "for classification, R² for regression; AAM − best baseline &gt; 0 means the model beats "
            "every baseline.</p>",
            summary.html_table(summary.headline(comparison), f"headline-{name}"),
            "<details><summary>Every test metric of each model (comparison.tsv)</summary>",
            summary.html_table(comparison, f"comparison-{name}"),
            "</details>",
        ]
        for run, target in plan.get("evaluations", []):
            parts.append(evaluation_details(root / "eval" / run / target / "metrics.json", run, target))
    elif not plan.get("cv"):
        parts.append("<p>No model was evaluated on this dataset (the config has no targets, or no "
                     "aam.runs and no evaluate.cv).</p>")
    return parts


def _data_behind(root: Path, name: str, plan: dict) -> list[str]:
    """Samples per split before and after rarefaction, the dropped samples, the matrices, Faith's PD."""
    parts = []
    splits = _read_tsv(root / "split" / "splits.tsv")
    classes = _classes(root / "ingest" / "samples.parquet", plan.get("class_column"))
    dropped = _read_tsv(root / "rarefied" / "dropped.tsv")
    depth = _depth(root / "rarefied" / "table.biom")
    table, lost = summary.split_before_after(splits, list(dropped["sample"]), classes)
    by = f", by class of <code>{html.escape(plan['class_column'])}</code>" if plan.get("class_column") else ""
    kept = len(splits) - int(splits["sample"].isin(set(dropped["sample"])).sum())
    parts += [
        "<h4>Samples per split, before and after rarefaction</h4>",
        f"<p>Rarefied to {depth if depth is not None else '?'} reads per sample: {kept} of {len(splits)} "
        f"samples kept, {len(dropped)} dropped{by}. "
        + ("With cross-validation the models are trained and scored on the folds above, not on this "
           "split; their samples are likewise those after rarefaction that have a value for the "
           "target. " if plan.get("cv") else
           "Models and the baselines are trained and scored on the samples after rarefaction that "
           "have a value for the target. ")
        + "Groups are the values of the dataset's group_column (e.g. subjects).</p>",
        summary.html_table(table, f"splits-{name}"),
    ]
    if lost:
        listed = "; ".join(
            f"{split}: {', '.join(html.escape(g) for g in groups)}" for split, groups in lost.items()
        )
        parts.append(f"<p><b>Groups with no sample left after rarefaction</b> — {listed}.</p>")
    else:
        parts.append("<p>No group lost all its samples to rarefaction.</p>")
    if len(dropped):
        parts += [
            f"<details><summary>The {len(dropped)} samples dropped by rarefaction</summary>",
            summary.html_table(summary.dropped_samples(dropped, splits, classes), f"dropped-{name}"),
            "</details>",
        ]
    if plan.get("matrices"):
        parts += [
            "<h4>UniFrac distance matrices</h4>",
            "<p>TSV: scikit-bio / QIIME 2 (<code>qiime tools import --type DistanceMatrix</code>); "
            "HDF5: biocore unifrac's layout (<code>unifrac.h5unifrac</code>, <code>h5pcoa</code>).</p>",
            summary.html_table(_matrices_table(root, plan["matrices"]), f"matrices-{name}"),
        ]
    if plan.get("faith_pd"):
        faith = _read_tsv(root / "unifrac" / "faith_pd.tsv")
        parts += [
            "<h4>Faith's phylogenetic diversity</h4>",
            "<p>Sum of the branch lengths of the tree spanned by each rarefied sample's features "
            "(unifrac/faith_pd.tsv), per split and class.</p>",
            summary.html_table(summary.faith_pd_summary(faith, splits, classes), f"faith-{name}"),
        ]
    return parts


def _matrices_table(root: Path, matrices: dict[str, str]) -> pd.DataFrame:
    """Per metric: the matrix file (either format, read for its IDs only), samples, size, PCoA axes."""
    from aam.io.distance_matrix import open_matrix

    rows = []
    for metric, relative in matrices.items():
        matrix = open_matrix(root / relative)
        coords = _read_tsv(root / "unifrac" / f"pcoa_{metric}.tsv")
        explained = coords.iloc[0, 1:3].astype(float).tolist() if len(coords) else []
        rows.append({"metric": metric, "file": relative, "format": matrix.format, "samples": matrix.n,
                     "size (MB)": round((root / relative).stat().st_size / 2**20, 1),
                     "PC1, PC2 explained": ", ".join(f"{100 * p:.1f} %" for p in explained)})
    return pd.DataFrame(rows)


def sequences_section(results: Path, sequences: dict[str, list[str]]) -> str:
    """Per DNA sequence collection, each run beside its reference (naive Bayes; VQ figures)."""
    rows, taxonomy = [], []
    for collection, runs in sequences.items():
        for run in runs:
            path = results / "sequences" / collection / "eval" / run / "metrics.json"
            try:
                metrics = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise InputError(f"{path}: cannot read ({err})") from None
            rows += summary.sequence_rows(collection, run, metrics)
            taxonomy += summary.taxonomy_rows(collection, run, metrics)
    contrastive = pd.DataFrame([r for r in rows if r["kind"] == "contrastive"])
    vq = pd.DataFrame([r for r in rows if r["kind"] != "contrastive"])
    parts = ["<h3>DNA sequence models</h3>"]
    if len(taxonomy):
        parts += [
            "<p>Taxonomy as <code>aam classify</code> assigns it (each held-out sequence's lineage "
            "cut after the deepest rank its confidence clears, as its taxonomy.tsv has it) beside "
            "q2-feature-classifier's default naive Bayes (7-mers, confidence 0.7), both trained on "
            "the training sequences and tested on the same held-out ones: precision, recall and "
            "F-measure per rank as tax-credit computes them (a sequence left unassigned at a rank "
            "lowers recall only). The precision-recall curve over thresholds is the seq-evaluate "
            "plot taxonomy_pr.png.</p>",
            summary.html_table(pd.DataFrame(taxonomy), "sequences-taxonomy"),
        ]
    if len(contrastive):
        parts += [
            "<p>The embeddings alone: taxonomy of the held-out sequences from their k nearest training "
            "sequences, beside a k-mer naive Bayes classifier (q2-feature-classifier recipe) trained "
            "and tested on the same sequences.</p>",
            summary.html_table(contrastive.dropna(axis=1, how="all"), "sequences-contrastive"),
        ]
    if len(vq):
        parts += [
            "<p>VQ-Transformer runs: reconstruction accuracy of held-out blocks, share of the codebook "
            "used and perplexity of the codes.</p>",
            summary.html_table(vq.dropna(axis=1, how="all"), "sequences-vq"),
        ]
    return "\n".join(parts)


def versions_section(path: Path) -> str:
    """The software versions (aam versions): Python, aam, its dependencies and the CUDA stack shown,
    every other installed package folded."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if list(table.columns) != ["kind", "name", "version"]:
        raise InputError(f"{path}: expected columns kind, name, version (aam versions), "
                         f"found {list(table.columns)}")
    main = table[table["kind"] != "installed"]
    others = table[table["kind"] == "installed"]
    parts = ["<h3>Software versions</h3>",
             "<p>What this run used (versions.tsv): the system, Python, this package and its git commit, "
             "its dependencies as installed, and PyTorch's CUDA build and the GPUs it sees.</p>",
             summary.html_table(main.reset_index(drop=True), "versions")]
    if len(others):
        listed = others[["name", "version"]].reset_index(drop=True)
        parts += [f"<details><summary>The other {len(others)} installed packages</summary>",
                  summary.html_table(listed, "versions-installed"), "</details>"]
    return "\n".join(parts)


def build(results: Path, plan: dict, versions: Path | None = None) -> str:
    """The page (an HTML fragment, styles inline) for `plan`, the --settings of `aam summary`."""
    parts = [STYLE, '<div class="aam-summary" id="aam-results">', "<h2>Results</h2>"]
    if plan.get("leaderboard"):
        board = results / "benchmark" / "leaderboard.html"
        try:
            parts.append(board.read_text(encoding="utf-8"))
        except OSError as err:
            raise InputError(f"{board}: cannot read ({err})") from None
    for name, dataset_plan in plan.get("datasets", {}).items():
        parts.append(dataset_section(results / name, name, dataset_plan))
    if any(plan.get("sequences", {}).values()):
        parts.append(sequences_section(results, plan["sequences"]))
    if versions is not None:
        parts.append(versions_section(versions))
    parts.append("</div>")
    return "\n".join(parts) + "\n"
