"""Folds, tuning grids and representations as Ray tasks: the same results as the local backend,
shared inputs put in the object store once, results streamed, tasks cancelled, --resume across
backends, and a clear message when Ray is not installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_manifest
from test_cli_evaluate import run

import microexpr
from microexpr.cli import main
from microexpr.errors import ConfigError
from microexpr.parallel import (
    RayExecutor,
    _ray_result,
    check_backend,
    make_executor,
    use_backend,
)

INSTALL_HINT = 'pip install "microexpr[ray]"'
FAST_FLOW = {"method": "dis"}  # TV-L1 would take most of the test's time
RUN = dict(epochs=3, seed=0, cache_dir=None, progress=False, representation=FAST_FLOW)


def _ray():
    return pytest.importorskip("ray", reason=f"the ray backend needs Ray: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def ray_module():
    ray = _ray()
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(ray_module):
    """A local Ray with 2 CPUs for the test (started once, kept for the module's tests)."""
    if not ray_module.is_initialized():
        ray_module.init(address="local", num_cpus=2, include_dashboard=False,
                        log_to_driver=False)
    return ray_module


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("synth") / "casme2", subjects=3,
                                clips_per_class=2, size=64)
    return microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")


@pytest.fixture(scope="module")
def local_run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    return microexpr.evaluate(synth, "ststnet", out=out, **RUN)


def _probabilities(result) -> np.ndarray:
    return result.predictions.filter(like="p_").to_numpy()


def _config(out: Path) -> dict:
    return yaml.safe_load((out / "config.yaml").read_text())


# -- the executor -------------------------------------------------------------------------

def test_ray_executor_starts_and_stops_its_own_local_ray(ray_module):
    if ray_module.is_initialized():  # another test of this module started one first
        ray_module.shutdown()
    with RayExecutor(jobs=1) as executor:
        assert not ray_module.is_initialized()  # started on first use only
        results = dict(executor.map(lambda shared, task: shared + task, [1, 2, 3], 10))
        assert results == {0: 11, 1: 12, 2: 13}
        assert ray_module.is_initialized() and executor.jobs == 1
        assert executor.resources()["CPU"] == 1
    assert not ray_module.is_initialized()  # the Ray it started is stopped again


def test_shared_goes_to_the_object_store_once_and_results_stream(local_ray, monkeypatch):
    puts = []
    put = local_ray.put
    monkeypatch.setattr(local_ray, "put", lambda value, **kw: puts.append(1) or put(value, **kw))
    shared = {"offset": np.arange(1000.0)}

    def task(shared, index):
        import torch  # one thread per task, as in the process workers

        time.sleep(1.5 if index == 0 else 0.0)  # task 0 finishes last
        return float(shared["offset"][index]), torch.get_num_threads()

    with use_backend("ray") as executor:
        assert make_executor(4) is executor  # every stage of the block runs on Ray
        order = [index for index, _ in executor.map(task, range(6), shared)]
        results = dict(executor.map(task, range(6), shared))
    assert len(puts) == 2  # once per map, not once per task
    assert sorted(order) == list(range(6)) and order[-1] == 0  # as they finish
    assert results == {i: (float(i), 1) for i in range(6)}
    assert local_ray.is_initialized()  # a Ray it did not start is left running


def test_errors_come_back_as_themselves_and_leaving_early_cancels(local_ray):
    def fail_or_sleep(shared, index):
        if index == 0:
            raise ConfigError("clip 0 is broken")
        time.sleep(60)

    executor = RayExecutor()
    start = time.monotonic()
    with pytest.raises(ConfigError, match="clip 0 is broken"):
        list(executor.map(fail_or_sleep, range(4)))

    def quick_or_sleep(shared, index):
        if index > 0:
            time.sleep(60)
        return index

    stream = executor.map(quick_or_sleep, range(4))
    assert next(stream) == (0, 0)
    stream.close()  # what Ctrl-C, SIGTERM or an error in the caller do
    # the sleeping tasks were cancelled: both CPUs are free again at once
    assert dict(executor.map(lambda shared, index: index, range(2))) == {0: 0, 1: 1}
    assert time.monotonic() - start < 30


