"""Temporal normalisation of a clip: frame sampling and interpolation to a fixed length.

Three methods map a clip of T frames (T x H x W or T x H x W x C) to `length` frames:

- ``"uniform"``: the nearest frames at `sample_indices` (no new pixels; repeats when T < length);
- ``"linear"``: linear interpolation between the two neighbouring frames at `length` uniform
  positions over 0..T-1 (first and last frame kept);
- ``"tim"``: the Temporal Interpolation Model of Zhou, Zhao and Pietikäinen ("Towards a
  practical lipreading system", CVPR 2011), used by the SMIC and CASME baselines and the MEGC
  LBP-TOP baseline ("TIM to 10 frames").

TIM, step by step (as in the authors' ``TrainPGM.m`` / ``synPGM.m``):

1. Treat the T frames as vectors x_1..x_T (flattened) and connect them in a path graph P_T
   (adjacency W[i, i+1] = W[i+1, i] = 1). Its Laplacian L = D - W has eigenvectors
   y_0 (constant), y_1..y_{T-1}; the k-th is y_k(i) = c_k sin(pi k i / T + pi (T - k) / (2T))
   = c_k cos(pi k (i - 1/2) / T), i = 1..T, i.e. the DCT-II basis, c_k = sqrt(2 / T).
2. The same formula with continuous t defines a curve F(t) in R^{T-1}, t in [1, T], that
   passes through the embedding y(i) = (y_1(i), ..., y_{T-1}(i)) of every frame.
3. Learn the linear map between the curve and the frames: mean-remove the frames
   (X = [x_i - mean]) and solve for the projection M with M^T (x_i - mean) = y(i) (the
   original reduces X by PCA first so that X X^T is invertible). Because the y_k are
   orthonormal and orthogonal to the constant vector, the map from the curve back to the
   frames is exactly x(t) = mean + X Y F(t), Y = [y_1 .. y_{T-1}] (T x (T-1)); it sends
   y(i) to x_i for every frame.
4. Sample `length` equally spaced points on the curve, t_j = 1 + j (T - 1) / (length - 1)
   (the original rescales positions 0..1 into [1/T, 1]; the same points), and map them back.

Put together, every output frame is a fixed linear combination of the input frames,
x'_j = sum_i G[j, i] x_i with G[j, i] = 1/T + (2/T) sum_k cos(pi k (t_j - 1/2)/T)
cos(pi k (i - 1/2)/T), so TIM here costs one (length x T) @ (T x H*W*C) product. This closed
form equals the original whenever the original is defined (centred frames of rank T - 1) and
still works when frames repeat (the original raises on linearly dependent frames). With
length == T the t_j are the frame positions and G is the identity: the clip is reproduced.
TIM is trigonometric (cosine-series) interpolation: smooth between frames, with some ringing
next to abrupt changes; when shrinking a clip it samples that interpolant at fewer points
(it does not low-pass the clip first).
"""

from __future__ import annotations

import numpy as np

from microexpr.errors import ConfigError

INTERPOLATION_METHODS = ("tim", "linear", "uniform")


def sample_indices(n_frames: int, length: int) -> np.ndarray:
    """`length` frame indices spread uniformly over 0..n_frames-1, first and last included.

    Indices are the rounded positions j * (n_frames - 1) / (length - 1) (halves round up), so
    they repeat when n_frames < length and skip frames when n_frames > length.
    """
    n_frames, length = int(n_frames), int(length)
    if n_frames < 1:
        raise ConfigError(f"sample_indices needs at least one frame, got n_frames={n_frames}")
    if length < 2:
        raise ConfigError(
            f"sample_indices needs length >= 2 (first and last frame), got length={length}"
        )
    positions = np.linspace(0.0, n_frames - 1, length)
    return np.floor(positions + 0.5).astype(np.int64)


def tim_weights(n_frames: int, length: int) -> np.ndarray:
    """The (length x n_frames) matrix G with which TIM builds output frames from input frames.

    Row j holds the weights of output frame j; every row sums to 1 (the mean frame is kept).
    """
    n, length = int(n_frames), int(length)
    if n < 2:
        raise ConfigError(f"TIM needs at least 2 frames to embed on a path graph, got {n}")
    if length < 2:
        raise ConfigError(f"TIM needs length >= 2, got length={length}")
    k = np.arange(1, n)  # non-constant Laplacian eigenvectors
    frame_pos = np.arange(1, n + 1) - 0.5  # 1-based frame positions i - 1/2
    curve_pos = 1.0 + np.arange(length) * (n - 1) / (length - 1) - 0.5
    basis = np.cos(np.pi * np.outer(frame_pos, k) / n)  # n x (n-1): y(i), unnormalised
    curve = np.cos(np.pi * np.outer(curve_pos, k) / n)  # length x (n-1): F(t_j)
    return 1.0 / n + (2.0 / n) * (curve @ basis.T)


def interpolate_frames(frames: np.ndarray, length: int, method: str = "tim") -> np.ndarray:
    """Resample a clip (T x H x W [x C]) to `length` frames as float32.

    method: ``"tim"`` (Temporal Interpolation Model, see the module docstring), ``"linear"``
    (between neighbouring frames at uniform positions) or ``"uniform"`` (nearest frames at
    `sample_indices`). ``"tim"`` and ``"linear"`` need T >= 2; all need length >= 2.
    """
    if method not in INTERPOLATION_METHODS:
        raise ConfigError(
            f"unknown interpolation method {method!r}; choose one of {INTERPOLATION_METHODS}"
        )
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise ConfigError(
            f"interpolate_frames takes frames T x H x W or T x H x W x C, got shape "
            f"{frames.shape}"
        )
    n = frames.shape[0]
    length = int(length)
    if length < 2:
        raise ConfigError(f"interpolate_frames needs length >= 2, got length={length}")
    if method == "uniform":
        return frames[sample_indices(n, length)].astype(np.float32)
    if n < 2:
        raise ConfigError(
            f"{method!r} interpolation needs at least 2 frames, got {n}; use method='uniform' "
            "to repeat a single frame"
        )
    if method == "linear":
        positions = np.linspace(0.0, n - 1, length)
        lower = np.minimum(np.floor(positions).astype(np.int64), n - 2)
        frac = (positions - lower).astype(np.float32)
        frac = frac.reshape((length,) + (1,) * (frames.ndim - 1))
        low = frames[lower].astype(np.float32)
        high = frames[lower + 1].astype(np.float32)
        return low + frac * (high - low)
    weights = tim_weights(n, length).astype(np.float32)
    flat = frames.reshape(n, -1).astype(np.float32, copy=False)
    return (weights @ flat).reshape((length,) + frames.shape[1:])
