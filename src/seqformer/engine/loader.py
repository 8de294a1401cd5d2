"""Reproducible training data order and augmentation randomness.

* Order: a ``DistributedSampler`` (also with one process) shuffles with a generator seeded by
  ``(seed, epoch)``, so epoch ``e`` visits the same samples whether or not the run was resumed,
  and every rank gets a disjoint share of the same permutation.
* Augmentation: before loading sample ``i`` of epoch ``e`` the ``random``, ``numpy`` and ``torch``
  (CPU) generators the datasets draw from are seeded with ``derive_seed(seed, e, i)``.  A sample is
  therefore the same whatever ``num_workers``, the number of processes or a resume: the losses of a
  run repeat to the last digit for any ``num_workers``, and the ranks of a multi-process run together
  see the samples one process would.  (The original seeded per DataLoader worker.)  In the main
  process (``num_workers=0``) the generators' states are put back afterwards, so loading does not
  disturb the model's randomness (dropout).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from seqformer.engine.distributed import DistInfo


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (no overlap between e.g. (42, 1) and (43, 0))."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int, cuda: bool = True) -> None:
    """Seed the ``random``, ``numpy`` and ``torch`` CPU global generators, and CUDA's unless ``cuda=False``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if cuda:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class _SeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs: the wrapped sampler's indices with their augmentation seeds."""

    def __init__(self, sampler: DistributedSampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, derive_seed(self.seed, self.epoch, i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class _SeededDataset(Dataset):
    """Loads ``dataset[index]`` with the global generators seeded from the sample's own seed."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        in_worker = get_worker_info() is not None
        saved = None if in_worker else (random.getstate(), np.random.get_state(), torch.get_rng_state())
        seed_everything(seed, cuda=False)  # CUDA generators are the model's
        try:
            return self.dataset[index]
        finally:
            if saved is not None:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])


class EpochLoader:
    """A training DataLoader whose order and per-sample augmentation seeds are fixed (see module doc)."""

    def __init__(self, dataset: Dataset, collate_fn: Callable[[list[Any]], Any], batch_size: int,
                 num_workers: int, seed: int, info: DistInfo, pin_memory: bool = False):
        if len(dataset) < batch_size * info.world_size:  # type: ignore[arg-type]
            raise ValueError(f"the training set has {len(dataset)} samples, fewer than one global batch "  # type: ignore[arg-type]
                             f"({batch_size} per process x {info.world_size} processes)")
        self.dataset = dataset
        self.sampler = _SeededSampler(DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                                         shuffle=True, seed=seed, drop_last=False), seed)
        # DataLoader draws its workers' base seed from this generator, not from the global one that
        # the model's dropout uses (the samples themselves do not depend on it)
        self.generator = torch.Generator()
        self.seed, self.rank = seed, info.rank
        self.loader = DataLoader(_SeededDataset(dataset), batch_size=batch_size, sampler=self.sampler,
                                 drop_last=True, collate_fn=collate_fn, num_workers=num_workers,
                                 pin_memory=pin_memory, generator=self.generator)

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[Any]:
        """Batches of ``epoch``; iterate it once per epoch."""
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed(derive_seed(self.seed, epoch, self.rank))
        return iter(self.loader)
