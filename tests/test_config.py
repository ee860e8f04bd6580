"""The config loader: schema validation, defaults, settings for stages run by hand."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from helpers.workflow import OVERLAYS, shipped_config
from snakemake.utils import validate as snakemake_validate

from aam.config import load_config, load_schema, load_settings
from aam.errors import InputError


@pytest.mark.parametrize("name", ["config.yaml", "full.yaml"])
def test_shipped_configs_validate(repo_root, name):
    config = load_config(repo_root / "config" / name)
    assert config["seed"] == 42
    assert config["datasets"]


def test_each_shipped_config_has_its_own_results_folder(repo_root):
    """A second config run after the demo must not rerun or overwrite the demo's results/; an overlay
    (candidates judged beside its base's runs) shares its base's folder, and only a listed overlay
    may lack datasets."""
    configs = sorted((repo_root / "config").rglob("*.yaml"))
    names = [path.relative_to(repo_root).as_posix() for path in configs]
    alone = {name for name in names if "datasets" in yaml.safe_load((repo_root / name).read_text())}
    assert set(names) - alone == set(OVERLAYS)
    assert all(shipped_config(name)["results"] == shipped_config(base)["results"]
               for name, base in OVERLAYS.items())
    # a config without `results:` writes to the schema's default, the demo's results/
    folders = {name: yaml.safe_load((repo_root / name).read_text()).get("results", "results")
               for name in names if name not in OVERLAYS}
    assert len(folders) >= 4
    assert len(set(folders.values())) == len(folders), folders
    assert folders["config/config.yaml"] == "results"


def test_defaults_match_what_snakemake_fills_in(repo_root):
    ours = load_config(repo_root / "config" / "config.yaml")
    theirs = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    snakemake_validate(theirs, str(repo_root / "workflow" / "schemas" / "config.schema.yaml"))
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))


# --- AAM run defaults: the configuration measured across the benchmark (issue 24) ---


def test_a_bare_aam_run_gets_the_benchmark_s_aam_configuration(repo_root):
    """The schema's data and model sizes are config/benchmark.yaml's `aam` run, the one AAM
    configuration measured on every task; so are fine-tuning's warmup, its per-task (auto) epochs,
    patience and exported weights, its calibration, its seed ensemble of 2 and its linear and forest
    members, while pretraining keeps the shared trainer's own defaults."""
    bench = yaml.safe_load((repo_root / "config" / "benchmark.yaml").read_text())["aam"]["runs"]["aam"]
    filled = load_settings("{}", "aam_run")
    for section in ("data", "model"):
        assert {key: filled[section][key] for key in bench[section]} == bench[section], section
    keys = ("warmup_steps", "max_epochs", "patience", "restore_best")
    tuned = bench["finetune"]["trainer"]
    assert {key: filled["finetune"]["trainer"][key] for key in keys} == {key: tuned[key] for key in keys}
    assert tuned["max_epochs"] == tuned["patience"] == tuned["restore_best"] == "auto"
    assert filled["finetune"]["ensemble"] == bench["finetune"]["ensemble"] == 2
    assert filled["finetune"]["calibrate"] == bench["finetune"]["calibrate"] == "auto"
    # the linear member in equal shares with the neural members; the forest member opt-in
    assert bench["finetune"]["linear_member"] == {} and bench["finetune"]["forest_member"] is None
    members = filled["finetune"]
    assert members["linear_member"]["weight"] == "auto" and members.get("forest_member") is None
    trainer = load_schema()["definitions"]["trainer"]["properties"]
    assert {key: filled["pretrain"]["trainer"][key] for key in keys} == {
        key: trainer[key]["default"] for key in keys}
    assert [trainer[key]["default"] for key in keys] == [100, 10, 5, True]


def test_fine_tuning_s_trainer_defaults_fill_a_partial_trainer_as_snakemake_does(tmp_path, repo_root):
    """Fine-tuning's warmup and patience defaults apply when its trainer names other keys, a given
    value (null included) wins, the shared trainer's checks still apply, and Snakemake's own
    validate() fills what the loader fills."""
    config = {"datasets": {}, "aam": {"runs": {
        "bare": {},
        "partial": {"finetune": {"trainer": {"lr": 0.01}}},
        "given": {"finetune": {"trainer": {"warmup_steps": 7, "patience": None}}}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    ours = load_config(path)["aam"]["runs"]
    theirs = json.loads(json.dumps(config))
    snakemake_validate(theirs, str(repo_root / "workflow" / "schemas" / "config.schema.yaml"))
    assert json.loads(json.dumps(ours)) == theirs["aam"]["runs"]
    got = {name: {k: run["finetune"]["trainer"][k] for k in ("warmup_steps", "patience", "lr")}
           for name, run in ours.items()}
    assert got == {"bare": {"warmup_steps": 20, "patience": "auto", "lr": 0.001},
                   "partial": {"warmup_steps": 20, "patience": "auto", "lr": 0.01},
                   "given": {"warmup_steps": 7, "patience": None, "lr": 0.001}}
    with pytest.raises(InputError, match=r"finetune/trainer/max_epochs"):
        load_settings('{"finetune": {"trainer": {"max_epochs": "longer"}}}', "aam_run")
    with pytest.raises(InputError, match=r"finetune/trainer/warmup_steps: -1 is less than the minimum"):
        load_settings('{"finetune": {"trainer": {"warmup_steps": -1}}}', "aam_run")
    with pytest.raises(InputError, match=r"finetune/trainer: Additional properties .*'warmupsteps'"):
        load_settings('{"finetune": {"trainer": {"warmupsteps": 1}}}', "aam_run")


def test_a_run_fine_tunes_from_scratch_unless_it_asks_for_an_encoder(tmp_path, repo_root):
    """Scratch is the default, as in the benchmark's measured `aam` run; naming `from` still turns
    pretraining on (the demo's and the corpus configs' bundled runs give no `enabled`), and an explicit
    `enabled` wins either way."""
    from aam.workflow.sources import pretrain_enabled

    runs = {"bare": {}, "study": {"pretrain": {"enabled": True}},
            "bundled": {"pretrain": {"from": "bundled"}},
            "off": {"pretrain": {"enabled": False, "from": "bundled"}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"datasets": {}, "aam": {"runs": runs}}))
    config = load_config(path)
    assert {run: pretrain_enabled(config, run) for run in runs} == {
        "bare": False, "study": True, "bundled": True, "off": False}
    bench = yaml.safe_load((repo_root / "config" / "benchmark.yaml").read_text())["aam"]["runs"]["aam"]
    assert pretrain_enabled({"aam": {"runs": {"bare": config["aam"]["runs"]["bare"]}}}, "bare") is (
        bench["pretrain"]["enabled"])


@pytest.mark.parametrize("section", ["data", "model"])
def test_the_documented_aam_run_defaults_are_the_schema_s(repo_root, section):
    """config/README.md's table of an AAM run's `data` or `model` keys states the default the schema
    fills (rows of one key with a stated value; `absent` rows name keys without a schema default)."""
    readme = (repo_root / "config" / "README.md").read_text()
    start = readme.index(f"### `aam.runs.<run>.{section}`")
    table = readme.index("| key | type | default | meaning |", start)
    filled = load_settings("{}", "aam_run")[section]
    checked = 0
    for line in readme[table:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, _, default, _ = (cell.strip() for cell in line.strip("|").split("|", 3))
        if "," in key or default.startswith("absent"):
            continue
        assert yaml.safe_load(default.strip("`")) == filled[key.strip("`")], (key, default)
        checked += 1
    assert checked >= {"data": 4, "model": 9}[section]


def test_the_data_module_s_defaults_are_the_schema_s():
    """AAMDataModule and CorpusDataModule built without a config use the run's defaults."""
    from aam.data.datasets import DATA_DEFAULTS

    assert load_settings("{}", "aam_run")["data"] == DATA_DEFAULTS


def test_the_bundled_encoder_takes_the_default_asv_limit():
    """A `from: bundled` run without a data section must fit the encoder (data.asv_limit at most the
    encoder's, aam.training.encoder_init), as its own model.json records it."""
    from aam import pretrained

    saved = json.loads((pretrained.bundled_dir() / "model.json").read_text())["config"]
    assert load_settings("{}", "aam_run")["data"]["asv_limit"] <= saved["asv_limit"]


def test_unknown_key_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets: {}\nsplitt: {}\n")
    with pytest.raises(InputError, match="splitt"):
        load_config(path)


def test_wrong_type_names_the_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets: {}\nseed: many\n")
    with pytest.raises(InputError, match=r"seed: 'many' is not of type 'integer'"):
        load_config(path)


def test_missing_dataset_file_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets: {d: {table: t.biom, metadata: m.tsv}}\n")
    with pytest.raises(InputError, match="'tree' is a required property"):
        load_config(path)


def test_settings_from_json_and_yaml_file_agree(tmp_path):
    target = {"name": "ibd", "column": "ibd", "type": "classification"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(target))
    filled = {**target, "classes": None, "positive_class": None}  # the schema's defaults
    assert load_settings(json.dumps(target), "target") == load_settings(str(path), "target") == filled


def test_settings_fill_defaults_from_the_schema():
    settings = load_settings('{"table": "t.biom", "tree": "t.nwk", "metadata": "m.tsv"}', "dataset")
    dataset_props = load_schema()["definitions"]["dataset"]["properties"]
    assert settings["group_column"] is dataset_props["group_column"]["default"] is None
    assert settings["targets"] == []


def test_bad_settings_json_is_one_clear_error():
    with pytest.raises(InputError, match="not valid JSON"):
        load_settings("{not json")


def _schema_keys(node, path=()):
    """Every property name of the schema with its path, definitions included."""
    if not isinstance(node, dict):
        return
    for name, sub in node.get("properties", {}).items():
        yield (*path, name)
        yield from _schema_keys(sub, (*path, name))
    for key in ("additionalProperties", "items"):
        yield from _schema_keys(node.get(key), (*path, "*"))


def test_every_schema_key_is_documented(repo_root):
    schema = load_schema()
    readme = (repo_root / "config" / "README.md").read_text()
    keys = list(_schema_keys(schema))
    for name, definition in schema["definitions"].items():
        keys += list(_schema_keys(definition, (f"definitions/{name}",)))
    code_spans = re.findall(r"`([^`]+)`", readme)
    documented = {word for span in code_spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}
    undocumented = sorted("/".join(key) for key in keys if key[-1] not in documented)
    assert not undocumented, f"config/README.md does not document {undocumented}"


# --- sequence model runs: their defaults are the schema's, per kind ---


def test_a_bare_sequence_run_gets_its_kind_s_defaults_from_the_schema_in_the_workflow_and_by_hand():
    """The Snakefile's validation (check_config) and `aam seq-train` run by hand (resolve_settings)
    fill a run from the same schema: the documented defaults (config/README.md), per kind."""
    from aam.config import check_config
    from aam.training.seq_train import resolve_settings

    config = check_config({"datasets": {}, "seq_models": {"runs": {"c": {}, "v": {"kind": "vq"}}}}, where="t")
    contrastive, vq = config["seq_models"]["runs"]["c"], config["seq_models"]["runs"]["v"]
    assert resolve_settings({}) == contrastive and resolve_settings({"kind": "vq"}) == vq
    assert {k: v for k, v in contrastive.items() if k != "trainer"} == {
        "kind": "contrastive", "tokenizer": {"type": "kmer", "k": 6, "stride": 1}, "model": {},
        "loss": "auto", "label_ranks": ["genus"], "rank_weights": None, "temperature": 0.1,
        "augment": {}, "val_fraction": 0.1, "knn_k": 1, "classify": {}}
    assert {k: v for k, v in vq.items() if k != "trainer"} == {
        "kind": "vq", "model": {}, "val_fraction": 0.1, "block_len": 64, "block_stride": None,
        "max_blocks": None}
    # what the user gives stays; the trainer is the schema's trainer definition, as for AAM runs
    mine = resolve_settings({"kind": "vq", "block_len": 32, "trainer": {"max_epochs": 2}})
    assert mine["block_len"] == 32 and mine["trainer"]["max_epochs"] == 2
    assert mine["trainer"]["lr"] == load_schema()["definitions"]["trainer"]["properties"]["lr"]["default"]


@pytest.mark.parametrize(
    ("run", "in_config", "by_hand"),
    [
        ({"kind": "vq", "tokenizer": {"type": "char"}}, "seq_models/runs/r: ['tokenizer'] are not settings "
         "of a vq run", "seq_models run: ['tokenizer'] are not settings of a vq run"),
        ({"block_len": 32}, "seq_models/runs/r: ['block_len'] are not settings of a contrastive run",
         "seq_models run: ['block_len'] are not settings of a contrastive run"),
        ({"kind": "lstm"}, "seq_models/runs/r/kind: 'lstm' is not one of ['contrastive', 'vq']",
         "seq_models run: kind: 'lstm' is not one of ['contrastive', 'vq']"),
    ],
)
def test_a_key_of_the_other_kind_stops_the_workflow_and_the_stage(run, in_config, by_hand):
    from aam.config import check_config
    from aam.training.seq_train import resolve_settings

    with pytest.raises(InputError, match=f"^t: {re.escape(in_config)}$"):
        check_config({"datasets": {}, "seq_models": {"runs": {"r": run}}}, where="t")
    with pytest.raises(InputError, match=f"^{re.escape(by_hand)}$"):
        resolve_settings(run)


def _seq_run_table(readme: str) -> list[tuple[str, str, str, str]]:
    """Rows (key, kind, default, meaning) of config/README.md's sequence-run table."""
    start = readme.index("| key | kind | default | meaning |")
    rows = []
    for line in readme[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        key, kind, default, meaning = (cell.strip() for cell in line.strip("|").split("|", 3))
        rows.append((key.strip("`"), kind, default.strip("`"), meaning))
    return rows


def test_the_documented_sequence_run_defaults_are_the_schema_s(repo_root):
    """config/README.md's table of sequence-run keys states each default; the schema fills exactly
    that default for a run of the row's kind (and the table lists every key of the schema)."""
    from aam.config import check_config, seq_run_keys

    rows = _seq_run_table((repo_root / "config" / "README.md").read_text())
    filled = check_config({"datasets": {}, "seq_models": {"runs": {
        "contrastive": {}, "vq": {"kind": "vq"}}}}, where="t")["seq_models"]["runs"]
    documented = {(key, kind) for key, kind, _, _ in rows}
    for kind in ("contrastive", "vq"):
        both = seq_run_keys("contrastive") & seq_run_keys("vq")
        expected = {(key, "both" if key in both else kind) for key in seq_run_keys(kind)}
        # model is listed once per kind (its keys differ), as its kind's
        expected = {("model", kind) if key == "model" else (key, k) for key, k in expected}
        assert expected <= documented, f"undocumented {kind} keys: {sorted(expected - documented)}"
    checked = 0
    for key, kind, default, _ in rows:
        if not default or default.startswith("see "):
            continue
        value = filled["vq" if kind == "vq" else "contrastive"][key]
        assert yaml.safe_load(default) == value, (key, kind, default, value)
        checked += 1
    assert checked >= 9


@pytest.mark.parametrize("kind", ["contrastive", "vq"])
def test_the_documented_sequence_model_sizes_are_the_model_configs(repo_root, kind):
    """The schema leaves `model` keys unset so that the model's config dataclass supplies them (one
    source, no copy in the schema); the README's `model` row must state those same values."""
    from dataclasses import fields

    from aam.models.contrastive import ContrastiveConfig
    from aam.models.vq import VQConfig

    rows = _seq_run_table((repo_root / "config" / "README.md").read_text())
    meaning = next(m for key, k, _, m in rows if key == "model" and k == kind)
    numbers = re.findall(r"`(\w+)` \(([-0-9.e]+|true|false)[ ,:;)]", meaning)
    stated = {name: yaml.safe_load(value) for name, value in numbers}
    stated = {name: float(v) if isinstance(v, str) else v for name, v in stated.items()}  # YAML: 1e-5
    config = ContrastiveConfig if kind == "contrastive" else VQConfig
    defaults = {f.name: f.default for f in fields(config)}
    assert len(stated) >= 7
    assert {name: defaults[name] for name in stated} == stated


def test_evaluate_combine_names_fitted_baselines(tmp_path):
    """evaluate.combine: null combines with the forest, the linear model and the two together,
    those fitted and not already served inside a run's model; a baseline that is not fitted, or a
    combination named twice, is one clear error when the config is read."""
    from aam.workflow.commands import combine_arg

    path = tmp_path / "c.yaml"
    path.write_text("datasets: {}\n")
    assert combine_arg(load_config(path)) == "--combine random_forest linear_clr random_forest+linear_clr"
    run = "aam: {runs: {a: {finetune: {linear_member: %s, forest_member: %s}}%s}}\n"
    path.write_text("datasets: {}\n" + run % ("{}", "{}", ""))  # the defaults serve both baselines
    assert combine_arg(load_config(path)) == ""
    path.write_text("datasets: {}\n" + run % ("{}", "null", ""))
    assert combine_arg(load_config(path)) == "--combine random_forest"
    path.write_text("datasets: {}\n" + run % ("null", "null", ""))
    assert combine_arg(load_config(path)) == "--combine random_forest linear_clr random_forest+linear_clr"
    path.write_text("datasets: {}\n" + run % ("null", "null", ", b: {}"))  # b: the linear member
    assert combine_arg(load_config(path)) == "--combine random_forest"
    path.write_text("datasets: {}\n" + run % ("{}", "{}", "") + "evaluate: {combine: [random_forest]}\n")
    assert combine_arg(load_config(path)) == "--combine random_forest"  # named: as named
    path.write_text("datasets: {}\nevaluate: {combine: [linear_clr+hist_gradient_boosting], baselines: "
                    "{models: [linear_clr, hist_gradient_boosting]}}\n")
    assert combine_arg(load_config(path)) == "--combine linear_clr+hist_gradient_boosting"
    for bad, message in (("[linear_clr+random_forest, random_forest+linear_clr]", "name each combination"),
                         ("[linear_clr+linear_clr]", "repeats a baseline"),
                         ("[linear_clr+hist_gradient_boosting]", ".hist_gradient_boosting. is not among")):
        path.write_text(f"datasets: {{}}\nevaluate: {{combine: {bad}, baselines: {{models: "
                        "[linear_clr, random_forest]}}\n")
        with pytest.raises(InputError, match=message):
            load_config(path)
    path.write_text("datasets: {}\nevaluate: {combine: [random_forest+xgboost]}\n")
    with pytest.raises(InputError, match="combine"):
        load_config(path)
    path.write_text("datasets: {}\nevaluate: {baselines: {models: [linear_clr, hist_gradient_boosting]}}\n")
    assert combine_arg(load_config(path)) == "--combine linear_clr"
    path.write_text("datasets: {}\nevaluate: {baselines: {models: [hist_gradient_boosting]}}\n")
    assert combine_arg(load_config(path)) == ""
    path.write_text("datasets: {}\nevaluate: {combine: [linear_clr, random_forest]}\n")
    assert combine_arg(load_config(path)) == "--combine linear_clr random_forest"
    path.write_text("datasets: {}\nevaluate: {combine: [], baselines: {models: [linear_clr]}}\n")
    assert combine_arg(load_config(path)) == ""
    path.write_text("datasets: {}\nevaluate: {combine: [random_forest], baselines: {models: [linear_clr]}}\n")
    with pytest.raises(InputError, match=r"evaluate/combine: .random_forest. is not among"):
        load_config(path)
