"""The HTML report: one self-contained file rendered from results directories only."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

import microexpr
from microexpr.cli import main
from microexpr.errors import ConfigError
from microexpr.evaluation.html_report import paired_comparison, read_run

FLOW = {"method": "dis"}  # fast flow: both runs read the same cached inputs
KEY = ["dataset", "subject", "clip"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny STSTNet run, a logreg run and a deep_emotion run that saved its fold models,
    on 3 synthetic subjects x 3 classes x 2 clips."""
    tmp = tmp_path_factory.mktemp("report")
    root = microexpr.synthesize(tmp / "db", subjects=3, clips_per_class=2, size=64,
                                progress=False)
    data = microexpr.load_dataset("casme2", root, labels="composite3")
    cache = tmp / "cache"
    common = dict(cache_dir=cache, progress=False)
    microexpr.evaluate(data, "ststnet", epochs=2, representation=FLOW, out=tmp / "ststnet",
                       **common)
    microexpr.evaluate(data, "logreg", representation=FLOW, out=tmp / "logreg", **common)
    microexpr.evaluate(data, "deep_emotion", epochs=1, save_models=True,
                       out=tmp / "deep_emotion", **common)
    return {"ststnet": tmp / "ststnet", "logreg": tmp / "logreg",
            "deep_emotion": tmp / "deep_emotion", "cache": cache}


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory) -> str:
    out = microexpr.report([runs["ststnet"], runs["logreg"]],
                           out=tmp_path_factory.mktemp("page") / "report.html")
    return out.read_text(encoding="utf-8")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def _copy(run: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def test_both_runs_with_their_metrics_and_config(page, runs):
    for name in ("ststnet", "logreg"):
        metrics = _metrics(runs[name])
        assert name in page
        for key in ("uf1", "uar", "accuracy"):
            assert f"<td>{metrics[key]:.4f}</td>" in page
        for dataset, part in metrics["per_dataset"].items():
            assert f"<td>{dataset}</td><td>{part['uf1']:.4f}</td>" in page
    assert "full config.yaml" in page and "<details>" in page
    assert "Training curves" in _section(page, "run-1")  # ststnet: history.csv
    assert "Training curves" not in _section(page, "run-2")  # logreg: one step
    assert "Per-subject accuracy" in page and "casme2/sub01" in page


def test_comparison_is_sorted_by_uf1_and_marks_the_linear_baseline(page, runs):
    comparison = _section(page, "comparison")
    table = comparison[:comparison.index("</table>")]
    rows = re.findall(r"<tr( class=\"baseline\")?><td>(\d+)</td><td><a href=\"#run-\d\">"
                      r"(\w+)</a>", table)
    order = [name for _, _, name in rows]
    by_uf1 = sorted(["ststnet", "logreg"], key=lambda n: -_metrics(runs[n])["uf1"])
    assert order == by_uf1
    marked = {name for css, _, name in rows if css}
    assert marked == {"logreg"}
    logreg_row = table[table.index('href="#run-2"'):]
    assert "linear baseline" in logreg_row[:logreg_row.index("</tr>")]


def test_paired_counts_match_a_hand_count(page, runs):
    a = pd.read_csv(runs["ststnet"] / "predictions.csv", dtype=str)
    b = pd.read_csv(runs["logreg"] / "predictions.csv", dtype=str)
    both = a.merge(b, on=KEY, suffixes=("_a", "_b"))
    right_a = both["y_pred_a"] == both["y_true_a"]
    right_b = both["y_pred_b"] == both["y_true_b"]
    expected = {"both": int((right_a & right_b).sum()), "only_a": int((right_a & ~right_b).sum()),
                "only_b": int((~right_a & right_b).sum()),
                "neither": int((~right_a & ~right_b).sum())}
    paired = paired_comparison(read_run(runs["ststnet"]), read_run(runs["logreg"]))
    assert {k: getattr(paired, k) for k in expected} == expected
    assert paired.shared == sum(expected.values()) == len(a) == 18
    discordant = expected["only_a"] + expected["only_b"]
    p = binomtest(expected["only_a"], discordant, 0.5).pvalue if discordant else 1.0
    assert paired.p_value == pytest.approx(p)
    # in the page, the better run is A
    first, second = sorted(["ststnet", "logreg"], key=lambda n: -_metrics(runs[n])["uf1"])
    counts = ((expected["only_a"], expected["only_b"]) if first == "ststnet"
              else (expected["only_b"], expected["only_a"]))
    row = (f"<td>{first}</td><td>{second}</td><td>18</td><td>{counts[0]}</td>"
           f"<td>{counts[1]}</td><td>{expected['both']}</td><td>{expected['neither']}</td>")
    assert row in page


def test_the_page_is_self_contained(page):
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 7  # confusion, F1, subjects per run, curves
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert 'src="http' not in page and 'href="http' not in page and "<script" not in page
    assert "<style>" in page and "<link" not in page
    assert len(page) < 400_000


def test_clips_are_matched_by_subject_and_clip(runs, tmp_path):
    """Clip names repeat across subjects in real databases: pairs must match on both, and
    runs that do not share every clip are compared on the shared ones, with a note."""
    copies = [_copy(runs[n], tmp_path, n) for n in ("ststnet", "logreg")]
    for run in copies:  # "sub01/EP01_01" -> "EP01_01": several subjects have an EP01_01
        predictions = pd.read_csv(run / "predictions.csv", dtype=str)
        predictions["clip"] = predictions["clip"].str.split("/").str[-1]
        assert predictions["clip"].duplicated().any()
        predictions.to_csv(run / "predictions.csv", index=False)
    full = paired_comparison(read_run(copies[0]), read_run(copies[1]))
    assert full.shared == 18 and not full.notes
    predictions = pd.read_csv(copies[1] / "predictions.csv", dtype=str)
    predictions.iloc[:-4].to_csv(copies[1] / "predictions.csv", index=False)
    part = paired_comparison(read_run(copies[0]), read_run(copies[1]))
    assert part.shared == 14 == part.both + part.only_a + part.only_b + part.neither
    assert any("not the same clips" in n for n in part.notes)
    html = microexpr.report(copies, out=tmp_path / "r.html").read_text()
    assert "not the same clips" in html


def test_an_old_run_without_some_files_still_renders(runs, tmp_path):
    old = _copy(runs["ststnet"], tmp_path, "old")
    (old / "history.csv").unlink()
    html = microexpr.report(old, out=tmp_path / "a.html").read_text()
    assert "Training curves" in html and "read from folds/" in html
    shutil.rmtree(old / "folds")
    (old / "metrics.json").unlink()
    html = microexpr.report(old, out=tmp_path / "b.html").read_text()
    assert "no training curves" in html and "Training curves" not in html
    assert "recomputed from predictions.csv" in html
    assert f"{_metrics(runs['ststnet'])['uf1']:.4f}" in html
    (old / "config.yaml").unlink()
    html = microexpr.report(old, out=tmp_path / "c.html").read_text()
    assert "configuration is unknown" in html


def test_nan_metrics_one_class_a_single_fold_and_strange_names(tmp_path):
    """Every string from the files is escaped; undefined metrics read n/a."""
    run = tmp_path / "hand-made"
    run.mkdir()
    config = {"model": {"name": "<script>alert(1)</script>", "params": {}}, "train": {},
              "classes": ["négatif"], "protocol": "loso", "n_folds": 1,
              "data": {"kind": "dataset", "name": "casme2", "root": str(tmp_path / "gone")}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    pd.DataFrame({"clip": ["клип_1", "клип_2"], "subject": ["casme2/süb<1>"] * 2,
                  "dataset": ["casme2"] * 2, "fold": [0, 0], "y_true": ["négatif"] * 2,
                  "y_pred": ["négatif"] * 2, "p_négatif": [1.0, 1.0]}).to_csv(
        run / "predictions.csv", index=False)
    metrics = {"uf1": None, "uar": None, "accuracy": 1.0, "n": 2,
               "per_class": {"négatif": {"f1": None, "recall": None, "support": 2}},
               "confusion": [[2]], "classes": ["négatif"],
               "per_dataset": {"casme2": {"uf1": None, "uar": None, "accuracy": 1.0, "n": 2}},
               "auxiliary": {"flow_epe": 0.5, "flow_epe_zero": 0.8, "landmark_nme": 0.2,
                             "landmark_nme_mean_shape": 0.1, "n": 2}}
    (run / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False))
    pd.DataFrame({"fold": [0, 0], "epoch": [1, 2], "train_loss": [1.0, float("nan")]}).to_csv(
        run / "history.csv", index=False)
    pd.DataFrame({"severity": ["info"], "dataset": ["casme2"], "clip": ["<odd>"],
                  "message": ["emotion 'others' is not in the scheme"]}).to_csv(
        run / "problems.csv", index=False)
    html = microexpr.report(run, out=tmp_path / "r.html").read_text(encoding="utf-8")
    assert "problems.csv: 1 info" in html and "&lt;odd&gt;" in html
    aux = html[html.index("Auxiliary metrics"):]
    assert "<td>flow_epe</td><td>0.5000</td>" in aux and "<td>beats it</td>" in aux
    assert "<td>does not beat it</td>" in aux  # landmarks: worse than the mean shape
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "casme2/süb&lt;1&gt;" in html and "négatif" in html
    assert "<td>n/a</td>" in html and "one thin line per fold (1)" in html


def test_attention_maps_of_saved_fold_models(runs, tmp_path):
    html = microexpr.report(runs["deep_emotion"], out=tmp_path / "a.html",
                            cache_dir=runs["cache"]).read_text()
    section = html[html.index("<h3>Attention maps</h3>"):]
    assert section.count("data:image/png;base64,") == 3  # a figure per class
    predictions = pd.read_csv(runs["deep_emotion"] / "predictions.csv", dtype=str)
    shown = re.findall(r"<li>(\S+), clip (\S+): true (\w+)", section)
    assert len(shown) == 6
    for subject, clip, label in shown:
        row = predictions[(predictions["subject"] == subject) & (predictions["clip"] == clip)]
        assert row["y_true"].tolist() == [label]
    unsaved = _copy(runs["deep_emotion"], tmp_path, "unsaved")
    shutil.rmtree(unsaved / "models")
    html = microexpr.report(unsaved, out=tmp_path / "b.html").read_text()
    assert "did not save its models" in html


def test_cli_writes_the_report(runs, tmp_path, capsys):
    out = tmp_path / "sub" / "report.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(runs["ststnet"]), str(runs["logreg"]), "--out", str(out)])
    assert exit_info.value.code in (0, None)
    assert out.is_file() and "report of 2 runs" in capsys.readouterr().out


def test_a_bad_directory_is_a_clear_error(runs, tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(runs["logreg"]), str(missing), "--out", str(tmp_path / "r.html")])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2 and str(missing) in err and "does not exist" in err
    empty = tmp_path / "empty"
    (empty / "folds").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a results directory.*--resume"):
        microexpr.report(empty, out=tmp_path / "r.html")
    broken = _copy(runs["logreg"], tmp_path, "broken")
    (broken / "metrics.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"metrics\.json cannot be read"):
        microexpr.report(broken, out=tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_evaluate_writes_its_report_next_to_its_files(runs):
    for name in ("ststnet", "logreg", "deep_emotion"):
        html = (runs[name] / "report.html").read_text()
        assert html.startswith("<!DOCTYPE html>") and name in html
        assert f"<td>{_metrics(runs[name])['uf1']:.4f}</td>" in html
