"""Training one DNA sequence model run (contrastive or VQ): the library of `aam seq-train`.

A run trains on the ``train`` split of a ``prepared.parquet`` (:mod:`aam.data.seq_collection`), of
which a seeded ``val_fraction`` is held out for early stopping; the ``test`` split is never seen.
:func:`train_run` fills the run's defaults from the schema (the one source of defaults), builds the
model and data of its kind, and fits and exports through :func:`aam.training.runs.fit_and_export`,
which owns the rank-0 guard and the resume fingerprint. Contrastive runs also store
``reference.parquet`` (:func:`aam.evaluate.seq_embeddings.write_reference`): every training
sequence with its ranks and embedding, the reference `aam classify` votes over.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from aam.config import check_seq_run, definition, validate
from aam.data.seq_collection import blocks_from, check_ranks, label_codes, read_prepared
from aam.errors import InputError
from aam.evaluate.seq_embeddings import write_reference

log = logging.getLogger(__name__)


def resolve_settings(raw: dict) -> dict:
    """The run's settings with the defaults of its kind filled in from the config schema (``seq_run``,
    as the Snakefile fills them); a value the schema refuses, or a key of the other kind, is an
    InputError."""
    settings = validate(copy.deepcopy(raw), definition("seq_run"), where="seq_models run")
    check_seq_run(settings, where="seq_models run")
    return settings


def _file_hash(path: str) -> str:
    """SHA-256 of a file, read in 1 MiB pieces (the prepared collection in the resume fingerprint)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _val_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """Seeded validation rows of the training split (at least one left to train on)."""
    mask = np.zeros(n, dtype=bool)
    n_val = int(round(n * fraction))
    if n_val and n > 1:
        mask[np.random.default_rng(seed + 1).permutation(n)[: min(n_val, n - 1)]] = True
    return mask


def train_run(prepared: str, settings: dict, out_dir: str, seed: int = 42, frame: pd.DataFrame | None = None):
    """Train and export one run; returns the engine's FitResult."""
    settings = resolve_settings(settings)
    frame = read_prepared(prepared) if frame is None else frame
    fingerprint = {"settings": settings, "seed": seed, "prepared": _file_hash(prepared) if prepared else None}
    if settings["kind"] == "contrastive":
        return _train_contrastive(frame, settings, Path(out_dir), seed, fingerprint)
    return _train_vq(frame, settings, Path(out_dir), seed, fingerprint)


def _trainer_settings(settings: dict, seed: int):
    from aam.training.runs import trainer_settings

    return trainer_settings(settings, seed, None, "seq_models run trainer")


def _fit_and_export(module, out_dir: Path, tokenizer, dm, settings: dict, seed: int, fingerprint: dict,
                    extra: dict, also=None):
    """Train and, on rank 0, write the run's folder: ``also(module)`` (the contrastive reference),
    the tokenizer, model.safetensors + model.json (with ``extra``), timing.json and history.csv."""
    from aam.provenance import provenance
    from aam.training.runs import fit_and_export

    def outputs(result) -> dict:
        if also is not None:
            also(module)
        tokenizer.save(out_dir / "tokenizer.json")
        log.info(
            "trained %s in %.1f s (%d epochs, %d steps, %s parameters) -> %s",
            settings["kind"],
            result.wall_time_s,
            result.epochs,
            result.global_step,
            f"{result.n_parameters:,}",
            out_dir,
        )
        return {
            "kind": settings["kind"],
            "run_settings": settings,
            "tokenizer": tokenizer.settings(),
            "epochs": result.epochs,
            "global_step": result.global_step,
            "n_parameters": result.n_parameters,
            **extra,
            "provenance": provenance(settings, seed),
        }

    samples_per_step = dm.batch_size * _trainer_settings(settings, seed).accumulate_grad_batches
    return fit_and_export(module, out_dir, fingerprint=fingerprint, outputs=outputs,
                          what="sequence model training", samples_per_step=samples_per_step, datamodule=dm,
                          train_dir=out_dir / "train", history_name="history.csv")


