"""Face backends: find the faces in an image, with eye centres and 68-point landmarks.

Three backends share one interface, `FaceBackend.detect(image) -> list[Face]`:

- ``mediapipe`` (default): MediaPipe 0.10.21's face mesh (468 points, models bundled in the
  package, works offline, a few ms per face). The iBUG 68-point layout is taken from the mesh
  by the index table `MESH_TO_68`; the box is the bounding box of the whole 468-point mesh
  (forehead to chin, ear to ear; it may reach outside the image when the face does). The face
  mesh reports no detection confidence, so `score` is 1.0.
- ``haar``: OpenCV's Haar cascades (shipped with opencv 4.x): a frontal-face box and, inside
  its upper half, an eye cascade for the eye centres. No landmarks. Needs nothing else.
- ``dlib`` (optional, not a dependency): dlib's HOG face detector and its 68-point shape
  predictor from the ``face_recognition_models`` package.

Coordinates are image pixels with OpenCV's convention (the centre of pixel (0, 0) is at
(0, 0)). "Left" and "right" always mean the image's left and right (for a frontal face, the
subject's right eye is the image's left eye). `get_face_backend` builds each backend once per
process, so the models load once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from microexpr.errors import ConfigError, InputShapeError

FACE_BACKENDS = ("mediapipe", "haar", "dlib")

# The iBUG 300-W 68-point layout taken from MediaPipe's 468-point face mesh: entry k is the
# mesh index used for 68-point landmark k. "Left"/"right" are the image's, i.e. points 17-21
# and 36-41 are the subject's right brow and eye. The correspondences follow the public table
# of P. Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,
# mp2dlib.py), which averages two mesh points for a few landmarks; here every landmark is one
# mesh point, picked from the mesh's face-oval and lip contours (MediaPipe's FACEMESH_FACE_OVAL
# and FACEMESH_LIPS) so that the points keep iBUG's even spacing along each contour:
MESH_TO_68: tuple[int, ...] = (
    # 0-16 jaw, from the image-left ear (level with the eyes) round the chin (8) to the right
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # 17-21 left brow (outer -> inner), 22-26 right brow (inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge (between the eyes -> tip), 31-35 nostril base (left -> right)
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # 36-41 left eye: outer corner, upper lid x2, inner corner, lower lid x2
    33, 160, 158, 133, 153, 144,
    # 42-47 right eye: inner corner, upper lid x2, outer corner, lower lid x2
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lip contour: left corner, upper lip (48-54) to the right corner, lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lip contour: left corner, upper (60-64) to the right corner, lower back
    78, 81, 13, 311, 308, 402, 14, 178,
)

# Facial regions as 68-point indices (image left/right). Cheeks are bounded by the jaw line
# outside, the nose side inside and the lower eyelid above.
ROI_LANDMARKS: dict[str, tuple[int, ...]] = {
    "left_brow": (17, 18, 19, 20, 21),
    "right_brow": (22, 23, 24, 25, 26),
    "left_eye": (36, 37, 38, 39, 40, 41),
    "right_eye": (42, 43, 44, 45, 46, 47),
    "nose": (27, 28, 29, 30, 31, 32, 33, 34, 35),
    "mouth": tuple(range(48, 68)),
    "left_cheek": (1, 2, 3, 31, 40, 41),
    "right_cheek": (13, 14, 15, 35, 46, 47),
    "chin": (6, 7, 8, 9, 10, 57),
}

LEFT_EYE_68 = (36, 37, 38, 39, 40, 41)
RIGHT_EYE_68 = (42, 43, 44, 45, 46, 47)


@dataclass(frozen=True)
class Face:
    """One face: box (x, y, width, height), confidence, eye centres and optional landmarks.

    `eyes` is a (2, 2) float32 array of (x, y): the centre of the eye on the image's left, then
    of the one on the image's right. `landmarks` is (68, 2) float32 in the iBUG layout, or None.
    Arrays are stored read-only; faces compare by box and score.
    """

    box: tuple[float, float, float, float]
    score: float
    eyes: np.ndarray = field(compare=False)
    landmarks: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        eyes = np.array(self.eyes, dtype=np.float32).reshape(2, 2)
        eyes.flags.writeable = False
        object.__setattr__(self, "eyes", eyes)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "score", float(self.score))
        if self.landmarks is not None:
            landmarks = np.array(self.landmarks, dtype=np.float32)
            if landmarks.shape != (68, 2):
                raise InputShapeError(f"Face landmarks must be 68 x 2, got {landmarks.shape}")
            landmarks.flags.writeable = False
            object.__setattr__(self, "landmarks", landmarks)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


class FaceBackend(ABC):
    """Finds faces in one image. Build through `get_face_backend` (models load once)."""

    name: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a uint8 H x W (gray) or H x W x 3 (RGB) image, largest first; [] if none."""


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputShapeError(f"face detection needs a uint8 image, got dtype {image.dtype} "
                              f"(scale floats to 0..255 and convert with .astype(np.uint8))")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise InputShapeError(f"face detection needs an H x W (gray) or H x W x 3 (RGB) "
                              f"image, got shape {image.shape}")
    if min(image.shape[:2]) < 8:
        raise InputShapeError(f"image of shape {image.shape} is too small to hold a face")
    return image


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = _check_image(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image)


