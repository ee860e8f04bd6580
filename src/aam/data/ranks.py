"""Dealing an epoch's batches to data-parallel ranks: whole batches, round robin, the last round padded.

Every training DataModule of the project (AAM, corpus, DNA sequence models) builds its epoch as a
list of *global* batches that does not depend on the number of processes W (seeded by seed and
epoch), and :class:`RoundRobinBatches` deals them: rank ``r`` takes batches ``r, r + W, ...``. So a
batch (and its UniFrac pairs, its contrastive negatives) is the same whatever W, and ranks see
disjoint samples. The DataModules say ``shards_by_rank = True``: Lightning then keeps this batch
sampler as it is (it would otherwise re-instantiate a custom batch sampler around a
DistributedSampler, which breaks any sampler whose constructor takes other arguments).

Why padding, not dropping: when the epoch's batch count does not divide by W, the last round has
``k < W`` batches. Dropping them would train on fewer samples than one process does; repeating real
batches would weigh them twice. Instead ranks ``k..W-1`` get a *padding* batch: a copy of a real
batch flagged ``padding``, which the module weighs 0 (:class:`aam.training.engine.EngineModule`
scales its loss by 0 before the backward pass and logs it with batch size 0). Every rank still runs
the same number of steps (DDP's gradient all-reduce needs every rank), and the epoch's last
optimizer step averages the ``k`` real gradients over W, which is what one process with
``accumulate_grad_batches = W`` does on an epoch's last, partial group of batches (Lightning divides
every batch's loss by the accumulation count and steps on the last batch). Hence W ranks with
batch B train, up to float reduction order, on what one process with batch B and ``W``-fold
accumulation trains on, for any batch count.

Evaluation loaders without collectives per step may leave padding off (``pad=False``): ranks then
get what falls to them, or every batch when there are fewer batches than ranks (each computes the
same, which leaves gathered metrics unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

ORDER_STREAM = 2  # the epoch's sample order: default_rng([seed, ORDER_STREAM, epoch])


class Key(NamedTuple):
    """What a batch sampler hands the dataset for one sample."""

    item: Any  # the dataset's own index: an int, or (study, i) in a corpus
    epoch: int  # seeds the sample's per-epoch randomness (rarefaction, augmentation)
    number: int  # the batch's number in its epoch over all ranks (seeds per-batch randomness)
    padding: bool = False  # part of a padding batch: trained with weight 0


def deal(batches: list[list[Any]], world: int, rank: int, pad: bool) -> list[tuple[int, list[Any], bool]]:
    """``(number, batch, padding)`` of rank ``rank``'s share of an epoch's global ``batches``."""
    numbered = list(enumerate(batches))
    if world == 1 or not numbered:
        return [(n, b, False) for n, b in numbered]
    if not pad:
        mine = numbered if len(numbered) < world else numbered[rank::world]
        return [(n, b, False) for n, b in mine]
    rounds = -(-len(numbered) // world)
    out = []
    for j in range(rounds):
        position = j * world + rank
        if position < len(numbered):
            out.append((*numbered[position], False))
        else:  # the last round is short: a copy of this rank's previous batch (or of batch 0)
            source = out[-1] if out else (*numbered[0], False)
            out.append((source[0], source[1], True))
    return out


class RoundRobinBatches:
    """A batch sampler (``DataLoader(batch_sampler=...)``) that yields lists of :class:`Key`.

    Subclasses say what an epoch's global batches are (:meth:`global_batches`). Lightning calls
    ``set_epoch`` on ``batch_sampler.sampler`` before each epoch (hence :attr:`sampler`); used on
    its own, each new iteration advances the epoch by one. :meth:`resume_after` skips, once, the
    batches a checkpoint taken mid-epoch had already trained on. The epoch is read when the first
    batch is drawn, not when the iterator is made: resuming, Lightning makes the train iterator
    before it calls ``set_epoch`` (DataModules also set it beforehand, for loaders with workers).
    """

    def __init__(self, seed: int, shuffle: bool, num_replicas: int = 1, rank: int = 0, pad: bool = True):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.num_replicas, self.rank, self.pad = int(num_replicas), int(rank), bool(pad)
        self.epoch = 0
        self._next_epoch: int | None = None
        self._skip = 0

    @property
    def sampler(self) -> RoundRobinBatches:
        return self

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def resume_after(self, n_batches: int) -> None:
        """The next iteration starts after this rank's first ``n_batches`` batches."""
        self._skip = int(n_batches)

    def global_batches(self, epoch: int) -> list[list[Any]]:
        """The epoch's batches over all ranks, in order: lists of dataset items."""
        raise NotImplementedError

    def rank_batches(self, epoch: int) -> list[tuple[int, list[Any], bool]]:
        """``(batch_number, items, padding)`` of this rank's batches in ``epoch``."""
        return deal(self.global_batches(epoch), self.num_replicas, self.rank, self.pad)

    def __len__(self) -> int:
        return len(self.rank_batches(0))

    def __iter__(self) -> Iterator[list[Key]]:
        if self._next_epoch is not None:
            self.epoch, self._next_epoch = self._next_epoch, None
        epoch = self.epoch
        self.epoch += 1
        skip, self._skip = self._skip, 0
        for number, items, padding in self.rank_batches(epoch)[skip:]:
            yield [Key(item, epoch, number, padding) for item in items]


