"""What every task adapter shares: the one matcher instance its model and criterion both use."""
from __future__ import annotations

from typing import Callable

from seqformer.config import Config
from seqformer.models.hungarian import HungarianMatcher


class MatchedTask:
    """Builds the task's matcher once (``build_matcher``) and hands the same instance to every caller,
    so the model's in-forward matching and the criterion can never disagree."""

    build_matcher: Callable[[Config], HungarianMatcher]

    def __init__(self) -> None:
        self._matcher: HungarianMatcher | None = None

    def matcher(self, cfg: Config) -> HungarianMatcher:
        if self._matcher is None:
            self._matcher = type(self).build_matcher(cfg)
        return self._matcher
