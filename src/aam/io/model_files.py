"""A model folder: ``model.safetensors`` (the weights) beside ``model.json`` (what to build), never a
pickle.

``model.json`` holds ``model_class`` (the model's dotted path), ``config`` (its config dataclass as a
dict), ``provenance`` (:mod:`aam.provenance`; stages pass theirs, with their settings and seed) and
any ``extra`` keys a stage adds. A model class must have a ``config`` attribute holding a dataclass
instance and accept that dataclass as its only constructor argument; its ``config_class`` attribute
names the dataclass (:func:`load_model` builds ``cls(cls.config_class(**config))``).

This module imports no Lightning: the stages that only read a trained model (predict, embed,
classify, evaluate) load it without the training engine.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aam.errors import InputError
from aam.io.atomic import atomic_path, write_text
from aam.provenance import provenance


def export_model(model: torch.nn.Module, out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``model.safetensors`` and ``model.json`` (class, config dataclass, ``extra``) atomically."""
    from safetensors.torch import save_model

    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(model).__name__} has no dataclass `config` attribute to export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cls = type(model)
    doc = {
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "config": dataclasses.asdict(config),
        **(extra or {}),
    }
    doc.setdefault("provenance", provenance())  # stages pass theirs, with settings and seed
    was_training = model.training
    model.eval()
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    model.train(was_training)
    write_text(out_dir / "model.json", json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | tuple):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def load_model(
    out_dir: str | Path, cls: type | None = None, map_location: str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model named in ``model.json`` and load ``model.safetensors`` into it (eval mode);
    returns ``(model, meta)`` where ``meta`` is the whole JSON document.

    The class is imported from its dotted path when it lies in the ``aam`` package; pass ``cls``
    for a class defined elsewhere (JSON from an untrusted source never imports arbitrary modules).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model as st_load

    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{out_dir / 'model.json'}: cannot read model config: {err}") from err
    if cls is None:
        dotted = meta["model_class"]
        module_name, _, qualname = dotted.rpartition(".")
        if not module_name.startswith("aam."):
            raise InputError(f"{out_dir / 'model.json'}: model class {dotted} is not part of aam")
        cls = getattr(importlib.import_module(module_name), qualname)
    try:
        config = cls.config_class(**meta["config"])
    except TypeError as err:  # a field this aam's model lacks
        raise InputError(f"{out_dir / 'model.json'}: {err}") from None
    try:
        model = cls(config)
    except ValueError as err:  # a config this aam cannot serve (e.g. a linear member of another input)
        raise InputError(f"{out_dir / 'model.json'}: {err}") from None
    weights = out_dir / "model.safetensors"
    try:
        st_load(model, str(weights), device=map_location)
    except (SafetensorError, OSError) as err:  # truncated, not safetensors (e.g. a pickle), unreadable
        raise InputError(f"{weights}: not a readable safetensors file ({err}); export the model again"
                         ) from None
    except RuntimeError as err:  # tensors missing or of other shapes than model.json describes
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{weights}: does not hold the weights model.json describes ({first})") from None
    model.eval()
    return model, meta
