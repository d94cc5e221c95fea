"""Metrics of a model's auxiliary predictions on the test clips (MOL's flow and landmarks),
each next to the trivial baseline it must beat: zero flow, the training mean shape.

`fold_auxiliary` scores one fold from the network's outputs (in the coordinates of the crop
it took, `crop_offsets`) and the targets; `pool_auxiliary` pools the folds weighted by their
number of test clips. Both work on plain numpy arrays of the runner's targets:
"flow" N x P x H x W x 2 (input pixels), "landmarks" N x T x 68 x 2 (input pixels).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from microexpr.training.losses import LEFT_EYE, RIGHT_EYE


def crop_flows(target: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """N x P x 2 x size x size windows of N x P x H x W x 2 flows at (top, left) offsets."""
    out = np.empty((len(target), target.shape[1], 2, size, size), dtype=np.float64)
    for i, (top, left) in enumerate(np.asarray(offsets, dtype=int)):
        window = target[i, :, top:top + size, left:left + size, :]
        out[i] = np.moveaxis(window, -1, 1)
    return out


def _inter_ocular(points: np.ndarray) -> np.ndarray:
    left = points[..., LEFT_EYE, :].mean(axis=-2)
    right = points[..., RIGHT_EYE, :].mean(axis=-2)
    return np.maximum(np.linalg.norm(left - right, axis=-1), 1.0)


def _nme(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean over points of the Euclidean error divided by the inter-ocular distance."""
    error = np.linalg.norm(predicted - truth, axis=-1)  # ... x K
    return float(np.mean(error / _inter_ocular(truth)[..., None]))


def fold_auxiliary(outputs: Mapping[str, np.ndarray], test_targets: Mapping[str, np.ndarray],
                   train_targets: Mapping[str, np.ndarray]) -> dict[str, float]:
    """flow_epe / flow_epe_zero and landmark_nme / landmark_nme_mean_shape of one fold's
    test clips (only those the network predicts), plus their count `n`."""
    n = len(outputs["logits"])
    offsets = np.asarray(outputs.get("crop_offsets", np.zeros((n, 2))), dtype=int)
    scores: dict[str, float] = {"n": float(n)}
    if "flow" in outputs and "flow" in test_targets:
        predicted = np.asarray(outputs["flow"], dtype=np.float64)
        truth = crop_flows(np.asarray(test_targets["flow"]), offsets, predicted.shape[-1])
        scores["flow_epe"] = float(np.mean(np.linalg.norm(predicted - truth, axis=2)))
        scores["flow_epe_zero"] = float(np.mean(np.linalg.norm(truth, axis=2)))
    if "landmarks" in outputs and "landmarks" in test_targets:
        predicted = np.asarray(outputs["landmarks"], dtype=np.float64)
        frames = predicted.shape[1]
        shift = offsets[:, [1, 0]][:, None, None, :]  # (left, top) = (x, y)
        truth = np.asarray(test_targets["landmarks"], dtype=np.float64)[:, -frames:] - shift
        mean_shape = np.asarray(train_targets["landmarks"], dtype=np.float64)[:, -frames:]
        mean_shape = mean_shape.mean(axis=0)[None] - shift
        scores["landmark_nme"] = _nme(predicted, truth)
        scores["landmark_nme_mean_shape"] = _nme(np.broadcast_to(mean_shape, truth.shape),
                                                 truth)
    return scores


def pool_auxiliary(folds: list[Mapping[str, float]]) -> dict[str, float]:
    """The folds' scores averaged with their test-clip counts as weights (empty: {})."""
    folds = [f for f in folds if f]
    if not folds:
        return {}
    total = sum(f["n"] for f in folds)
    keys = sorted({k for f in folds for k in f} - {"n"})
    pooled = {k: float(sum(f[k] * f["n"] for f in folds if k in f)
                       / sum(f["n"] for f in folds if k in f)) for k in keys}
    return {**pooled, "n": int(total)}
