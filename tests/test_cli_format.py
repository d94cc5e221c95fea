"""Listing output: names never cut in a narrow table, csv / json parse back; Ctrl-C: one line."""

import io
import json
import os
import signal
import time

import pandas as pd
import pytest
from rich.console import Console

import microexpr.cli as cli
from microexpr.cli import main
from microexpr.data.adapters import list_datasets
from microexpr.evaluation.metrics import compute_metrics
from microexpr.evaluation.runner import EvaluationResult
from microexpr.models.registry import list_models
from microexpr.representations import list_representations

from trees import make_casme2


@pytest.fixture
def narrow(monkeypatch):
    """The CLI's console as `microexpr ... | cat` sees it, but only 60 columns wide."""
    monkeypatch.setattr(cli, "console", Console(width=60, color_system=None))


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def _table_cells(text):
    """The words inside the table's cells (the │ / ┃ borders split them)."""
    cells = set()
    for line in text.splitlines():
        for part in line.replace("┃", "│").split("│"):
            cells.update(part.split())
    return cells


def test_models_table_never_cuts_a_name_in_a_narrow_terminal(narrow, capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0
    names = list(list_models()["name"])
    assert set(names) <= _table_cells(out), out
    assert "…" not in out


@pytest.mark.parametrize("argv, names", [
    (["representations"], lambda: list_representations()["name"]),
    (["datasets", "list"], lambda: list_datasets()["name"]),
])
def test_other_listings_keep_names_whole_too(narrow, capsys, argv, names):
    code, out, _ = run(argv, capsys)
    assert code == 0 and "…" not in out
    assert set(names()) <= _table_cells(out)


def test_models_csv_and_json_parse_back_to_the_registry(capsys):
    expected = list_models()
    code, out, err = run(["models", "--format", "csv"], capsys)
    assert code == 0 and err == ""
    table = pd.read_csv(io.StringIO(out))
    assert list(table.columns) == list(expected.columns)
    assert list(table["name"]) == list(expected["name"])
    assert list(table["description"]) == list(expected["description"])  # whole, no markup
    ststnet = table.set_index("name").loc["ststnet"]
    assert int(ststnet["parameters"]) == 1683
    code, out, _ = run(["models", "--format", "json"], capsys)
    records = json.loads(out)
    assert [r["name"] for r in records] == list(expected["name"])
    by_name = {r["name"]: r for r in records}
    assert by_name["ststnet"]["parameters"] == 1683
    assert by_name["linear_svm"]["parameters"] is None  # sklearn: no parameter count


def test_representation_defaults_are_data_in_json_and_options_in_the_table(capsys):
    code, out, _ = run(["representations", "--format", "json"], capsys)
    assert code == 0
    flow = {r["name"]: r for r in json.loads(out)}["onset_apex_flow"]
    assert flow["defaults"]["channels"] == ["u", "v", "strain"]
    assert flow["defaults"]["align"] is None
    code, out, _ = run(["representations", "--format", "csv"], capsys)
    row = pd.read_csv(io.StringIO(out)).set_index("name").loc["onset_apex_flow"]
    assert json.loads(row["defaults"])["size"] == flow["defaults"]["size"]
    code, out, _ = run(["representations"], capsys)
    text = " ".join(out.replace("│", " ").split())
    assert "channels=[u, v, strain]" in text  # the --option syntax, not swallowed as markup


def test_datasets_list_machine_formats(capsys):
    code, out, _ = run(["datasets", "list", "--format", "json"], capsys)
    document = json.loads(out)
    assert {d["name"] for d in document["databases"]} >= {"casme2", "samm", "smic"}
    assert "composite3" in {s["name"] for s in document["label_schemes"]}
    code, out, _ = run(["datasets", "list", "--format", "csv"], capsys)
    table = pd.read_csv(io.StringIO(out))
    assert "reads" in table.columns and "casme2" in set(table["name"])


def test_datasets_check_json_is_one_document_with_every_problem(tmp_path, capsys):
    root = make_casme2(tmp_path)
    (root / "CASME2_RAW_selected" / "sub01" / "EP00_01" / "img3.jpg").unlink()
    argv = ["datasets", "check", "casme2", "--root", str(root), "--problems", "0"]
    code, out, _ = run([*argv, "--format", "json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["clips"] == 6 and document["subjects"] == 3
    assert "1 clips excluded" in document["summary"]
    assert sum(r["casme2"] for r in document["class_counts"] if r["emotion"] != "total") == 6
    assert {s["scheme"] for s in document["schemes"]} >= {"composite3", "casme2_5"}
    [problem] = document["problems"]
    assert problem["clip"] == "sub01/EP00_01" and "apex frame 3" in problem["message"]
    code, out, _ = run([*argv, "--format", "csv"], capsys)
    problems = pd.read_csv(io.StringIO(out))
    assert list(problems["clip"]) == ["sub01/EP00_01"] and problems["row"].iloc[0] == 2


def test_unknown_format_names_the_valid_ones(capsys):
    code, out, err = run(["models", "--format", "xml"], capsys)
    assert code == 2 and "table, csv, json" in " ".join(err.split())
    assert "Traceback" not in out + err


def _result(tmp_path):
    predictions = pd.DataFrame({
        "clip": [f"c{i}" for i in range(8)], "subject": ["s1", "s2"] * 4,
        "dataset": ["casme2"] * 4 + ["samm"] * 4, "fold": [0, 1] * 4,
        "y_true": ["negative", "positive"] * 4,
        "y_pred": ["negative", "positive", "positive", "positive"] * 2,
    })
    metrics = compute_metrics(predictions, ["negative", "positive"])
    return EvaluationResult(predictions=predictions, metrics=metrics, config={},
                            out_dir=tmp_path / "res")


def test_result_in_csv_is_the_metrics_alone_on_stdout(tmp_path, capsys):
    result = _result(tmp_path)
    cli._print_result(result, fmt="csv")
    out = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out.out))
    assert list(table["part"]) == ["all", "casme2", "samm"]
    assert table.set_index("part").loc["all", "accuracy"] == pytest.approx(0.75)
    assert "results written to" in out.err and str(tmp_path / "res") in out.err.replace("\n", "")
    cli._print_result(result, fmt="json")
    assert json.loads(capsys.readouterr().out)[0]["n"] == 8


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_and_an_exit_code(monkeypatch, capsys, sig, code):
    def interrupted():
        os.kill(os.getpid(), sig)  # as Ctrl-C or `kill` would, while the command runs
        time.sleep(2)
        raise AssertionError("the signal did not interrupt the command")

    monkeypatch.setattr("microexpr.models.registry.list_models", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    exit_code, out, err = run(["models"], capsys)
    assert exit_code == code
    assert err.strip().startswith("interrupted; finished work is kept")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert signal.getsignal(signal.SIGTERM) == before
