"""Start training from a pretrained encoder: its architecture, its weights, and a dataset fitted to it.

Fine-tuning (`aam finetune --pretrain-dir/--bundled`) and continued pretraining on one study
(`aam pretrain --init-dir`: a corpus or bundled encoder pretrained further on the dataset's own
samples) both start this way, so both take every architecture key from the encoder and check the
dataset against it in one place.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from torch import nn

from aam.errors import InputError

log = logging.getLogger(__name__)

# Model settings that do not shape the encoder's weights (training settings, and the fine-tuned
# model's own readouts, which no encoder holds): a fine-tuning run sets them; all others (sizes,
# encoders, max_bp, asv_limit, ...) are the pretrained encoder's.
TRAINING_ONLY = ("dropout", "head_dropout", "asv_dropout", "clr_readout", "asv_readout",
                 "asv_readout_buckets", "asv_readout_scope", "asv_readout_key", "asv_readout_salt")


def load_encoder(folder: Path, model: dict, dm, task: str | None = None, n_outputs: int = 1):
    """The config and weights of a pretrained encoder (`aam pretrain`, `aam corpus-pretrain` or a
    bundled one) for a run that trains on from it: fine-tuning (``task`` set) or further
    pretraining on one study (``task`` None).

    The architecture is the encoder's (every config key but :data:`TRAINING_ONLY`; keys an older
    encoder lacks take the model's defaults, the original AAM's): the run's ``model`` section gives
    only the training-only keys, so one config fine-tunes from encoders of any size. The dataset
    must fit it: ``data.asv_limit`` at most the encoder's, and token rows at most its ``max_bp``
    wide (wider caches are cut to it, the cut features counted).
    """
    from aam.models.aam import AAMConfig

    arch = {k: v for k, v in encoder_config(folder).items() if k not in TRAINING_ONLY}
    try:
        max_bp, asv_limit = int(arch["max_bp"]), int(arch["asv_limit"])
    except (KeyError, TypeError) as err:
        raise InputError(f"{folder / 'model.json'}: not a pretrained encoder's config: {err}") from None
    differ = {k: (arch[k], v) for k, v in model.items() if k in arch and arch[k] != v}
    if differ:
        log.info("the encoder's architecture is used, not the run's model section (encoder, run): %s", differ)
    if dm.asv_limit > asv_limit:
        raise InputError(f"{folder}: data.asv_limit {dm.asv_limit} exceeds the encoder's asv_limit "
                         f"{asv_limit}; set data.asv_limit <= {asv_limit}")
    fit_tokens(dm, max_bp, folder)
    rest = {k: v for k, v in model.items() if k in TRAINING_ONLY}
    return AAMConfig(**(arch | rest), task=task, n_outputs=n_outputs), encoder_weights(folder)


def encoder_config(folder: Path) -> dict:
    """The AAMConfig keys (all but ``task`` and ``n_outputs``, which the run sets) of a pretrained
    encoder's ``model.json``; an unreadable one is one InputError line naming the file."""
    import dataclasses

    from aam.models.aam import AAMConfig

    try:
        saved = json.loads((folder / "model.json").read_text())["config"]
        fields = {f.name for f in dataclasses.fields(AAMConfig)} - {"task", "n_outputs"}
        return {k: v for k, v in saved.items() if k in fields}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{folder / 'model.json'}: not a pretrained encoder's config: {err}") from None


def encoder_weights(folder: Path) -> dict:
    """A pretrained encoder's ``model.safetensors`` (never a pickle); unreadable, one InputError line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = folder / "model.safetensors"
    try:
        return load_file(str(weights))
    except (OSError, SafetensorError) as err:
        raise InputError(f"{weights}: cannot read the encoder's weights: {err}") from None


def apply_encoder(encoder: nn.Module, state: dict, folder: Path) -> None:
    """Load the weights of :func:`load_encoder` into the SequenceEncoder they were read for; weights
    of another model (a fine-tuned model's folder given for an encoder's, or a file that does not
    match its model.json) are one clear error, not a traceback."""
    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape
        missing, unexpected = [str(err).strip().splitlines()[-1].strip()], []
    if missing or unexpected:
        raise InputError(f"{folder / 'model.safetensors'}: not the weights of the encoder its model.json "
                         f"describes (is it a pretrained encoder's folder?): {len(missing)} missing, "
                         f"{len(unexpected)} unexpected, e.g. {(list(missing) + list(unexpected))[0]}")


def fit_tokens(dm, max_bp: int, folder: Path) -> None:
    """Make the dataset's token rows at most the encoder's ``max_bp`` wide: narrower rows are fine
    (an ASV encoder trained with crops serves any length up to max_bp); longer sequences are cut to
    their first max_bp nucleotides, as `aam tokenize` would cut them, and counted."""
    tokens = dm.collate.tokens
    if tokens.shape[1] <= max_bp:
        return
    n_cut = int((dm.features.lengths > max_bp).sum())
    if n_cut:
        log.warning("%d of %d features are longer than the encoder's max_bp %d (%s) and are cut to it",
                    n_cut, tokens.shape[0], max_bp, folder)
    dm.collate.tokens = np.ascontiguousarray(tokens[:, :max_bp])
    dm.max_bp = max_bp
