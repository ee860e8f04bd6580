# Helpers of the QIIME 2 export rules (workflow/rules/qiime2.smk): what they write and read.

from types import SimpleNamespace


def export_qza(kind, extra=""):
    """The shell line of one export: its input is the rule's `source`, its output the rule's one file."""
    return logged(f"aam export-qza --type {kind} --input {{input.source:q}} {extra} --out {{output:q}}")


def qza_source(wc):
    """(target entry, folder of the predictions, folder of the embeddings, the model's provenance
    file) of an eval/{run}/{target} or predict/{name} source."""
    parts = wc.source.split("/")
    if parts[0] == "eval":
        run, target = parts[1], parts[2]
        entry = target_config(SimpleNamespace(dataset=wc.dataset, target=target))
        model = out(wc.dataset, f"models/{run}/finetune/{target}")
        return entry, out(wc.dataset, wc.source), model, f"{model}/model.json"
    entry = PREDICT[parts[1]]
    target = target_config(SimpleNamespace(dataset=entry["dataset"], target=entry["target"]))
    folder = out(wc.dataset, wc.source)
    return target, folder, folder, f"{folder}/predict.json"


def qza_prediction_files(wc):
    _, folder, _, provenance = qza_source(wc)
    evaluated = wc.source.startswith("eval/")
    return {"source": f"{folder}/predictions.tsv", "provenance": f"{folder}/metrics.json" if evaluated else provenance}


def qza_embedding_files(wc):
    _, _, folder, provenance = qza_source(wc)
    return {"source": f"{folder}/embeddings.parquet", "provenance": provenance}


def qza_prediction_type(wc):
    kind = "ClassifierPredictions" if qza_source(wc)[0]["type"] == "classification" else "RegressorPredictions"
    return f"'SampleData[{kind}]'"


def qiime2_targets(dataset):
    """The .qza files of one dataset (none unless qiime2.export is set)."""
    if not config["qiime2"]["export"]:
        return []
    files = [out(dataset, "qiime2/rarefied_table.qza")]
    for metric in config["unifrac"]["metrics"]:
        files += [
            out(dataset, f"qiime2/{metric}_unifrac_distance_matrix.qza"),
            out(dataset, f"qiime2/{metric}_unifrac_pcoa_results.qza"),
        ]
    if config["unifrac"]["faith_pd"]:
        files.append(out(dataset, "qiime2/faith_pd_vector.qza"))
    sources = [(f"eval/{run}/{t['name']}", t) for run in AAM_RUNS for t in dataset_targets(dataset)]
    for name, entry in PREDICT.items():
        if entry["dataset"] == dataset:
            target = next(t for t in dataset_targets(dataset) if t["name"] == entry["target"])
            sources.append((f"predict/{name}", target))
    for source, target in sources:
        files += [out(dataset, f"qiime2/{source}/{name}.qza") for name in ("predictions", "embeddings")]
        if target["type"] == "classification":
            files.append(out(dataset, f"qiime2/{source}/probabilities.qza"))
    return files


def qiime2_sequence_targets(name):
    """The taxonomy .qza of each contrastive run that classifies reads of a collection."""
    if not config["qiime2"]["export"]:
        return []
    return [
        seq_out(name, f"qiime2/classify/{run}/taxonomy.qza")
        for run in seq_runs_for(name)
        if SEQUENCE_SETS[name].get("labels") and SEQ_RUNS[run].get("kind", "contrastive") == "contrastive"
    ]
