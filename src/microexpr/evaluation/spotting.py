"""The MEGC spotting metric and the spot-then-recognise score (STRS), from interval tables.

Inputs are plain DataFrames with one row per interval, frame numbers as inclusive bounds:

- truth: `video`, `onset`, `offset`, and `kind` ("micro" / "macro") for the per-kind results
  (`LongVideoDataset.intervals` is one); `emotion` (or the `labels` column) for STRS;
- predictions: `video`, `onset`, `offset`; optionally `kind` (which spotter or class of
  interval it is) and the predicted class in the `labels` column, for STRS.

A `dataset` column in both tables is part of the video key (so several databases can be scored
at once); a table without it is keyed by `video` alone.

The metric (MEGC 2019-2023): a prediction is a hit (true positive) for a ground-truth interval
when IoU = |intersection| / |union| >= `iou` (0.5), counted in frames with inclusive bounds
(`[10, 19]` is 10 frames). Each ground truth is matched at most once and each prediction at
most once; the other predictions are false positives and the unmatched ground truths false
negatives. Which pairs are matched, when one prediction could hit two ground truths (a micro
inside a macro, say) or two predictions the same one:

- `method="optimal"` (default): the most hits possible (a maximum bipartite matching), ties
  broken by the largest total IoU. The counts do not depend on the order of the rows.
- `method="greedy"`: eligible pairs taken by IoU, highest first (ties: earlier prediction row,
  then earlier ground-truth row), each side once; never more hits than "optimal", sometimes fewer.

With a `kind` column in the predictions, micro predictions are matched against micro ground
truth and macro against macro; without one, every prediction is matched against every ground
truth of its video, and the per-kind results count only hits and misses by the ground truth's
kind (their false positives, precision and F1 are undefined: None / NaN).

TP, FP and FN are summed over all videos, then P = TP / (TP + FP), R = TP / (TP + FN) and
F1 = 2 TP / (2 TP + FP + FN) (= 2PR / (P + R)), per kind and overall (counts pooled over the
kinds). A ratio whose denominator is 0 is NaN, never a silent 0: no predictions gives P NaN,
R 0, F1 0; no ground truth gives R NaN, P 0 (or NaN), F1 0 (or NaN when nothing is predicted
either). Checked against the MEGC 2020 baseline on CAS(ME)^2: TP 130, FP 6428 and 357 ground
truths give P .0198, R .3641, F1 .0376.

STRS (MEGC 2023): the spotting F1 times the analysis F1, the F1 of recognising the emotion of
the spotted hits. Here the analysis F1 is the MEGC recognition F1 (UF1,
`microexpr.evaluation.metrics.scores`) of the hits' predicted classes against their ground
truths' classes: the mean over classes (those with at least one hit) of 2 TP_c / (2 TP_c +
FP_c + FN_c). False positives and misses are left out of it, since the spotting F1 already
counts them. Hits whose ground truth has no class are left out and counted. STRS is 0 when the
spotting F1 is 0, NaN when it is NaN. It is given per kind and overall (the overall spotting
F1 times the analysis F1 of all hits).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from microexpr.data.cells import is_blank
from microexpr.evaluation.metrics import scores

__all__ = [
    "KINDS",
    "METHODS",
    "interval_iou",
    "iou_matrix",
    "match_intervals",
    "match_spots",
    "precision_recall_f1",
    "spotting_counts",
    "spotting_metrics",
]

KINDS: tuple[str, ...] = ("micro", "macro")
METHODS: tuple[str, ...] = ("optimal", "greedy")
Interval = tuple[int, int]


def interval_iou(a: Interval, b: Interval) -> float:
    """IoU of two frame intervals with inclusive bounds: [10, 19] and [15, 24] share 5 of 15
    frames -> 1/3."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def iou_matrix(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(n, m) IoU of n predicted and m true intervals, each an (k, 2) array of inclusive
    [onset, offset] frame numbers."""
    p = np.asarray(predicted, dtype=np.int64).reshape(-1, 2)
    t = np.asarray(truth, dtype=np.int64).reshape(-1, 2)
    inter = (np.minimum(p[:, 1:2], t[:, 1]) - np.maximum(p[:, 0:1], t[:, 0]) + 1).clip(min=0)
    union = (p[:, 1:2] - p[:, 0:1] + 1) + (t[:, 1] - t[:, 0] + 1) - inter
    return inter / np.maximum(union, 1)


def _as_array(intervals: pd.DataFrame | Sequence[Interval] | np.ndarray, what: str) -> np.ndarray:
    """(k, 2) int64 array of [onset, offset] from a table with those columns or pairs."""
    if isinstance(intervals, pd.DataFrame):
        missing = [c for c in ("onset", "offset") if c not in intervals.columns]
        if missing:
            raise ValueError(f"{what} lack the columns {missing}")
        values = intervals[["onset", "offset"]].to_numpy()
    else:
        values = np.asarray(list(intervals) if not isinstance(intervals, np.ndarray)
                            else intervals, dtype=object).reshape(-1, 2)
    try:
        as_float = values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} have onsets or offsets that are not frame numbers") from None
    bad = ~np.isfinite(as_float).all(axis=1) | (as_float != np.round(as_float)).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} row {i} has onset/offset {list(values[i])}, not whole frame "
                         f"numbers")
    array = as_float.astype(np.int64)
    reversed_ = array[:, 0] > array[:, 1]
    if reversed_.any():
        i = int(np.flatnonzero(reversed_)[0])
        raise ValueError(f"{what} row {i} has onset {array[i, 0]} after offset {array[i, 1]}")
    return array


def match_intervals(
    predicted: pd.DataFrame | Sequence[Interval] | np.ndarray,
    truth: pd.DataFrame | Sequence[Interval] | np.ndarray,
    iou: float = 0.5,
    *,
    method: str = "optimal",
) -> list[tuple[int, int, float]]:
    """The hits among the intervals of one video: (prediction position, truth position, IoU)
    for every matched pair with IoU >= `iou`, sorted by prediction position. Each prediction and
    each ground truth is in at most one pair; `method` "optimal" or "greedy" (module docs)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou}")
    p = _as_array(predicted, "predictions")
    t = _as_array(truth, "ground-truth intervals")
    if not len(p) or not len(t):
        return []
    overlap = iou_matrix(p, t)
    eligible = overlap >= iou - 1e-12
    if not eligible.any():
        return []
    if method == "greedy":
        rows, cols = np.nonzero(eligible)
        order = np.lexsort((cols, rows, -overlap[rows, cols]))
        used_p: set[int] = set()
        used_t: set[int] = set()
        pairs = []
        for k in order:
            i, j = int(rows[k]), int(cols[k])
            if i not in used_p and j not in used_t:
                used_p.add(i)
                used_t.add(j)
                pairs.append((i, j, float(overlap[i, j])))
        return sorted(pairs)
    rows = np.flatnonzero(eligible.any(axis=1))
    cols = np.flatnonzero(eligible.any(axis=0))
    sub = eligible[np.ix_(rows, cols)]
    # A hit is worth more than any sum of IoUs, so the most hits win, then the largest IoU.
    weight = np.where(sub, min(len(rows), len(cols)) + 1.0 + overlap[np.ix_(rows, cols)], 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    return sorted((int(rows[i]), int(cols[j]), float(overlap[rows[i], cols[j]]))
                  for i, j in zip(r, c, strict=True) if sub[i, j])


# ----------------------------------------------------------------------------- tables
def _keys(predictions: pd.DataFrame, truth: pd.DataFrame) -> list[str]:
    """The video key: dataset and video when both tables have a dataset column."""
    for name, table in (("predictions", predictions), ("truth", truth)):
        if "video" not in table.columns and len(table):
            raise ValueError(f"the {name} table has no 'video' column (its columns: "
                             f"{list(table.columns)})")
    both = "dataset" in predictions.columns and "dataset" in truth.columns
    if not both and "dataset" in truth.columns and truth["dataset"].nunique() > 1:
        raise ValueError("the truth spans several datasets but the predictions have no "
                         "'dataset' column; add it so videos of different datasets are told "
                         "apart")
    return ["dataset", "video"] if both else ["video"]


def _check_kinds(table: pd.DataFrame, name: str) -> None:
    unknown = sorted(set(table["kind"].astype(str)) - set(KINDS))
    if unknown:
        raise ValueError(f"the {name} table has kinds {unknown}; kinds are {', '.join(KINDS)}")


def match_spots(
    predictions: pd.DataFrame,
    truth: pd.DataFrame,
    iou: float = 0.5,
    *,
    method: str = "optimal",
    labels: str = "emotion",
) -> pd.DataFrame:
    """Every prediction and every ground truth with its outcome, over all videos.

    One row per prediction ("tp" or "fp") and per unmatched ground truth ("fn"): the video key,
    `kind` (the ground truth's for tp / fn, the prediction's for fp, "" when unknown),
    `outcome`, `prediction` and `truth` (index labels in the input tables, <NA> when none),
    `iou`, and, when both tables have the `labels` column, `true_label` and `predicted_label`.
    Counts, metrics and STRS are all computed from this table.
    """
    predictions = _frame(predictions)
    truth = _frame(truth)
    keys = _keys(predictions, truth)
    typed = "kind" in predictions.columns and "kind" in truth.columns
    if "kind" in truth.columns:
        _check_kinds(truth, "truth")
    if "kind" in predictions.columns:
        _check_kinds(predictions, "predictions")
    labelled = labels in predictions.columns and labels in truth.columns
    groups = ["kind"] if typed else []
    rows: list[dict] = []
    pred_groups = dict(iter(predictions.groupby(keys + groups, sort=False, dropna=False)))
    truth_groups = dict(iter(truth.groupby(keys + groups, sort=False, dropna=False)))
    for key in list(dict.fromkeys([*pred_groups, *truth_groups])):
        p = pred_groups.get(key, predictions.iloc[:0])
        t = truth_groups.get(key, truth.iloc[:0])
        pairs = match_intervals(p, t, iou, method=method)
        key_values = dict(zip(keys + groups, key if isinstance(key, tuple) else (key,),
                              strict=True))
        video = {k: key_values[k] for k in keys}
        hit_of = {i: (j, value) for i, j, value in pairs}
        matched = {j for _, j, _ in pairs}
        for i, (index, row) in enumerate(p.iterrows()):
            if i in hit_of:
                j, value = hit_of[i]
                true_row = t.iloc[j]
                kind = str(true_row["kind"]) if "kind" in t.columns else ""
                record = {**video, "kind": kind, "outcome": "tp", "prediction": index,
                          "truth": t.index[j], "iou": value}
                if labelled:
                    record.update(true_label=true_row[labels], predicted_label=row[labels])
            else:
                kind = str(row["kind"]) if "kind" in p.columns else ""
                record = {**video, "kind": kind, "outcome": "fp", "prediction": index,
                          "truth": pd.NA, "iou": np.nan}
                if labelled:
                    record.update(true_label=None, predicted_label=row[labels])
            rows.append(record)
        for j, (index, row) in enumerate(t.iterrows()):
            if j in matched:
                continue
            kind = str(row["kind"]) if "kind" in t.columns else ""
            record = {**video, "kind": kind, "outcome": "fn", "prediction": pd.NA,
                      "truth": index, "iou": np.nan}
            if labelled:
                record.update(true_label=row[labels], predicted_label=None)
            rows.append(record)
    columns = [*keys, "kind", "outcome", "prediction", "truth", "iou"]
    columns += ["true_label", "predicted_label"] if labelled else []
    table = pd.DataFrame(rows, columns=columns)
    table.attrs.update(iou=iou, method=method, typed=typed, labels=labels if labelled else None)
    return table


def _frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table, or an empty one with the needed columns for an empty frame without any."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a DataFrame of intervals, got {type(table).__name__}")
    if table.empty and not len(table.columns):
        return pd.DataFrame(columns=["video", "onset", "offset"])
    return table