def test_backend_and_address_are_checked(monkeypatch, capsys):
    with pytest.raises(ConfigError, match="--backend"):
        check_backend("dask")
    with pytest.raises(ConfigError, match="--address.*--backend ray"):
        check_backend("local", "auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r'pip install "microexpr\[ray\]"'):
        check_backend("ray")
    with pytest.raises(ConfigError, match=r'pip install "microexpr\[ray\]"'):
        microexpr.evaluate("missing.csv", "logreg", backend="ray", write=False)
    code, _, text = run(["evaluate", "--manifest", "missing.csv", "--backend", "ray"], capsys)
    assert code == 2 and INSTALL_HINT in text and "Traceback" not in text, text


def test_a_worker_without_microexpr_is_a_clear_error(ray_module):
    class NodeWithoutMicroexpr:  # what ray.get raises when the task's function cannot unpickle
        exceptions = ray_module.exceptions

        @staticmethod
        def get(ref):
            raise ray_module.exceptions.RaySystemError(
                "System error: No module named 'microexpr'")

    with pytest.raises(ConfigError, match=r'every node .*pip install "microexpr\[ray\]"'):
        _ray_result(NodeWithoutMicroexpr, None)


# -- evaluate on Ray ------------------------------------------------------------------------

def test_evaluate_on_ray_predicts_what_the_local_backend_predicts(local_ray, synth,
                                                                   local_run, tmp_path):
    out = tmp_path / "ray"
    result = microexpr.evaluate(synth, "ststnet", out=out, backend="ray", **RUN)
    np.testing.assert_allclose(_probabilities(result), _probabilities(local_run), atol=1e-6)
    assert (result.predictions["y_pred"] == local_run.predictions["y_pred"]).all()
    assert _config(out)["backend"] == "ray" and _config(local_run.out_dir)["backend"] == "local"
    assert _config(out)["jobs"] == 2  # the Ray's CPUs
    # the inputs were computed by Ray tasks (no cache), and the backend is not decisive
    fingerprints = [json.loads((run / "run.json").read_text())["fingerprint"]
                    for run in (out, local_run.out_dir)]
    assert fingerprints[0] == fingerprints[1]


def test_a_local_run_resumes_on_ray(local_ray, synth, local_run, tmp_path):
    out = tmp_path / "resumed"
    partial = tmp_path / "resumed.partial"
    shutil.copytree(local_run.out_dir, partial)  # as if interrupted after fold 0
    for fold in (1, 2):
        (partial / "folds" / f"fold{fold:03d}.npz").unlink()
    result = microexpr.evaluate(synth, "ststnet", out=out, resume=True, backend="ray", **RUN)
    assert [f.get("resumed", False) for f in result.config["folds"]] == [True, False, False]
    np.testing.assert_allclose(_probabilities(result), _probabilities(local_run), atol=1e-6)


def test_tuning_grid_on_ray_and_the_command_line(local_ray, synth, tmp_path, capsys):
    grid = {"params": {"C": [0.01, 1.0]}, "inner_folds": 2}
    options = dict(seed=0, cache_dir=tmp_path / "cache", progress=False, write=False,
                   representation=FAST_FLOW, tune=grid)
    local = microexpr.evaluate(synth, "logreg", **options)
    on_ray = microexpr.evaluate(synth, "logreg", backend="ray", **options)
    np.testing.assert_allclose(_probabilities(on_ray), _probabilities(local), atol=1e-6)
    assert ([f["tuning"] for f in on_ray.config["folds"]]
            == [f["tuning"] for f in local.config["folds"]])

    out = tmp_path / "cli"
    root = str(synth.root)
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--dataset", "casme2", "--root", root, "--labels", "composite3",
              "--option", "method=dis", "--cache-dir", str(tmp_path / "cli-cache"),
              "--backend", "ray"])
    assert exit_info.value.code in (0, None), capsys.readouterr()
    assert "18 computed" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--dataset", "casme2", "--root", root, "--labels", "composite3",
              "--model", "logreg", "--option", "method=dis", "--cache-dir",
              str(tmp_path / "cli-cache"), "--backend", "ray", "--out", str(out)])
    assert exit_info.value.code in (0, None), capsys.readouterr()
    assert _config(out)["backend"] == "ray"


def _session_processes(session: int) -> dict[int, bytes]:
    """pid -> command line of the live processes of a session (the run's Ray included)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == session:
            continue
        try:
            if os.getsid(int(entry.name)) == session:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found[int(entry.name)] = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_sigterm_cancels_the_folds_and_stops_the_local_ray(ray_module, tmp_path):
    manifest = write_manifest(tmp_path / "m", n_subjects=3, per_subject=12, signal=2.0)
    out = tmp_path / "res"
    command = [sys.executable, "-c", "import sys; from microexpr.cli import main; "
               "main(sys.argv[1:])", "evaluate", "--manifest", str(manifest),
               "--epochs", "100000", "--backend", "ray", "--jobs", "2", "--out", str(out)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(b"_ray_task" in c for c in _session_processes(process.pid).values()):
            if process.poll() is not None:
                pytest.fail(f"the run ended before its folds started: {process.stderr.read()}")
            assert time.monotonic() < deadline, "no fold started on Ray within 60 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "0 of 3 folds are saved" in err and "--resume" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while _session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_processes(process.pid)  # Ray's workers, raylet and GCS are gone