def _train_contrastive(frame: pd.DataFrame, settings: dict, out_dir: Path, seed: int, fingerprint: dict):
    from aam.data.augment import AugmentConfig, Augmenter
    from aam.data.dna_tokenizers import make_tokenizer
    from aam.data.sequence_datasets import SequenceCollator, SequenceDataModule, SequenceDataset
    from aam.models.contrastive import ContrastiveConfig
    from aam.training.engine import seed_everything
    from aam.training.seq_modules import ContrastiveModule

    ts = _trainer_settings(settings, seed)
    try:
        tokenizer = make_tokenizer(settings["tokenizer"])
        aug_cfg = AugmentConfig(**settings["augment"])
    except (ValueError, TypeError) as err:
        raise InputError(f"seq_models run: {err}") from err
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    if len(train) < 4:
        raise InputError(f"seq-train: only {len(train)} training sequences")
    ranks = check_ranks(settings["label_ranks"], "seq_models run label_ranks")
    has_labels = all(r in train.columns for r in ranks) and len(ranks) > 0
    loss = settings["loss"]
    if loss == "auto":
        loss = "supcon" if has_labels else "ntxent"
    if loss == "supcon" and not has_labels:
        missing = [r for r in ranks if r not in train.columns]
        raise InputError(f"seq-train: supervised contrastive loss needs labels; rank(s) {missing} absent")
    if loss not in ("supcon", "ntxent"):
        raise InputError(f"seq_models run: loss '{loss}' is not auto, supcon or ntxent")
    val = _val_mask(len(train), float(settings["val_fraction"]), seed)
    labels = label_codes(train, ranks, ~val) if loss == "supcon" else None
    seqs = train["sequence"].tolist()
    max_seq = int(max(len(s) for s in seqs))
    aug_cfg.max_len = min(aug_cfg.max_len, max_seq + 2 * aug_cfg.max_indel * 4)
    max_tokens = tokenizer.n_tokens(max(max_seq, aug_cfg.max_len)) + 2
    mcfg = {"pad_id": 0, **settings["model"], "vocab_size": tokenizer.vocab_size, "max_len": max_tokens}
    try:
        model_config = ContrastiveConfig.from_dict(mcfg)
    except (ValueError, TypeError) as err:
        raise InputError(f"seq_models run model: {err}") from err
    augmenter = Augmenter(aug_cfg)
    tr_idx, va_idx = np.flatnonzero(~val), np.flatnonzero(val)
    pick = (lambda idx: labels[idx]) if labels is not None else (lambda idx: None)
    train_ds = SequenceDataset([seqs[i] for i in tr_idx], pick(tr_idx), 2, augmenter, seed)
    val_ds = (
        SequenceDataset([seqs[i] for i in va_idx], pick(va_idx), 2, augmenter, seed + 7)
        if len(va_idx)
        else None
    )
    dm = SequenceDataModule(
        train_ds, val_ds, SequenceCollator(tokenizer, max_tokens), ts.batch_size, ts.num_workers, seed
    )
    seed_everything(ts.seed)
    module = ContrastiveModule(
        model_config, ts, loss, float(settings["temperature"]), settings["rank_weights"]
    )
    # the resolved model config too, so that a changed code default never resumes a stale checkpoint
    fingerprint = {**fingerprint, "model_config": model_config.to_dict(), "trainer": ts.as_dict()}
    return _fit_and_export(
        module, out_dir, tokenizer, dm, settings, seed, fingerprint, {"loss": loss, "label_ranks": ranks},
        also=lambda m: write_reference(m.model, tokenizer, train, str(out_dir / "reference.parquet")),
    )


def _train_vq(frame: pd.DataFrame, settings: dict, out_dir: Path, seed: int, fingerprint: dict):
    from aam.data.dna_tokenizers import CharTokenizer
    from aam.data.sequence_datasets import BlockDataModule, BlockDataset
    from aam.models.vq import VQConfig
    from aam.training.engine import seed_everything
    from aam.training.seq_modules import VQModule

    ts = _trainer_settings(settings, seed)
    tokenizer = CharTokenizer(add_special_tokens=False)
    block_len = int(settings["block_len"])
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    val = _val_mask(len(train), float(settings["val_fraction"]), seed)
    seqs = train["sequence"].tolist()
    tr_blocks = blocks_from(
        [s for s, v in zip(seqs, val, strict=True) if not v], block_len, settings["block_stride"]
    )
    va_blocks = blocks_from(
        [s for s, v in zip(seqs, val, strict=True) if v], block_len, settings["block_stride"]
    )
    if settings["max_blocks"]:
        tr_blocks = tr_blocks[: int(settings["max_blocks"])]
    if len(tr_blocks) == 0:
        raise InputError(f"seq-train: no training block of {block_len} nucleotides (sequences are shorter)")
    try:
        model_config = VQConfig.from_dict(
            {**settings["model"], "vocab_size": tokenizer.vocab_size, "block_len": block_len}
        )
    except (ValueError, TypeError) as err:
        raise InputError(f"seq_models run model: {err}") from err
    dm = BlockDataModule(
        BlockDataset(tr_blocks, tokenizer),
        BlockDataset(va_blocks, tokenizer) if len(va_blocks) else None,
        ts.batch_size,
        ts.num_workers,
        seed,
    )
    seed_everything(ts.seed)
    module = VQModule(model_config, ts)
    # the resolved model config too, so that a changed code default never resumes a stale checkpoint
    fingerprint = {**fingerprint, "model_config": model_config.to_dict(), "trainer": ts.as_dict()}
    extra = {"n_train_blocks": int(len(tr_blocks)), "n_val_blocks": int(len(va_blocks))}
    return _fit_and_export(module, out_dir, tokenizer, dm, settings, seed, fingerprint, extra)
