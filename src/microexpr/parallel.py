"""One executor interface for independent tasks (folds, clips): in-process, worker
processes, or Ray tasks on a local Ray or a cluster.

`executor.map(fn, tasks, shared)` calls `fn(shared, task)` for every task and yields
`(index, result)` pairs as tasks finish. `shared` is sent to each worker once (not once per
task): a ProcessExecutor hands it to each worker process when it starts, a RayExecutor puts
it in Ray's object store once. `make_executor(jobs)` picks the executor; within a
`use_backend("ray")` block it is that block's RayExecutor, so every stage of a run
(representations, folds) runs on Ray without being told.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import os
import re
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


# -- Ray ------------------------------------------------------------------------------------

BACKENDS = ("local", "ray")
RAY_INSTALL = 'pip install "microexpr[ray]"'
_POLL_SECONDS = 0.5  # ray.wait returns this often, so that Ctrl-C and SIGTERM are handled
_ACTIVE: contextvars.ContextVar[RayExecutor | None] = contextvars.ContextVar(
    "microexpr_backend", default=None)


def import_ray() -> Any:
    """The `ray` module; ConfigError with the install command when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"the ray backend (--backend ray) needs Ray, which is not installed "
                          f"here: {RAY_INSTALL} (plain ray; ray[default] is not needed)"
                          ) from exc
    return ray


def check_backend(backend: str, address: str | None = None) -> str:
    """`backend` and `address` checked before any work: "local" (this machine: in-process or
    worker processes, `jobs`) or "ray" (Ray installed); `address` only with "ray"."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend (--backend) {backend!r}: choose local (this "
                          f"machine; --jobs worker processes) or ray (Ray tasks, on a local "
                          f"Ray or the cluster at --address)")
    if address is not None:
        if backend != "ray":
            raise ConfigError("address (--address) is where a Ray cluster runs: it needs "
                              "backend='ray' (--backend ray)")
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(f"address (--address) must be auto or HOST:PORT of a Ray "
                              f"cluster's head node, got {address!r}")
    if backend == "ray":
        import_ray()
    return backend


class _RaySession:
    """The driver's connection to Ray, shared by a RayExecutor and its `for_device` copies:
    made on first use, ended by `close` (only what this session itself started)."""

    def __init__(self, jobs: int | None, address: str | None):
        if jobs is not None and jobs < 0:
            raise ConfigError(f"jobs (--jobs) must be >= 0 (0 = all cores), got {jobs}")
        self.jobs = jobs or None
        self.address = address.strip() if address else None
        self.ray: Any = None
        self.connected = False  # we called ray.init (started a local Ray or connected)
        self.started_local = False

    def connect(self) -> Any:
        if self.ray is not None and self.ray.is_initialized():
            return self.ray
        ray = import_ray()
        self.ray = ray
        if ray.is_initialized():  # a Ray this process already runs: used, left alone
            return ray
        env_address = os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None and not env_address:
            self.started_local = True
            options |= {"address": "local", "num_cpus": self.jobs or os.cpu_count() or 1,
                        "include_dashboard": False}
        else:
            options["address"] = self.address or env_address
        main = threading.current_thread() is threading.main_thread()
        on_term = signal.getsignal(signal.SIGTERM) if main else None
        try:
            ray.init(**options)
        except (OSError, ValueError, RuntimeError) as exc:  # ConnectionError, TimeoutError
            if self.started_local:
                self.started_local = False
                raise ConfigError(f"cannot start a local Ray: {exc}") from exc
            given = "--address" if self.address else "$RAY_ADDRESS"
            raise ConfigError(
                f"cannot connect to the Ray cluster at {options['address']} ({given}): {exc}. "
                f"Start it with `ray start --head` on the head node (and `ray start --address "
                f"HEAD:6379` on the others), or leave --address out to run on a local Ray"
                ) from exc
        finally:
            if main and on_term is not None:  # ray.init replaces it with sys.exit
                signal.signal(signal.SIGTERM, on_term)
        self.connected = True
        return ray

    def close(self) -> None:
        if self.connected and self.ray is not None and self.ray.is_initialized():
            # stops a local Ray we started; from a cluster it only disconnects this driver
            self.ray.shutdown()
        self.connected = self.started_local = False


def _ray_task(fn: Callable[[Any, Any], R], shared: Any, task: Any, threads: int) -> R:
    """What a Ray worker runs: `fn(shared, task)` with `threads` torch / OpenCV threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    limit_threads(threads)
    return fn(shared, task)


