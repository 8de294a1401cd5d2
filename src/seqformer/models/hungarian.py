"""The Hungarian matching shared by every task: one prediction per ground-truth object, per clip.

A task matcher only says what matching costs (:meth:`HungarianMatcher.cost_matrices`); solving
the assignment is the same for all of them.  The result, per clip ``b``, is a pair
``(query_idx, target_idx)`` of int64 CPU tensors with ``query_idx`` ascending (scipy's order), as
the original and DETR return it.  Costs are built one clip at a time, so clips of a batch can never
be mixed.
"""
from __future__ import annotations

from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from seqformer.models.losses import Indices
from seqformer.structures import Targets


def solve_assignments(costs: list[torch.Tensor]) -> Indices:
    """Minimum-cost bipartite matching of each ``[Q, N_b]`` cost matrix (scipy LSA, float32 like the original)."""
    indices = []
    for b, cost in enumerate(costs):
        if cost.shape[1] == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            indices.append((empty, empty.clone()))
            continue
        cost = cost.detach().float().cpu()
        if not torch.isfinite(cost).all():
            raise ValueError(f"clip {b}: matching cost contains NaN/inf (non-finite predictions or target boxes?)")
        rows, cols = linear_sum_assignment(cost.numpy())
        indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return indices


class HungarianMatcher(nn.Module):
    """Base of the task matchers: ``forward`` solves the assignment of ``cost_matrices``."""

    def cost_matrices(self, outputs: dict[str, Any], targets: Targets) -> list[torch.Tensor]:
        """``[Q, N_b]`` total matching cost of every clip ``b``."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, outputs: dict[str, Any], targets: Targets) -> Indices:
        return solve_assignments(self.cost_matrices(outputs, targets))
