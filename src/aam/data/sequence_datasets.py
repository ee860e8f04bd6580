"""Datasets, collate functions and Lightning DataModules for the DNA sequence models.

- `SequenceDataset`: sequences (from FASTA) with optional integer labels (one column per rank,
  -1 = unknown) and `n_views` augmented views per item. Augmentation is seeded by
  (seed, epoch, index), so batches are the same whatever the number of DataLoader workers.
- `SequenceCollator`: tokenizes a batch's views in one vectorized call; views are stacked
  view-major (all first views, then all second views), with `group` = dataset index per row.
- `BlockDataset`: fixed-length blocks of a DNA text or FASTA as character-token rows.
- `SequenceDataModule` / `BlockDataModule`: train/val loaders with a seeded shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from aam.data.augment import Augmenter
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

    def __getitem__(self, i: int) -> dict:
        seq = self.seqs[i]
        if self.augmenter is None:
            views = [seq] * self.n_views
        else:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            views = [self.augmenter.augment_str(seq, rng) for _ in range(self.n_views)]
        labels = self.labels[i] if self.labels is not None else None
        return {"index": int(i), "views": views, "labels": labels}


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

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tokens[i]


def _loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, collate=None):
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=shuffle and len(ds) > batch_size,
        persistent_workers=num_workers > 0,
    )


class SequenceDataModule(L.LightningDataModule):
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

    def set_epoch(self, epoch: int) -> None:
        self.train_ds.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_ds, self.batch_size, True, self.seed, self.num_workers, self.collator)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_ds is None:
            return []
        return _loader(self.val_ds, self.batch_size, False, self.seed, self.num_workers, self.collator)


class BlockDataModule(L.LightningDataModule):
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

    def set_epoch(self, epoch: int) -> None:
        pass

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_ds, self.batch_size, True, self.seed, self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_ds is None:
            return []
        return _loader(self.val_ds, self.batch_size, False, self.seed, self.num_workers)
