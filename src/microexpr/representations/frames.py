"""Frames of a clip as the representations see them: read, optionally face-aligned and
magnified, at the representation's working size.

Face alignment is computed once per clip on the onset frame (and cached on disk, with its
warnings), then applied to every frame, so motion within the clip is not erased.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from microexpr.data.images import read_image, resize
from microexpr.errors import DatasetError
from microexpr.preprocess.cache import ArrayCache, cache_key


@dataclass
class Context:
    """What a representation function gets besides clip and config: the cache (for face
    alignments) and a list collecting warnings about the clip (several faces, face lost)."""

    cache: ArrayCache = field(default_factory=lambda: ArrayCache(None))
    warnings: list[str] = field(default_factory=list)


ALIGNMENT_NAMESPACE = "face_alignment"
ALIGNMENT_VERSION = 1


def frame_file(clip: Mapping[str, Any], number: int) -> str:
    """The file of frame `number` of a clip; DatasetError naming the clip when it is absent."""
    numbers = list(clip["frame_numbers"])
    try:
        return clip["frames"][numbers.index(int(number))]
    except ValueError:
        raise DatasetError(
            f"clip {clip['dataset']}/{clip['clip']} has no frame {number} on disk "
            f"(frames {numbers[0]}..{numbers[-1]})"
        ) from None


def clip_range(clip: Mapping[str, Any]) -> list[int]:
    """Frame numbers on disk from onset to offset."""
    return [n for n in clip["frame_numbers"] if clip["onset"] <= n <= clip["offset"]]


def _pack(alignment: Any) -> np.ndarray:
    landmarks = alignment.landmarks
    flat = np.full(136, np.nan) if landmarks is None else np.asarray(landmarks, float).ravel()
    return np.concatenate([np.asarray(alignment.transform, float).ravel(), flat])


def clip_alignment(clip: Mapping[str, Any], align: Any, context: Context | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(2x3 transform, 68x2 landmarks in crop coordinates or None) of a clip.

    Computed on the onset frame (checking a few later frames for the face leaving) and cached;
    its warnings are added to `context.warnings`.
    """
    from microexpr.preprocess.align import align_clip

    paths = [frame_file(clip, n) for n in clip_range(clip)] or [frame_file(clip, clip["onset"])]
    context = context or Context()
    cache = context.cache
    key = cache_key(f"{ALIGNMENT_NAMESPACE}/v{ALIGNMENT_VERSION}", asdict(align),
                    [paths[0], paths[-1]])
    packed = cache.get(ALIGNMENT_NAMESPACE, key)
    if packed is not None:
        meta = cache.get_meta(ALIGNMENT_NAMESPACE, key)
        warnings = list(meta.get("warnings", [])) if meta else []
    else:
        alignment = align_clip(paths, align, reference=0)
        warnings = list(alignment.warnings)
        packed = _pack(alignment)
        cache.put(ALIGNMENT_NAMESPACE, key, packed, meta={"warnings": warnings})
    context.warnings.extend(w for w in warnings if w not in context.warnings)
    transform = packed[:6].reshape(2, 3)
    landmarks = None if np.isnan(packed[6:]).all() else packed[6:].reshape(68, 2)
    return transform, landmarks


def load_frames(clip: Mapping[str, Any], numbers: Sequence[int], *, size: int, color: bool,
                align: Any = None, magnify: Any = None, context: Context | None = None
                ) -> np.ndarray:
    """Frames `numbers` of a clip: T x size x size (x 3 with colour), uint8.

    With `align`, the face crop is warped straight to size x size; without, the whole frame is
    resized. With `magnify`, the clip's onset..offset frames are magnified first (the temporal
    filter needs the whole sequence) and the requested frames are taken from the result.
    """
    wanted = [int(n) for n in numbers]
    span = clip_range(clip) if magnify is not None else wanted
    if magnify is not None:
        missing = sorted(set(wanted) - set(span))
        if missing:
            raise DatasetError(f"clip {clip['dataset']}/{clip['clip']}: frames {missing} are "
                               f"outside onset..offset, which magnification needs")
    transform = None
    if align is not None:
        from microexpr.preprocess.align import warp_face
        from microexpr.representations.base import with_size

        align = with_size(align, size)
        transform, _ = clip_alignment(clip, align, context)
    frames = []
    for number in span:
        image = read_image(frame_file(clip, number),
                           color or align is not None and align.color, what="frame")
        if transform is not None:
            image = warp_face(image, transform, align)
            if not color and image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            elif color and image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        else:
            image = resize(image, size)
        frames.append(image)
    stack = np.stack(frames)
    if magnify is not None:
        from microexpr.preprocess.magnify import magnify as run_magnify

        stack = run_magnify(stack, float(clip["fps"]), magnify)
        index = {n: i for i, n in enumerate(span)}
        stack = stack[[index[n] for n in wanted]]
    return stack


