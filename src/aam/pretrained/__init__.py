"""Pretrained encoders shipped with the package: ``aam/pretrained/<name>/`` holds ``model.safetensors``,
``model.json`` and ``MODEL_CARD.md`` (data, training, validation figures, data licences).

``pretrain: {from: bundled}`` in a run (or ``aam finetune --bundled NAME``) fine-tunes from one of
them with no pretraining step and nothing downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aam.errors import InputError

DEFAULT = "gg13_8_v4_small"


def available() -> list[str]:
    """Names of the bundled encoders."""
    root = Path(str(resources.files(__name__)))
    return sorted(p.name for p in root.iterdir() if (p / "model.json").is_file())


def bundled_dir(name: str | None = None) -> Path:
    """The folder of a bundled encoder (default: :data:`DEFAULT`); InputError naming those there are."""
    name = name or DEFAULT
    folder = Path(str(resources.files(__name__))) / name
    if not (folder / "model.json").is_file() or not (folder / "model.safetensors").is_file():
        raise InputError(f"no bundled encoder {name!r}; bundled: {available()}")
    return folder
