"""Sample datasets and the Lightning DataModule of AAM training.

Data flow: ``tokens/samples.parquet`` holds each sample's raw counts (CSR, by abundance);
``splits.tsv`` says which samples train, validate and test. A training sample is rarefied afresh
every epoch to ``depth`` reads without replacement (:func:`aam.data.rarefy.rarefy_rows`), its top
``asv_limit`` features are kept (``selection``: ``abundance`` or ``random``), and batches carry each
distinct feature of the batch once. Validation and test samples use one fixed seeded rarefaction.
Samples with fewer reads than ``depth`` are dropped (logged).

Reproducibility: the random stream of a training sample is ``default_rng([seed, 0, epoch, row])``
and of an evaluation sample ``default_rng([seed, 1, *sample_key(sample_id)])`` (``row``: the
sample's row in samples.parquet; the evaluation stream is keyed by the ID so that `aam predict`
rarefies a sample as fine-tuning did, whatever table holds it). The epoch's sample order is ``default_rng([seed, 2, epoch])``. The epoch travels
with each index from the sampler (which Lightning tells the epoch through ``set_epoch``), so the
same seed gives the same batches for any number of DataLoader workers, persistent or not.

Batch format (a dict of tensors; B samples, K = largest kept feature count in the batch, U distinct
kept features in the batch, L = max_bp, F = distinct features present in the batch's rarefied
samples):

==================== ============= =====================================================================
key                  shape, dtype  meaning
==================== ============= =====================================================================
``tokens``           [U, L] int64  nucleotide tokens of each distinct kept feature (0 = pad), once
``feature_idx``      [U] int64     their rows in tokens/features.parquet (global feature index)
``asv_index``        [B, K] int64  slot -> row of ``tokens``; slots sorted by count (rank = position);
                                   padding slots hold 0 and are False in ``asv_mask``
``asv_mask``         [B, K] bool   True for real feature slots
``asv_counts``       [B, K] f32    rarefied counts of the slots (0 at padding)
``unifrac_feature_idx`` [F] int64  global feature index of every feature present in any rarefied
                                   sample of the batch (not only the top ``asv_limit``), ascending
``unifrac_counts``   [B, F] f32    rarefied counts over those features (each row sums to ``depth``)
``present_tokens``   [F, L] uint8  the tokens of those features (for a readout over every ASV,
                                   ``asv_readout_scope: all``)
``feature_keys``     [U] int64     63-bit keys of the kept features' IDs (:func:`feature_id_keys`),
                                   with ``present_keys`` [F] of every present feature: only when the
                                   Collate was given the IDs (for ``asv_readout_key: feature``)
``table_keys``       [T] int64     keys of every feature of the batch's samples before rarefaction
                                   (by ascending feature index), with ``expected_counts`` [B, T]
                                   f64: each sample's counts scaled to ``depth`` (the mean of its
                                   rarefaction draws); only when the Collate was made with
                                   ``expected_counts`` (evaluation loaders: a linear member reads
                                   them, :mod:`aam.training.linear_member`)
``sample_index``     [B] int64     rows in samples.parquet; ``datamodule.sample_ids[i]`` is the ID
``batch_number``     [] int64      the batch's number in its epoch over all ranks (seeds per-batch
                                   randomness such as nucleotide masking; -1 without EpochSampler)
``padding``          [] bool       a padding batch of an epoch's last round under data parallelism
                                   (:mod:`aam.data.ranks`): trained with weight 0
``target``           [B] f32|int64 only with a target: regression standardized with the training
                                   mean/std (``target_mean``, ``target_std``); classification as class
                                   indices into ``classes``
==================== ============= =====================================================================

``tokens[asv_index[b, k]]`` is the token row of sample b's k-th feature, so the nucleotide encoder
runs on U rows instead of B x K and the result is gathered back with ``asv_index``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, Dataset

from aam.data.ranks import EpochSampler, ShardsByRank
from aam.data.rarefy import rarefy_rows
from aam.errors import InputError
from aam.io.metadata import read_target_column
from aam.io.parquet_cache import FeatureCache, SampleCache, read_features, read_samples
from aam.io.splits import read_splits

try:  # lightning is a dependency, but keep the plain datasets importable without it
    import lightning.pytorch as pl

    _Base = pl.LightningDataModule
except ImportError:  # pragma: no cover
    _Base = object

log = logging.getLogger(__name__)

# The schema's aam_run.data defaults, for a data module built without a config (tests, notebooks);
# tests/test_config.py keeps the two equal.
DATA_DEFAULTS = {"asv_limit": 128, "selection": "abundance", "batch_size": 8, "num_workers": 0}
SPLITS = ("train", "val", "test")
_TRAIN_STREAM, _EVAL_STREAM = 0, 1  # 2: the epoch's order (aam.data.ranks.EpochSampler)


def sample_key(sample_id: str) -> list[int]:
    """Four 32-bit words of the SHA-256 of a sample ID: the evaluation stream's key. A sample's
    evaluation rarefaction then depends on its ID and reads alone, not on its row in a table, so
    `aam predict` on any table holding the sample draws what fine-tuning drew."""
    digest = hashlib.sha256(str(sample_id).encode()).digest()
    return np.frombuffer(digest[:16], dtype="<u4").astype(np.int64).tolist()


def rarefy_counts(counts: np.ndarray, depth: int, rng: np.random.Generator) -> np.ndarray:
    """One rarefaction of one sample's counts (a dense vector over its features): ``depth`` reads
    without replacement, by :func:`aam.data.rarefy.rarefy_rows` (the rarefy stage's own draw)."""
    k = counts.size
    row = sp.csr_matrix((counts, np.arange(k), np.array([0, k])), shape=(1, k))
    drawn = rarefy_rows(row, depth, rng)
    out = np.zeros(k, dtype=np.int64)
    out[drawn.indices] = drawn.data
    return out


def select_features(
    features: np.ndarray, rarefied: np.ndarray, asv_limit: int, selection: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The kept features of one rarefied sample, ordered by count descending (ties by feature index).

    ``abundance``: the ``asv_limit`` most abundant; ``random``: a uniform random subset of the
    features present (all of them if there are at most ``asv_limit``).
    """
    present = rarefied > 0
    feats, cnts = features[present], rarefied[present]
    if selection == "random" and feats.size > asv_limit:
        pick = np.sort(rng.choice(feats.size, size=asv_limit, replace=False))
        feats, cnts = feats[pick], cnts[pick]
    order = np.lexsort((feats, -cnts))[:asv_limit]
    return feats[order], cnts[order]


@dataclass
class SampleItem:
    """One prepared sample: kept features (for the encoder) and all rarefied features (UniFrac)."""

    row: int
    kept: np.ndarray
    kept_counts: np.ndarray
    present: np.ndarray
    present_counts: np.ndarray
    target: float | int | None
    batch_number: int = -1  # the batch's number in its epoch (from EpochSampler; -1: unknown)
    padding: bool = False  # part of a padding batch (aam.data.ranks): trained with weight 0
    table: np.ndarray | None = None  # every feature of the sample before rarefaction
    table_counts: np.ndarray | None = None  # their counts (views of the cache: free to carry)

    @property
    def expected_counts(self) -> np.ndarray:
        """The table's counts scaled to the depth (the rarefied counts' sum), in f64: computed only
        where a batch asks for them (:class:`Collate` with ``expected_counts``), not per training
        sample."""
        return self.table_counts * (int(self.present_counts.sum()) / self.table_counts.sum())


class RarefiedSamples(Dataset):
    """Samples of one split, rarefied on access.

    ``dataset[(i, epoch)]`` (or ``(i, epoch, batch_number, padding)``: a
    :class:`aam.data.ranks.Key` from :class:`EpochSampler`) rarefies the ``i``-th sample of the
    split with the training stream of ``epoch``; ``dataset[i]`` uses the fixed evaluation stream
    (or, if ``train``, ``self.epoch``).
    """

    def __init__(self, samples: SampleCache, rows: np.ndarray, depth: int, asv_limit: int,
                 selection: str, seed: int, train: bool, targets: np.ndarray | None = None):
        if selection not in ("abundance", "random"):
            raise ValueError(f"selection must be 'abundance' or 'random', got {selection!r}")
        self.samples = samples
        self.rows = np.asarray(rows, dtype=np.int64)
        self.depth = int(depth)
        self.asv_limit = int(asv_limit)
        self.selection = selection
        self.seed = int(seed)
        self.train = train
        self.targets = targets
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.rows.size)

    def rng_for(self, i: int, epoch: int | None) -> np.random.Generator:
        row = int(self.rows[i])
        if self.train:
            return np.random.default_rng([self.seed, _TRAIN_STREAM, int(epoch), row])
        return np.random.default_rng([self.seed, _EVAL_STREAM, *sample_key(self.samples.sample_ids[row])])

    def __getitem__(self, key) -> SampleItem:
        number, padding = -1, False
        if isinstance(key, tuple):
            i, epoch, *rest = key
            number = int(rest[0]) if rest else -1
            padding = bool(rest[1]) if len(rest) > 1 else False
        else:
            i, epoch = key, self.epoch
        i = int(i)
        row = int(self.rows[i])
        features, counts = self.samples.row(row)
        rng = self.rng_for(i, epoch)
        rarefied = rarefy_counts(counts, self.depth, rng)
        present = rarefied > 0
        kept, kept_counts = select_features(features, rarefied, self.asv_limit, self.selection, rng)
        target = None if self.targets is None else self.targets[i].item()
        return SampleItem(row, kept, kept_counts, features[present], rarefied[present], target, number,
                          padding, features, counts)


def feature_id_keys(feature_ids) -> np.ndarray:
    """A 63-bit key per feature ID (the first 8 bytes of its BLAKE2b digest): a function of the ID
    alone, so a feature gets the same key in every table, cache and batch that names it."""
    return np.array([int.from_bytes(hashlib.blake2b(str(f).encode(), digest_size=8).digest(), "little")
                     & 0x7FFFFFFFFFFFFFFF for f in feature_ids], dtype=np.int64)


class Collate:
    """Builds the batch dict (see the module docstring) from a list of :class:`SampleItem`;
    ``keys`` (:func:`feature_id_keys` of the cache's features, row for row with ``tokens``) adds
    ``feature_keys`` and ``present_keys``, and with ``expected_counts`` also ``table_keys`` and
    ``expected_counts`` (a dense matrix over every feature of the batch's samples: evaluation loaders
    only, training batches do without)."""

    def __init__(self, tokens: np.ndarray, target_kind: str | None = None, keys: np.ndarray | None = None,
                 expected_counts: bool = False):
        if expected_counts and keys is None:
            raise ValueError("expected_counts needs the feature keys")
        self.tokens = tokens
        self.target_kind = target_kind
        self.keys = keys
        self.expected_counts = expected_counts

    def with_expected_counts(self) -> Collate:
        """This collate, its batches carrying ``table_keys`` and ``expected_counts`` too."""
        return Collate(self.tokens, self.target_kind, self.keys, expected_counts=True)

    def __call__(self, items: list[SampleItem]) -> dict[str, torch.Tensor]:
        b = len(items)
        sizes = np.fromiter((it.kept.size for it in items), dtype=np.int64, count=b)
        k = max(int(sizes.max()), 1)
        kept = np.concatenate([it.kept for it in items]).astype(np.int64)
        uniq, inverse = np.unique(kept, return_inverse=True)
        slot_mask = np.arange(k) < sizes[:, None]
        asv_index = np.zeros((b, k), dtype=np.int64)
        asv_index[slot_mask] = inverse
        asv_counts = np.zeros((b, k), dtype=np.float32)
        asv_counts[slot_mask] = np.concatenate([it.kept_counts for it in items])

        present = [it.present.astype(np.int64) for it in items]
        all_feats, all_inverse = np.unique(np.concatenate(present), return_inverse=True)
        unifrac_counts = np.zeros((b, all_feats.size), dtype=np.float32)
        rows = np.repeat(np.arange(b), [p.size for p in present])
        unifrac_counts[rows, all_inverse] = np.concatenate([it.present_counts for it in items])

        batch = {
            "tokens": torch.from_numpy(self.tokens[uniq].astype(np.int64)),
            "feature_idx": torch.from_numpy(uniq),
            "asv_index": torch.from_numpy(asv_index),
            "asv_mask": torch.from_numpy(slot_mask),
            "asv_counts": torch.from_numpy(asv_counts),
            "unifrac_feature_idx": torch.from_numpy(all_feats),
            "unifrac_counts": torch.from_numpy(unifrac_counts),
            "sample_index": torch.tensor([it.row for it in items], dtype=torch.int64),
            "batch_number": torch.tensor(items[0].batch_number, dtype=torch.int64),
            "padding": torch.tensor(items[0].padding),
            # uint8 as cached (the hash widens them): about 150 bytes an ASV, so every batch carries
            # them and no loader of a model that reads them can be built without
            "present_tokens": torch.from_numpy(np.ascontiguousarray(self.tokens[all_feats])),
        }
        if self.keys is not None:
            batch["feature_keys"] = torch.from_numpy(self.keys[uniq])
            batch["present_keys"] = torch.from_numpy(self.keys[all_feats])
        if self.expected_counts:
            table = [it.table.astype(np.int64) for it in items]
            table_feats, table_inverse = np.unique(np.concatenate(table), return_inverse=True)
            expected = np.zeros((b, table_feats.size), dtype=np.float64)
            expected[np.repeat(np.arange(b), [t.size for t in table]), table_inverse] = np.concatenate(
                [it.expected_counts for it in items])
            batch["table_keys"] = torch.from_numpy(self.keys[table_feats])
            batch["expected_counts"] = torch.from_numpy(expected)
        if self.target_kind == "classification":
            batch["target"] = torch.tensor([it.target for it in items], dtype=torch.int64)
        elif self.target_kind == "regression":
            batch["target"] = torch.tensor([it.target for it in items], dtype=torch.float32)
        return batch


# ---------------------------------------------------------------------------------------- inputs


# ------------------------------------------------------------------------------------ datamodule
class AAMDataModule(ShardsByRank, _Base):
    """Train/val/test DataLoaders of rarefied samples for AAM pretraining and fine-tuning.

    Args:
        tokens_dir: folder with ``features.parquet`` and ``samples.parquet`` (rule ``tokenize``).
        splits: ``splits.tsv`` (a sample column and ``split``: train / val / test).
        settings: the run's ``data:`` section: ``asv_limit``, ``selection`` (abundance | random),
            ``batch_size``, ``num_workers`` (defaults in ``DATA_DEFAULTS``).
        seed: the config's seed; with the same seed the batches are the same for any worker count.
        target: ``{"column": ..., "type": "regression" | "classification"}`` or None (pretraining).
            Samples without a value are dropped.
        metadata: table holding the target column (``ingest/samples.parquet`` or a metadata TSV);
            required with ``target``.
        depth: rarefaction depth; default: the depth recorded in the token cache (that of
            ``rarefied/table.biom``).
        train_on_val: train on the val samples too (``finetune.train_on_val``: for a run that
            decides nothing on its validation split, which is then still evaluated, on samples the
            model has seen).

    Attributes (available right after construction):
        depth, max_bp, vocab_size (7), n_features, feature_ids (global feature index -> ID, for the
        tree's tips), sample_ids (row of samples.parquet -> ID), asv_limit, batch_size,
        target_kind ("regression" | "classification" | None), classes (sorted training labels),
        n_classes, target_mean, target_std (training split, for regression; predictions are
        ``output * target_std + target_mean``), class_counts (training split),
        train_dataset / val_dataset / test_dataset, fit_dataset (what the training loader draws
        from: train_dataset, or with ``train_on_val`` the train and val samples together; the
        target's scaling, classes and class counts stay the train split's either way).
    """

    def __init__(self, tokens_dir: str | os.PathLike, splits: str | os.PathLike, settings: dict | None = None,
                 seed: int = 42, target: dict | None = None, metadata: str | os.PathLike | None = None,
                 depth: int | None = None, train_on_val: bool = False):
        super().__init__()
        cfg = {**DATA_DEFAULTS, **(settings or {})}
        self.settings = cfg
        self.seed = int(seed)
        self.asv_limit = int(cfg["asv_limit"])
        self.selection = str(cfg["selection"])
        self.batch_size = int(cfg["batch_size"])
        self.num_workers = int(cfg["num_workers"])
        tokens_dir = Path(tokens_dir)
        self.features: FeatureCache = read_features(tokens_dir / "features.parquet")
        self.samples: SampleCache = read_samples(tokens_dir / "samples.parquet")
        for key in ("tokenizer", "input_sha256"):
            if self.features.meta.get(key) != self.samples.meta.get(key):
                raise InputError(f"{tokens_dir}: features and samples caches differ in {key}; rerun tokenize")
        self.max_bp = self.features.max_bp
        self.vocab_size = 7
        self.n_features = len(self.features)
        self.feature_ids = self.features.feature_ids
        self.sample_ids = self.samples.sample_ids
        self.depth = int(depth if depth is not None else self.samples.meta.get("rarefaction_depth") or 0)
        if self.depth <= 0:
            raise InputError(f"{tokens_dir}: no rarefaction depth in the cache; pass depth=")

        split_of = read_splits(splits)
        index = self.samples.index_of()
        unknown = [s for s in split_of if s not in index]
        if unknown:
            log.info("%d samples of %s are not in the token cache (no reads; e.g. %s)",
                        len(unknown), splits, unknown[0])
        rows = {name: [] for name in SPLITS}
        for sample, name in split_of.items():
            if sample in index:
                rows[name].append(index[sample])
        rows = {name: np.sort(np.asarray(r, dtype=np.int64)) for name, r in rows.items()}
        for name in SPLITS:
            deep = self.samples.totals[rows[name]] >= self.depth
            if (~deep).any():
                log.info("%s: %d of %d samples have fewer than %d reads and are dropped",
                         name, int((~deep).sum()), rows[name].size, self.depth)
            rows[name] = rows[name][deep]

        self.target = dict(target) if target else None
        self.target_kind = self.target["type"] if self.target else None
        self.classes: list[str] | None = None
        self.n_classes: int | None = None
        self.class_counts: np.ndarray | None = None
        self.target_mean: float | None = None
        self.target_std: float | None = None
        targets = {name: None for name in SPLITS}
        if self.target:
            if metadata is None:
                raise InputError("a target needs the metadata table that holds its column")
            values = read_target_column(metadata, self.target["column"], self.target.get("classes"))
            rows, targets = self._encode_targets(rows, values)
        self.rows = rows
        self.train_dataset = RarefiedSamples(self.samples, rows["train"], self.depth, self.asv_limit,
                                             self.selection, self.seed, True, targets["train"])
        self.val_dataset = RarefiedSamples(self.samples, rows["val"], self.depth, self.asv_limit,
                                           self.selection, self.seed, False, targets["val"])
        self.test_dataset = RarefiedSamples(self.samples, rows["test"], self.depth, self.asv_limit,
                                            self.selection, self.seed, False, targets["test"])
        # What the training loader draws from: the train split, or train + val (train_on_val).
        self.train_on_val = bool(train_on_val)
        self.fit_dataset = self.train_dataset
        if self.train_on_val:
            fit_targets = None if targets["train"] is None else np.concatenate([targets["train"], targets["val"]])
            self.fit_dataset = RarefiedSamples(self.samples, np.concatenate([rows["train"], rows["val"]]),
                                               self.depth, self.asv_limit, self.selection, self.seed, True,
                                               fit_targets)
        self.collate = Collate(self.features.tokens, self.target_kind, feature_id_keys(self.feature_ids))
        log.info("samples at depth %d: train %d, val %d, test %d (asv_limit %d, %s)", self.depth,
                 len(self.train_dataset), len(self.val_dataset), len(self.test_dataset), self.asv_limit,
                 self.selection)

    def _encode_targets(self, rows, values: dict[str, str]):
        column, kind = self.target["column"], self.target["type"]
        ids = self.sample_ids
        has = {name: np.array([ids[r] in values for r in rows[name]], dtype=bool) for name in SPLITS}
        for name in SPLITS:
            if (~has[name]).any():
                log.info("%s: %d samples have no %s and are dropped", name, int((~has[name]).sum()), column)
        rows = {name: rows[name][has[name]] for name in SPLITS}
        raw = {name: [values[ids[r]] for r in rows[name]] for name in SPLITS}
        if not raw["train"]:
            raise InputError(f"no training sample has a value for target {column!r}")
        if kind == "classification":
            self.classes = sorted(set(raw["train"]))
            self.n_classes = len(self.classes)
            lookup = {c: i for i, c in enumerate(self.classes)}
            out = {}
            for name in SPLITS:
                known = np.array([v in lookup for v in raw[name]], dtype=bool)
                if (~known).any():
                    log.warning("%s: %d samples have a %s class unseen in training; dropped",
                                name, int((~known).sum()), column)
                rows[name] = rows[name][known]
                out[name] = np.array([lookup[v] for v in raw[name] if v in lookup], dtype=np.int64)
            self.class_counts = np.bincount(out["train"], minlength=self.n_classes)
            return rows, out
        if kind != "regression":
            raise InputError(f"target type must be regression or classification, got {kind!r}")
        out = {}
        for name in SPLITS:
            try:
                out[name] = np.array([float(v) for v in raw[name]], dtype=np.float64)
            except ValueError as err:
                raise InputError(f"target {column!r} ({name}): {err}") from err
        self.target_mean = float(out["train"].mean())
        std = float(out["train"].std())
        self.target_std = std if std > 0 else 1.0
        out = {n: ((v - self.target_mean) / self.target_std).astype(np.float32) for n, v in out.items()}
        return rows, out

    # Lightning hooks ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:  # everything is loaded in __init__
        return None

    def _loader(self, dataset: RarefiedSamples, shuffle: bool, drop_last: bool, shard: bool = False,
                ) -> DataLoader:
        world, rank = self.ranks() if shard else (1, 0)
        # Evaluation runs no collective per step: its ranks need no padding batches.
        sampler = EpochSampler(len(dataset), self.seed, shuffle=shuffle, batch_size=self.batch_size,
                               drop_last=drop_last, num_replicas=world, rank=rank, pad=shuffle)
        if shuffle:
            self.start_train_epoch(sampler)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=self.num_workers > 0,
            # Its own generator: creating the iterator leaves the global random stream alone, so a
            # run resumed mid-epoch draws (dropout) exactly what an uninterrupted one draws.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        # Drop a last partial batch: a batch of one sample has no UniFrac pair.
        drop = len(self.fit_dataset) > self.batch_size
        return self._loader(self.fit_dataset, shuffle=True, drop_last=drop, shard=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False, drop_last=False, shard=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
