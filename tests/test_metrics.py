"""Metrics against hand-computed cases (MEGC UF1/UAR definitions)."""

import numpy as np
import pandas as pd
import pytest

from microexpr.evaluation.metrics import compute_metrics, megc_log, scores


def test_scores_match_hand_computation():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    result = scores(y_true, y_pred, ["a", "b", "c"])
    # F1: a = 4/5, b = 2/4, c = 2/3; recall: a = 2/3, b = 1/2, c = 1
    assert result["uf1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert result["uar"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result["per_class"]["b"] == {"f1": 0.5, "recall": 0.5, "support": 2}


def test_perfect_and_all_wrong():
    assert scores(["x", "y"], ["x", "y"], ["x", "y"])["uf1"] == 1.0
    wrong = scores(["x", "y"], ["y", "x"], ["x", "y"])
    assert wrong["uf1"] == 0.0 and wrong["uar"] == 0.0 and wrong["accuracy"] == 0.0


def test_class_absent_from_truth_is_left_out_like_megc_code():
    # only classes a and b occur in the truth; c is predicted once (a false positive)
    result = scores(["a", "a", "b"], ["a", "c", "b"], ["a", "b", "c"])
    # F1 a = 2/(2+1) , F1 b = 1; c has no recall -> excluded from both means
    assert result["uf1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert result["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["per_class"]["c"]["f1"] is None


def test_majority_class_predictor_has_low_uf1():
    y_true = ["neg"] * 8 + ["pos"] + ["sur"]
    result = scores(y_true, ["neg"] * 10, ["neg", "pos", "sur"])
    assert result["accuracy"] == 0.8
    assert result["uar"] == pytest.approx(1 / 3)
    assert result["uf1"] == pytest.approx((2 * 8 / (16 + 2)) / 3)


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError, match="not among the classes"):
        scores(["a"], ["z"], ["a", "b"])


def _predictions():
    return pd.DataFrame({
        "clip": ["c1", "c2", "c3", "c4"],
        "subject": ["smic/s1", "smic/s1", "casme2/sub01", "casme2/sub02"],
        "dataset": ["smic", "smic", "casme2", "casme2"],
        "fold": [0, 0, 1, 2],
        "y_true": ["a", "b", "a", "b"],
        "y_pred": ["a", "a", "a", "b"],
        "p_a": [0.9, 0.6, 0.7, 0.2],
        "p_b": [0.1, 0.4, 0.3, 0.8],
    })


def test_compute_metrics_pools_and_breaks_down_per_dataset():
    metrics = compute_metrics(_predictions())
    assert metrics["classes"] == ["a", "b"]
    assert metrics["accuracy"] == 0.75
    assert metrics["per_dataset"]["casme2"]["uf1"] == 1.0
    smic = metrics["per_dataset"]["smic"]
    assert smic["accuracy"] == 0.5 and smic["n"] == 2
    assert smic["uf1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert np.array(metrics["confusion"]).sum() == 4


def test_megc_log_format():
    text = megc_log(_predictions()).splitlines()
    assert text[0] == "smic s1"
    assert text[1:3] == ["c1 a a", "c2 b a"]
    assert "casme2 sub01" in text and "c4 b b" in text
