"""LBP-TOP: local binary patterns on three orthogonal planes (XY, XT, YT) of a gray volume.

Zhao & Pietikäinen, "Dynamic texture recognition using local binary patterns with an
application to facial expressions", IEEE TPAMI 29(6), 2007.

For every centre voxel c = (t, y, x) and every plane, P neighbours on an ellipse around c are
compared with c (s = 1 when the neighbour is >= the centre, Ojala's convention) and the bits
make the code sum_p s_p 2^p. Neighbour p sits at angle a_p = 2 pi p / P, at these offsets
(dt, dy, dx), with the radii (R_X, R_Y, R_T) (the sampling order of the authors' LBPTOP.m):

    XY:  (0,               -R_Y sin a_p,  R_X cos a_p)
    XT:  (R_T sin a_p,      0,            R_X cos a_p)
    YT:  (R_T cos a_p,     -R_Y sin a_p,  0)

Neighbours off the voxel grid are read by bilinear interpolation between the (at most four)
surrounding voxels of their plane; with P = 4 and integer radii (the MEGC baseline) every
neighbour is on the grid, so the codes are exact. All planes use the same centres: the voxels
at least ceil(R) from each border (t in [R_T, T - R_T), ...), so a T = 10 clip with R_T = 4
has two centre frames. The whole computation is a handful of shifted-array comparisons.

Histograms: the image is cut into a rows x cols grid of blocks (`features.blocks`); each
centre counts in the block holding its (y, x). Per block and plane one histogram of the
codes, mapped by `mapping`:

- "uniform" (default, Ojala's u2): each code whose circular bit string has at most two 0/1
  transitions gets its own bin, in increasing code order, and all other codes share the last
  bin: P (P - 1) + 3 bins (15 for P = 4, where only 0101 and 1010 are non-uniform);
- "basic": one bin per code, 2^P bins (16 for P = 4).

Each histogram is normalised to sum 1 (a block without centres stays zero). The feature vector
is the concatenation in block-row, block-column, plane (XY, XT, YT), bin order: for the MEGC
baseline (5 x 5 blocks, P = 4, uniform) 5 * 5 * 3 * 15 = 1125 values.
"""

from __future__ import annotations

import numpy as np

from microexpr.errors import ConfigError, InputShapeError
from microexpr.features.blocks import as_grid, grid_labels

PLANES = ("XY", "XT", "YT")
MAPPINGS = ("uniform", "basic")
_SNAP = 1e-9  # offsets this close to an integer are read without interpolation


def _triple(value, name: str, cast=float) -> tuple:
    values = (value,) * 3 if np.isscalar(value) else tuple(value)
    if len(values) != 3:
        raise ConfigError(f"{name} must be one value or three (X, Y, T / XY, XT, YT), got "
                          f"{value!r}")
    return tuple(cast(v) for v in values)


def check_params(radii, neighbours, mapping: str) -> tuple[tuple, tuple]:
    """(radii (R_X, R_Y, R_T), neighbours (P_XY, P_XT, P_YT)) validated."""
    radii = _triple(radii, "radii")
    neighbours = _triple(neighbours, "neighbours", int)
    if min(radii) <= 0:
        raise ConfigError(f"LBP-TOP radii must be > 0, got {radii}")
    if not all(2 <= p <= 16 for p in neighbours):
        raise ConfigError(f"LBP-TOP neighbours must be within 2..16 per plane, got {neighbours}")
    if mapping not in MAPPINGS:
        raise ConfigError(f"LBP mapping must be one of {MAPPINGS}, got {mapping!r}")
    return radii, neighbours


def neighbour_offsets(plane: str, neighbours: int, radii=(1.0, 1.0, 4.0)) -> np.ndarray:
    """P x 3 offsets (dt, dy, dx) of the neighbours of `plane` ("XY", "XT" or "YT")."""
    rx, ry, rt = _triple(radii, "radii")
    angles = 2.0 * np.pi * np.arange(neighbours) / neighbours
    cos, sin, zero = np.cos(angles), np.sin(angles), np.zeros(neighbours)
    columns = {"XY": (zero, -ry * sin, rx * cos),
               "XT": (rt * sin, zero, rx * cos),
               "YT": (rt * cos, -ry * sin, zero)}
    if plane not in columns:
        raise ConfigError(f"plane must be one of {PLANES}, got {plane!r}")
    offsets = np.stack(columns[plane], axis=1)
    rounded = np.rint(offsets)
    return np.where(np.abs(offsets - rounded) < _SNAP, rounded, offsets)


def lbp_mapping(neighbours: int, mapping: str = "uniform") -> tuple[np.ndarray, int]:
    """(table code -> bin for the 2^P codes, number of bins)."""
    codes = np.arange(2 ** neighbours)
    if mapping == "basic":
        return codes, len(codes)
    if mapping != "uniform":
        raise ConfigError(f"LBP mapping must be one of {MAPPINGS}, got {mapping!r}")
    bits = (codes[:, None] >> np.arange(neighbours)) & 1
    uniform = (bits != np.roll(bits, 1, axis=1)).sum(axis=1) <= 2
    n_uniform = int(uniform.sum())  # P (P - 1) + 2
    table = np.full(len(codes), n_uniform)
    table[uniform] = np.arange(n_uniform)
    return table, n_uniform + 1


def _axis_terms(offset: float) -> list[tuple[int, float]]:
    """(integer shift, weight) pairs of linear interpolation at `offset` along one axis."""
    low = int(np.floor(offset))
    frac = offset - low
    if frac < _SNAP:
        return [(low, 1.0)]
    if frac > 1.0 - _SNAP:
        return [(low + 1, 1.0)]
    return [(low, 1.0 - frac), (low + 1, frac)]