def spotting_counts(
    predictions: pd.DataFrame, truth: pd.DataFrame, iou: float = 0.5, *,
    method: str = "optimal",
) -> pd.DataFrame:
    """TP, FP and FN per video and kind (one row each): `tp`, `fp`, `fn` columns after the
    video key and `kind`. Sum them for pooled counts."""
    spots = match_spots(predictions, truth, iou, method=method)
    keys = [c for c in ("dataset", "video") if c in spots.columns]
    flags = spots.assign(**{o: spots["outcome"].eq(o).astype("int64") for o in ("tp", "fp", "fn")})
    counts = flags.groupby([*keys, "kind"], sort=True)[["tp", "fp", "fn"]].sum()
    return counts.reset_index()


def precision_recall_f1(tp: int, fp: int | None, fn: int) -> dict:
    """Counts and P, R, F1 (module docs: a zero denominator gives NaN; F1 = 2TP/(2TP+FP+FN)).
    `fp` None (unknown) makes precision and F1 NaN."""
    nan = float("nan")
    precision = nan if fp is None or tp + fp == 0 else tp / (tp + fp)
    recall = nan if tp + fn == 0 else tp / (tp + fn)
    f1 = nan if fp is None or tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return {"tp": int(tp), "fp": None if fp is None else int(fp), "fn": int(fn),
            "n_true": int(tp + fn), "n_predicted": None if fp is None else int(tp + fp),
            "precision": precision, "recall": recall, "f1": f1}


