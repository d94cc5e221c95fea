"""Apex spotting for clips whose annotation has no apex frame (SMIC).

The apex is taken to be **the frame of peak motion relative to onset within the face**: for
every frame we measure how far it has moved from the first frame (the onset), inside an
optional face mask, smooth that curve over time and take its maximum.

Two motion measures:

- ``"diff"``: mean absolute intensity difference to the onset after a slight Gaussian blur
  (sigma 1 px, which suppresses sensor noise and JPEG blocking); fast, but it saturates once
  a structure has moved more than its own width; frames are first scaled to the onset's
  mean brightness so that flicker does not count as motion;
- ``"flow"``: mean magnitude of the dense optical flow (DIS) from the onset to the frame,
  after removing the median flow (the head's global movement), which grows with the
  displacement itself; slower.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

from microexpr.errors import ConfigError, InputShapeError
from microexpr.preprocess.flow import optical_flow

MOTION_METHODS = ("diff", "flow")
_BLUR_SIGMA = 1.0


def _check(frames: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InputShapeError(
            f"apex spotting takes gray frames T x H x W, got shape {frames.shape}; convert "
            "colour frames to gray first"
        )
    if frames.shape[0] < 1:
        raise InputShapeError("apex spotting needs at least one frame, got none")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != frames.shape[1:]:
            raise InputShapeError(
                f"the face mask has shape {mask.shape} but the frames are {frames.shape[1:]}"
            )
        if not mask.any():
            raise InputShapeError("the face mask selects no pixel")
    return frames, mask


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    """uint8 frames as they are; others scaled to 0..255 by the whole clip's range."""
    if frames.dtype == np.uint8:
        return frames
    values = frames.astype(np.float64)
    low, high = values.min(), values.max()
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip(np.rint((values - low) * scale), 0, 255).astype(np.uint8)


def motion_curve(
    frames: np.ndarray, method: str = "diff", mask: np.ndarray | None = None
) -> np.ndarray:
    """Motion of each frame relative to the first (onset) within `mask`: T values, float32.

    frames: gray T x H x W (uint8 or float); mask: optional boolean H x W face region.
    The first value is 0 by construction.
    """
    if method not in MOTION_METHODS:
        raise ConfigError(f"unknown motion method {method!r}; choose one of {MOTION_METHODS}")
    frames, mask = _check(frames, mask)
    curve = np.zeros(frames.shape[0], dtype=np.float32)
    if method == "diff":
        blurred = [
            cv2.GaussianBlur(frame.astype(np.float32), (0, 0), _BLUR_SIGMA) for frame in frames
        ]
        # global brightness changes (flicker, auto exposure) are not facial motion
        level = blurred[0].mean()
        blurred = [frame * (level / max(float(frame.mean()), 1e-6)) for frame in blurred]
        onset = blurred[0]
        for index in range(1, len(blurred)):
            change = np.abs(blurred[index] - onset)
            curve[index] = change[mask].mean() if mask is not None else change.mean()
        return curve
    gray = _to_uint8(frames)
    for index in range(1, len(gray)):
        flow = optical_flow(gray[0], gray[index], "dis")
        # the median flow is the head's own movement; facial motion is what is left
        region = flow[mask] if mask is not None else flow.reshape(-1, 2)
        flow = flow - np.median(region, axis=0)
        magnitude = np.hypot(flow[..., 0], flow[..., 1])
        curve[index] = magnitude[mask].mean() if mask is not None else magnitude.mean()
    return curve


def spot_apex(
    frames: np.ndarray,
    method: str = "diff",
    mask: np.ndarray | None = None,
    smooth: int = 3,
) -> int:
    """Index of the frame of peak motion relative to onset within the face (see module doc).

    The motion curve is smoothed with a centred moving average of `smooth` frames (edges
    repeat the end values; 1 = no smoothing); ties go to the earliest frame.
    """
    if isinstance(smooth, bool) or not isinstance(smooth, int | np.integer) or smooth < 1:
        raise ConfigError(f"smooth must be an integer >= 1 (frames), got {smooth!r}")
    curve = motion_curve(frames, method, mask).astype(np.float64)
    if smooth > 1:
        curve = uniform_filter1d(curve, size=int(smooth), mode="nearest")
    return int(np.argmax(curve))
