"""Bi-WOOF: bi-weighted oriented optical flow histograms of an onset -> apex flow field.

Liong, See, Wong, Phan, "Less is more: micro-expression recognition from video using apex
frame", Signal Processing: Image Communication 62, 2018 (authors' code: biwoof.m).

From the flow (u, v) between onset and apex and its optical strain magnitude e:

1. the field is cut into a rows x cols grid of blocks (5 x 5 by default, as the authors'
   code; `features.blocks` for the exact split);
2. local weighting: per block, a histogram of flow orientations over `bins` bins (8) in which
   each pixel adds its flow magnitude, normalised to sum 1 (`hoof.block_hoof`);
3. global weighting: each block's histogram is multiplied by the block's mean optical strain
   (the authors' code uses the block's strain sum; with equal blocks that is the mean times a
   constant, and the mean does not favour the slightly larger blocks);
4. the histograms are concatenated in block-row, block-column, bin order and the vector is
   L2-normalised (as in the authors' code): rows * cols * bins values, 200 for 5 x 5 x 8.

Orientation bins follow `features.hoof`: bin k is centred on k * 360 / bins degrees (theta =
atan2(-v, u), rightward 0, upward 90). The authors' bins start at -180 degrees instead
([-180, -135), ..., [0, 45), ...); centred bins keep motion along an axis in one bin.
"""

from __future__ import annotations

import numpy as np

from microexpr.errors import InputShapeError
from microexpr.features.blocks import as_grid, grid_labels
from microexpr.features.hoof import block_hoof


def bi_woof(u: np.ndarray, v: np.ndarray, strain: np.ndarray, blocks=(5, 5), bins: int = 8,
            *, l2_normalize: bool = True) -> np.ndarray:
    """rows x cols x bins Bi-WOOF histograms of one H x W flow field with its strain."""
    u, v, strain = (np.asarray(a, dtype=np.float64) for a in (u, v, strain))
    if not u.shape == v.shape == strain.shape or u.ndim != 2:
        raise InputShapeError(f"Bi-WOOF takes u, v and strain maps of one H x W shape, got "
                              f"{u.shape}, {v.shape}, {strain.shape}")
    rows, cols = as_grid(blocks)
    if u.shape[0] < rows or u.shape[1] < cols:
        raise InputShapeError(f"a {u.shape[0]}x{u.shape[1]} flow field cannot be cut into "
                              f"{rows}x{cols} blocks; compute the flow at a larger size")
    local = block_hoof(u, v, (rows, cols), bins, normalize=True)
    labels = grid_labels(*u.shape, (rows, cols)).ravel()
    sums = np.bincount(labels, weights=strain.ravel(), minlength=rows * cols)
    counts = np.bincount(labels, minlength=rows * cols)
    weights = (sums / np.maximum(counts, 1)).reshape(rows, cols, 1)
    histograms = local * weights
    if l2_normalize:
        norm = np.linalg.norm(histograms)
        histograms = histograms / norm if norm > 0 else histograms
    return histograms


def bi_woof_features(maps: np.ndarray, blocks=(5, 5), bins: int = 8, *,
                     l2_normalize: bool = True) -> np.ndarray:
    """N x (rows * cols * bins) Bi-WOOF features of N x H x W x 3 maps (u, v, strain)."""
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[-1] != 3:
        raise InputShapeError(f"Bi-WOOF takes N x H x W x 3 maps (u, v, strain), got shape "
                              f"{maps.shape}")
    rows, cols = as_grid(blocks)
    out = [bi_woof(m[..., 0], m[..., 1], m[..., 2], (rows, cols), bins,
                   l2_normalize=l2_normalize).ravel() for m in maps]
    return np.stack(out).astype(np.float32) if out else np.zeros(
        (0, rows * cols * bins), np.float32)
