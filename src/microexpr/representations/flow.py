"""Onset -> apex optical flow with strain (the input of STSTNet, OFF-ApexNet, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.data.images import resize
from microexpr.errors import ConfigError
from microexpr.preprocess.flow import FLOW_METHODS, optical_flow, optical_strain
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.frames import Context, clip_range, frame_file, load_frames

FLOW_CHANNELS = ("u", "v", "strain", "magnitude")
APEX_CHOICES = ("auto", "annotated", "spotted")


def check_apex_choice(apex: str) -> None:
    if apex not in APEX_CHOICES:
        raise ConfigError(f"apex must be one of {APEX_CHOICES} (auto: spotted when the "
                          f"annotation has no apex, as in SMIC), got {apex!r}")


def uses_spotting(clip: Mapping[str, Any], apex: str) -> bool:
    return apex == "spotted" or (apex == "auto" and bool(clip["apex_estimated"]))


def apex_number(clip: Mapping[str, Any], apex: str, *, align: Any = None,
                context: Context | None = None, size: int = 64) -> int:
    """The annotated apex, or the frame of peak motion relative to onset within the face
    (local optical flow, head movement removed; see `microexpr.preprocess.apex`)."""
    if not uses_spotting(clip, apex):
        return int(clip["apex"])
    from microexpr.preprocess.apex import spot_apex

    numbers = clip_range(clip)
    frames = load_frames(clip, numbers, size=size, color=False, align=align, context=context)
    return int(numbers[spot_apex(frames, "flow")])


@dataclass(frozen=True)
class FlowConfig:
    """Onset -> apex optical flow: method, working resolution, output size and channels.

    Frames are brought to `compute_size` x `compute_size` (the aligned face crop when `align`
    is set, else the whole frame resized), the flow is computed there (values in pixels at
    that resolution), and the channels are area-averaged down to `size` x `size`. `apex`:
    "annotated", "spotted", or "auto" (spotted only where the annotation has none).
    `remove_global` subtracts the median flow (the head's own translation since the onset)
    so that what is left is facial motion.
    """

    method: str = "tvl1"
    compute_size: int = 128
    size: int = 28
    channels: tuple[str, ...] = ("u", "v", "strain")
    apex: str = "auto"
    remove_global: bool = False
    align: Any = None
    magnify: Any = None

    def __post_init__(self) -> None:
        if self.method not in FLOW_METHODS:
            raise ConfigError(f"flow method {self.method!r} is unknown; use one of "
                              f"{FLOW_METHODS}")
        if self.size < 4 or self.compute_size < self.size:
            raise ConfigError(f"need 4 <= size <= compute_size, got size={self.size}, "
                              f"compute_size={self.compute_size}")
        bad = [c for c in self.channels if c not in FLOW_CHANNELS]
        if bad or not self.channels:
            raise ConfigError(f"flow channels {bad or '()'} are unknown; use some of "
                              f"{FLOW_CHANNELS}")
        check_apex_choice(self.apex)


def flow_files(clip: Mapping[str, Any], config: FlowConfig) -> list[str]:
    if config.magnify is not None or uses_spotting(clip, config.apex):
        return [frame_file(clip, n) for n in clip_range(clip)]
    return [frame_file(clip, clip["onset"]), frame_file(clip, clip["apex"])]


def flow_maps(first: np.ndarray, second: np.ndarray, method: str,
              channels: tuple[str, ...], remove_global: bool = False) -> np.ndarray:
    """H x W x len(channels) maps (u, v, strain, magnitude) of the flow from first to second;
    with `remove_global`, the median flow vector (global translation) is subtracted first."""
    flow = optical_flow(first, second, method)
    if remove_global:
        flow = flow - np.median(flow.reshape(-1, 2), axis=0)
    maps = {"u": lambda: flow[..., 0], "v": lambda: flow[..., 1],
            "strain": lambda: optical_strain(flow),
            "magnitude": lambda: np.hypot(flow[..., 0], flow[..., 1])}
    return np.stack([maps[c]() for c in channels], axis=-1)


def onset_and_apex(clip: Mapping[str, Any], config: FlowConfig,
                   context: Context | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The gray onset and apex frames at `compute_size` (aligned / magnified per config)."""
    apex = apex_number(clip, config.apex, align=config.align, context=context)
    onset, peak = load_frames(clip, [int(clip["onset"]), apex], size=config.compute_size,
                              color=False, align=config.align, magnify=config.magnify,
                              context=context)
    return onset, peak


def onset_apex_flow(clip: Mapping[str, Any], config: FlowConfig,
                    context: Context | None = None) -> np.ndarray:
    """Optical flow u, v, strain and/or magnitude from onset to apex: size x size x C."""
    onset, peak = onset_and_apex(clip, config, context)
    stacked = flow_maps(onset, peak, config.method, config.channels, config.remove_global)
    return resize(stacked, config.size).reshape(config.size, config.size, -1).astype(np.float32)


def flow_channels(config: FlowConfig) -> tuple[str, ...]:
    """Names of the last axis: the flow channels asked for, e.g. ("u", "v", "strain")."""
    return tuple(config.channels)


register_representation(Representation(
    name="onset_apex_flow", config_class=FlowConfig, compute=onset_apex_flow, files=flow_files,
    version=2, description="optical flow u, v and optical strain from onset to apex, resized",
    channels=flow_channels,
))
