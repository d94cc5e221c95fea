"""One executor interface for independent tasks (folds, clips): in-process or worker processes.

`executor.map(fn, tasks, shared)` calls `fn(shared, task)` for every task and yields
`(index, result)` pairs as tasks finish. `shared` is sent to each worker once (not once per
task), which is what a cluster backend (Ray's object store) does too; a new backend only has
to implement `map`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
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
_PR_SET_PDEATHSIG = 1
_DEFERRING = 0  # > 0 while the executor starts a worker: `interrupt_signals` waits for it
_DEFERRED: list[int] = []


class Interrupted(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """Raised in the main thread by `interrupt_signals` on SIGINT or SIGTERM.

    Not a KeyboardInterrupt, so that the CLI framework does not swallow it, and not an
    Exception, so that `except Exception` clauses let it through; `signum` is the signal.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interrupt_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted`, so that `finally` clauses
    (the executor's worker cleanup) run; the previous handlers are restored afterwards.
    Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _DEFERRING:
            _DEFERRED.append(signum)
        else:
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _deferring_interrupts() -> Iterator[None]:
    """Hold `Interrupted` back until the block ends: a worker started halfway would escape
    the cleanup (it is not yet in the pool's process table)."""
    global _DEFERRING
    _DEFERRING += 1
    try:
        yield
    finally:
        _DEFERRING -= 1
        if not _DEFERRING and _DEFERRED:
            signum = _DEFERRED[-1]
            _DEFERRED.clear()
            raise Interrupted(signum)


def _die_with_parent(parent: int) -> None:
    """Make this worker end when process `parent` does, however it ends (even SIGKILL).

    On Linux the kernel sends SIGKILL at the parent's death (PR_SET_PDEATHSIG; it fires when
    the parent *thread* that started the worker ends, and the executor is driven from one
    thread); everywhere a daemon thread polls the parent pid and exits the worker.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="microexpr-parent-watch", daemon=True).start()


def _init_worker(shared: Any, threads: int, parent: int) -> None:
    global _SHARED
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent handles it and ends the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SHARED = shared
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    limit_threads(threads)


def _call(fn: Callable[[Any, Any], R], task: Any) -> R:
    return fn(_SHARED, task)


def limit_threads(threads: int) -> None:
    """Cap the threads OpenCV and (if loaded) torch use, so parallel workers don't oversubscribe."""
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class ProcessExecutor:
    """Runs tasks in `jobs` worker processes (spawned, so safe with torch and OpenCV threads).

    The number of tasks in flight is bounded, an exception in a task is re-raised here, and the
    remaining tasks are cancelled; results already yielded stay with the caller. Workers never
    outlive the parent: whatever leaves `map` early (an error, Ctrl-C, `Interrupted`, the
    caller closing the generator) cancels the queued tasks and terminates the workers, and a
    worker whose parent died (even by SIGKILL) ends itself within about a second.
    """

    def __init__(self, jobs: int):
        if jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T],
            shared: S = None) -> Iterator[tuple[int, R]]:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=_init_worker,
                                   initargs=(shared, threads, os.getpid()))
        pending: dict[Future, int] = {}
        queue = iter(enumerate(tasks))

        def submit_next() -> bool:
            for index, task in queue:
                with _deferring_interrupts():  # submit may start a worker process
                    pending[pool.submit(_call, fn, task)] = index
                return True
            return False

        finished = False
        try:
            while len(pending) < 2 * self.jobs and submit_next():
                pass
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
                    submit_next()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:
                _stop_pool(pool)


def _stop_pool(pool: ProcessPoolExecutor, timeout: float = 2.0) -> None:
    """Cancel what is queued and end the workers now (terminate, then kill the stubborn)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(0.5)


def make_executor(jobs: int | None = 1) -> Executor:
    """LocalExecutor for jobs=1, else ProcessExecutor; jobs=0 or None means all cores."""
    if jobs is None or jobs == 0:
        jobs = os.cpu_count() or 1
    if jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = all cores), got {jobs}")
    return LocalExecutor() if jobs == 1 else ProcessExecutor(jobs)
