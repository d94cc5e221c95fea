"""Landmark representations: 68-point sequences and facial regions, in aligned-crop pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from microexpr.data.images import read_image
from microexpr.errors import ConfigError, FaceNotFoundError
from microexpr.representations.base import Representation, register_representation
from microexpr.representations.frames import (
    Context,
    clip_alignment,
    clip_range,
    frame_file,
)


def _align_config(backend: str, size: int) -> Any:
    from microexpr.preprocess.align import AlignConfig

    return AlignConfig(backend=backend, size=size)


@dataclass(frozen=True)
class LandmarkConfig:
    """68 landmarks on `length` frames sampled across onset..offset: length x 68 x 2.

    Coordinates are pixels of the clip's aligned face crop (size x size), so they share one
    frame of reference across the clip; a frame where no face is found repeats the previous
    frame's landmarks.
    """

    length: int = 8
    size: int = 128
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.length < 1 or self.size < 8:
            raise ConfigError(f"need length >= 1 and size >= 8, got {self.length}, {self.size}")


def landmark_files(clip: Mapping[str, Any], config: Any) -> list[str]:
    return [frame_file(clip, n) for n in clip_range(clip)]


def _nearest_landmarks(faces: list, transform: np.ndarray, target: np.ndarray
                       ) -> np.ndarray | None:
    """Landmarks (crop coords) of the face whose landmarks lie nearest to `target`."""
    best, best_distance = None, np.inf
    for face in faces:
        if face.landmarks is None:
            continue
        mapped = cv2.transform(np.asarray(face.landmarks, np.float64)[None], transform)[0]
        distance = float(np.mean(np.linalg.norm(mapped - target, axis=1)))
        if distance < best_distance:
            best, best_distance = mapped, distance
    return best


def landmark_sequence(clip: Mapping[str, Any], config: LandmarkConfig,
                      context: Context | None = None) -> np.ndarray:
    from microexpr.preprocess.faces import get_face_backend
    from microexpr.preprocess.temporal import sample_indices

    transform, onset_landmarks = clip_alignment(
        clip, _align_config(config.backend, config.size), context)
    if onset_landmarks is None:
        raise FaceNotFoundError(
            f"clip {clip['dataset']}/{clip['clip']}: the {config.backend!r} face backend gives "
            f"no landmarks; use backend 'mediapipe' (or 'dlib') for landmark representations")
    backend = get_face_backend(config.backend)
    numbers = clip_range(clip)
    numbers = [numbers[i] for i in sample_indices(len(numbers), config.length)]
    previous = np.asarray(onset_landmarks, np.float64)
    sequence = []
    for number in numbers:
        faces = backend.detect(read_image(frame_file(clip, number), color=True, what="frame"))
        found = _nearest_landmarks(faces, transform, previous)
        previous = found if found is not None else previous
        sequence.append(previous)
    return np.stack(sequence).astype(np.float32)


@dataclass(frozen=True)
class RegionConfig:
    """Facial regions (brows, eyes, nose, mouth, cheeks, chin) from the onset's 68 landmarks,
    as R x 4 boxes (x, y, width, height) in aligned-crop pixels, in `region_names()` order."""

    size: int = 128
    backend: str = "auto"
    margin: float = 0.15

    def __post_init__(self) -> None:
        if self.size < 8 or self.margin < 0:
            raise ConfigError(f"need size >= 8 and margin >= 0, got {self.size}, {self.margin}")


def region_names() -> tuple[str, ...]:
    from microexpr.preprocess.faces import ROI_LANDMARKS

    return tuple(ROI_LANDMARKS)


def onset_files(clip: Mapping[str, Any], config: Any) -> list[str]:
    numbers = clip_range(clip) or [clip["onset"]]
    return [frame_file(clip, numbers[0]), frame_file(clip, numbers[-1])]


def face_regions(clip: Mapping[str, Any], config: RegionConfig,
                 context: Context | None = None) -> np.ndarray:
    from microexpr.preprocess.faces import region_boxes

    _, landmarks = clip_alignment(clip, _align_config(config.backend, config.size), context)
    if landmarks is None:
        raise FaceNotFoundError(
            f"clip {clip['dataset']}/{clip['clip']}: no landmarks for facial regions; use the "
            f"mediapipe (or dlib) face backend")
    boxes = region_boxes(landmarks, margin=config.margin)
    return np.array([boxes[name] for name in region_names()], dtype=np.float32)


def point_channels(config: LandmarkConfig) -> tuple[str, ...]:
    """The last axis of length x 68 x 2 landmarks: crop pixel coordinates."""
    return ("x", "y")


def box_channels(config: RegionConfig) -> tuple[str, ...]:
    """The last axis of R x 4 region boxes (rows in `region_names()` order)."""
    return ("x", "y", "width", "height")


register_representation(Representation(
    "landmarks", LandmarkConfig, landmark_sequence, landmark_files, 1,
    "68-point landmark sequence across the clip, in aligned-crop pixels", point_channels))
register_representation(Representation(
    "face_regions", RegionConfig, face_regions, onset_files, 1,
    "boxes of brows, eyes, nose, mouth, cheeks and chin from the onset landmarks",
    box_channels))
