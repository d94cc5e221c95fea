"""Combined representations: appearance and motion of a clip stacked in one array."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.preprocess.flow import FLOW_METHODS
from microexpr.preprocess.frames_io import resize
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.flow import (
    FLOW_CHANNELS,
    apex_number,
    check_apex_choice,
    flow_files,
    flow_maps,
)
from microexpr.representations.frames import Context, load_frames


@dataclass(frozen=True)
class ApexFlowConfig:
    """The apex frame stacked with the onset -> apex flow: size x size x (1 + len(channels)).

    Channel 0 is the grey apex frame scaled to 0..1; channels 1.. are the flow `channels`
    (u, v, strain, magnitude; pixels at `compute_size`). Both come from the same two frames,
    read at `compute_size` (the aligned face crop when `align` is set, magnified when
    `magnify` is set) and area-averaged down to `size`, so image and flow stay registered.
    `apex`: "annotated", "spotted", or "auto" (spotted only where the annotation has none).
    `remove_global` subtracts the median flow (the head's own translation since the onset).
    """

    method: str = "tvl1"
    compute_size: int = 128
    size: int = 48
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


def apex_flow(clip: Mapping[str, Any], config: ApexFlowConfig,
              context: Context | None = None) -> np.ndarray:
    """Apex frame (0..1) and onset -> apex flow channels: size x size x (1 + C), float32."""
    apex = apex_number(clip, config.apex, align=config.align, context=context)
    onset, peak = load_frames(clip, [int(clip["onset"]), apex], size=config.compute_size,
                              color=False, align=config.align, magnify=config.magnify,
                              context=context)
    flow = flow_maps(onset, peak, config.method, config.channels, config.remove_global)
    image = peak.astype(np.float32)[..., None] / 255.0
    stacked = np.concatenate([image, flow.astype(np.float32)], axis=-1)
    return resize(stacked, config.size).reshape(config.size, config.size, -1).astype(np.float32)


register_representation(Representation(
    name="apex_flow", config_class=ApexFlowConfig, compute=apex_flow, files=flow_files,
    version=1,
    description="grey apex frame (0..1) stacked with onset-apex flow u, v and strain, resized",
))