def _sample(volume: np.ndarray, start: tuple[int, int, int], shape: tuple[int, int, int],
            offset: np.ndarray) -> np.ndarray:
    """The volume at (centre + offset) for the centre block starting at `start` of `shape`,
    by (bi)linear interpolation: a weighted sum of shifted slices."""
    result = None
    for dt, wt in _axis_terms(offset[0]):
        for dy, wy in _axis_terms(offset[1]):
            for dx, wx in _axis_terms(offset[2]):
                t, y, x = start[0] + dt, start[1] + dy, start[2] + dx
                part = volume[t:t + shape[0], y:y + shape[1], x:x + shape[2]]
                weight = wt * wy * wx
                term = part if weight == 1.0 else weight * part
                result = term if result is None else result + term
    return result


def _margins(radii: tuple[float, float, float]) -> tuple[int, int, int]:
    rx, ry, rt = radii
    return int(np.ceil(rt)), int(np.ceil(ry)), int(np.ceil(rx))


def _check_volume(volume: np.ndarray, radii: tuple[float, float, float]) -> np.ndarray:
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise InputShapeError(f"LBP-TOP takes a gray volume T x H x W, got shape {volume.shape}")
    margins = _margins(radii)
    if any(n < 2 * m + 1 for n, m in zip(volume.shape, margins, strict=True)):
        raise InputShapeError(
            f"LBP-TOP with radii (R_X, R_Y, R_T) = {radii} needs a volume of at least "
            f"{2 * margins[0] + 1} frames x {2 * margins[1] + 1} x {2 * margins[2] + 1} pixels, "
            f"got {volume.shape}; use more frames (e.g. TIM to 10) or smaller radii")
    return volume


def lbp_top_codes(volume: np.ndarray, radii=(1.0, 1.0, 4.0), neighbours=4
                  ) -> dict[str, np.ndarray]:
    """The raw LBP codes of every centre voxel per plane: {"XY": T' x H' x W' ints, ...}
    with T' = T - 2 ceil(R_T), H' = H - 2 ceil(R_Y), W' = W - 2 ceil(R_X)."""
    radii, neighbours = check_params(radii, neighbours, "basic")
    volume = _check_volume(volume, radii)
    start = _margins(radii)
    shape = tuple(n - 2 * m for n, m in zip(volume.shape, start, strict=True))
    centre = volume[start[0]:start[0] + shape[0], start[1]:start[1] + shape[1],
                    start[2]:start[2] + shape[2]]
    tolerance = _SNAP * max(1.0, float(np.abs(volume).max(initial=0.0)))
    codes = {}
    for plane, count in zip(PLANES, neighbours, strict=True):
        code = np.zeros(shape, dtype=np.int64)
        for bit, offset in enumerate(neighbour_offsets(plane, count, radii)):
            # the tolerance keeps interpolation round-off from flipping equal neighbours
            code |= (_sample(volume, start, shape, offset) >= centre - tolerance
                     ).astype(np.int64) << bit
        codes[plane] = code
    return codes


def lbp_top_histograms(volume: np.ndarray, radii=(1.0, 1.0, 4.0), neighbours=4,
                       blocks=(5, 5), mapping: str = "uniform") -> dict[str, np.ndarray]:
    """Per plane, rows x cols x bins block histograms (each normalised to sum 1)."""
    radii, neighbours = check_params(radii, neighbours, mapping)
    volume = _check_volume(volume, radii)
    rows, cols = as_grid(blocks)
    _, my, mx = _margins(radii)
    height, width = volume.shape[1:]
    labels = grid_labels(height, width, (rows, cols), np.arange(my, height - my),
                         np.arange(mx, width - mx))
    histograms = {}
    for plane, codes in lbp_top_codes(volume, radii, neighbours).items():
        table, n_bins = lbp_mapping(neighbours[PLANES.index(plane)], mapping)
        index = labels[None] * n_bins + table[codes]
        counts = np.bincount(index.ravel(), minlength=rows * cols * n_bins)
        counts = counts.reshape(rows, cols, n_bins).astype(np.float64)
        totals = counts.sum(axis=-1, keepdims=True)
        histograms[plane] = np.divide(counts, totals, out=np.zeros_like(counts),
                                      where=totals > 0)
    return histograms


def feature_size(neighbours=4, blocks=(5, 5), mapping: str = "uniform") -> int:
    """Length of the LBP-TOP feature vector."""
    rows, cols = as_grid(blocks)
    neighbours = _triple(neighbours, "neighbours", int)
    return rows * cols * sum(lbp_mapping(p, mapping)[1] for p in neighbours)


def lbp_top_features(volumes: np.ndarray, radii=(1.0, 1.0, 4.0), neighbours=4,
                     blocks=(5, 5), mapping: str = "uniform") -> np.ndarray:
    """N x D LBP-TOP features of N gray volumes (N x T x H x W), in block-row, block-column,
    plane, bin order (see the module notes); D = rows * cols * sum of the planes' bins."""
    volumes = np.asarray(volumes)
    if volumes.ndim != 4:
        raise InputShapeError(f"lbp_top_features takes N x T x H x W gray volumes, got shape "
                              f"{volumes.shape}")
    rows, cols = as_grid(blocks)
    out = []
    for volume in volumes:
        histograms = lbp_top_histograms(volume, radii, neighbours, (rows, cols), mapping)
        out.append(np.concatenate([histograms[p] for p in PLANES], axis=-1).ravel())
    return np.stack(out).astype(np.float32) if out else np.zeros(
        (0, feature_size(neighbours, (rows, cols), mapping)), np.float32)
