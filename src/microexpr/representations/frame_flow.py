"""Optical flow between consecutive sampled frames of a clip (MOL's flow targets)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.preprocess.flow import FLOW_METHODS, optical_flow
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.frames import Context, clip_range, frame_file, load_frames


@dataclass(frozen=True)
class FrameFlowConfig:
    """Flow from each of `length` frames sampled across onset..offset to the next one:
    (length - 1) x size x size x 2 (u, v in pixels of the size x size frames).

    The frames are those `frame_clip` takes with the same `length`, `size` and `align`
    (uniform sampling), so the flows line up with that representation frame by frame.
    """

    length: int = 8
    size: int = 144
    method: str = "tvl1"
    align: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 2:
            raise ConfigError(f"frame_flows option length must be an integer >= 2 (frames; "
                              f"length - 1 flows), got {self.length!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 8:
            raise ConfigError(f"frame_flows option size must be an integer >= 8 pixels, got "
                              f"{self.size!r}")
        if self.method not in FLOW_METHODS:
            raise ConfigError(f"frame_flows option method={self.method!r} is unknown; use one "
                              f"of {FLOW_METHODS}")


def sampled_numbers(clip: Mapping[str, Any], length: int) -> list[int]:
    """The frame numbers `frame_clip` samples uniformly across onset..offset."""
    from microexpr.preprocess.temporal import sample_indices

    numbers = clip_range(clip)
    return [numbers[i] for i in sample_indices(len(numbers), length)]


def frame_flow_files(clip: Mapping[str, Any], config: FrameFlowConfig) -> list[str]:
    return [frame_file(clip, n) for n in sampled_numbers(clip, config.length)]


def frame_flows(clip: Mapping[str, Any], config: FrameFlowConfig,
                context: Context | None = None) -> np.ndarray:
    """(length - 1) x size x size x 2 float32 flows between consecutive sampled frames."""
    frames = load_frames(clip, sampled_numbers(clip, config.length), size=config.size,
                         color=False, align=config.align, context=context)
    flows = [optical_flow(frames[i], frames[i + 1], config.method)
             for i in range(len(frames) - 1)]
    return np.stack(flows).astype(np.float32)


def uv_channels(config: FrameFlowConfig) -> tuple[str, ...]:
    return ("u", "v")


register_representation(Representation(
    name="frame_flows", config_class=FrameFlowConfig, compute=frame_flows,
    files=frame_flow_files, version=1,
    description="optical flow u, v between consecutive frames sampled across the clip",
    channels=uv_channels,
))