def _analysis(hits: pd.DataFrame, classes: Sequence[str] | None) -> dict:
    """The recognition F1 (UF1) of the hits' predicted classes against their true classes."""
    labelled = hits[~hits["true_label"].map(is_blank)]
    unlabelled = len(hits) - len(labelled)
    if labelled.empty:
        return {"f1": float("nan"), "hits": 0, "unlabelled_hits": unlabelled, "classes": []}
    y_true = labelled["true_label"].astype(str).tolist()
    y_pred = labelled["predicted_label"].fillna("").astype(str).tolist()
    names = list(classes) if classes is not None else sorted(set(y_true) | set(y_pred))
    result = scores(y_true, y_pred, names)
    return {"f1": result["uf1"], "hits": len(labelled), "unlabelled_hits": unlabelled,
            "classes": names}


def spotting_metrics(
    predictions: pd.DataFrame,
    truth: pd.DataFrame,
    iou: float = 0.5,
    *,
    method: str = "optimal",
    labels: str = "emotion",
    classes: Sequence[str] | None = None,
) -> dict:
    """The MEGC spotting results: {"overall", "micro", "macro"} each with tp, fp, fn, n_true,
    n_predicted, precision, recall, f1 (counts summed over all videos; "overall" pools the
    kinds), plus "strs" when both tables have the `labels` column (module docs).

    `classes` fixes the class list of the analysis F1 (default: the classes seen among the
    hits). The per-kind entries are present when the truth has a `kind` column.
    """
    spots = match_spots(predictions, truth, iou, method=method, labels=labels)
    typed = spots.attrs["typed"]
    outcome = spots["outcome"]
    result: dict = {"iou": iou, "method": method, "typed_predictions": typed,
                    "overall": precision_recall_f1(int((outcome == "tp").sum()),
                                                   int((outcome == "fp").sum()),
                                                   int((outcome == "fn").sum()))}
    has_kinds = "kind" in _frame(truth).columns
    if has_kinds:
        for kind in KINDS:
            part = spots[spots["kind"] == kind]["outcome"]
            fp = int((part == "fp").sum()) if typed else None
            result[kind] = precision_recall_f1(int((part == "tp").sum()), fp,
                                               int((part == "fn").sum()))
    if spots.attrs["labels"] is not None:
        hits = spots[outcome == "tp"]
        strs = {}
        for part in (["overall", *KINDS] if has_kinds else ["overall"]):
            chosen = hits if part == "overall" else hits[hits["kind"] == part]
            analysis = _analysis(chosen, classes)
            spotting_f1 = result[part]["f1"]
            if np.isnan(spotting_f1):
                value = float("nan")
            elif spotting_f1 == 0:
                value = 0.0
            else:
                value = spotting_f1 * analysis["f1"]
            strs[part] = {"spotting_f1": spotting_f1, "analysis_f1": analysis["f1"],
                          "strs": value, "hits": analysis["hits"],
                          "unlabelled_hits": analysis["unlabelled_hits"],
                          "classes": analysis["classes"]}
        result["strs"] = strs
    return result
