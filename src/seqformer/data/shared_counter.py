"""An event counter that DataLoader worker processes update and the main process can read.

Datasets count their resampling events so a training log can report them; with ``num_workers > 0`` each
worker holds a copy of the dataset, so a plain int would stay 0 in the main process.  The counter lives in
shared memory when handed to a worker process; ordinary pickling (e.g. ``copy.deepcopy``) detaches a copy.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing import context


class SharedCounter:
    def __init__(self, start: int = 0):
        self._value = multiprocessing.Value("q", start)

    def increment(self, n: int = 1) -> None:
        with self._value.get_lock():
            self._value.value += n

    @property
    def value(self) -> int:
        return int(self._value.value)

    def __getstate__(self):
        if context.get_spawning_popen() is not None:
            return {"shared": self._value}
        return {"detached": self.value}

    def __setstate__(self, state) -> None:
        if "shared" in state:
            self._value = state["shared"]
        else:
            self._value = multiprocessing.Value("q", state["detached"])
