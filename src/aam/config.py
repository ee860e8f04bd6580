"""Configuration: the one YAML config, validated against the schema with defaults filled in.

The schema (`aam/schema/config.schema.yaml`, linked from `workflow/schemas/`) is the single source of
defaults: the Snakefile validates with it, and stages run by hand fill their nested settings from the
same definitions, so a stage behaves the same with or without Snakemake.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aam.errors import InputError

SCHEMA_RESOURCE = ("aam.schema", "config.schema.yaml")


def load_schema() -> dict[str, Any]:
    """The config schema shipped with the package."""
    text = resources.files(SCHEMA_RESOURCE[0]).joinpath(SCHEMA_RESOURCE[1]).read_text()
    return yaml.safe_load(text)


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


def validate(instance: Any, schema: dict[str, Any], *, where: str) -> Any:
    """Validate `instance` in place (defaults filled); raise one `InputError` naming the first problem."""
    validator = _defaulting_validator()(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(f"{where}: {path}: {err.message}")
    return instance


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a whole config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read config: {err}") from err
    return validate(config or {}, load_schema(), where=str(path))


def definition(name: str) -> dict[str, Any]:
    """A schema definition (e.g. `aam_run`), resolvable on its own (shared definitions attached)."""
    schema = load_schema()
    defs = schema.get("definitions", {})
    if name not in defs:
        raise KeyError(f"no schema definition '{name}'")
    return {**defs[name], "definitions": defs}


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
        validate(settings, definition(schema_definition), where=f"settings ({schema_definition})")
    return settings