_REMOTE: Any = None


def _remote_task(ray: Any) -> Any:
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_ray_task)
    return _REMOTE


class RayExecutor:
    """Runs tasks as Ray tasks: on a local Ray, or on the cluster at `address`.

    `shared` goes to the object store once per `map` (`ray.put`) and every task gets its
    reference, so each node fetches it once however many tasks it runs; results come back as
    tasks finish (`ray.wait`), at most 2 x `jobs` tasks in flight. Each task takes
    `cpus_per_task` CPUs (and `gpus_per_task` GPUs) and runs with that many torch and OpenCV
    threads. An exception in a task is re-raised here as itself; whatever leaves `map`
    early (an error, Ctrl-C, `Interrupted`, the caller closing the generator) cancels the
    tasks still queued or running.

    Ray is started on the first `map` (or `start`): without `address` (and without
    $RAY_ADDRESS, which `ray job submit` sets) a local Ray with `jobs` CPUs (None or 0: every
    core), no dashboard, worker output not forwarded; with `address` ("auto": the cluster
    this node belongs to, or HOST:PORT of its head) this driver connects to that cluster. A
    Ray already initialised in this process is used as it is. `close` (or leaving a `with`
    block) stops the local Ray it started and disconnects from a cluster, which goes on
    running; it never stops a cluster. Every node must run the same Python environment with
    microexpr installed (workers import it) and see the data and cache paths.
    """

    def __init__(self, jobs: int | None = None, address: str | None = None, *,
                 cpus_per_task: int = 1, gpus_per_task: float = 0.0,
                 _session: _RaySession | None = None):
        if cpus_per_task < 1 or gpus_per_task < 0:
            raise ConfigError(f"a Ray task needs >= 1 CPU and >= 0 GPUs, got "
                              f"{cpus_per_task} and {gpus_per_task}")
        self._session = _session or _RaySession(jobs, address)
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task

    @property
    def address(self) -> str | None:
        """The cluster address given (None: a local Ray, or $RAY_ADDRESS)."""
        return self._session.address

    @property
    def jobs(self) -> int:
        """Tasks that run at once: the CPUs of the Ray (of its GPUs, for GPU tasks) per
        task; before Ray is started, the CPUs asked for a local one."""
        session = self._session
        if session.ray is None or not session.ray.is_initialized():
            return max(1, (session.jobs or os.cpu_count() or 1) // self.cpus_per_task)
        resources = self.resources()
        slots = int(resources.get("CPU", 1) // self.cpus_per_task)
        if self.gpus_per_task:
            slots = min(slots, int(resources.get("GPU", 0) // self.gpus_per_task))
        return max(1, slots)

    def start(self) -> RayExecutor:
        """Start or connect to Ray now (`map` does it when needed); returns self."""
        self._session.connect()
        return self

    def resources(self) -> dict[str, float]:
        """The Ray's total resources ({"CPU": 16.0, "GPU": 2.0, ...}); starts it if need be."""
        return dict(self._session.connect().cluster_resources())

    def for_device(self, device: str | None) -> RayExecutor:
        """This executor for tasks that train on `device` (auto, cpu, cuda[:N]): one GPU per
        task when the device may be a GPU and the Ray has GPUs (Ray hides the GPUs from a
        task that reserved none); ConfigError when cuda is asked for and it has none."""
        device = (device or "auto").strip().lower()
        if device == "cpu" or (device != "auto" and not device.startswith("cuda")):
            return self
        if self.resources().get("GPU", 0) >= 1:
            return RayExecutor(cpus_per_task=self.cpus_per_task, gpus_per_task=1.0,
                               _session=self._session)
        if device.startswith("cuda"):
            raise ConfigError(f"device (--device) {device} was asked for, but the Ray "
                              f"cluster has no GPUs: use --device auto or cpu, or add GPU "
                              f"nodes (`ray start` finds their GPUs)")
        return self

    def close(self) -> None:
        """Stop the local Ray this executor started, or disconnect from the cluster."""
        self._session.close()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, fn: Callable[[S, T], R], tasks: Sequence[T],
            shared: S = None) -> Iterator[tuple[int, R]]:
        if not len(tasks):
            return
        ray = self._session.connect()
        remote = _remote_task(ray).options(num_cpus=self.cpus_per_task,
                                           num_gpus=self.gpus_per_task)
        shared_ref = ray.put(shared)
        pending: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        limit = 2 * self.jobs

        def submit_next() -> bool:
            for index, task in queue:
                pending[remote.remote(fn, shared_ref, task, self.cpus_per_task)] = index
                return True
            return False

        try:
            while len(pending) < limit and submit_next():
                pass
            while pending:
                with _signals_through_ray():
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_SECONDS)
                for ref in done:
                    index = pending.pop(ref)
                    yield index, _ray_result(ray, ref)
                    submit_next()
        finally:
            if pending:
                _cancel(ray, list(pending))


def _cancel(ray: Any, refs: list, timeout: float = 10.0) -> None:
    """Cancel the tasks `refs` (ending those that run) and wait until each has ended,
    cancelling again those that had not started yet when first asked (Ray may hand such a
    task to a worker while it cancels it)."""
    deadline = time.monotonic() + timeout
    while refs:
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if time.monotonic() > deadline:
            return
        try:
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=_POLL_SECONDS,
                               fetch_local=False)
        except Exception:  # noqa: BLE001 - Ray gone, or a second Ctrl-C: stop waiting
            return


@contextlib.contextmanager
def _signals_through_ray() -> Iterator[None]:
    """Ray's blocking calls run the signal handlers while they wait, and wrap what a handler
    raises (`Interrupted`) in a SystemError: raise it as itself."""
    try:
        yield
    except SystemError as exc:
        if isinstance(exc.__cause__, Interrupted | KeyboardInterrupt):
            raise exc.__cause__ from None
        raise


def _ray_result(ray: Any, ref: Any) -> Any:
    """The task's result; its own exception (not Ray's wrapper) when it raised one, and a
    ConfigError saying what every node needs when a worker cannot import microexpr."""
    try:
        with _signals_through_ray():
            return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ModuleNotFoundError) and _MISSING_MICROEXPR.search(str(cause)):
            raise _no_microexpr(cause) from exc
        if isinstance(cause, BaseException):
            raise cause from exc
        raise
    except ray.exceptions.RaySystemError as exc:  # the task's function did not unpickle
        if _MISSING_MICROEXPR.search(str(exc)):
            raise _no_microexpr(exc) from exc
        raise


