"""Dynamic images by approximate rank pooling (Bilen et al., CVPR 2016), as SMA-STN's DSSI uses.

A dynamic image summarises a clip in one image: DI = sum_t alpha_t I_t, where

    alpha_t = 2 (T - t + 1) - (T + 1) (H_T - H_{t-1}),   t = 1..T,

H_n the n-th harmonic number (H_0 = 0). This is the paper's formula as written (and as in
notes/methods.md); with it the weights rise from negative (early frames) to positive (late
frames), e.g. for T = 8: -8.46, -1.46, 1.04, 2.04, 2.29, 2.09, 1.59, 0.875. They sum to zero,
so a static clip gives a zero image and a clip that gets brighter over time a positive one.
Frames are used as given (no per-frame normalisation); the result is float32 and can be
negative -- `to_uint8` rescales it for viewing or saving.
"""

from __future__ import annotations

import numpy as np

from microexpr.errors import ConfigError
from microexpr.preprocess.temporal import sample_indices


def rank_pooling_weights(n: int) -> np.ndarray:
    """The approximate rank pooling weights alpha_1..alpha_n (float64, sum zero)."""
    n = int(n)
    if n < 1:
        raise ConfigError(f"rank_pooling_weights needs n >= 1, got n={n}")
    harmonic = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, n + 1))))  # H_0..H_n
    t = np.arange(1, n + 1)
    return 2.0 * (n - t + 1) - (n + 1) * (harmonic[n] - harmonic[t - 1])


def _check_clip(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise ConfigError(
            f"{what} takes frames T x H x W or T x H x W x C, got shape {frames.shape}"
        )
    if frames.shape[0] < 2:
        raise ConfigError(f"{what} needs at least 2 frames, got {frames.shape[0]}")
    return frames


def dynamic_image(frames: np.ndarray) -> np.ndarray:
    """sum_t alpha_t I_t over a clip T x H x W [x C] (T >= 2) -> H x W [x C] float32."""
    frames = _check_clip(frames, "dynamic_image")
    n = frames.shape[0]
    weights = rank_pooling_weights(n).astype(np.float32)
    flat = frames.reshape(n, -1).astype(np.float32, copy=False)
    return (weights @ flat).reshape(frames.shape[1:])


def segment_bounds(n_frames: int, segments: int) -> list[tuple[int, int]]:
    """(start, stop) of `segments` contiguous, near-equal segments covering 0..n_frames-1.

    Lengths differ by at most one frame (the longer segments come first, like
    numpy.array_split). ConfigError unless every segment gets at least 2 frames.
    """
    n_frames, segments = int(n_frames), int(segments)
    if segments < 1:
        raise ConfigError(f"segments must be >= 1, got {segments}")
    if n_frames < 2 * segments:
        raise ConfigError(
            f"{segments} segments of at least 2 frames need at least {2 * segments} frames, "
            f"the clip has {n_frames}; use fewer segments or interpolate the clip to more frames"
        )
    base, extra = divmod(n_frames, segments)
    sizes = [base + 1] * extra + [base] * (segments - extra)
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for size, stop in zip(sizes, stops, strict=True)]


def segment_dynamic_images(frames: np.ndarray, segments: int) -> np.ndarray:
    """One dynamic image per contiguous segment: segments x H x W [x C] float32."""
    frames = _check_clip(frames, "segment_dynamic_images")
    bounds = segment_bounds(frames.shape[0], segments)
    return np.stack([dynamic_image(frames[start:stop]) for start, stop in bounds])


def sparse_segment_indices(n_frames: int, segments: int, per_segment: int) -> list[np.ndarray]:
    """Frame indices of a sparse sampling of each `segment_bounds` segment (SMA-STN's DSSI).

    Segment k gets min(per_segment, its length) indices spread evenly over it, its first and
    last frame included (`temporal.sample_indices`, no repeats), so a segment shorter than
    `per_segment` uses all its frames. ConfigError unless per_segment >= 2 and every segment
    has at least 2 frames. `segments=1` samples the whole clip (a global dynamic image).
    """
    per_segment = int(per_segment)
    if per_segment < 2:
        raise ConfigError(f"per_segment must be >= 2 frames (a dynamic image needs two), "
                          f"got {per_segment}")
    return [start + sample_indices(stop - start, min(per_segment, stop - start))
            for start, stop in segment_bounds(n_frames, segments)]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max scale an image (e.g. a dynamic image) to uint8 0..255; a constant image -> 0.

    The range is taken over the whole array (all channels together, so colours keep their
    balance); non-finite values are treated as the minimum.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    low, high = image[finite].min(), image[finite].max()
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = np.where(finite, (image - low) * (255.0 / (high - low)), 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
