"""The evaluation runner: honesty, recomputable results, determinism, executors."""

import json

import numpy as np
import pandas as pd
import pytest

import microexpr
from microexpr.errors import ConfigError
from microexpr.evaluation.metrics import compute_metrics
from microexpr.evaluation.protocols import loso, make_folds
from microexpr.evaluation.report import load_results


def test_loso_folds_hold_out_exactly_one_subject():
    subjects = ["a/1", "a/1", "b/1", "a/2", "b/1"]
    folds = loso(subjects, ["a", "a", "b", "a", "b"])
    assert [f.held_out for f in folds] == ["a/1", "a/2", "b/1"]
    for fold in folds:
        held = {subjects[i] for i in fold.test}
        assert held == {fold.held_out}
        assert fold.held_out not in {subjects[i] for i in fold.train}
        assert len(fold.train) + len(fold.test) == len(subjects)


def test_lodo_and_unknown_protocol():
    folds = make_folds("lodo", ["a/1", "b/1", "b/2"], ["a", "b", "b"])
    assert [f.held_out for f in folds] == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown protocol"):
        make_folds("kfold", ["a"], ["a"])


def test_noise_with_random_labels_stays_at_chance(noise_manifest, tmp_path):
    result = microexpr.evaluate(noise_manifest, "ststnet", epochs=15, seed=0,
                                out=tmp_path / "res", cache_dir=None, progress=False)
    # 3 balanced-ish random classes: chance UF1 and UAR are about 1/3
    assert abs(result.metrics["uf1"] - 1 / 3) < 0.12
    assert abs(result.metrics["uar"] - 1 / 3) < 0.12


def test_learns_planted_signal(signal_manifest, tmp_path):
    result = microexpr.evaluate(signal_manifest, "ststnet", epochs=30, seed=0,
                                train={"lr": 3e-3, "batch_size": 32},
                                out=tmp_path / "res", cache_dir=None, progress=False)
    assert result.metrics["uf1"] > 0.85


def test_results_dir_is_recomputable(signal_manifest, tmp_path):
    out = tmp_path / "res"
    microexpr.evaluate(signal_manifest, "ststnet", epochs=5, seed=3, out=out, cache_dir=None,
                       progress=False)
    for name in ("config.yaml", "predictions.csv", "metrics.json", "confusion.png",
                 "megc_log.txt"):
        assert (out / name).is_file(), name
    config, predictions, metrics = load_results(out)
    assert compute_metrics(predictions) == metrics
    assert set(metrics) >= {"uf1", "uar", "accuracy", "per_dataset"}
    for part in metrics["per_dataset"].values():
        assert set(part) >= {"uf1", "uar", "accuracy"}
    assert config["train"]["epochs"] == 5 and config["seed"] == 3
    assert config["protocol"] == "loso" and config["n_folds"] == 6
    assert list(predictions.columns[:6]) == ["clip", "subject", "dataset", "fold", "y_true",
                                             "y_pred"]
    probs = predictions[["p_neg", "p_pos", "p_sur"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert json.loads((out / "metrics.json").read_text())["n"] == len(predictions)
    # names are read back as written, even ones pandas would take for missing values
    table = pd.read_csv(out / "predictions.csv", dtype=str)
    table.loc[0, "clip"], table.loc[1, "subject"] = "NA", "null"
    table.to_csv(out / "predictions.csv", index=False)
    _, renamed, _ = load_results(out)
    assert renamed.loc[0, "clip"] == "NA" and renamed.loc[1, "subject"] == "null"
    assert renamed["p_neg"].dtype == np.float64


def test_deterministic_and_same_across_executors(signal_manifest, tmp_path):
    kwargs = dict(epochs=4, seed=7, cache_dir=None, progress=False, write=False)
    first = microexpr.evaluate(signal_manifest, "ststnet", **kwargs)
    again = microexpr.evaluate(signal_manifest, "ststnet", **kwargs)
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    parallel = microexpr.evaluate(signal_manifest, "ststnet", jobs=2, **kwargs)
    assert (parallel.predictions["y_pred"] == first.predictions["y_pred"]).all()
    np.testing.assert_allclose(parallel.predictions["p_neg"], first.predictions["p_neg"],
                               atol=1e-4)


def test_early_stopping_uses_training_subjects_only(signal_manifest, tmp_path):
    result = microexpr.evaluate(signal_manifest, "ststnet", epochs=30, seed=0,
                                train={"early_stopping": True, "patience": 3},
                                cache_dir=None, progress=False, write=False)
    for fold in result.config["folds"]:
        assert 1 <= fold["best_epoch"] <= fold["epochs_run"] <= 30


def test_dataset_without_labels_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="manifest"):
        microexpr.evaluate(tmp_path / "x.txt", "ststnet")