_MISSING_MICROEXPR = re.compile(r"No module named '(microexpr)['.]")


def _no_microexpr(error: BaseException) -> ConfigError:
    return ConfigError(f"a Ray worker cannot import microexpr ({error}): every node needs the "
                       f"same Python environment with microexpr installed ({RAY_INSTALL}), and "
                       f"`ray start` run from that environment")


@contextlib.contextmanager
def use_backend(backend: str = "ray", *, address: str | None = None,
                jobs: int | None = None) -> Iterator[RayExecutor | None]:
    """Run every map of the block on `backend`: with "ray", `make_executor` (which every
    stage calls) returns one RayExecutor (see there for `address` and `jobs`), closed when
    the block ends; "local" keeps (or, nested, restores) in-process and worker-process
    executors. A nested "ray" block reuses the active RayExecutor. Yields the RayExecutor,
    or None for "local"."""
    check_backend(backend, address)
    active = _ACTIVE.get()
    if backend == "ray" and active is not None and address in (None, active.address):
        yield active
        return
    executor = RayExecutor(jobs, address) if backend == "ray" else None
    token = _ACTIVE.set(executor)
    try:
        yield executor
    finally:
        _ACTIVE.reset(token)
        if executor is not None:
            executor.close()


def make_executor(jobs: int | None = 1) -> Executor:
    """The executor of the enclosing `use_backend("ray")` block if any; else LocalExecutor
    for jobs=1 and ProcessExecutor for more; jobs=0 or None means all cores."""
    active = _ACTIVE.get()
    if active is not None:
        return active
    if jobs is None or jobs == 0:
        jobs = os.cpu_count() or 1
    if jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = all cores), got {jobs}")
    return LocalExecutor() if jobs == 1 else ProcessExecutor(jobs)
