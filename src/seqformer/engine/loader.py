"""Reproducible training data order and augmentation randomness.

* Order: a ``DistributedSampler`` (also with one process) shuffles with a generator seeded by
  ``(seed, epoch)``, so epoch ``e`` visits the same samples whether or not the run was resumed,
  and every rank gets a disjoint share of the same permutation.
* Worker randomness: the DataLoader draws each epoch's worker base seed from a generator that we
  reseed with ``derive_seed(seed, epoch, rank)``; PyTorch then seeds ``random``, ``numpy`` and
  ``torch`` in worker ``w`` from ``base + w``.  Augmentation is therefore a function of
  ``(seed, epoch, rank, worker id)`` only.
* With ``num_workers=0`` the dataset draws from the main process's global generators, which the
  checkpoint saves and resume restores.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from seqformer.engine.distributed import DistInfo


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (no overlap between e.g. (42, 1) and (43, 0))."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpochLoader:
    """A training DataLoader whose order and worker seeds are fixed per epoch (see module doc)."""

    def __init__(self, dataset: Dataset, collate_fn: Callable[[list[Any]], Any], batch_size: int,
                 num_workers: int, seed: int, info: DistInfo, pin_memory: bool = False):
        if len(dataset) < batch_size * info.world_size:  # type: ignore[arg-type]
            raise ValueError(f"the training set has {len(dataset)} samples, fewer than one global batch "  # type: ignore[arg-type]
                             f"({batch_size} per process x {info.world_size} processes)")
        self.dataset = dataset
        self.seed = seed
        self.rank = info.rank
        self.sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, drop_last=True,
                                 collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory,
                                 generator=self.generator)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[Any]:
        """Batches of ``epoch``; iterate it once per epoch."""
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed(derive_seed(self.seed, epoch, self.rank))
        return iter(self.loader)
