"""Appearance representations: the apex frame, frame clips and dynamic images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.flow import apex_number, check_apex_choice, uses_spotting
from microexpr.representations.frames import Context, clip_range, frame_file, load_frames

SAMPLINGS = ("uniform", "tim", "linear")


def _check_size(size: int) -> None:
    if size < 8:
        raise ConfigError(f"size must be >= 8 pixels, got {size}")


def image_channels(config: Any) -> tuple[str, ...]:
    """Names of the last axis of an image representation: ("gray",) or ("r", "g", "b"); the
    leading axes are H x W (apex_frame) or T x H x W (frame_clip, dynamic_images)."""
    return ("r", "g", "b") if config.color else ("gray",)


def _channels_last(frames: np.ndarray) -> np.ndarray:
    """T x H x W (gray) -> T x H x W x 1; colour stays T x H x W x 3; float32."""
    return (frames[..., None] if frames.ndim == 3 else frames).astype(np.float32)


@dataclass(frozen=True)
class ApexConfig:
    """The apex frame (annotated, or spotted where the annotation has none) as H x W x C."""

    size: int = 128
    color: bool = False
    apex: str = "auto"
    align: Any = None
    magnify: Any = None

    def __post_init__(self) -> None:
        _check_size(self.size)
        check_apex_choice(self.apex)


def apex_files(clip: Mapping[str, Any], config: ApexConfig) -> list[str]:
    if config.magnify is not None or uses_spotting(clip, config.apex):
        return [frame_file(clip, n) for n in clip_range(clip)]
    return [frame_file(clip, clip["onset"]), frame_file(clip, clip["apex"])]


def apex_frame(clip: Mapping[str, Any], config: ApexConfig,
               context: Context | None = None) -> np.ndarray:
    apex = apex_number(clip, config.apex, align=config.align, context=context)
    frames = load_frames(clip, [apex], size=config.size, color=config.color,
                         align=config.align, magnify=config.magnify, context=context)
    return _channels_last(frames)[0]


@dataclass(frozen=True)
class ClipConfig:
    """`length` frames across onset..offset: uniform sampling, TIM or linear interpolation."""

    length: int = 8
    sampling: str = "uniform"
    size: int = 128
    color: bool = False
    align: Any = None
    magnify: Any = None

    def __post_init__(self) -> None:
        _check_size(self.size)
        if self.length < 2:
            raise ConfigError(f"length must be >= 2 frames, got {self.length}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")


def range_files(clip: Mapping[str, Any], config: Any) -> list[str]:
    return [frame_file(clip, n) for n in clip_range(clip)]


def frame_clip(clip: Mapping[str, Any], config: ClipConfig,
               context: Context | None = None) -> np.ndarray:
    """length x H x W x C frames spanning the clip."""
    from microexpr.preprocess.temporal import interpolate_frames, sample_indices

    numbers = clip_range(clip)
    if config.sampling == "uniform" and config.magnify is None:
        numbers = [numbers[i] for i in sample_indices(len(numbers), config.length)]
        frames = load_frames(clip, numbers, size=config.size, color=config.color,
                             align=config.align, context=context)
        return _channels_last(frames)
    frames = load_frames(clip, numbers, size=config.size, color=config.color,
                         align=config.align, magnify=config.magnify, context=context)
    return _channels_last(interpolate_frames(frames, config.length, config.sampling))


@dataclass(frozen=True)
class DynamicConfig:
    """Dynamic images by approximate rank pooling: one per segment and/or one for the clip.

    The result is (segments [+ 1 global]) x H x W x C, each image min-max scaled to 0..255
    when `rescale` (as images fed to CNNs are), else the raw weighted sums.
    """

    segments: int = 4
    include_global: bool = True
    size: int = 128
    color: bool = False
    rescale: bool = True
    align: Any = None
    magnify: Any = None

    def __post_init__(self) -> None:
        _check_size(self.size)
        if self.segments < 0 or (self.segments == 0 and not self.include_global):
            raise ConfigError("need segments >= 1 or include_global=True")


def dynamic_images(clip: Mapping[str, Any], config: DynamicConfig,
                   context: Context | None = None) -> np.ndarray:
    from microexpr.preprocess.dynamic import dynamic_image, segment_dynamic_images, to_uint8

    frames = load_frames(clip, clip_range(clip), size=config.size, color=config.color,
                         align=config.align, magnify=config.magnify, context=context)
    frames = frames.astype(np.float32)
    images = []
    if config.segments:
        images.extend(segment_dynamic_images(frames, config.segments))
    if config.include_global:
        images.append(dynamic_image(frames))
    if config.rescale:
        images = [to_uint8(image) for image in images]
    return _channels_last(np.stack(images))


for _rep in (
    Representation("apex_frame", ApexConfig, apex_frame, apex_files, 1,
                   "the apex frame (spotted where not annotated), gray or colour",
                   image_channels),
    Representation("frame_clip", ClipConfig, frame_clip, range_files, 1,
                   "N frames across onset..offset (uniform, TIM or linear interpolation)",
                   image_channels),
    Representation("dynamic_images", DynamicConfig, dynamic_images, range_files, 1,
                   "dynamic images (approximate rank pooling) per segment and for the clip",
                   image_channels),
):
    register_representation(_rep)