def _as_gray(image: np.ndarray) -> np.ndarray:
    image = _check_image(image)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: f.area, reverse=True)


def eyes_from_landmarks(landmarks68: np.ndarray) -> np.ndarray:
    """(2, 2) eye centres (image-left eye first): the mean of each eye's six 68-point points."""
    points = np.asarray(landmarks68, dtype=np.float32)
    return np.stack([points[list(LEFT_EYE_68)].mean(0), points[list(RIGHT_EYE_68)].mean(0)])


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment: MediaPipe's C++ side (absl, TFLite)
    writes its start-up notices there directly, out of reach of Python's logging."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeBackend(FaceBackend):
    """MediaPipe face mesh (468 points) -> 68-point landmarks via `MESH_TO_68`.

    Box: the bounding box of all 468 mesh points. Eyes: the mean of each eye's six 68-point
    landmarks. Score: 1.0 (the face mesh reports no confidence). Calls are serialised by a lock
    (one MediaPipe graph per process is not safe to share between threads otherwise).
    """

    name = "mediapipe"

    def __init__(self, max_faces: int = 10, min_confidence: float = 0.5) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            with _quiet_stderr():
                import mediapipe as mp

                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False,
                    min_detection_confidence=min_confidence)
                # the graph starts its models in background threads, which print as they go;
                # one run waits for them (and the rest print on the first face, see detect)
                self._mesh.process(np.zeros((64, 64, 3), np.uint8))
        except ImportError as error:
            raise ConfigError(
                f"face backend 'mediapipe' cannot load ({error}); install the version that "
                f"bundles its models with `pip install mediapipe==0.10.21`, or use "
                f"backend='haar'") from error
        self._lock = threading.Lock()
        self._quiet = True
        self._index = np.asarray(MESH_TO_68)

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]
        with self._lock:
            if self._quiet:  # the landmark stage prints a notice on its first face
                with _quiet_stderr():
                    result = self._mesh.process(rgb)
                self._quiet = not result.multi_face_landmarks
            else:
                result = self._mesh.process(rgb)
        faces = []
        for mesh in result.multi_face_landmarks or []:
            points = np.array([(p.x, p.y) for p in mesh.landmark], dtype=np.float64)
            points = points * (width, height) - 0.5  # normalised -> pixel-centre coordinates
            landmarks = points[self._index]
            low, high = points.min(0), points.max(0)
            box = (low[0], low[1], high[0] - low[0], high[1] - low[1])
            faces.append(Face(box, 1.0, eyes_from_landmarks(landmarks), landmarks))
        return _largest_first(faces)


