"""The pretraining models of a run: UniFrac + masked-nucleotide pretraining on one study (from
random weights or from a pretrained encoder) and on a corpus of studies (one UniFrac index per
tree). `aam pretrain` and `aam corpus-pretrain` build them here and train them with
:func:`aam.training.runs.fit_and_export`; the corpus benchmark builds the same module.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aam.data.unifrac import PhyloIndex
from aam.training.aam_modules import CorpusPretrainModule, PretrainModule
from aam.training.encoder_init import apply_encoder, load_encoder
from aam.training.runs import model_config

log = logging.getLogger(__name__)


def study_module(settings: dict, dm, tree: str | Path, trainer, init_dir: str | Path | None = None):
    """The model config and the LightningModule that pretrains on one study's samples: UniFrac on
    ``tree`` (indexed for the dataset's features) and masked nucleotides; with ``init_dir`` the
    architecture and weights are that pretrained encoder's (:mod:`aam.training.encoder_init`)."""
    pre = settings["pretrain"]
    start = time.perf_counter()
    index = PhyloIndex.from_newick(tree, list(dm.feature_ids))
    log.info("tree indexed for %d features in %.1f s", len(dm.feature_ids), time.perf_counter() - start)
    initial = None
    if init_dir:
        cfg, initial = load_encoder(Path(init_dir), settings["model"], dm)
    else:
        cfg = model_config(settings["model"], dm)
    module = PretrainModule(cfg, trainer, index, unifrac_metric=pre["unifrac_metric"],
                            mask_rate=pre["mask_rate"], unifrac_weight=pre["unifrac_weight"],
                            nucleotide_weight=pre["nucleotide_weight"])
    if initial is not None:
        apply_encoder(module.model, initial, Path(init_dir))
        log.info("starting from the pretrained encoder in %s", init_dir)
    return cfg, module


def corpus_module(settings: dict, dm, trainer):
    """The model config (from the run's ``model`` section and the data) and the LightningModule,
    with one UniFrac index per tree group."""
    pre = settings["pretrain"]
    indexes = []
    for tree, ids in zip(dm.tree_groups, dm.group_feature_ids, strict=True):
        start = time.perf_counter()
        indexes.append(PhyloIndex.from_newick(tree, ids))
        log.info("tree %s indexed for %d features in %.1f s", tree, len(ids), time.perf_counter() - start)
    cfg = model_config(settings["model"], dm)
    module = CorpusPretrainModule(cfg, trainer, indexes, unifrac_metric=pre["unifrac_metric"],
                                  mask_rate=pre["mask_rate"], unifrac_weight=pre["unifrac_weight"],
                                  nucleotide_weight=pre["nucleotide_weight"])
    return cfg, module
