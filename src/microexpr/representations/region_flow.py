"""Per-region optical-flow features: HOOF and magnitude statistics of facial regions.

The input of `region_flow_svm` (Li, Yu, Kurihara, Zhang, Zhan, 2019): the face is aligned and
cropped once per clip (on the onset, `microexpr.preprocess.align`), the optical flow from
onset to apex is computed on the aligned crop, the facial regions (brows, eyes, nose, mouth,
cheeks, chin) are boxed from the onset's 68 landmarks (`preprocess.faces.region_boxes`, in
crop pixels), and each region gives its magnitude-weighted histogram of oriented flow
(normalised to sum 1; `features.hoof`) and the mean, std and max of its flow magnitude.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.errors import ConfigError, FaceNotFoundError
from microexpr.preprocess.flow import FLOW_METHODS
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.flow import (
    apex_number,
    check_apex_choice,
    flow_maps,
    uses_spotting,
)
from microexpr.representations.frames import (
    Context,
    clip_alignment,
    clip_range,
    frame_file,
    load_frames,
)

DEFAULT_REGIONS = ("left_brow", "right_brow", "left_eye", "right_eye", "nose", "mouth",
                   "left_cheek", "right_cheek", "chin")
N_STATS = 3  # magnitude mean, std, max (features.hoof.MAGNITUDE_STATS)


@dataclass(frozen=True)
class RegionFlowConfig:
    """Onset -> apex flow features per facial region: a vector of regions x (bins + 3).

    method: flow method; compute_size: side of the aligned face crop the flow is computed on
    (flow in pixels at that size); bins: orientation bins of each region's HOOF; backend: face
    backend of the alignment (landmarks are needed: "mediapipe", or "dlib"); margin: growth of
    each region box around its landmarks (fraction of its larger side); regions: which
    regions, in order (names of `preprocess.faces.ROI_LANDMARKS`); apex: "annotated",
    "spotted" or "auto"; remove_global: subtract the median flow of the crop (what is left of
    the head's translation) before the features.
    """

    method: str = "tvl1"
    compute_size: int = 128
    bins: int = 8
    backend: str = "mediapipe"
    margin: float = 0.15
    regions: tuple[str, ...] = DEFAULT_REGIONS
    apex: str = "auto"
    remove_global: bool = True

    def __post_init__(self) -> None:
        from microexpr.preprocess.faces import ROI_LANDMARKS

        if self.method not in FLOW_METHODS:
            raise ConfigError(f"flow method {self.method!r} is unknown; use one of "
                              f"{FLOW_METHODS}")
        if self.compute_size < 16:
            raise ConfigError(f"compute_size must be >= 16 pixels, got {self.compute_size}")
        if int(self.bins) != self.bins or self.bins < 2:
            raise ConfigError(f"bins must be an integer >= 2, got {self.bins!r}")
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")
        unknown = [r for r in self.regions if r not in ROI_LANDMARKS]
        if unknown or not self.regions:
            raise ConfigError(f"unknown region(s) {unknown or '()'}; choose among "
                              f"{tuple(ROI_LANDMARKS)}")
        check_apex_choice(self.apex)

    @property
    def dimension(self) -> int:
        """Length of the feature vector: regions x (bins + 3)."""
        return len(self.regions) * (self.bins + N_STATS)


def _align(config: RegionFlowConfig) -> Any:
    from microexpr.preprocess.align import AlignConfig

    return AlignConfig(backend=config.backend, size=config.compute_size)


def region_flow_files(clip: Mapping[str, Any], config: RegionFlowConfig) -> list[str]:
    numbers = clip_range(clip) or [clip["onset"]]
    if uses_spotting(clip, config.apex):
        return [frame_file(clip, n) for n in numbers]
    files = [frame_file(clip, clip["onset"]), frame_file(clip, clip["apex"])]
    ends = [frame_file(clip, numbers[0]), frame_file(clip, numbers[-1])]
    return files + [f for f in ends if f not in files]


def region_flow(clip: Mapping[str, Any], config: RegionFlowConfig,
                context: Context | None = None) -> np.ndarray:
    """regions x (bins + 3) flow features of the clip, flattened (region-major), float32."""
    from microexpr.features.hoof import region_flow_features
    from microexpr.preprocess.faces import region_boxes

    context = context or Context()
    align = _align(config)
    _, landmarks = clip_alignment(clip, align, context)
    if landmarks is None:
        raise FaceNotFoundError(
            f"clip {clip['dataset']}/{clip['clip']}: the {config.backend!r} face backend gives "
            f"no landmarks; region_flow needs backend 'mediapipe' (or 'dlib')")
    apex = apex_number(clip, config.apex, align=align, context=context)
    onset, peak = load_frames(clip, [int(clip["onset"]), apex], size=config.compute_size,
                              color=False, align=align, context=context)
    flow = flow_maps(onset, peak, config.method, ("u", "v")).astype(np.float64)
    if config.remove_global:
        flow -= np.median(flow.reshape(-1, 2), axis=0)
    size = config.compute_size
    boxes = region_boxes(landmarks, margin=config.margin, image_shape=(size, size))
    empty = [name for name in config.regions if boxes[name][2] == 0 or boxes[name][3] == 0]
    if empty:
        context.warnings.append(f"region(s) {empty} fall outside the face crop: zero features")
    features = region_flow_features(flow, [boxes[name] for name in config.regions],
                                    config.bins)
    return features.ravel().astype(np.float32)


def region_flow_channels(config: RegionFlowConfig) -> tuple[str, ...]:
    """Names of the feature vector, region-major: "mouth/hoof0".."mouth/hoof7", "mouth/mean",
    "mouth/std", "mouth/max" (magnitude statistics), then the next region."""
    from microexpr.features.hoof import MAGNITUDE_STATS

    per_region = [f"hoof{k}" for k in range(int(config.bins))] + list(MAGNITUDE_STATS)
    return tuple(f"{region}/{name}" for region in config.regions for name in per_region)


register_representation(Representation(
    name="region_flow", config_class=RegionFlowConfig, compute=region_flow,
    files=region_flow_files, version=1,
    description="per facial region (from landmarks) HOOF + magnitude stats of onset-apex flow",
    channels=region_flow_channels,
))
