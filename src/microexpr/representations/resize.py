"""Resizing prepared inputs to a model's input size (e.g. 28 x 28 flow to 48 x 48), per channel
and in the inputs' own units (flow stays in pixels of the resolution it was computed at)."""

from __future__ import annotations

import numbers

import cv2
import numpy as np

from microexpr.errors import ConfigError, InputShapeError

# OpenCV images hold at most this many channels (CV_CN_MAX); more are resized in groups.
_MAX_CHANNELS = 512


def _resize_image(image: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    """H x W x C -> size x size x C, in channel groups cv2 accepts; the C axis is kept."""
    parts = []
    for start in range(0, image.shape[-1], _MAX_CHANNELS):
        part = np.ascontiguousarray(image[..., start:start + _MAX_CHANNELS])
        resized = cv2.resize(part, (size, size), interpolation=interpolation)
        parts.append(resized.reshape(size, size, part.shape[-1]))  # cv2 drops a single channel
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def resize_inputs(x: np.ndarray, size: int) -> np.ndarray:
    """N x H x W x C (or N x T x H x W x C, frame by frame) inputs resized to size x size.

    Bilinear when enlarging, area averaging when shrinking; values are not rescaled. float32
    and float64 keep their type, anything else becomes float32. Returned unchanged (not
    copied) when already size x size.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ConfigError(f"input size must be a whole number of pixels >= 1, got {size!r}")
    size = int(size)
    x = np.asarray(x)
    if x.ndim not in (4, 5) or 0 in x.shape[1:]:
        raise InputShapeError(f"resize_inputs takes N x H x W x C or N x T x H x W x C arrays, "
                              f"got shape {x.shape}")
    height, width = x.shape[-3:-1]
    if (height, width) == (size, size):
        return x
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    shrink = size < height or size < width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    images = x.reshape(-1, height, width, x.shape[-1]).astype(dtype, copy=False)
    out = np.empty((len(images), size, size, x.shape[-1]), dtype)
    for i, image in enumerate(images):
        out[i] = _resize_image(image, size, interpolation)
    return out.reshape(*x.shape[:-3], size, size, x.shape[-1])