class HaarBackend(FaceBackend):
    """OpenCV Haar cascades: frontal-face box, then eye centres from an eye cascade.

    The eye cascade runs inside the upper half of each face box; the largest detection in
    each half of the box is that side's eye. When an eye pair is not found (glasses, closed
    eyes, low resolution), the eyes are estimated from the box geometry instead: at
    (x + 0.315 w, y + 0.41 h) and (x + 0.685 w, y + 0.41 h), where this cascade's boxes put the
    eyes of a frontal face (measured against the mediapipe landmarks on real faces). Images
    are searched at most `max_side` pixels wide or high (faces at least ~`min_face` px there);
    score is 1.0 and landmarks None.
    """

    name = "haar"
    EYE_FRACTIONS = ((0.315, 0.41), (0.685, 0.41))

    def __init__(self, max_side: int = 800, min_face: int = 36) -> None:
        folder = Path(cv2.data.haarcascades)
        self._face = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
        self._eye = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
        if self._face.empty() or self._eye.empty():
            raise ConfigError(f"face backend 'haar' found no Haar cascades in {folder}; "
                              f"install opencv-contrib-python 4.x (5.0 ships none)")
        self.max_side = max_side
        self.min_face = min_face
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = _as_gray(image)
        scale = min(1.0, self.max_side / max(gray.shape))
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale,
                                                     interpolation=cv2.INTER_AREA)
        small = cv2.equalizeHist(small)
        with self._lock:
            boxes = self._face.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5,
                                                minSize=(self.min_face, self.min_face))
            faces = [self._face_from_box(small, box, scale) for box in boxes]
        return _largest_first(faces)

    def _face_from_box(self, small: np.ndarray, box: np.ndarray, scale: float) -> Face:
        x, y, w, h = (int(v) for v in box)
        eyes = self._find_eyes(small[y:y + h // 2, x:x + w], w)
        if eyes is None:
            eyes = np.array(self.EYE_FRACTIONS) * (w, h)
        eyes = (eyes + (x, y)) / scale
        return Face((x / scale, y / scale, w / scale, h / scale), 1.0, eyes)

    def _find_eyes(self, upper: np.ndarray, width: int) -> np.ndarray | None:
        """The two eye centres in the upper half of a face box (box coordinates), or None."""
        side = max(8, width // 8)
        found = self._eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=4,
                                           minSize=(side, side), maxSize=(width // 2, width // 2))
        best: list[tuple[float, np.ndarray] | None] = [None, None]
        for ex, ey, ew, eh in found:
            centre = np.array([ex + ew / 2.0, ey + eh / 2.0])
            half = 0 if centre[0] < width / 2 else 1
            if best[half] is None or ew * eh > best[half][0]:
                best[half] = (ew * eh, centre)
        if best[0] is None or best[1] is None:
            return None
        (left_area, left), (right_area, right) = best
        gap = right[0] - left[0]
        if (not 0.25 * width <= gap <= 0.6 * width or abs(right[1] - left[1]) > 0.15 * width
                or max(left_area, right_area) > 2.0 * min(left_area, right_area)):
            return None  # not a plausible pair: an eyebrow, a nostril, glasses...
        return np.stack([left, right])


def _dlib_predictor_path() -> Path:
    """The 68-point model inside face_recognition_models, found without importing the package
    (its __init__ needs pkg_resources, which setuptools >= 81 no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'face_recognition_models'")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.exists():
        raise ImportError(f"face_recognition_models has no {path.name} in {path.parent}")
    return path


class DlibBackend(FaceBackend):
    """dlib's HOG frontal-face detector + its 68-point shape predictor (optional backend).

    Score is dlib's detection score (an SVM margin, larger is surer; not a probability). Eyes
    are the mean of each eye's six landmarks.
    """

    name = "dlib"
    INSTALL = ("pip install dlib face_recognition_models (dlib compiles from source: ~10 min, "
               "needs cmake and a C++ compiler)")

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib

            predictor_path = _dlib_predictor_path()
        except ImportError as error:
            raise ConfigError(
                f"face backend 'dlib' is optional and not installed ({error}); install it "
                f"with `{self.INSTALL}`, or use backend='mediapipe' (the default) or "
                f"backend='haar'") from error
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self._upsample = upsample
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = _as_rgb(image)
        faces = []
        with self._lock:
            rects, scores, _ = self._detector.run(rgb, self._upsample, 0.0)
            for rect, score in zip(rects, scores, strict=True):
                shape = self._predictor(rgb, rect)
                landmarks = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)],
                                     dtype=np.float32)
                box = (rect.left(), rect.top(), rect.width(), rect.height())
                faces.append(Face(box, float(score), eyes_from_landmarks(landmarks), landmarks))
        return _largest_first(faces)


_BUILDERS = {"mediapipe": MediaPipeBackend, "haar": HaarBackend, "dlib": DlibBackend}
_CACHE: dict[tuple[int, str], FaceBackend] = {}
_CACHE_LOCK = threading.Lock()


def resolve_backend_name(name: str = "auto") -> str:
    """The backend `name` stands for ("auto": mediapipe when it imports, else haar)."""
    if name == "auto":
        return "mediapipe" if importlib.util.find_spec("mediapipe") is not None else "haar"
    if name not in FACE_BACKENDS:
        raise ConfigError(f"unknown face backend {name!r}; choose one of "
                          f"{('auto', *FACE_BACKENDS)}")
    return name


def get_face_backend(name: str = "auto") -> FaceBackend:
    """The face backend `name` ("auto", "mediapipe", "haar" or "dlib"), built once per process.

    "auto" is mediapipe when it imports, else haar. ConfigError for an unknown name, or for a
    backend whose packages are missing (saying how to install them).
    """
    resolved = resolve_backend_name(name)
    if name == "auto" and resolved == "mediapipe":
        try:
            return get_face_backend("mediapipe")
        except ConfigError:  # installed but unusable: fall back like a missing one
            return get_face_backend("haar")
    key = (os.getpid(), resolved)  # a forked worker builds its own (graphs do not survive fork)
    with _CACHE_LOCK:
        backend = _CACHE.get(key)
        if backend is None:
            backend = _CACHE[key] = _BUILDERS[resolved]()
        return backend


def region_boxes(landmarks68: np.ndarray, margin: float = 0.15, *,
                 image_shape: tuple[int, ...] | None = None
                 ) -> dict[str, tuple[int, int, int, int]]:
    """(x, y, w, h) integer boxes of the facial regions in `ROI_LANDMARKS`.

    Each box bounds its region's landmarks, grown on every side by `margin` times the
    region's larger side (so flat regions such as the brows get some height). With
    `image_shape` the boxes are clipped to the image.
    """
    points = np.asarray(landmarks68, dtype=np.float64)
    if points.shape != (68, 2):
        raise InputShapeError(f"region_boxes needs 68 x 2 landmarks, got {points.shape}")
    if margin < 0:
        raise ConfigError(f"region margin must be >= 0, got {margin}")
    boxes = {}
    for region, indices in ROI_LANDMARKS.items():
        low, high = points[list(indices)].min(0), points[list(indices)].max(0)
        pad = margin * float((high - low).max())
        x0, y0 = np.floor(low - pad).astype(int)
        x1, y1 = np.ceil(high + pad).astype(int)
        if image_shape is not None:
            x0, x1 = np.clip((x0, x1), 0, image_shape[1])
            y0, y1 = np.clip((y0, y1), 0, image_shape[0])
        boxes[region] = (int(x0), int(y0), int(max(x1 - x0, 0)), int(max(y1 - y0, 0)))
    return boxes
