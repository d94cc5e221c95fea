"""`microexpr evaluate` as a user types it: named channels, input size, results folders,
one-line errors, machine-readable output, and SIGTERM followed by --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_parallel import _alive, _alive_children, _wait_gone
from test_real_composite import composite_manifest

from microexpr.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, " ".join((out.out + out.err).split())


@pytest.fixture
def composite(tmp_path) -> Path:
    return composite_manifest(tmp_path / "composite")


def test_named_channels_and_input_size(composite, tmp_path, capsys):
    out = tmp_path / "ma"
    code, _, text = run(["evaluate", "--manifest", str(composite), "--channels", "u,v,strain",
                         "--model", "micro_attention", "--input-size", "32", "--epochs", "1",
                         "--out", str(out)], capsys)
    assert code == 0, text
    assert json.loads((out / "metrics.json").read_text())["n"] == 24
    code, _, text = run(["evaluate", "--manifest", str(composite), "--channels", "u,v",
                         "--model", "off_apexnet", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--channels" in text, text
    assert "Traceback" not in text


def test_bad_values_are_one_line_errors_before_any_work(composite, tmp_path, capsys):
    out = tmp_path / "res"
    for flags, word in ((["--train-option", "lr=abc"], "lr"),
                        (["--train-option", "batch_size=abc"], "batch_size"),
                        (["--param", "dropout=abc"], "dropout"),
                        (["--param", "dropout=2"], "dropout"),
                        (["--recipe", "nope"], "recipe"),
                        (["--format", "xml"], "format")):
        code, _, text = run(["evaluate", "--manifest", str(composite), "--out", str(out),
                             *flags], capsys)
        assert code == 2 and word in text and "Traceback" not in text, (flags, text)
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_out_folder_is_never_merged(composite, tmp_path, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "problems.csv").write_text("stale")
    argv = ["evaluate", "--manifest", str(composite), "--model", "logreg", "--out", str(out)]
    code, _, text = run(argv, capsys)
    assert code == 2 and "--overwrite" in text
    code, _, text = run([*argv, "--overwrite"], capsys)
    assert code == 0, text
    assert not (out / "problems.csv").exists() and (out / "predictions.csv").is_file()


def test_json_format_prints_the_metrics_table(composite, tmp_path, capsys):
    code, stdout, text = run(["evaluate", "--manifest", str(composite), "--model", "logreg",
                              "--out", str(tmp_path / "res"), "--format", "json"], capsys)
    assert code == 0, text
    rows = json.loads(stdout)
    assert rows[0]["part"] == "all" and 0 <= rows[0]["uf1"] <= 1


def test_labels_scheme_with_a_manifest_catches_a_typo(composite, capsys):
    table = composite.read_text().replace(",positive,", ",postive,", 1)
    composite.write_text(table)
    code, _, text = run(["evaluate", "--manifest", str(composite), "--labels", "composite3",
                         "--model", "logreg"], capsys)
    assert code == 2 and "postive" in text and "Traceback" not in text


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_sigterm_keeps_finished_folds_and_resume_completes(tmp_path):
    manifest = composite_manifest(tmp_path / "m", subjects=6, per_subject=6)
    out = tmp_path / "res"
    argv = [sys.executable, "-m", "microexpr.cli", "evaluate", "--manifest", str(manifest),
            "--channels", "u,v,strain", "--epochs", "80", "--jobs", "2", "--out", str(out),
            "--seed", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    parent = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        folds = out.with_name("res.partial") / "folds"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(folds.glob("fold*.npz")):
            assert parent.poll() is None, parent.communicate()
            time.sleep(0.1)
        workers = _alive_children(parent.pid)
        assert workers, "no worker processes found"
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=20)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 128 + signal.SIGTERM
    assert "--resume" in err and "Traceback" not in err
    _wait_gone(workers)
    assert not any(_alive(w) for w in workers)
    saved = len(list(folds.glob("fold*.npz")))
    assert 1 <= saved < 6 and not out.exists()
    done = subprocess.run([*argv, "--resume", "--jobs", "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    config = (out / "config.yaml").read_text()
    assert config.count("resumed: true") == saved
    assert json.loads((out / "metrics.json").read_text())["n"] == 36
