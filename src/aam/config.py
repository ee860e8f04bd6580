"""Configuration: the one YAML config, validated against the schema with defaults filled in.

The schema (`aam/schema/config.schema.yaml`, linked from `workflow/schemas/`) is the single source of
defaults: the Snakefile validates with it, and stages run by hand fill their nested settings from the
same definitions, so a stage behaves the same with or without Snakemake.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aam import pretrained
from aam.data.split import check_fractions, stratify_column
from aam.errors import InputError
from aam.evaluate.combine import combination_members
from aam.workflow import sources

SCHEMA_RESOURCE = ("aam.schema", "config.schema.yaml")


def load_schema() -> dict[str, Any]:
    """The config schema shipped with the package: a fresh copy for each caller, since validation
    fills a config's defaults with the schema's own default objects."""
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema() -> dict[str, Any]:
    """The schema parsed once per process, with libyaml's parser where PyYAML has it: pure-Python
    parsing of the 50 kB schema took 0.36 s, and a config check needs the schema several times."""
    text = resources.files(SCHEMA_RESOURCE[0]).joinpath(SCHEMA_RESOURCE[1]).read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _defaulting_validator() -> type:
    """A Draft 2020-12 validator (as Snakemake uses) that also fills in `default` values."""
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001 - jsonschema callback
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def _message(err: jsonschema.ValidationError) -> str:
    """One line for a validation error. A pattern the schema describes (names used as folder names)
    says what is allowed rather than quoting the regular expression."""
    path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "pattern" and isinstance(err.schema, dict) and "description" in err.schema:
        kind = "name" if "propertyNames" in err.schema_path else "value"
        return f"{path}: {kind} {err.instance!r} is not allowed: use {err.schema['description']}"
    return f"{path}: {err.message}"


def validate(instance: Any, schema: dict[str, Any], *, where: str) -> Any:
    """Validate `instance` in place (defaults filled); raise one `InputError` naming the first problem."""
    validator = _defaulting_validator()(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(f"{where}: {_message(errors[0])}")
    return instance


def check_aam_run(run: dict[str, Any], *, where: str) -> None:
    """Checks of one AAM run (defaults filled) that a JSON schema cannot express."""
    model = run.get("model", {})
    dim, heads = model.get("embedding_dim"), model.get("heads")
    if dim is not None and heads is not None and dim % heads:
        raise InputError(f"{where}: model: heads {heads} does not divide embedding_dim {dim}")


def seq_run_keys(kind: str) -> set[str]:
    """The keys a sequence model run of this kind may have: those of both kinds (seq_run's own) and
    its kind's (seq_run_contrastive or seq_run_vq)."""
    defs = load_schema()["definitions"]
    by_kind = {k: set(defs[f"seq_run_{k}"]["properties"]) for k in ("contrastive", "vq")}
    both = set(defs["seq_run"]["properties"]) - by_kind["contrastive"] - by_kind["vq"]
    return both | by_kind[kind]


def check_seq_run(run: dict[str, Any], *, where: str) -> None:
    """A sequence model run (defaults filled) holds only keys of its kind, and its heads divide its
    transformer's dim."""
    kind = run.get("kind", "contrastive")
    unknown = sorted(set(run) - seq_run_keys(kind))
    if unknown:
        raise InputError(f"{where}: {unknown} are not settings of a {kind} run")
    model = run.get("model", {})
    dim, heads = model.get("dim"), model.get("heads")
    if dim is not None and heads is not None and model.get("backbone") != "lstm" and dim % heads:
        raise InputError(f"{where}/model: heads {heads} does not divide dim {dim}")


def check_config(config: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Validate a whole config (defaults filled) and check what the schema cannot, so that a bad run
    stops the workflow before any job starts, not when its training begins."""
    validate(config, load_schema(), where=where)
    _check_results(config.get("results"), where)
    if "split" in config:
        try:
            check_fractions(config["split"]["fractions"])
        except ValueError as err:
            raise InputError(f"{where}: split/fractions: {err}") from None
    for name, run in config.get("aam", {}).get("runs", {}).items():
        check_aam_run(run, where=f"{where}: aam/runs/{name}")
        _check_pretrain_source(config, name, run["pretrain"], where=f"{where}: aam/runs/{name}/pretrain")
    _check_datasets(config, where)
    _check_corpora(config, where)
    for name, entry in config.get("predict", {}).items():
        _check_predict(config, name, entry, where)
    for name, run in config.get("seq_models", {}).get("runs", {}).items():
        check_seq_run(run, where=f"{where}: seq_models/runs/{name}")
    return config


def _check_results(results: str | None, where: str) -> None:
    """The results folder: not empty (every path would start at the filesystem root) and not the root
    itself; the schema demands a non-blank string, this checks where it leads."""
    if results is not None and not results.strip():
        raise InputError(f"{where}: results: {results!r} is blank; name a folder for the artifacts, "
                         "e.g. results")
    if results is not None and Path(results).resolve() == Path(Path(results).resolve().anchor):
        raise InputError(f"{where}: results: {results!r} is the filesystem root; name a folder for the "
                         "artifacts, e.g. results")


def _check_pretrain_source(config: dict[str, Any], run: str, pre: dict[str, Any], where: str) -> None:
    """A run's encoder source exists: `from: corpus` names a corpus run of the config, `from: bundled`
    an encoder shipped in the package; continue_on_study needs an encoder to continue from."""
    source = pre.get("from", "study")
    if pre.get("continue_on_study") and source == "study":
        raise InputError(f"{where}: continue_on_study needs from: corpus or bundled")
    if not sources.run_pretrains(pre):
        return
    if source == "corpus":
        corpus, crun = pre.get("corpus"), pre.get("run")
        corpora = config.get("pretrain_corpus", {})
        if corpus not in corpora or crun not in corpora[corpus]["runs"]:
            raise InputError(f"{where}: from: corpus needs corpus and run naming an entry of "
                             f"pretrain_corpus (got corpus={corpus!r}, run={crun!r})")
    elif source == "bundled":
        try:
            pretrained.bundled_dir(pre.get("bundled"))
        except InputError as err:
            raise InputError(f"{where}: bundled: {err}") from err


def _check_datasets(config: dict[str, Any], where: str) -> None:
    """Dataset names that clash with a results folder; a split's stratify target that a dataset lacks."""
    datasets = config.get("datasets", {})
    for taken, by in (("corpus", "results/corpus/ (pretrain_corpus)"), ("benchmark", "results/benchmark/ "
                                                                              "(the leaderboard)")):
        if taken in datasets:
            raise InputError(f"{where}: datasets: the name '{taken}' is taken by {by}; rename it")
    # models in one leaderboard: a run may not take a baseline's name (the schema's list of them)
    evaluate = load_schema()["properties"]["evaluate"]["properties"]
    baselines = set(evaluate["baselines"]["properties"]["models"]["items"]["enum"])
    clash = sorted(set(config.get("aam", {}).get("runs", {})) & baselines)
    if clash:
        raise InputError(f"{where}: aam/runs: {clash[0]!r} is the name of a baseline; rename the run")
    fitted = config.get("evaluate", {}).get("baselines", {}).get("models", [])
    combinations = config.get("evaluate", {}).get("combine") or []
    members = {c: combination_members(c) for c in combinations}
    unfitted = [b for c in combinations for b in members[c] if b not in fitted]
    if unfitted:
        raise InputError(f"{where}: evaluate/combine: {unfitted[0]!r} is not among evaluate/baselines/models "
                         f"{fitted}; add it there or remove it from combine")
    member_sets = [frozenset(members[c]) for c in combinations]
    repeated = [c for c, chosen in zip(combinations, member_sets, strict=True)
                if len(chosen) < len(members[c]) or member_sets.count(chosen) > 1]
    if repeated:
        raise InputError(f"{where}: evaluate/combine: {repeated[0]!r} repeats a baseline, or the baselines "
                         "of another combination; name each combination once")
    runs = set(config.get("aam", {}).get("runs", {}))
    for group in config.get("evaluate", {}).get("average_runs") or []:
        unknown = [run for run in group if run not in runs]
        if unknown:
            raise InputError(f"{where}: evaluate/average_runs: {unknown[0]!r} is not a run of aam/runs "
                             f"{sorted(runs)}")
    for name, dataset in datasets.items():
        try:
            stratify_column(config.get("split", {}), dataset.get("targets", []))
        except InputError as err:
            raise InputError(f"{where}: datasets/{name}: {err}") from err


def _check_corpora(config: dict[str, Any], where: str) -> None:
    """Every corpus run trains on at least one study of its corpus, and every study has a tree."""
    for corpus, entry in config.get("pretrain_corpus", {}).items():
        try:
            for run in entry["runs"]:
                for study in sources.corpus_run_studies(config, corpus, run):
                    sources.corpus_study(config, corpus, study)
        except InputError as err:
            raise InputError(f"{where}: {err}") from err


def _check_predict(config: dict[str, Any], name: str, entry: dict[str, Any], where: str) -> None:
    """A `predict:` entry names a dataset, an AAM run and a target of that dataset that exist."""
    here = f"{where}: predict/{name}"
    datasets = config.get("datasets", {})
    if entry["dataset"] not in datasets:
        raise InputError(f"{here}: dataset {entry['dataset']!r} is not one of {sorted(datasets)}")
    runs = config.get("aam", {}).get("runs", {})
    if entry["run"] not in runs:
        raise InputError(f"{here}: run {entry['run']!r} is not one of aam.runs {sorted(runs)}")
    targets = [t["name"] for t in datasets[entry["dataset"]].get("targets", [])]
    if entry["target"] not in targets:
        raise InputError(f"{here}: target {entry['target']!r} is not one of dataset "
                         f"{entry['dataset']!r}'s targets {targets}")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a whole config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read config: {err}") from err
    return check_config(config or {}, where=str(path))


def definition(name: str) -> dict[str, Any]:
    """A schema definition (e.g. `aam_run`), resolvable on its own (shared definitions attached)."""
    schema = load_schema()
    defs = schema.get("definitions", {})
    if name not in defs:
        raise KeyError(f"no schema definition '{name}'")
    return {**defs[name], "definitions": defs}


def section_settings(text: str | None, section: str) -> dict:
    """A config section (ingest, split, rarefy) from JSON or a YAML/JSON file, validated and defaults
    filled from the schema."""
    settings = load_settings(text)
    return validate(settings, load_schema()["properties"][section], where=f"--settings ({section})")


def load_settings(value: str | Path | None, schema_definition: str | None = None) -> dict[str, Any]:
    """Nested settings for a stage: a JSON string, or a path to a YAML/JSON file.

    With `schema_definition`, the settings are validated against that definition of the config
    schema and its defaults filled in, exactly as the Snakefile would.
    """
    if value is None:
        settings: Any = {}
    else:
        text = str(value).strip()
        if text.startswith("{"):
            try:
                settings = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(f"--settings: not valid JSON: {err}") from err
        else:
            path = Path(text)
            try:
                settings = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as err:
                raise InputError(f"{path}: cannot read settings: {err}") from err
    if schema_definition is not None:
        where = f"settings ({schema_definition})"
        validate(settings, definition(schema_definition), where=where)
        if schema_definition == "aam_run":
            check_aam_run(settings, where=where)
        elif schema_definition == "seq_run":
            check_seq_run(settings, where=where)
    return settings
