"""Face alignment and cropping for whole clips: one transform per clip, applied to every frame.

Micro-expressions are tiny movements, so a clip is aligned ONCE, on its reference frame (the
onset), and that same similarity transform is applied to every frame. Re-aligning each frame
would track (and so erase) part of the motion the models are meant to see.

The transform (`alignment_transform`) rotates the eye line to horizontal, scales the
inter-ocular distance (IOD) to a fixed length and puts the eyes on fixed canonical positions.
Geometry of an aligned crop of side S with margin m: the face square (brows to chin, ear to
ear) is `FACE_PER_IOD` = 2.4 IODs wide, with the eye line `EYE_LINE` = 0.22 of its side below
its top; the crop is that square grown by m times its side on every side. Hence, in crop
pixels (pixel centres at integers, as OpenCV):

    face side  f = S / (1 + 2 m)            IOD = f / 2.4
    eye line   y = (m + 0.22) f - 0.5
    eyes       x = (m + 0.5 -/+ 0.5 / 2.4) f - 0.5   (image-left eye, image-right eye)

For S = 128, m = 0.3: eyes at (46.8, 41.1) and (80.2, 41.1), IOD 33.3 px, chin near y = 103.
With landmarks, the horizontal position comes from the face's midline instead of from the
eyes alone (the mean of the eye midpoint, the nose tip and the mouth-corner midpoint goes to
the crop's centre column), so a slightly turned face stays centred; the eye line still lies
at the canonical height and the eyes are within a few pixels of their canonical columns.
`canonical_eyes(config)` gives the positions.

Per-clip policy (`align_clip`):

- The reference frame must show a face, else `FaceNotFoundError` naming the frame.
- Several faces on the reference frame: with ``policy="largest"`` the largest is used; with
  ``policy="track"`` each is followed (frame to frame, to the nearest face) through the
  checked frames and the one found in most of them is used (ties: the larger). A warning
  says how many faces there were and which was used.
- Besides the reference, `check_frames` frames spread over the clip (the last one included)
  are searched for the face, following it outwards from the reference to the nearest face
  each time (one at most `MATCH_FRACTION` face widths away, of a similar size). A checked
  frame without the face, with the face moved by more than `JUMP_FRACTION` of its width
  from the reference, or with the face partly outside the image gives a warning naming that
  frame. It never stops the clip: the crop stays where the reference put it.
- A crop that reaches outside the reference frame is filled with black there, with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from microexpr.data.images import read_image
from microexpr.errors import ConfigError, FaceNotFoundError, InputShapeError
from microexpr.preprocess.faces import FACE_BACKENDS, Face, FaceBackend, get_face_backend

POLICIES = ("largest", "track")
FACE_PER_IOD = 2.4  # face square side, in inter-ocular distances
EYE_LINE = 0.22  # depth of the eye line in the face square, as a fraction of its side
JUMP_FRACTION = 0.2  # a checked face this far (x its width) from the reference one is a jump
MATCH_FRACTION = 1.0  # a face this near (x the followed face's width) is the same face

Frame = np.ndarray | str | Path


@dataclass(frozen=True)
class AlignConfig:
    """How a clip's face is found, aligned and cropped (part of representation cache keys).

    backend: face backend ("auto", "mediapipe", "haar", "dlib"); size: output side in pixels;
    margin: border around the face square as a fraction of its side (see the module notes);
    color: RGB crops when True, grayscale when False; policy: "largest" or "track" (which face
    to use when the reference frame shows several); check_frames: how many other frames,
    spread over the clip, are checked for the face leaving or jumping (0: none).
    """

    backend: str = "auto"
    size: int = 128
    margin: float = 0.3
    color: bool = False
    policy: str = "largest"
    check_frames: int = 3

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *FACE_BACKENDS):
            raise ConfigError(f"unknown face backend {self.backend!r}; choose one of "
                              f"{('auto', *FACE_BACKENDS)}")
        if not isinstance(self.size, int) or self.size < 16:
            raise ConfigError(f"align size must be an integer >= 16 pixels, got {self.size!r}")
        if not 0.0 <= self.margin <= 2.0:
            raise ConfigError(f"align margin must be within 0..2 (a fraction of the face "
                              f"size), got {self.margin!r}")
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown face policy {self.policy!r}; choose one of {POLICIES}")
        if not isinstance(self.check_frames, int) or self.check_frames < 0:
            raise ConfigError(f"check_frames must be an integer >= 0, got "
                              f"{self.check_frames!r}")


@dataclass
class ClipAlignment:
    """The alignment of one clip: a 2x3 affine (source -> crop), the reference face, its
    landmarks in crop coordinates (None without landmarks) and the policy's warnings."""

    transform: np.ndarray
    face: Face
    landmarks: np.ndarray | None
    warnings: list[str] = field(default_factory=list)


