"""Datasets, collate functions and Lightning DataModules for the DNA sequence models.

- `SequenceDataset`: sequences (from FASTA) with optional integer labels (one column per rank,
  -1 = unknown) and `n_views` augmented views per item. Augmentation is seeded by
  (seed, epoch, index), and the epoch travels with each index (an `aam.data.ranks.Key`), so
  batches are the same whatever the number of DataLoader workers, persistent or not.
- `SequenceCollator`: tokenizes a batch's views in one vectorized call; views are stacked
  view-major (all first views, then all second views), with `group` = dataset index per row.
- `BlockDataset`: fixed-length blocks of a DNA text or FASTA as character-token rows.
- `SequenceDataModule` / `BlockDataModule`: train/val loaders whose batches
  (`aam.data.ranks.EpochSampler`: seeded by seed and epoch, nothing dropped) are dealt whole to
  data-parallel ranks, the last round padded, and a resumed run starts where it stopped. Batches are
  dicts with a `padding` flag (weight 0, see `aam.data.ranks`).

Global batch under data parallelism: W ranks with batch B see, per optimizer step, the W*B
sequences one process with batch W*B sees in one step (round j's batches are consecutive slices
of the epoch's order). The contrastive loss gathers every rank's projections
(`aam.training.contrastive_losses`), so W ranks with batch B train as one process with batch W*B.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from aam.data.augment import Augmenter
from aam.data.ranks import EpochSampler, Key, ShardsByRank
from aam.data.dna_tokenizers import CharTokenizer, Tokenizer


class SequenceDataset(Dataset):
    def __init__(
        self,
        seqs: Sequence[str],
        labels: np.ndarray | None = None,
        n_views: int = 1,
        augmenter: Augmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.seqs = list(seqs)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if labels.ndim == 1:
                labels = labels[:, None]
            if len(labels) != len(self.seqs):
                raise ValueError(f"{len(labels)} label rows for {len(self.seqs)} sequences")
        self.labels = labels
        self.n_views = int(n_views)
        self.augmenter = augmenter
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, key: int | Key) -> dict:
        """An item by position (with this dataset's epoch) or by a sampler's Key (with its own)."""
        keyed = isinstance(key, Key)
        i, epoch = (int(key.item), key.epoch) if keyed else (int(key), self.epoch)
        seq = self.seqs[i]
        if self.augmenter is None:
            views = [seq] * self.n_views
        else:
            rng = np.random.default_rng([self.seed, int(epoch), i])
            views = [self.augmenter.augment_str(seq, rng) for _ in range(self.n_views)]
        labels = self.labels[i] if self.labels is not None else None
        return {"index": i, "views": views, "labels": labels, "number": key.number if keyed else -1,
                "padding": key.padding if keyed else False}


class SequenceCollator:
    """Tokenize a list of `SequenceDataset` items into tensors."""

    def __init__(self, tokenizer: Tokenizer, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        n_views = len(items[0]["views"])
        seqs = [it["views"][v] for v in range(n_views) for it in items]
        enc = self.tokenizer.batch_encode(seqs, max_length=self.max_length)
        index = torch.tensor([it["index"] for it in items], dtype=torch.long)
        batch = {
            "input_ids": torch.from_numpy(enc["input_ids"]),
            "attention_mask": torch.from_numpy(enc["attention_mask"]),
            "group": index.repeat(n_views),
            "n_views": torch.tensor(n_views),
            # the batch's number in its epoch over all ranks (-1 without a sampler's Key), and whether
            # it pads the epoch's last round (aam.data.ranks)
            "batch_number": torch.tensor(int(items[0].get("number", -1))),
            "padding": torch.tensor(bool(items[0].get("padding", False))),
        }
        if items[0]["labels"] is not None:
            labels = torch.from_numpy(np.stack([it["labels"] for it in items]))
            batch["labels"] = labels.repeat(n_views, 1)
        return batch


class BlockDataset(Dataset):
    """(n, block_len) uint8 characters -> character-token rows (no special tokens)."""

    def __init__(self, blocks: np.ndarray, tokenizer: CharTokenizer | None = None) -> None:
        tokenizer = tokenizer or CharTokenizer(add_special_tokens=False)
        self.tokens = torch.from_numpy(tokenizer.encode_codes(np.asarray(blocks, dtype=np.uint8)))

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, key: int | Key) -> torch.Tensor | tuple[torch.Tensor, Key]:
        """A block's tokens by position; by a sampler's Key, (tokens, key)."""
        if isinstance(key, Key):
            return self.tokens[int(key.item)], key
        return self.tokens[key]


def collate_blocks(items: list[tuple[torch.Tensor, Key]]) -> dict[str, torch.Tensor]:
    """``{"tokens": [B, L], "block_index": [B], "batch_number": [], "padding": []}`` from keyed
    BlockDataset items (which blocks a rank trained on, and whether the batch only pads a round)."""
    key = items[0][1]
    return {"tokens": torch.stack([t for t, _ in items]),
            "block_index": torch.tensor([int(k.item) for _, k in items], dtype=torch.int64),
            "batch_number": torch.tensor(int(key.number), dtype=torch.int64),
            "padding": torch.tensor(bool(key.padding))}


class _RankLoaders(ShardsByRank, L.LightningDataModule):
    """Train/val loaders of :class:`aam.data.ranks.EpochSampler` batches, dealt to the ranks (the
    last round padded, in validation too: the contrastive loss gathers projections across ranks
    at every step, so every rank must run as many steps as the others). No batch is dropped."""

    def _loader(self, ds: Dataset, shuffle: bool, collate) -> DataLoader:
        world, rank = self.ranks()
        sampler = EpochSampler(len(ds), self.seed, shuffle=shuffle, batch_size=self.batch_size,
                               num_replicas=world, rank=rank)
        if shuffle:
            self.start_train_epoch(sampler)
        return DataLoader(ds, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))


class SequenceDataModule(_RankLoaders):
    def __init__(
        self,
        train: SequenceDataset,
        val: SequenceDataset | None,
        collator: SequenceCollator,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_ds, self.val_ds, self.collator = train, val, collator
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_ds, True, self.collator)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_ds is None:
            return []
        return self._loader(self.val_ds, False, self.collator)


class BlockDataModule(_RankLoaders):
    def __init__(
        self,
        train: BlockDataset,
        val: BlockDataset | None,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_ds, self.val_ds = train, val
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_ds, True, collate_blocks)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_ds is None:
            return []
        return self._loader(self.val_ds, False, collate_blocks)
