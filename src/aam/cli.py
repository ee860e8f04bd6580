"""The `aam` command: one subcommand per workflow stage.

Each stage lives in `aam.stages.<module>` and exposes `add_arguments(parser)` and `run(args)`.
Stage modules are imported only when their subcommand runs, so `aam --help` stays fast and a
stage's heavy dependencies (torch, Lightning) load only where they are needed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from aam.errors import OUTPUT_EXIT, PREEMPTED_EXIT, InputError, OutputError, Preempted, destination_cause
from aam.threads import sleeping_waits

# subcommand -> (module under aam.stages, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "ingest": ("ingest", "read a table, sequences, tree and metadata into Parquet caches"),
    "split": ("split", "grouped, stratified train/validation/test split"),
    "pretrain-split": (
        "pretrain_split", "all table samples for self-supervised pretraining, with a val part"
    ),
    "cv-split": ("cv_split", "grouped, stratified, seeded cross-validation folds, each as a splits.tsv"),
    "rarefy": ("rarefy", "rarefy the table to one depth without replacement"),
    "unifrac": ("unifrac", "UniFrac distance matrices, Faith's PD and PCoA"),
    "unifrac-part": ("unifrac_part", "one row-block job of a fanned-out UniFrac matrix"),
    "tokenize": ("tokenize", "tokenize features and samples into Parquet caches"),
    "pretrain": ("pretrain", "pretrain the AAM sequence encoder on UniFrac + masked nucleotides"),
    "corpus-pretrain": ("corpus_pretrain", "pretrain one AAM sequence encoder on a corpus of studies"),
    "finetune": ("finetune", "fine-tune an AAM regressor or classifier on one target"),
    "baselines": ("baselines", "random forest, CLR + L2 linear model and boosted trees, tuned by nested CV"),
    "evaluate": ("evaluate", "evaluate a fine-tuned model beside the baselines on the test split"),
    "compare": ("compare", "compare the evaluated runs of a dataset"),
    "summary": ("summary", "the report's results page: runs beside the baselines, splits, dropped samples"),
    "predict": ("predict", "apply a fine-tuned AAM model to a new table: predictions and embeddings"),
    "cv-summary": ("cv_summary", "cross-validated runs vs the baselines: mean +- sd, paired tests"),
    "leaderboard": ("leaderboard", "every model ranked over the cross-validated tasks, with paired tests"),
    "seq-prepare": ("seq_prepare", "validate and split a DNA sequence collection"),
    "seq-train": ("seq_train", "train a contrastive embedder or VQ-Transformer on DNA sequences"),
    "embed": ("embed", "embed DNA sequences with a trained contrastive model"),
    "seq-evaluate": ("seq_evaluate", "evaluate DNA sequence models (kNN taxonomy vs naive Bayes, VQ)"),
    "classify": ("classify", "assign a taxonomy to DNA reads against a labelled reference (TSV or .qza out)"),
    "export-qza": ("export_qza", "write one of the workflow's files as a QIIME 2 artifact (.qza)"),
    "versions": ("versions", "the Python, package, CUDA and GPU versions in use, as a TSV"),
}


def version_line() -> str:
    from aam.provenance import git_state, package_version

    commit, dirty = git_state()
    if commit is None:
        return f"aam {package_version()}"
    return f"aam {package_version()} (git {commit[:12]}{', modified' if dirty else ''})"


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; only the chosen stage's module is imported for its arguments."""
    parser = argparse.ArgumentParser(prog="aam", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="the package version (and git commit, when run from a checkout)")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True
    for name, (module, help_text) in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            importlib.import_module(f"aam.stages.{module}").add_arguments(stage_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sleeping_waits()  # before a stage imports torch
    chosen = next((a for a in argv if a in STAGES), None)
    args = build_parser(chosen).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(f"aam.stages.{STAGES[args.stage][0]}")
    try:
        module.run(args)
    except InputError as err:
        print(f"aam {args.stage}: error: {err}", file=sys.stderr)
        return 2
    except Preempted as err:
        print(f"aam {args.stage}: preempted: {err}", file=sys.stderr)
        return PREEMPTED_EXIT
    except OutputError as err:
        print(f"aam {args.stage}: error: {err}", file=sys.stderr)
        return OUTPUT_EXIT
    except Exception as err:
        line = destination_error_line(err)
        if line is None:
            raise
        print(f"aam {args.stage}: error: {line}", file=sys.stderr)
        return OUTPUT_EXIT
    return 0


def destination_error_line(err: BaseException) -> str | None:
    """One line for a write outside `aam.io.atomic`'s helpers (a training run's checkpoints and logs,
    a folder made up front) that failed for its destination's sake: the path and the cause; None for
    any other error, which stays a traceback (a bug to report, not a condition to explain)."""
    cause = destination_cause(err)
    if cause is None:
        return None
    current: BaseException | None = err
    while current is not None:  # the first OSError in the chain that names a file (a copy's target)
        if isinstance(current, OSError) and (current.filename2 or current.filename):
            return f"{current.filename2 or current.filename}: cannot write: {cause}"
        current = current.__cause__ or current.__context__
    return f"cannot write an output: {cause} ({type(err).__name__}: {str(err).splitlines()[0][:200]})"


if __name__ == "__main__":
    sys.exit(main())
