"""Batches for pretraining on a corpus of studies (``pretrain_corpus:`` in the config).

Each study has its own token caches (``tokens/features.parquet``, ``tokens/samples.parquet``, made by
the ingest and tokenize code of a single dataset), its own rarefaction depth and a tree. Studies
that name the same tree file form a *tree group*: one :class:`aam.data.unifrac.PhyloIndex` over the
union of their features serves the per-batch UniFrac of all of them.

Why batches never cross a study: a batch's UniFrac targets are distances between its samples on one
tree at one depth. Two studies on different trees have no common tree; two studies at different
depths give unweighted distances that partly measure depth. So every batch comes from one study
(hence from one tree group), and the batch carries ``tree_group`` so that the loss uses that
group's index.

Memory stays flat as the corpus grows: a study is its CSR sample table (12 bytes per non-zero) and
its token matrix; samples are rarefied when drawn, batch by batch, and no N x N matrix or dense
table is built. Per epoch (:class:`CorpusBatchSampler`) each study's training samples are shuffled
and cut into batches, and the batches of all studies are shuffled together (seeded by seed and
epoch), so a run with ``limit_train_batches`` sees a fresh mix of studies each epoch.

Read lengths (``crop``): 16S studies differ in read length (100-nt deblur reads, 150-nt V4
references), all starting at the same primer position. During pretraining each distinct ASV of a
batch is cut to a random length in ``[min_bp, max_bp]`` (its first ``length`` nucleotides, the
rest padding), so the ASV encoder learns to serve any prefix length up to ``max_bp``.

The batch format is that of :mod:`aam.data.datasets` (built by its :class:`Collate`), plus
``study`` [B] int64 (index into the study list) and ``tree_group`` [B] int64; ``feature_idx`` and
``unifrac_feature_idx`` index the tree group's feature list (:attr:`CorpusDataModule.group_feature_ids`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from aam.data.datasets import Collate, RarefiedSamples, SampleItem
from aam.data.ranks import Key, RoundRobinBatches, ShardsByRank
from aam.errors import InputError
from aam.io.parquet_cache import read_features, read_samples

try:
    import lightning.pytorch as pl

    _Base = pl.LightningDataModule
except ImportError:  # pragma: no cover
    _Base = object

log = logging.getLogger(__name__)

_SPLIT_STREAM, _ORDER_STREAM, _CROP_STREAM = 10, 11, 12


@dataclass
class CorpusStudy:
    """One study of the corpus: where its token caches are, its tree and its rarefaction depth."""

    name: str
    tokens_dir: Path
    tree: str
    depth: int


def crop_tokens(tokens: np.ndarray, min_bp: int, rng: np.random.Generator) -> np.ndarray:
    """Each row cut to its first ``length`` tokens, ``length`` uniform in [min_bp, its own length]
    (a row shorter than ``min_bp`` stays as it is)."""
    real = (tokens != 0).sum(axis=1)
    low = np.minimum(real, min_bp)
    keep = rng.integers(low, real + 1)
    out = tokens.copy()
    out[np.arange(tokens.shape[1])[None, :] >= keep[:, None]] = 0
    return out


class CorpusSamples(Dataset):
    """The samples of one split over all studies; a key is a :class:`aam.data.ranks.Key` whose item is
    ``(study, i)`` (the batch's number in its epoch seeds its nucleotide mask, as in
    :mod:`aam.data.datasets`)."""

    def __init__(self, parts: list[RarefiedSamples]):
        self.parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, key: Key) -> tuple[int, int, SampleItem]:
        (study, i), epoch, number, padding = key
        return study, epoch, self.parts[study][(i, epoch, number, padding)]


class CorpusBatchSampler(RoundRobinBatches):
    """Batches of ``Key((study, i), epoch, batch_number, padding)``, each batch from one study.

    Training (``shuffle``): per epoch, each study's samples in a seeded random order cut into
    batches of ``batch_size`` (a last partial batch of a study is dropped when ``drop_last``: a batch
    of one sample has no UniFrac pair), then all batches in a seeded random order. Evaluation: each
    study's samples in order, studies in order. Under data parallelism the batches are dealt to the
    ranks by :class:`aam.data.ranks.RoundRobinBatches` (whole batches, the last round padded), so
    Lightning keeps this sampler as it is.
    """

    def __init__(self, sizes: list[int], batch_size: int, seed: int, shuffle: bool, drop_last: bool,
                 num_replicas: int = 1, rank: int = 0, pad: bool = True):
        super().__init__(seed, shuffle, num_replicas, rank, pad)
        self.sizes, self.batch_size = [int(s) for s in sizes], int(batch_size)
        self.drop_last = drop_last

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) of a study's batches. A batch of one sample has no UniFrac pair: a last
        single sample joins the batch before it (or, with ``drop_last``, any last partial batch is
        dropped once the study fills a whole one)."""
        full, rest = divmod(n, self.batch_size)
        bounds = [(i * self.batch_size, (i + 1) * self.batch_size) for i in range(full)]
        if rest and not (self.drop_last and full):
            if rest == 1 and bounds:
                bounds[-1] = (bounds[-1][0], n)
            elif rest > 1:
                bounds.append((full * self.batch_size, n))
        return bounds

    def global_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        out = []
        for study, n in enumerate(self.sizes):
            if self.shuffle:
                order = np.random.default_rng([self.seed, _ORDER_STREAM, epoch, study]).permutation(n)
            else:
                order = np.arange(n)
            for start, stop in self._bounds(n):
                out.append([(study, int(i)) for i in order[start:stop]])
        if self.shuffle:
            perm = np.random.default_rng([self.seed, _ORDER_STREAM, epoch]).permutation(len(out))
            out = [out[i] for i in perm]
        return out