def canonical_eyes(config: AlignConfig) -> np.ndarray:
    """(2, 2) canonical (x, y) crop positions of the image-left and image-right eye centres."""
    side = config.size / (1.0 + 2.0 * config.margin)
    half = 0.5 / FACE_PER_IOD
    y = (config.margin + EYE_LINE) * side - 0.5
    return np.array([[(config.margin + 0.5 - half) * side - 0.5, y],
                     [(config.margin + 0.5 + half) * side - 0.5, y]])


def alignment_transform(face: Face, config: AlignConfig) -> np.ndarray:
    """2x3 float64 similarity (source image -> crop) putting the face's eyes on the canonical
    positions: rotation levelling the eye line, scale from the inter-ocular distance, and
    with landmarks the face's midline (eyes, nose tip, mouth corners) on the centre column."""
    eyes = np.asarray(face.eyes, dtype=np.float64)
    delta = eyes[1] - eyes[0]
    iod = float(np.hypot(*delta))
    if iod < 2.0:
        raise FaceNotFoundError(f"the face at box {tuple(round(v) for v in face.box)} has its "
                                f"eye centres {iod:.1f} px apart: too small or too turned to "
                                f"align")
    target = canonical_eyes(config)
    cos, sin = delta / iod
    scale = (target[1, 0] - target[0, 0]) / iod
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    offset = target.mean(0) - linear @ eyes.mean(0)
    if face.landmarks is not None:
        points = np.asarray(face.landmarks, dtype=np.float64)
        midline = (eyes.mean(0) + points[30] + (points[48] + points[54]) / 2.0) / 3.0
        offset[0] = target[:, 0].mean() - (linear @ midline)[0]
    return np.hstack([linear, offset[:, None]])


def _transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:, :2].T + transform[:, 2]


def _as_image(frame: Frame, where: str) -> np.ndarray:
    """A frame as a uint8 H x W or H x W x 3 (RGB) array; files are read with OpenCV."""
    if isinstance(frame, str | Path):
        return read_image(frame, color=True, what="frame")
    image = np.asarray(frame)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3
                                                           and image.shape[2] == 3)):
        raise InputShapeError(f"{where} must be a uint8 H x W or H x W x 3 (RGB) array, got "
                              f"{image.dtype} {image.shape}")
    return image


def _name(frames: Sequence[Frame], index: int) -> str:
    frame = frames[index]
    return Path(frame).name if isinstance(frame, str | Path) else str(index)


def _checked_indices(count: int, reference: int, wanted: int) -> list[int]:
    """`wanted` frame indices other than the reference, spread evenly, the last one included."""
    others = [i for i in range(count) if i != reference]
    wanted = min(wanted, len(others))
    if wanted <= 0:
        return []
    picks = {others[round((j + 1) * len(others) / wanted) - 1] for j in range(wanted)}
    return sorted(picks)


def _distance(a: Face, b: Face) -> float:
    (ax, ay), (bx, by) = a.centre, b.centre
    return float(np.hypot(ax - bx, ay - by))


