"""A pretrained encoder's frozen sample embeddings, and those of two controls of its architecture.

Why: whether pretraining taught an encoder anything a task can use shows in its frozen pooled sample
embeddings, probed by a linear model (:mod:`aam.evaluate.probes`) beside the same probe on

- ``random``: the same architecture at a seeded random initialisation (what fine-tuning from
  scratch would start from, at the pretrained model's size), and
- ``permuted``: the pretrained weights shuffled within each tensor (seeded): the scale and
  distribution of every pretrained tensor, none of the structure pretraining put into it.

The embeddings are those fine-tuning and ``aam predict`` compute: the sample encoder's pooled vector
of each sample of a token cache, rarefied once with the evaluation stream
(:func:`aam.evaluate.predict.cache_loader`). scripts/diagnose_pretraining.py uses them;
docs/benchmark.md, "Pretraining: diagnosis", has what they showed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aam.errors import InputError

INITS = ("pretrained", "random", "permuted")


def frozen_encoder(folder: str | Path, init: str, seed: int):
    """The encoder of ``folder`` (a pretrained encoder's ``model.json`` + ``model.safetensors``) as
    a :class:`~aam.models.aam.SequencePredictor` in eval mode, its base holding the weights ``init``
    names (:data:`INITS`). Its target head is random and unused: only the sample embedding is read."""
    from aam.models.aam import AAMConfig, SequencePredictor
    from aam.training.encoder_init import apply_encoder, encoder_config, encoder_weights

    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    folder = Path(folder)
    config = AAMConfig(**encoder_config(folder), task="regression", n_outputs=1)
    torch.manual_seed(seed)
    model = SequencePredictor(config)
    if init != "random":
        state = encoder_weights(folder)
        if init == "permuted":
            generator = torch.Generator().manual_seed(seed)
            state = {k: v.flatten()[torch.randperm(v.numel(), generator=generator)].view_as(v)
                     for k, v in state.items()}
        apply_encoder(model.base, state, folder)
    return model.eval()


def cache_embeddings(model, tokens_dir: str | Path, seed: int, asv_limit: int | None = None,
                     depth: int | None = None, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """Sample IDs and pooled embeddings [n, D] of every sample of the token caches in ``tokens_dir``
    with at least ``depth`` reads (default: the caches' rarefaction depth), each rarefied to it with
    the evaluation stream of ``seed``, its ``asv_limit`` (default: the model's) most abundant
    features kept, in the caches' sample order."""
    from aam.evaluate.predict import cache_loader, predict
    from aam.io.parquet_cache import read_features, read_samples

    tokens_dir = Path(tokens_dir)
    features = read_features(tokens_dir / "features.parquet")
    samples = read_samples(tokens_dir / "samples.parquet")
    if features.max_bp > model.config.max_bp:
        raise InputError(f"{tokens_dir}: token rows of {features.max_bp} nt are wider than the encoder's "
                         f"max_bp {model.config.max_bp}")
    depth = int(depth if depth is not None else samples.meta.get("rarefaction_depth") or 0)
    if depth <= 0:
        raise InputError(f"{tokens_dir}: no rarefaction depth in the caches; pass depth")
    rows = np.flatnonzero(samples.totals >= depth)
    limit = int(asv_limit if asv_limit is not None else model.config.asv_limit)
    loader = cache_loader(features, samples, rows, depth, limit, "abundance", seed, batch_size)
    pred = predict(model, loader, torch.device("cpu"))
    order = np.argsort(pred["row"], kind="stable")
    return [str(samples.sample_ids[int(r)]) for r in pred["row"][order]], pred["embedding"][order]