class EpochSampler(RoundRobinBatches):
    """Batches of ``Key(index, epoch, batch_number, padding)`` for one rank's share of an epoch.

    Used by every DataModule whose dataset is indexed by position (AAM samples, DNA sequences, blocks).

    The epoch's order (shuffled by ``(seed, epoch)`` when ``shuffle``) is cut into global batches of
    ``batch_size`` (a last partial batch is dropped with ``drop_last``), and dealt to the ranks by
    :class:`RoundRobinBatches`: whole batches, round robin, the last round padded
    (``pad``; see the module docstring), so that W ranks with batch B train on what one process
    with batch B and ``accumulate_grad_batches = W`` trains on. Use it as the DataLoader's
    ``batch_sampler``.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, batch_size: int = 1, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0, pad: bool = True):
        super().__init__(seed, shuffle, num_replicas, rank, pad)
        self.n, self.batch_size, self.drop_last = int(n), max(1, int(batch_size)), drop_last

    def global_batches(self, epoch: int) -> list[list[int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, ORDER_STREAM, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        stop = self.n - self.n % self.batch_size if self.drop_last else self.n
        return [order[i:i + self.batch_size].tolist() for i in range(0, stop, self.batch_size)]


class ShardsByRank:
    """Mixin of a DataModule whose loaders deal batches to the ranks themselves (a
    :class:`RoundRobinBatches` batch sampler): Lightning must not add a DistributedSampler
    (:func:`aam.training.engine.fit` reads ``shards_by_rank``), and a resumed run must start its
    first train loader in the checkpoint's epoch, after the batches already trained on."""

    shards_by_rank = True

    def resume_at(self, epoch: int, n_batches: int = 0) -> None:
        """The next train loader starts in ``epoch``, after this rank's first ``n_batches`` batches
        (a run resumed from a checkpoint, mid-epoch or not). Called by the engine on resume."""
        self._resume = (int(epoch), int(n_batches))

    def ranks(self) -> tuple[int, int]:
        """(world size, global rank) of the trainer this DataModule is attached to; (1, 0) alone."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def start_train_epoch(self, sampler: RoundRobinBatches) -> None:
        """Lightning makes the first iterator before it calls ``set_epoch`` (and, with workers, the
        order is drawn then): set the epoch (and the batches to skip) of a resumed run now."""
        epoch, skip = getattr(self, "_resume", (0, 0))
        sampler.set_epoch(epoch)
        sampler.resume_after(skip)
        self._resume = (epoch, 0)
