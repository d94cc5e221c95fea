"""Following one face through a video and aligning it once per stable stretch.

Running a face detector on every frame costs more than the rest of a video analysis together
(and the Haar back end alone is slower than real time), so the face is detected every
`TrackConfig.detect_every_s` seconds, and at once when the face crop stops looking like the
face it was aligned on (a cheap per-frame check of a 16 x 16 thumbnail's correlation), which is
how a face that leaves the picture is noticed within a frame or two.

Alignment: a similarity transform from the eye centres (`microexpr.preprocess.align`) is
computed when a face is first found and kept for every frame until the head really moves:
the eye midpoint shifted by more than `realign_shift` inter-ocular distances (IOD), the IOD
changed by more than `realign_scale` of itself, or the eye line turned by more than
`realign_angle` degrees, compared with the face the stretch was aligned on. Each such
stretch has its own id. Micro-expressions are motions of a pixel or two; re-aligning every
frame would follow (and so erase) part of them, which is why the transform is held fixed.

Policy for several faces (`AlignConfig.policy`): "track" follows the face nearest the one
tracked so far (at most `MATCH_FRACTION` face widths away and of a similar size), starting from
the largest; "largest" always takes the largest face. The frame where the number of faces
changes says so in its warning. A frame whose detection finds no face
starts a gap: its frames are reported without a face (never guessed) until a detection finds
one again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from microexpr.errors import ConfigError, FaceNotFoundError
from microexpr.preprocess.align import (
    MATCH_FRACTION,
    AlignConfig,
    alignment_transform,
    warp_face,
)
from microexpr.preprocess.faces import Face, FaceBackend, get_face_backend

THUMB = 16  # side of the thumbnail the per-frame check compares


@dataclass(frozen=True)
class TrackConfig:
    """How often the face is detected and when the alignment is renewed.

    detect_every_s: seconds between detections while nothing looks wrong; similarity: the
    correlation (0..1) of the crop's thumbnail with the one taken at the last detection below
    which the face is detected again at once; realign_shift (IODs), realign_scale (fraction
    of the IOD) and realign_angle (degrees): how far the head must move from the face a
    stretch was aligned on before a new alignment (stretch) starts.
    """

    detect_every_s: float = 0.2
    similarity: float = 0.6
    realign_shift: float = 0.1
    realign_scale: float = 0.1
    realign_angle: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 < self.detect_every_s <= 10.0:
            raise ConfigError(f"detect_every_s must be within (0, 10] seconds, got "
                              f"{self.detect_every_s!r}")
        if not 0.0 <= self.similarity < 1.0:
            raise ConfigError(f"similarity must be within [0, 1), got {self.similarity!r}")
        for name in ("realign_shift", "realign_scale", "realign_angle"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")


@dataclass
class TrackStep:
    """The tracker's answer for one frame.

    found: a face is being followed on this frame; box: its (x, y, w, h) at the latest
    detection; stretch: the id of the alignment in use (-1 without a face); crop: the aligned
    size x size uint8 gray crop (None without a face); realigned: the 2x3 transform taking the
    previous stretch's crops to this one's, when a new stretch continues a face followed up
    to the previous frame (None otherwise); restarted: this frame begins a new track (a face
    found after a gap, or another face than before), so earlier crops do not compare with
    it; detected: a detection ran on this frame; warnings: what the policy did on this frame,
    in words.
    """

    found: bool
    box: tuple[float, float, float, float] | None
    stretch: int
    crop: np.ndarray | None
    realigned: np.ndarray | None = None
    restarted: bool = False
    detected: bool = False
    warnings: list[str] = field(default_factory=list)


def _thumbnail(crop: np.ndarray) -> np.ndarray:
    """A zero-mean, unit-norm 16 x 16 thumbnail (its dot product is a correlation)."""
    small = cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


def _geometry(face: Face) -> tuple[np.ndarray, float, float]:
    """Eye midpoint, inter-ocular distance and eye-line angle (radians) of a face."""
    eyes = np.asarray(face.eyes, dtype=np.float64)
    delta = eyes[1] - eyes[0]
    return eyes.mean(0), float(np.hypot(*delta)), float(np.arctan2(delta[1], delta[0]))


def _distance(a: Face, b: Face) -> float:
    (ax, ay), (bx, by) = a.centre, b.centre
    return float(np.hypot(ax - bx, ay - by))


def _as3x3(transform: np.ndarray) -> np.ndarray:
    return np.vstack([transform, [0.0, 0.0, 1.0]])


class FaceTracker:
    """Detects, follows and aligns one face, frame by frame (see the module notes).

    `step(index, image)` takes the frames in order (uint8 RGB) and returns a `TrackStep`.
    `detections` counts the detector runs, `stretches` the alignments made.
    """

    def __init__(self, align: AlignConfig, track: TrackConfig, fps: float,
                 backend: FaceBackend | None = None) -> None:
        self.align = align
        self.track = track
        self.backend = backend if backend is not None else get_face_backend(align.backend)
        self.every = max(1, round(track.detect_every_s * fps))
        self.detections = 0
        self.stretches = 0
        self._face: Face | None = None  # the latest detection of the followed face
        self._reference: Face | None = None  # the face the current stretch is aligned on
        self._transform: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        self._last_detection: int | None = None
        self._was_outside = False  # the current stretch's crop reaches outside the frame
        self._count = 1  # faces seen at the latest detection (several: said when it changes)

    def step(self, index: int, image: np.ndarray) -> TrackStep:
        """Follow the face onto frame `index` (uint8 H x W x 3 RGB)."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        due = self._last_detection is None or index - self._last_detection >= self.every
        crop = None
        if self._transform is not None and not due:
            crop = warp_face(gray, self._transform, self.align)
            assert self._thumb is not None
            if float((_thumbnail(crop) * self._thumb).sum()) >= self.track.similarity:
                return TrackStep(True, self._box(), self.stretches - 1, crop)
            due = True  # the crop no longer looks like the face: find it again now
        if not due:  # no face, and not yet time to look again
            return TrackStep(False, None, -1, None)
        return self._detect(index, image, gray, crop)

    def _box(self) -> tuple[float, float, float, float] | None:
        return None if self._face is None else self._face.box

    def _lose(self, warnings: list[str]) -> TrackStep:
        self._face = self._reference = self._transform = self._thumb = None
        self._was_outside = False
        return TrackStep(False, None, -1, None, detected=True, warnings=warnings)

    def _detect(self, index: int, image: np.ndarray, gray: np.ndarray,
                crop: np.ndarray | None) -> TrackStep:
        self._last_detection = index
        self.detections += 1
        faces = self.backend.detect(image)
        warnings: list[str] = []
        followed = self._face is not None
        if not faces:
            if followed:
                warnings.append("face lost: the detector finds no face")
            return self._lose(warnings)
        face, switched = self._choose(faces, warnings)
        if followed and not switched and not self._moved(face):
            self._face = face
            if crop is None:
                crop = warp_face(gray, self._transform, self.align)
            self._thumb = _thumbnail(crop)
            return TrackStep(True, face.box, self.stretches - 1, crop, detected=True,
                             warnings=warnings)
        try:
            transform = alignment_transform(face, self.align)
        except FaceNotFoundError as error:
            warnings.append(f"face not aligned: {error}")
            return self._lose(warnings)
        realigned = None
        if followed and not switched:
            assert self._transform is not None and self._reference is not None
            realigned = (_as3x3(transform) @ np.linalg.inv(_as3x3(self._transform)))[:2]
            warnings.append(f"re-aligned: {self._movement(face)}")
        self._face = self._reference = face
        self._transform = transform
        self.stretches += 1
        crop = warp_face(gray, transform, self.align)
        self._thumb = _thumbnail(crop)
        outside = self._outside(transform, gray.shape)
        if outside and not self._was_outside:
            warnings.append("the aligned crop reaches outside the frame (face near the edge); "
                            "that part of the crop is black")
        self._was_outside = outside
        return TrackStep(True, face.box, self.stretches - 1, crop, realigned,
                         restarted=realigned is None, detected=True, warnings=warnings)

    def _choose(self, faces: list[Face], warnings: list[str]) -> tuple[Face, bool]:
        """The face to follow among `faces` (largest first) and whether it is another face
        than the one followed so far."""
        previous = self._face
        several = len(faces) > 1 and (len(faces) != self._count or previous is None)
        self._count = len(faces)
        if previous is None or self.align.policy == "largest":
            if several:
                warnings.append(f"{len(faces)} faces: using the largest")
            switched = previous is not None and not self._same(faces[0], previous)
            if switched:
                warnings.append("the largest face is another face than before: aligning on it")
            return faces[0], switched
        nearest = min(faces, key=lambda f: _distance(f, previous))
        if self._same(nearest, previous):
            if several:
                warnings.append(f"{len(faces)} faces: following the one nearest the tracked "
                                f"face")
            return nearest, False
        warnings.append(f"the tracked face is gone ({len(faces)} other face"
                        f"{'s' if len(faces) > 1 else ''} found): following the largest")
        return faces[0], True

    @staticmethod
    def _same(face: Face, previous: Face) -> bool:
        ratio = face.area / max(previous.area, 1e-6)
        return (_distance(face, previous) <= MATCH_FRACTION * previous.box[2]
                and 1 / 2.25 <= ratio <= 2.25)

    def _changes(self, face: Face) -> tuple[float, float, float]:
        """Shift (IODs), relative scale change and turn (degrees) from the stretch's face."""
        assert self._reference is not None
        centre, iod, angle = _geometry(face)
        ref_centre, ref_iod, ref_angle = _geometry(self._reference)
        shift = float(np.hypot(*(centre - ref_centre))) / max(ref_iod, 1e-6)
        turn = abs((angle - ref_angle + np.pi) % (2 * np.pi) - np.pi)
        return shift, abs(iod / max(ref_iod, 1e-6) - 1.0), float(np.degrees(turn))

    def _moved(self, face: Face) -> bool:
        shift, scale, turn = self._changes(face)
        return (shift > self.track.realign_shift or scale > self.track.realign_scale
                or turn > self.track.realign_angle)

    def _movement(self, face: Face) -> str:
        shift, scale, turn = self._changes(face)
        return (f"the head moved {shift:.2f} IOD, scaled {scale:.0%}, turned {turn:.1f} deg "
                f"since the stretch began")

    def _outside(self, transform: np.ndarray, shape: tuple[int, ...]) -> bool:
        size = self.align.size
        corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1],
                            [size - 0.5, size - 0.5, 1]])
        source = corners @ cv2.invertAffineTransform(transform).T
        return bool((source.min(0) < -1.0).any() or source[:, 0].max() > shape[1]
                    or source[:, 1].max() > shape[0])