def _nearest(faces: list[Face], previous: Face) -> tuple[Face | None, float]:
    """The face nearest to `previous` if it is near enough (and of a similar size)."""
    if not faces:
        return None, float("inf")
    best = min(faces, key=lambda f: _distance(f, previous))
    gap = _distance(best, previous)
    ratio = best.area / max(previous.area, 1e-6)
    same = gap <= MATCH_FRACTION * previous.box[2] and 1 / 2.25 <= ratio <= 2.25
    return (best if same else None), gap


def _follow(start: Face, reference: int, checked: list[int],
            detections: dict[int, list[Face]]) -> dict[int, tuple[Face | None, float]]:
    """Follow `start` from the reference frame outwards through the checked frames."""
    found: dict[int, tuple[Face | None, float]] = {}
    for order in ([i for i in checked if i > reference],
                  [i for i in reversed(checked) if i < reference]):
        previous = start
        for index in order:
            face, gap = _nearest(detections[index], previous)
            found[index] = (face, gap)
            if face is not None:
                previous = face
    return found


def _outside(box: tuple[float, float, float, float], shape: tuple[int, ...],
             tolerance: float) -> bool:
    x, y, w, h = box
    return (x < -tolerance * w or y < -tolerance * h or x + w > shape[1] + tolerance * w
            or y + h > shape[0] + tolerance * h)


def _align(frames: Sequence[Frame], config: AlignConfig, reference: int,
           loaded: dict[int, np.ndarray]) -> ClipAlignment:
    count = len(frames)
    if count == 0:
        raise ConfigError("align_clip needs at least one frame")
    if not -count <= reference < count:
        raise ConfigError(f"reference frame {reference} is outside the clip's {count} frames")
    reference %= count
    backend: FaceBackend = get_face_backend(config.backend)

    def detect(index: int) -> list[Face]:
        if index not in loaded:
            loaded[index] = _as_image(frames[index], f"frame {index}")
        return backend.detect(loaded[index])

    ref_name = _name(frames, reference)
    candidates = detect(reference)
    if not candidates:
        other = "mediapipe" if backend.name == "haar" else "haar"
        where = f"frame {reference} of the clip"
        if isinstance(frames[reference], str | Path):
            where = f"{frames[reference]}, {where}"
        raise FaceNotFoundError(
            f"no face found on the reference frame ({where}) by the {backend.name!r} face "
            f"backend; check that the video shows a frontal face there (or choose another "
            f"reference frame), or try AlignConfig(backend={other!r})")
    checked = _checked_indices(count, reference, config.check_frames)
    detections = {index: detect(index) for index in checked}
    warnings: list[str] = []

    if config.policy == "track" and len(candidates) > 1:
        follows = [_follow(face, reference, checked, detections) for face in candidates]
        hits = [sum(face is not None for face, _ in follow.values()) for follow in follows]
        best = max(range(len(candidates)), key=lambda i: (hits[i], -i))
        face, followed = candidates[best], follows[best]
        warnings.append(f"{len(candidates)} faces on the reference frame {ref_name}: "
                        f"following the one found in {hits[best]} of {len(checked)} checked "
                        f"frames (policy 'track')")
    else:
        face = candidates[0]
        followed = _follow(face, reference, checked, detections)
        if len(candidates) > 1:
            warnings.append(f"{len(candidates)} faces on the reference frame {ref_name}: "
                            f"using the largest")

    for index in checked:
        name = _name(frames, index)
        match, gap = followed[index]
        if match is None and not detections[index]:
            warnings.append(f"face not found in frame {name} (left the frame?)")
        elif match is None:
            warnings.append(f"face not found in frame {name}: the nearest face is {gap:.0f} "
                            f"px away (left the frame, or another face?)")
        else:
            moved = _distance(match, face)
            if moved > JUMP_FRACTION * face.box[2]:
                warnings.append(f"face in frame {name} moved {moved:.0f} px "
                                f"({moved / face.box[2]:.0%} of its width) from the reference "
                                f"frame {ref_name}: the crop is fixed, so it may cut the face")
            if _outside(match.box, loaded[index].shape, 0.05):
                warnings.append(f"face in frame {name} is partly outside the image "
                                f"(leaving the frame?)")

    transform = alignment_transform(face, config)
    corners = np.array([[-0.5, -0.5], [config.size - 0.5, -0.5], [-0.5, config.size - 0.5],
                        [config.size - 0.5, config.size - 0.5]])
    source = _transform_points(cv2.invertAffineTransform(transform), corners)
    height, width = loaded[reference].shape[:2]
    if (source.min(0) < -1.0).any() or source[:, 0].max() > width or source[:, 1].max() > height:
        warnings.append(f"the aligned crop reaches outside the reference frame {ref_name} "
                        f"(face near the edge); that part of the crop is black")
    landmarks = None
    if face.landmarks is not None:
        landmarks = _transform_points(transform, face.landmarks).astype(np.float32)
    return ClipAlignment(transform, face, landmarks, warnings)