class CorpusCollate:
    """Builds a batch with the study's :class:`Collate`, maps its feature indices to the tree
    group's, adds ``study`` and ``tree_group``, and crops the ASVs (training, ``min_bp`` set)."""

    def __init__(self, collates: list[Collate], to_group: list[np.ndarray], groups: list[int],
                 min_bp: int | None, seed: int):
        self.collates, self.to_group, self.groups = collates, to_group, groups
        self.min_bp, self.seed = min_bp, int(seed)

    def __call__(self, keyed: list[tuple[int, int, SampleItem]]) -> dict[str, torch.Tensor]:
        studies = {s for s, _, _ in keyed}
        if len(studies) != 1:
            raise ValueError(f"a corpus batch mixes studies {sorted(studies)}")
        study = studies.pop()
        items = [it for _, _, it in keyed]
        batch = self.collates[study](items)
        to_group = torch.from_numpy(self.to_group[study])
        batch["feature_idx"] = to_group[batch["feature_idx"]]
        batch["unifrac_feature_idx"] = to_group[batch["unifrac_feature_idx"]]
        b = len(items)
        batch["study"] = torch.full((b,), study, dtype=torch.int64)
        batch["tree_group"] = torch.full((b,), self.groups[study], dtype=torch.int64)
        if self.min_bp is not None:
            rng = np.random.default_rng([self.seed, _CROP_STREAM, keyed[0][1], study,
                                         *(it.row for it in items)])
            batch["tokens"] = torch.from_numpy(crop_tokens(batch["tokens"].numpy(), self.min_bp, rng))
        return batch


