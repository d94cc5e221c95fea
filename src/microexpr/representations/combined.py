"""Combined representations: appearance and motion of a clip stacked in one array."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.data.images import resize
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.flow import FlowConfig, flow_files, flow_maps, onset_and_apex
from microexpr.representations.frames import Context


@dataclass(frozen=True)
class ApexFlowConfig(FlowConfig):
    """The apex frame stacked with the onset -> apex flow: size x size x (1 + len(channels)).

    Channel 0 is the grey apex frame scaled to 0..1; channels 1.. are the flow `channels`
    (as in FlowConfig). Both come from the same two frames, read at `compute_size` (the
    aligned face crop when `align` is set, magnified when `magnify` is set) and area-averaged
    down to `size`, so image and flow stay registered.
    """

    size: int = 48


def apex_flow(clip: Mapping[str, Any], config: ApexFlowConfig,
              context: Context | None = None) -> np.ndarray:
    """Apex frame (0..1) and onset -> apex flow channels: size x size x (1 + C), float32."""
    onset, peak = onset_and_apex(clip, config, context)
    flow = flow_maps(onset, peak, config.method, config.channels, config.remove_global)
    image = peak.astype(np.float32)[..., None] / 255.0
    stacked = np.concatenate([image, flow.astype(np.float32)], axis=-1)
    return resize(stacked, config.size).reshape(config.size, config.size, -1).astype(np.float32)


def apex_flow_channels(config: ApexFlowConfig) -> tuple[str, ...]:
    """Names of the last axis: "gray" (the apex frame), then the flow channels."""
    return ("gray", *config.channels)


register_representation(Representation(
    name="apex_flow", config_class=ApexFlowConfig, compute=apex_flow, files=flow_files,
    version=1,
    description="grey apex frame (0..1) stacked with onset-apex flow u, v and strain, resized",
    channels=apex_flow_channels,
))
