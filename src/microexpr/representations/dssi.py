"""DSSI: Dynamic Segmented Sparse Imaging, the input of SMA-STN.

Liu, Zheng, Zong, "SMA-STN: Segmented Movement-Attending Spatiotemporal Network for
Micro-Expression Recognition", arXiv 2010.09342, 2020. The clip onset..offset is split into
`segments` contiguous segments (`preprocess.dynamic.segment_bounds`); from each, a sparse
sampling of `frames_per_segment` evenly spaced frames (both segment ends included) is
summarised in one dynamic image by approximate rank pooling; a last, global dynamic image is
built the same way from `global_frames` frames spread over the whole clip.

The paper's segment count and sampling density are not public; the defaults (4 segments of 4
frames, 8 global frames) give each dynamic image a short, evenly sampled window, as rank
pooling needs for the weights of `rank_pooling_weights` to stay meaningful. Dynamic images
sum pixel values over time, so any head motion shows up as edges: faces are aligned (one
transform per clip, from the onset) by default; `align=None` (false) uses whole frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.representations.appearance import _channels_last, image_channels
from microexpr.representations.base import (
    Representation,
    nested_class,
    register_representation,
)
from microexpr.representations.frames import Context, clip_range, frame_file, load_frames


def _default_align() -> Any:
    """An AlignConfig with its defaults (its size follows the representation's `size`)."""
    return nested_class("align")()


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"dssi option {name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class DSSIConfig:
    """SMA-STN's dynamic images: `segments` sparse per-segment ones, then a global one.

    The result is (segments + 1) x size x size x C float32 (C = 1 gray, 3 with `color`),
    the last image the global one; with `rescale` each image is min-max scaled to 0..255 on
    its own (as `DynamicConfig` does), else the raw weighted sums. A clip needs at least
    2 x `segments` frames (two per segment); a segment shorter than `frames_per_segment` uses
    all its frames. `align`: an AlignConfig (default: the face aligned and cropped, see
    `microexpr.preprocess.align`) or None for whole frames; `magnify`: a MagnifyConfig or None.
    """

    segments: int = 4
    frames_per_segment: int = 4
    global_frames: int = 8
    size: int = 64
    color: bool = False
    rescale: bool = True
    align: Any = field(default_factory=_default_align)
    magnify: Any = None

    def __post_init__(self) -> None:
        _check_int("segments", self.segments, 1)
        _check_int("frames_per_segment", self.frames_per_segment, 2)
        _check_int("global_frames", self.global_frames, 2)
        _check_int("size", self.size, 8)
        for name in ("color", "rescale"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ConfigError(f"dssi option {name} must be true or false, "
                                  f"got {getattr(self, name)!r}")
        for name in ("align", "magnify"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls := nested_class(name)):
                raise ConfigError(f"dssi option {name} must be a {cls.__name__}, None, or (in a "
                                  f"dict config) true/false or a mapping of its options; got "
                                  f"{value!r}")


def dssi_indices(n_frames: int, config: DSSIConfig) -> list[np.ndarray]:
    """Indices into a clip's onset..offset frames of each dynamic image: one array per
    segment, then the global sampling (the last)."""
    from microexpr.preprocess.dynamic import sparse_segment_indices

    per_segment = sparse_segment_indices(n_frames, config.segments, config.frames_per_segment)
    return [*per_segment, *sparse_segment_indices(n_frames, 1, config.global_frames)]


def _sampled_numbers(clip: Mapping[str, Any], config: DSSIConfig) -> tuple[list[int],
                                                                           list[np.ndarray]]:
    """(sorted frame numbers read, per image the positions of its frames in that list)."""
    numbers = clip_range(clip)
    groups = dssi_indices(len(numbers), config)
    used = sorted({int(i) for group in groups for i in group})
    where = {index: k for k, index in enumerate(used)}
    return [numbers[i] for i in used], [np.array([where[int(i)] for i in g]) for g in groups]


def dssi_files(clip: Mapping[str, Any], config: DSSIConfig) -> list[str]:
    """The frames the result depends on: the sampled ones (onset and offset among them, which
    the alignment is keyed on); all of onset..offset with `magnify` (its filter reads them)."""
    if config.magnify is not None:
        return [frame_file(clip, n) for n in clip_range(clip)]
    numbers, _ = _sampled_numbers(clip, config)
    return [frame_file(clip, n) for n in numbers]


def dssi(clip: Mapping[str, Any], config: DSSIConfig,
         context: Context | None = None) -> np.ndarray:
    """(segments + 1) x size x size x C dynamic images of a clip, the global one last."""
    from microexpr.preprocess.dynamic import dynamic_image, to_uint8

    numbers, groups = _sampled_numbers(clip, config)  # only the sampled frames are read
    frames = load_frames(clip, numbers, size=config.size, color=config.color,
                         align=config.align, magnify=config.magnify, context=context)
    frames = frames.astype(np.float32)
    images = [dynamic_image(frames[group]) for group in groups]
    if config.rescale:
        images = [to_uint8(image) for image in images]
    return _channels_last(np.stack(images))


register_representation(Representation(
    name="dssi", config_class=DSSIConfig, compute=dssi, files=dssi_files, version=1,
    description="SMA-STN's DSSI: sparse dynamic images per segment plus a global one, on "
                "aligned faces",
    channels=image_channels,  # ("gray",) or ("r", "g", "b"); leading axes (K + 1) x H x W
))
