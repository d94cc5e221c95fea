"""Histograms of oriented optical flow (HOOF) and the orientation binning they share.

Orientation convention (all flow features of this package): the angle of a flow vector (u, v)
is measured counter-clockwise from the +x axis with the image's y axis pointing down, i.e.
theta = atan2(-v, u): rightward motion is 0 degrees, upward motion (v < 0) 90 degrees.
With `bins` = C, bin k is centred on k * 360 / C degrees and spans half a bin either side, so
bin 0 holds [-180 / C, 180 / C): motion along an axis stays in one bin under small noise.

A HOOF (Chaudhry et al., CVPR 2009, here over the full circle, without their left-right
mirroring, because facial motion is not left-right symmetric in meaning) adds each pixel's
flow magnitude to its orientation bin and normalises the histogram to sum 1. Zero flow adds
nothing; a region without motion gives an all-zero histogram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from microexpr.errors import ConfigError, InputShapeError
from microexpr.features.blocks import as_grid, grid_labels

MAGNITUDE_STATS = ("mean", "std", "max")


def _check_bins(bins: int) -> int:
    if int(bins) != bins or bins < 2:
        raise ConfigError(f"orientation bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def _check_flow(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if u.shape != v.shape:
        raise InputShapeError(f"flow components differ in shape: u {u.shape}, v {v.shape}")
    return u, v


def orientation_bins(u: np.ndarray, v: np.ndarray, bins: int = 8) -> np.ndarray:
    """The orientation bin (0..bins-1) of every flow vector (see the module notes)."""
    bins = _check_bins(bins)
    u, v = _check_flow(u, v)
    theta = np.arctan2(-v, u)
    width = 2.0 * np.pi / bins
    return (np.floor((theta + width / 2.0) / width).astype(np.int64)) % bins


def _normalise(histograms: np.ndarray) -> np.ndarray:
    totals = histograms.sum(axis=-1, keepdims=True)
    return np.divide(histograms, totals, out=np.zeros_like(histograms), where=totals > 0)


def hoof(u: np.ndarray, v: np.ndarray, bins: int = 8, *, weighted: bool = True,
         normalize: bool = True) -> np.ndarray:
    """(bins,) histogram of the orientations of flow (u, v) (any same-shape arrays).

    `weighted`: each vector adds its magnitude (else 1 for every non-zero vector);
    `normalize`: divide by the sum (an all-zero histogram stays zero).
    """
    u, v = _check_flow(u, v)
    magnitude = np.hypot(u, v)
    weights = magnitude if weighted else (magnitude > 0).astype(np.float64)
    histogram = np.bincount(orientation_bins(u, v, bins).ravel(), weights=weights.ravel(),
                            minlength=bins).astype(np.float64)  # (an empty input gives ints)
    return _normalise(histogram) if normalize else histogram


def block_hoof(u: np.ndarray, v: np.ndarray, blocks=(5, 5), bins: int = 8, *,
               normalize: bool = True) -> np.ndarray:
    """rows x cols x bins magnitude-weighted HOOFs of the blocks of an H x W flow field."""
    u, v = _check_flow(u, v)
    if u.ndim != 2:
        raise InputShapeError(f"block_hoof takes H x W flow components, got {u.shape}")
    rows, cols = as_grid(blocks)
    bins = _check_bins(bins)
    labels = grid_labels(*u.shape, (rows, cols))
    index = labels * bins + orientation_bins(u, v, bins)
    histograms = np.bincount(index.ravel(), weights=np.hypot(u, v).ravel(),
                             minlength=rows * cols * bins).astype(np.float64)
    histograms = histograms.reshape(rows, cols, bins)
    return _normalise(histograms) if normalize else histograms


def magnitude_stats(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(mean, std, max) of the flow magnitude; zeros for an empty region."""
    magnitude = np.hypot(*_check_flow(u, v))
    if magnitude.size == 0:
        return np.zeros(len(MAGNITUDE_STATS))
    return np.array([magnitude.mean(), magnitude.std(), magnitude.max()])


def region_flow_features(flow: np.ndarray, boxes: Sequence[Sequence[int]] | Mapping,
                         bins: int = 8) -> np.ndarray:
    """R x (bins + 3) features of the boxes (x, y, width, height) of an H x W x 2 flow field:
    per box its normalised magnitude-weighted HOOF, then the magnitude's mean, std and max.

    Boxes are clipped to the field; a box left empty gives zeros.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise InputShapeError(f"region_flow_features takes an H x W x 2 flow field, got "
                              f"{flow.shape}")
    bins = _check_bins(bins)
    boxes = list(boxes.values()) if isinstance(boxes, Mapping) else list(boxes)
    height, width = flow.shape[:2]
    rows = []
    for box in boxes:
        x, y, w, h = (int(round(float(b))) for b in box)
        x0, x1 = np.clip((x, x + w), 0, width)
        y0, y1 = np.clip((y, y + h), 0, height)
        u, v = flow[y0:y1, x0:x1, 0], flow[y0:y1, x0:x1, 1]
        rows.append(np.concatenate([hoof(u, v, bins), magnitude_stats(u, v)]))
    return np.stack(rows) if rows else np.zeros((0, bins + len(MAGNITUDE_STATS)))
