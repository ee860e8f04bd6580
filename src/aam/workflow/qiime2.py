"""The QIIME 2 export rules' plan (workflow/rules/qiime2.smk): which .qza files a run writes and
what each one is made from.

With ``qiime2.export`` every dataset gets under ``{results}/{dataset}/qiime2/`` the rarefied table,
each UniFrac matrix and PCoA and Faith's PD, named as QIIME 2's core-metrics-phylogenetic names them;
and per prediction source (an evaluation ``eval/{run}/{target}`` or a ``predict/{name}`` entry) the
predictions, the class probabilities (classification targets) and the sample embeddings. With
``evaluate.cv`` the folds are the results and no single split is evaluated, so no evaluation is
exported (exporting one would train every run on the single split only for its .qza). Each
labelled sequence collection gets its contrastive runs' taxonomy under
``{results}/sequences/{name}/qiime2/classify/{run}/``.
"""

from __future__ import annotations

from aam.workflow.targets import (
    dataset_targets,
    has_evaluations,
    out,
    seq_out,
    seq_run_kind,
    seq_runs_for,
    target_config,
    unifrac_format,
)

PREDICTION_FILES = ("predictions", "embeddings")


def dataset_artifacts(config: dict, dataset: str) -> list[str]:
    """The .qza files of one dataset (none unless qiime2.export is set)."""
    if not config["qiime2"]["export"]:
        return []
    files = [out(config, dataset, "qiime2/rarefied_table.qza")]
    for metric in config["unifrac"]["metrics"]:
        # QIIME 2's DistanceMatrix is the TSV; a dataset large enough for HDF5 matrices
        # (unifrac.format) gets its PCoA only
        if unifrac_format(config, dataset) == "tsv":
            files.append(out(config, dataset, f"qiime2/{metric}_unifrac_distance_matrix.qza"))
        files.append(out(config, dataset, f"qiime2/{metric}_unifrac_pcoa_results.qza"))
    if config["unifrac"]["faith_pd"]:
        files.append(out(config, dataset, "qiime2/faith_pd_vector.qza"))
    sources = [(f"eval/{run}/{t['name']}", t) for run in config["aam"]["runs"]
               for t in dataset_targets(config, dataset)] if has_evaluations(config, dataset) else []
    sources += [(f"predict/{name}", target_config(config, dataset, entry["target"]))
                for name, entry in config["predict"].items() if entry["dataset"] == dataset]
    for source, target in sources:
        files += [out(config, dataset, f"qiime2/{source}/{name}.qza") for name in PREDICTION_FILES]
        if target["type"] == "classification":
            files.append(out(config, dataset, f"qiime2/{source}/probabilities.qza"))
    return files


def sequence_artifacts(config: dict, name: str) -> list[str]:
    """The taxonomy .qza of each contrastive run that classifies a labelled collection's reads."""
    if not (config["qiime2"]["export"] and config["sequences"][name].get("labels")):
        return []
    return [seq_out(config, name, f"qiime2/classify/{run}/taxonomy.qza")
            for run in seq_runs_for(config, name) if seq_run_kind(config, run) == "contrastive"]


def source_target(config: dict, dataset: str, source: str) -> dict:
    """The target entry whose predictions an eval/{run}/{target} or predict/{name} source holds."""
    parts = source.split("/")
    if parts[0] == "eval":
        return target_config(config, dataset, parts[2])
    return target_config(config, dataset, config["predict"][parts[1]]["target"])


def prediction_files(config: dict, dataset: str, source: str) -> dict[str, str]:
    """The predictions.tsv of a source and the file whose provenance its .qza records (the
    evaluation's metrics.json, or predict.json)."""
    folder = out(config, dataset, source)
    provenance = "metrics.json" if source.startswith("eval/") else "predict.json"
    return {"source": f"{folder}/predictions.tsv", "provenance": f"{folder}/{provenance}"}


def embedding_files(config: dict, dataset: str, source: str) -> dict[str, str]:
    """The embeddings of a source (fine-tuning's, for an evaluation) and the model.json or
    predict.json whose provenance their .qza records."""
    parts = source.split("/")
    if parts[0] == "eval":
        folder = out(config, dataset, f"models/{parts[1]}/finetune/{parts[2]}")
        return {"source": f"{folder}/embeddings.parquet", "provenance": f"{folder}/model.json"}
    folder = out(config, dataset, source)
    return {"source": f"{folder}/embeddings.parquet", "provenance": f"{folder}/predict.json"}


def prediction_type(config: dict, dataset: str, source: str) -> str:
    """The semantic type of a source's predictions (q2-sample-classifier's)."""
    if source_target(config, dataset, source)["type"] == "classification":
        return "SampleData[ClassifierPredictions]"
    return "SampleData[RegressorPredictions]"


def export_command(kind: str, extra: str = "") -> str:
    """The shell line of one export: the rule's input `source`, its one output."""
    return f"aam export-qza --type '{kind}' --input {{input.source:q}} {extra} --out {{output:q}}"
