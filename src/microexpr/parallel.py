"""One executor interface for independent tasks (folds, clips): in-process or worker processes.

`executor.map(fn, tasks, shared)` calls `fn(shared, task)` for every task and yields
`(index, result)` pairs as tasks finish. `shared` is sent to each worker once (not once per
task), which is what a cluster backend (Ray's object store) does too; a new backend only has
to implement `map`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from microexpr.errors import ConfigError

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs fn(shared, task) for each task; yields (task index, result) in completion order."""

    jobs: int

    def map(self, fn: Callable[[Any, Any], R], tasks: Sequence[Any],
            shared: Any = None) -> Iterator[tuple[int, R]]: ...


class LocalExecutor:
    """Runs tasks one after another in this process."""

    jobs = 1

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T],
            shared: S = None) -> Iterator[tuple[int, R]]:
        for index, task in enumerate(tasks):
            yield index, fn(shared, task)


_SHARED: Any = None


def _init_worker(shared: Any, threads: int) -> None:
    global _SHARED
    _SHARED = shared
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    limit_threads(threads)


def _call(fn: Callable[[Any, Any], R], task: Any) -> R:
    return fn(_SHARED, task)


def limit_threads(threads: int) -> None:
    """Cap the threads OpenCV and (if loaded) torch use, so parallel workers don't oversubscribe."""
    import sys

    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class ProcessExecutor:
    """Runs tasks in `jobs` worker processes (spawned, so safe with torch and OpenCV threads).

    The number of tasks in flight is bounded, an exception in a task is re-raised here, and the
    remaining tasks are cancelled; results already yielded stay with the caller.
    """

    def __init__(self, jobs: int):
        if jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T],
            shared: S = None) -> Iterator[tuple[int, R]]:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker,
                                 initargs=(shared, threads)) as pool:
            pending: dict[Future, int] = {}
            queue = iter(enumerate(tasks))
            try:
                for index, task in queue:
                    pending[pool.submit(_call, fn, task)] = index
                    if len(pending) >= 2 * self.jobs:
                        break
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = pending.pop(future)
                        yield index, future.result()
                        for next_index, next_task in queue:
                            pending[pool.submit(_call, fn, next_task)] = next_index
                            break
            finally:
                for future in pending:
                    future.cancel()


def make_executor(jobs: int | None = 1) -> Executor:
    """LocalExecutor for jobs=1, else ProcessExecutor; jobs=0 or None means all cores."""
    if jobs is None or jobs == 0:
        jobs = os.cpu_count() or 1
    if jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = all cores), got {jobs}")
    return LocalExecutor() if jobs == 1 else ProcessExecutor(jobs)
