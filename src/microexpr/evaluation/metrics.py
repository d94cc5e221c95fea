"""Metrics from pooled predictions: UF1 and UAR (MEGC definitions), accuracy, confusion matrix.

Every number is computed from a predictions table (one row per test clip), never averaged
over folds, so `metrics.json` can always be recomputed from `predictions.csv`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PROBABILITY_PREFIX = "p_"


def confusion(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Counts[i, j] = clips of true class i predicted as class j."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for truth, pred in zip(y_true, y_pred, strict=True):
        matrix[index[truth], index[pred]] += 1
    return matrix


def scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict:
    """UF1, UAR, accuracy and per-class F1 / recall / support.

    As in the MEGC 2019 organisers' evaluation code, UF1 = mean over classes of
    2TP / (2TP + FP + FN) and UAR = mean over classes of TP / (TP + FN), with TP/FP/FN counted
    over all the pooled predictions; a class with no true clip in the set is left out of both
    means (its recall is undefined), which matters for per-database breakdowns.
    """
    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    unknown = sorted((set(y_true) | set(y_pred)) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
    matrix = confusion(y_true, y_pred, classes)
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    present = support > 0
    f1 = np.where(present, 2 * tp / np.maximum(support + predicted, 1), np.nan)
    recall = np.where(present, tp / np.maximum(support, 1), np.nan)
    n = len(y_true)
    return {
        "uf1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "uar": float(np.mean(recall[present])) if present.any() else float("nan"),
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        "n": n,
        "per_class": {
            c: {"f1": None if np.isnan(f1[i]) else float(f1[i]),
                "recall": None if np.isnan(recall[i]) else float(recall[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion": matrix.tolist(),
    }


def classes_of(predictions: pd.DataFrame) -> list[str]:
    """Class order recorded in a predictions table by its probability columns."""
    columns = [c for c in predictions.columns if c.startswith(PROBABILITY_PREFIX)]
    if not columns:
        raise ValueError("the predictions table has no p_<class> probability columns")
    return [c[len(PROBABILITY_PREFIX):] for c in columns]


def compute_metrics(predictions: pd.DataFrame, classes: Sequence[str] | None = None) -> dict:
    """All metrics of a predictions table, overall and per dataset."""
    classes = list(classes) if classes is not None else classes_of(predictions)
    y_true = predictions["y_true"].astype(str)
    y_pred = predictions["y_pred"].astype(str)
    overall = scores(y_true, y_pred, classes)
    per_dataset = {}
    for dataset, group in predictions.groupby("dataset", sort=True):
        part = scores(group["y_true"].astype(str), group["y_pred"].astype(str), classes)
        per_dataset[str(dataset)] = {k: part[k] for k in ("uf1", "uar", "accuracy", "n")}
    return {**overall, "classes": classes, "per_dataset": per_dataset}


def megc_log(predictions: pd.DataFrame) -> str:
    """The MEGC organisers' log: per fold a line '<db> <subject>', then '<clip> <truth> <pred>'."""
    lines = []
    for (_, dataset, subject), group in predictions.groupby(["fold", "dataset", "subject"],
                                                          sort=True):
        bare = str(subject).split("/", 1)[-1]
        lines.append(f"{dataset} {bare}")
        for row in group.itertuples(index=False):
            lines.append(f"{row.clip} {row.y_true} {row.y_pred}")
    return "\n".join(lines) + "\n"


def metrics_table(metrics: dict) -> pd.DataFrame:
    """A small table (overall + per dataset) of UF1, UAR, accuracy and clip counts."""
    rows = [{"part": "all", **{k: metrics[k] for k in ("uf1", "uar", "accuracy", "n")}}]
    for name, part in metrics["per_dataset"].items():
        rows.append({"part": name, **part})
    return pd.DataFrame(rows)