class CorpusDataModule(ShardsByRank, _Base):
    """Train/val DataLoaders over the studies of a corpus (see the module docstring).

    Args:
        studies: the studies (token caches, tree, depth); all caches must share ``max_bp``.
        settings: the run's ``data:`` section (asv_limit, selection, batch_size, num_workers).
        val_fraction: share of each study's samples (that reach its depth) held out for validation,
            drawn with a seeded permutation; at least one per study when the fraction is > 0.
        crop_min_bp: random prefix crops of training ASVs to lengths in [crop_min_bp, max_bp];
            None = no cropping. Validation is never cropped.
        seed: the config's seed.

    Attributes: max_bp, asv_limit, batch_size, depth (per study), study_names, tree_groups (tree
    path per group), group_of_study, group_feature_ids (per group: feature IDs, the columns of that
    group's UniFrac counts), train_dataset / val_dataset, n_train / n_val per study.
    """

    def __init__(self, studies: list[CorpusStudy], settings: dict, val_fraction: float, seed: int = 42,
                 crop_min_bp: int | None = None):
        super().__init__()
        from aam.data.datasets import DATA_DEFAULTS

        if not studies:
            raise InputError("pretrain_corpus: no studies")
        cfg = {**DATA_DEFAULTS, **(settings or {})}
        self.seed = int(seed)
        self.asv_limit = int(cfg["asv_limit"])
        self.selection = str(cfg["selection"])
        self.batch_size = int(cfg["batch_size"])
        self.num_workers = int(cfg["num_workers"])
        self.study_names = [s.name for s in studies]
        self.depth = {s.name: int(s.depth) for s in studies}
        self.tree_groups: list[str] = []
        self.group_of_study: list[int] = []
        group_ids: list[dict[str, int]] = []
        collates, local_ids, train_parts, val_parts = [], [], [], []
        self.n_train, self.n_val = {}, {}
        max_bps = set()
        for k, study in enumerate(studies):
            for name in ("features.parquet", "samples.parquet"):
                if not (Path(study.tokens_dir) / name).is_file():
                    raise InputError(f"pretrain_corpus study {study.name}: no {name} in {study.tokens_dir} "
                                     "(run its tokenize step first)")
            if not Path(study.tree).is_file():
                raise InputError(f"pretrain_corpus study {study.name}: tree {study.tree} not found")
            features = read_features(Path(study.tokens_dir) / "features.parquet")
            samples = read_samples(Path(study.tokens_dir) / "samples.parquet")
            max_bps.add(features.max_bp)
            tree = str(study.tree)
            if tree not in self.tree_groups:
                self.tree_groups.append(tree)
                group_ids.append({})
            g = self.tree_groups.index(tree)
            self.group_of_study.append(g)
            ids = group_ids[g]
            for f in features.feature_ids:
                ids.setdefault(str(f), len(ids))
            local_ids.append(features.feature_ids)
            rows = np.flatnonzero(samples.totals >= study.depth)
            if rows.size < len(samples):
                log.info("%s: %d of %d samples have fewer than %d reads and are left out", study.name,
                         len(samples) - rows.size, len(samples), study.depth)
            perm = np.random.default_rng([self.seed, _SPLIT_STREAM, k]).permutation(rows.size)
            # at least 2 validation samples (one has no UniFrac pair), none from a study of < 6
            n_val = max(2, int(np.ceil(val_fraction * rows.size))) if val_fraction > 0 and rows.size >= 6 else 0
            val_rows, train_rows = np.sort(rows[perm[:n_val]]), np.sort(rows[perm[n_val:]])
            if train_rows.size < 2:
                raise InputError(f"pretrain_corpus study {study.name}: {train_rows.size} training samples "
                                 f"reach depth {study.depth}; need at least 2 (lower its depth or drop it)")
            stream_seed = self.seed * 1000 + k  # distinct rarefaction streams per study
            train_parts.append(RarefiedSamples(samples, train_rows, study.depth, self.asv_limit,
                                               self.selection, stream_seed, True))
            val_parts.append(RarefiedSamples(samples, val_rows, study.depth, self.asv_limit,
                                             self.selection, stream_seed, False))
            collates.append(Collate(features.tokens))
            self.n_train[study.name], self.n_val[study.name] = int(train_rows.size), int(val_rows.size)
        if len(max_bps) != 1:
            raise InputError(f"pretrain_corpus: the studies' token caches differ in max_bp {sorted(max_bps)}")
        self.max_bp = max_bps.pop()
        self.group_feature_ids = [list(ids) for ids in group_ids]
        to_group = [np.fromiter((group_ids[self.group_of_study[k]][str(f)] for f in ids), dtype=np.int64,
                                count=len(ids)) for k, ids in enumerate(local_ids)]
        self.train_dataset = CorpusSamples(train_parts)
        self.val_dataset = CorpusSamples(val_parts)
        self.train_collate = CorpusCollate(collates, to_group, self.group_of_study, crop_min_bp, self.seed)
        self.val_collate = CorpusCollate(collates, to_group, self.group_of_study, None, self.seed)
        log.info("corpus: %d studies in %d tree group(s); train %d, val %d samples (per study: %s)",
                 len(studies), len(self.tree_groups), len(self.train_dataset), len(self.val_dataset),
                 {n: (self.n_train[n], self.n_val[n]) for n in self.study_names})

    def setup(self, stage: str | None = None) -> None:  # everything is loaded in __init__
        return None

    def _loader(self, dataset: CorpusSamples, train: bool) -> DataLoader:
        world, rank = self.ranks()
        # Evaluation runs no collective per step: its ranks need no padding batches.
        sampler = CorpusBatchSampler([len(p) for p in dataset.parts], self.batch_size, self.seed,
                                     shuffle=train, drop_last=train, num_replicas=world, rank=rank, pad=train)
        if train:
            self.start_train_epoch(sampler)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self.num_workers,
                          collate_fn=self.train_collate if train else self.val_collate,
                          persistent_workers=self.num_workers > 0,
                          # its own generator: making the iterator leaves the global random stream alone
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, False)


def studies_from_json(entries: list[dict], base: str | os.PathLike | None = None) -> list[CorpusStudy]:
    """CorpusStudy objects from ``[{name, tokens_dir, tree, depth}, ...]`` (the stage's --studies)."""
    out = []
    for e in entries:
        missing = {"name", "tokens_dir", "tree", "depth"} - set(e)
        if missing:
            raise InputError(f"--studies: entry {e.get('name', '?')!r} lacks {sorted(missing)}")
        tokens = Path(base or ".") / e["tokens_dir"]
        out.append(CorpusStudy(str(e["name"]), tokens, str(e["tree"]), int(e["depth"])))
    return out


def read_studies(text: str) -> list[CorpusStudy]:
    """The stage's --studies: a JSON list, as text or in a file; anything else is one InputError line."""
    path = Path(text)
    try:
        raw = path.read_text() if not text.lstrip().startswith("[") and path.exists() else text
        entries = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InputError(f"--studies: not valid JSON: {err}") from None
    if not isinstance(entries, list) or not entries:
        raise InputError("--studies: expected a non-empty JSON list")
    return studies_from_json(entries)
