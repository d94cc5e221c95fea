"""Worker processes never outlive their parent: Ctrl-C, SIGTERM, SIGKILL or a failing task."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from microexpr.parallel import Interrupted, LocalExecutor, interrupt_signals

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="finds worker processes through /proc")

JOBS = textwrap.dedent('''
    """Tasks for the worker tests (a module, so that spawned workers can import them)."""
    import sys
    import time

    from microexpr.parallel import Interrupted, ProcessExecutor, interrupt_signals


    def spin(shared, task):
        while True:  # a task that never ends, at full CPU
            pass


    def fail_or_spin(shared, task):
        if task == 0:
            time.sleep(0.5)
            raise ValueError("clip 0 is broken")
        spin(shared, task)


    def quick_or_spin(shared, task):
        if task == 0:
            return task
        spin(shared, task)


    def main(mode):
        if mode == "plain":  # a library user's script: no signal handling at all
            for _ in ProcessExecutor(2).map(spin, range(4)):
                pass
        elif mode == "handled":  # what `microexpr` does
            try:
                with interrupt_signals():
                    for _ in ProcessExecutor(2).map(spin, range(4)):
                        pass
            except Interrupted as exc:
                print(f"interrupted by {exc}", flush=True)
                time.sleep(30)  # stay alive: the workers must be gone before we exit
        elif mode == "cli":  # the real `microexpr` entry point, interrupted between results
            import microexpr.cli as cli

            @cli.app.command("spin-test")
            def spin_test():
                for index, _ in ProcessExecutor(2).map(quick_or_spin, range(4)):
                    print(f"got {index}", flush=True)
                    time.sleep(30)  # the signal arrives here, outside the executor

            cli.main(["spin-test"])
        elif mode == "fails":
            start = time.monotonic()
            try:
                list(ProcessExecutor(2).map(fail_or_spin, range(4)))
            except ValueError as exc:
                print(f"{exc} after {time.monotonic() - start:.1f} s", flush=True)
            time.sleep(30)
''')


def _start(tmp_path, mode):
    (tmp_path / "spinjobs.py").write_text(JOBS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return subprocess.Popen([sys.executable, "-c", f"import spinjobs; spinjobs.main({mode!r})"],
                            env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)


def _stat(pid):
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _alive_children(parent):
    """(pid, start time) of the live spawn workers of `parent` (zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat and stat[1] == parent and stat[0] != "Z" and b"spawn_main" in cmdline:
            found.append((int(entry.name), stat[2]))
    return found


def _alive(worker):
    """Whether this very process (same pid and start time) still runs."""
    pid, started = worker
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == started


def _wait_for_workers(parent, n=2, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = _alive_children(parent.pid)
        if len(workers) >= n:
            return workers
        assert parent.poll() is None, "the parent ended before starting its workers"
        time.sleep(0.05)
    raise AssertionError(f"{n} workers did not start")


def _wait_gone(workers, timeout=10.0):
    # The parent ends its workers within about 3 s (terminate, 2 s grace, kill); the margin is
    # for a loaded 2-core machine, where the spinning workers compete with the parent.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    return [w for w in workers if _alive(w)]


def _cleanup(parent, workers):
    """Kill what this test started and is still running (never a reused pid)."""
    if parent.poll() is None:
        parent.kill()
    for worker in workers:
        if _alive(worker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker[0], signal.SIGKILL)
    parent.wait(5)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_interrupted_parent_ends_its_workers_before_it_exits(tmp_path, how):
    parent = _start(tmp_path, "handled")
    workers = _wait_for_workers(parent)
    try:
        if how == "sigterm":
            parent.send_signal(signal.SIGTERM)
        else:  # the terminal sends SIGINT to the whole foreground process group
            os.killpg(parent.pid, signal.SIGINT)
        assert _wait_gone(workers) == []
        assert parent.poll() is None  # ended by the parent's cleanup, not by its death
        expected = "SIGTERM" if how == "sigterm" else "SIGINT"
        assert parent.stdout.readline().strip() == f"interrupted by {expected}"
    finally:
        _cleanup(parent, workers)


def test_interrupt_while_workers_start_leaves_none_behind(tmp_path):
    parent = _start(tmp_path, "handled")
    workers = _wait_for_workers(parent, n=1)  # the parent is still starting them
    try:
        parent.send_signal(signal.SIGTERM)
        assert parent.stdout.readline().strip() == "interrupted by SIGTERM"
        workers = sorted({*workers, *_alive_children(parent.pid)})
        assert _wait_gone(workers) == [] and _alive_children(parent.pid) == []
        assert parent.poll() is None
    finally:
        _cleanup(parent, workers)


def test_cli_interrupted_between_results_exits_at_once_without_workers(tmp_path):
    parent = _start(tmp_path, "cli")
    workers = _wait_for_workers(parent)
    try:
        assert parent.stdout.readline().strip() == "got 0"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(5) == 143  # not stuck joining workers busy with endless tasks
        assert _wait_gone(workers, timeout=1.0) == []
    finally:
        _cleanup(parent, workers)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_when_the_parent_is_killed(tmp_path, sig):
    parent = _start(tmp_path, "plain")
    workers = _wait_for_workers(parent)
    try:
        parent.send_signal(sig)  # no cleanup can run in the parent
        parent.wait(5)
        assert _wait_gone(workers) == []
    finally:
        _cleanup(parent, workers)


def test_a_failing_task_ends_the_other_workers_at_once(tmp_path):
    parent = _start(tmp_path, "fails")
    workers = _wait_for_workers(parent)
    try:
        line = parent.stdout.readline().strip()
        assert line.startswith("clip 0 is broken after")
        assert float(line.split()[-2]) < 5  # not stuck waiting for the endless tasks
        assert _wait_gone(workers, timeout=1.0) == [] and parent.poll() is None
    finally:
        _cleanup(parent, workers)


def test_interrupt_signals_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as info, interrupt_signals():
        for _ in LocalExecutor().map(lambda shared, task: os.kill(os.getpid(), signal.SIGTERM),
                                     [0]):
            time.sleep(1)  # the handler raises here, in the main thread
    assert info.value.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