def align_clip(frames: Sequence[Frame], config: AlignConfig = AlignConfig(),
               reference: int = 0) -> ClipAlignment:
    """The clip's alignment, from the face on frame `reference` (the onset).

    `frames` are uint8 arrays (gray or RGB) or image paths (read with OpenCV; DatasetError
    names an unreadable file). Only the reference frame and `config.check_frames` others are
    read. FaceNotFoundError when the reference frame has no face; the module notes give the
    policy for several faces and for faces that leave.
    """
    return _align(frames, config, reference, {})


def _shrink_first(image: np.ndarray, transform: np.ndarray, size: int, scale: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Area-average the crop's source region down to about the crop's scale (no aliasing when
    a large face is shrunk a lot) and return it with the transform adjusted to it."""
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5],
                        [size - 0.5, size - 0.5]])
    source = _transform_points(cv2.invertAffineTransform(transform), corners)
    height, width = image.shape[:2]
    x0, y0 = np.maximum(np.floor(source.min(0)).astype(int) - 2, 0)
    x1 = min(int(np.ceil(source[:, 0].max())) + 3, width)
    y1 = min(int(np.ceil(source[:, 1].max())) + 3, height)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((1, 1) + image.shape[2:], np.uint8), transform
    region = image[y0:y1, x0:x1]
    new_w, new_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
    # small pixel -> source pixel (pixel centres at integers on both sides)
    back = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5 + x0],
                     [0.0, 1 / fy, 0.5 / fy - 0.5 + y0],
                     [0.0, 0.0, 1.0]])
    return small, (np.vstack([transform, [0.0, 0.0, 1.0]]) @ back)[:2]


def warp_face(image: np.ndarray, alignment: ClipAlignment | np.ndarray,
              config: AlignConfig) -> np.ndarray:
    """One frame -> its size x size aligned crop: uint8 gray, or RGB when `config.color`.

    `image` is uint8 gray or RGB; `alignment` a ClipAlignment or its 2x3 transform. Bilinear
    sampling; when the face is shrunk more than 2x its region is area-averaged first.
    """
    transform = alignment.transform if isinstance(alignment, ClipAlignment) else alignment
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (2, 3):
        raise InputShapeError(f"warp_face needs a 2x3 affine transform, got {transform.shape}")
    image = _as_image(image, "warp_face's image")
    size = config.size
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if scale < 0.5:
        image, transform = _shrink_first(image, transform, size, scale)
    crop = cv2.warpAffine(image, transform, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if config.color and crop.ndim == 2:
        return cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
    if not config.color and crop.ndim == 3:
        return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return crop


def align_frames(frames: Sequence[Frame], config: AlignConfig = AlignConfig(),
                 reference: int = 0) -> tuple[np.ndarray, ClipAlignment]:
    """Align a whole clip: (T x size x size [x 3] uint8 crops, its ClipAlignment).

    Files are read once each, all in colour (then converted), so every frame of a clip goes
    through the same decoding and conversion.
    """
    loaded: dict[int, np.ndarray] = {}
    alignment = _align(frames, config, reference, loaded)
    crops = []
    for index, frame in enumerate(frames):
        image = loaded.pop(index, None)
        if image is None:
            image = _as_image(frame, f"frame {index}")
        crops.append(warp_face(image, alignment.transform, config))
    return np.stack(crops), alignment
