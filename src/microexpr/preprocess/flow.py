"""Dense optical flow between two frames (TV-L1, DIS, Farneback) and optical strain."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from microexpr.errors import ConfigError

FLOW_METHODS = ("tvl1", "dis", "farneback")


# One solver per process and frame size: creating one is not free, and a solver keeps state
# from the size of the frames it last saw (a DIS solver that ran on 32 x 32 frames gives other
# flow on 64 x 64 frames than a new one), so that results never depend on what ran before.
@lru_cache(maxsize=8)
def _tvl1(shape: tuple[int, ...]):
    return cv2.optflow.DualTVL1OpticalFlow_create()


@lru_cache(maxsize=8)
def _dis(shape: tuple[int, ...]):
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def optical_flow(first: np.ndarray, second: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Flow from `first` to `second` (uint8 grayscale, same shape) as H x W x 2 (u, v) pixels."""
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(
            f"optical_flow needs two grayscale frames of one shape, got {first.shape} and "
            f"{second.shape}"
        )
    first = np.ascontiguousarray(first, dtype=np.uint8)
    second = np.ascontiguousarray(second, dtype=np.uint8)
    if method == "tvl1":
        flow = _tvl1(first.shape).calc(first, second, None)
    elif method == "dis":
        flow = _dis(first.shape).calc(first, second, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        raise ConfigError(f"unknown flow method {method!r}; choose one of {FLOW_METHODS}")
    return flow.astype(np.float32, copy=False)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Magnitude of the optical strain tensor of a flow field (H x W x 2) -> H x W.

    Strain e = (grad(w) + grad(w)^T) / 2; magnitude sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2), the
    quantity STSTNet and Bi-WOOF use as a measure of local facial deformation.
    """
    u, v = flow[..., 0], flow[..., 1]
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    e_xy = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2.0 * e_xy**2).astype(np.float32)
