"""Face backends and clip alignment on real recordings (../shared/fixtures/faces)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from microexpr.errors import ConfigError, DatasetError, FaceNotFoundError
from microexpr.preprocess.align import (
    AlignConfig,
    ClipAlignment,
    align_clip,
    align_frames,
    alignment_transform,
    canonical_eyes,
    warp_face,
)
from microexpr.preprocess.faces import (
    FACE_BACKENDS,
    MESH_TO_68,
    ROI_LANDMARKS,
    Face,
    get_face_backend,
    region_boxes,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "faces"


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"real face fixture {path} is absent (it lives in the shared checkout, "
                    f"not in the repository)")
    return path


@cache
def _video(name: str, stop: int) -> tuple[np.ndarray, ...]:
    capture = cv2.VideoCapture(str(FIXTURES / name))
    frames = []
    while len(frames) < stop:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return tuple(frames)


def video(name: str, start: int, stop: int, step: int = 1) -> list[np.ndarray]:
    """RGB frames start:stop:step of a fixture video (read sequentially, once per session)."""
    fixture(name)
    frames = _video(name, stop)
    assert len(frames) == stop, f"{name} has fewer than {stop} frames"
    return list(frames[start:stop:step])


def image(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(fixture(name))), cv2.COLOR_BGR2RGB)


def mediapipe():
    return get_face_backend("mediapipe")


def assert_plausible_layout(face: Face) -> None:
    points = face.landmarks
    assert points is not None and points.shape == (68, 2) and points.dtype == np.float32
    x, y, w, h = face.box
    slack = 0.05 * w
    assert (points[:, 0] >= x - slack).all() and (points[:, 0] <= x + w + slack).all()
    assert (points[:, 1] >= y - slack).all() and (points[:, 1] <= y + h + slack).all()
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    np.testing.assert_allclose(face.eyes, [left_eye, right_eye], atol=1e-3)
    eye_y = face.eyes[:, 1].mean()
    nose_tip, mouth = points[30], points[48:68].mean(0)
    assert eye_y < nose_tip[1] < mouth[1] < points[8, 1]  # eyes, nose, mouth, chin downwards
    assert points[17:27, 1].max() < eye_y  # brows above the eyes
    assert points[0, 0] < left_eye[0] < points[27, 0] < right_eye[0] < points[16, 0]
    assert points[36, 0] < points[39, 0] < points[42, 0] < points[45, 0]  # eye corners
    assert points[48, 0] < points[51, 0] < points[54, 0]  # mouth corners around the middle
    assert (points[4:13, 1] > eye_y).all()  # the jaw below the eyes


def test_mesh_mapping_is_a_68_point_layout():
    assert len(MESH_TO_68) == 68 and len(set(MESH_TO_68)) == 68
    assert all(0 <= i < 468 for i in MESH_TO_68)
    assert set(ROI_LANDMARKS) == {"left_brow", "right_brow", "left_eye", "right_eye", "nose",
                                  "mouth", "left_cheek", "right_cheek", "chin"}


def test_single_face_still_image():
    faces = mediapipe().detect(image("single_face.jpg"))
    assert len(faces) == 1
    assert_plausible_layout(faces[0])
    assert faces[0].score == 1.0 and faces[0].area > 100 * 100


def test_single_face_video_frame_and_gray_input():
    frame = video("single_face.mp4", 0, 1)[0]
    faces = mediapipe().detect(frame)
    assert len(faces) == 1
    assert_plausible_layout(faces[0])
    gray = mediapipe().detect(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    assert len(gray) == 1
    np.testing.assert_allclose(gray[0].eyes, faces[0].eyes, atol=3)


def test_several_faces_largest_first_and_policies():
    path = fixture("multi_face.jpg")
    faces = mediapipe().detect(image("multi_face.jpg"))
    assert len(faces) >= 2
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    for face in faces:
        assert_plausible_layout(face)
    for policy in ("largest", "track"):
        alignment = align_clip([path, path], AlignConfig(policy=policy, check_frames=1))
        assert alignment.face.area == pytest.approx(areas[0], rel=1e-3)
        assert any(f"{len(faces)} faces on the reference frame multi_face.jpg" in w
                   for w in alignment.warnings), alignment.warnings


def test_no_face_video():
    frames = video("no_face.mp4", 0, 61, 30)
    for frame in frames:
        assert mediapipe().detect(frame) == []
    with pytest.raises(FaceNotFoundError, match="haar"):
        align_clip(frames)


def test_face_that_leaves_the_frame(tmp_path):
    # face_noface.mov: the face is in view up to about frame 71, then gone
    frames = video("face_noface.mov", 40, 120, 4)  # 20 frames: 40, 44, ..., 116
    paths = []
    for k, frame in zip(range(40, 120, 4), frames, strict=True):
        paths.append(tmp_path / f"img{k:03d}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    alignment = align_clip(paths, AlignConfig(check_frames=3))
    assert isinstance(alignment, ClipAlignment)
    missing = [w for w in alignment.warnings if w.startswith("face not found in frame")]
    assert missing and all("(left the frame?)" in w for w in missing)
    assert any("img116.jpg" in w for w in missing), alignment.warnings
    crops, again = align_frames(frames, AlignConfig(size=64))  # the whole range, no crash
    assert crops.shape == (20, 64, 64) and again.warnings
    with pytest.raises(FaceNotFoundError, match="img116.jpg"):
        align_clip(paths, reference=len(paths) - 1)


def test_aligned_clip_is_stable_and_canonical():
    frames = video("single_face.mp4", 44, 64)  # the stillest 20 frames of the clip
    config = AlignConfig(size=128)
    crops, alignment = align_frames(frames, config)
    assert crops.shape == (20, 128, 128) and crops.dtype == np.uint8
    assert alignment.warnings == []
    eyes = np.array([mediapipe().detect(crop)[0].eyes for crop in crops])
    assert (eyes.max(0) - eyes.min(0)).max() <= 2.0
    canonical = canonical_eyes(config)
    assert np.abs(eyes[0] - canonical).max() <= 2.0
    # the crop shows each frame's face where the clip's transform maps it (no re-alignment)
    for k in (0, 19):
        source = mediapipe().detect(frames[k])[0].eyes.astype(np.float64)
        mapped = source @ alignment.transform[:, :2].T + alignment.transform[:, 2]
        assert np.abs(eyes[k] - mapped).max() <= 1.5
    # the transform levels the eye line exactly and maps the landmarks with it
    face = alignment.face
    np.testing.assert_allclose(alignment.transform, alignment_transform(face, config))
    mapped_eyes = face.eyes @ alignment.transform[:, :2].T + alignment.transform[:, 2]
    assert mapped_eyes[0, 1] == pytest.approx(canonical[0, 1], abs=1e-3)
    assert mapped_eyes[1, 1] == pytest.approx(canonical[1, 1], abs=1e-3)
    assert alignment.landmarks.shape == (68, 2)
    np.testing.assert_allclose(alignment.landmarks[36:42].mean(0), mapped_eyes[0], atol=1e-3)


def test_haar_backend_finds_the_face():
    picture = image("single_face.jpg")
    faces = get_face_backend("haar").detect(picture)
    assert len(faces) == 1 and faces[0].landmarks is None
    reference = mediapipe().detect(picture)[0].eyes
    assert np.abs(faces[0].eyes - reference).max() <= 0.15 * faces[0].box[2]
    crops, alignment = align_frames([picture], AlignConfig(backend="haar", size=64))
    assert crops.shape == (1, 64, 64) and alignment.landmarks is None


def test_backend_errors_say_how_to_fix():
    with pytest.raises(ConfigError, match="mediapipe.*haar.*dlib"):
        get_face_backend("opencv")
    with pytest.raises(ConfigError, match="policy"):
        AlignConfig(policy="nearest")
    with pytest.raises(ConfigError, match="face backend"):
        AlignConfig(backend="retina")
    assert get_face_backend() is get_face_backend("mediapipe") is mediapipe()
    assert FACE_BACKENDS == ("mediapipe", "haar", "dlib")
    if importlib.util.find_spec("dlib") is None:
        with pytest.raises(ConfigError, match="pip install dlib face_recognition_models"):
            get_face_backend("dlib")


def test_unreadable_frame_is_named(tmp_path):
    broken = tmp_path / "img007.jpg"
    broken.write_text("not an image")
    with pytest.raises(DatasetError, match="img007.jpg"):
        align_clip([broken])
    with pytest.raises(DatasetError, match="missing.jpg"):
        align_clip([tmp_path / "missing.jpg"])


def test_color_and_gray_crops():
    frames = video("single_face.mp4", 0, 2)
    gray, alignment = align_frames(frames, AlignConfig(size=48))
    color, _ = align_frames(frames, AlignConfig(size=48, color=True))
    assert gray.shape == (2, 48, 48) and color.shape == (2, 48, 48, 3)
    assert gray.dtype == color.dtype == np.uint8
    from_gray = warp_face(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY), alignment,
                          AlignConfig(size=48, color=True))
    assert from_gray.shape == (48, 48, 3)
    assert np.abs(from_gray[..., 0].astype(int) - gray[0]).mean() < 2


def test_big_frames_are_area_averaged_not_aliased():
    picture = image("single_face.jpg")
    config = AlignConfig(size=64)
    transform = align_clip([picture], config).transform
    big = cv2.resize(picture, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    to_big = np.array([[4.0, 0.0, 1.5], [0.0, 4.0, 1.5], [0.0, 0.0, 1.0]])
    big_transform = (np.vstack([transform, [0, 0, 1]]) @ np.linalg.inv(to_big))[:2]
    small_crop = warp_face(picture, transform, config).astype(float)
    big_crop = warp_face(big, big_transform, config).astype(float)
    assert np.abs(small_crop - big_crop).mean() < 5.0


def test_region_boxes_are_in_sensible_places():
    face = mediapipe().detect(image("single_face.jpg"))[0]
    boxes = region_boxes(face.landmarks)
    assert set(boxes) == set(ROI_LANDMARKS)

    def centre(name):
        x, y, w, h = boxes[name]
        assert w > 0 and h > 0
        return x + w / 2, y + h / 2

    assert centre("left_brow")[1] < centre("left_eye")[1] < centre("nose")[1]
    assert centre("right_brow")[1] < centre("right_eye")[1] < centre("nose")[1]
    assert centre("nose")[1] < centre("mouth")[1] < centre("chin")[1]
    assert centre("left_eye")[0] < centre("nose")[0] < centre("right_eye")[0]
    assert centre("left_cheek")[0] < centre("nose")[0] < centre("right_cheek")[0]
    assert centre("left_eye")[1] < centre("left_cheek")[1] < centre("chin")[1]
    clipped = region_boxes(face.landmarks, image_shape=(300, 300))
    assert all(x + w <= 300 and y + h <= 300 for x, y, w, h in clipped.values())


def shifted(frame: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    height, width = frame.shape[:2]
    return cv2.warpAffine(frame, np.float64([[1, 0, dx], [0, 1, dy]]), (width, height))


def test_jumps_and_faces_at_the_edge_are_reported():
    frame = video("single_face.mp4", 0, 1)[0]
    width = mediapipe().detect(frame)[0].box[2]
    clip = [frame, frame, shifted(frame, 0.4 * width), shifted(frame, 0, -0.8 * width)]
    warnings = align_clip(clip, AlignConfig(check_frames=3)).warnings
    assert any(w.startswith("face in frame 2 moved") for w in warnings), warnings
    assert any("frame 3 is partly outside the image" in w for w in warnings), warnings
    assert not any("frame 1" in w for w in warnings)


def test_track_policy_follows_the_face_that_stays():
    picture = image("multi_face.jpg")
    faces = mediapipe().detect(picture)
    hidden = picture.copy()  # the largest person leaves after the reference frame
    x, y, w, h = (int(v) for v in faces[0].box)
    hidden[max(y - h // 2, 0):y + 2 * h, max(x - w // 2, 0):x + 2 * w] = 0
    clip = [picture, hidden, hidden, hidden]
    largest = align_clip(clip, AlignConfig(policy="largest"))
    tracked = align_clip(clip, AlignConfig(policy="track"))
    assert largest.face.area == pytest.approx(faces[0].area, rel=1e-3)
    assert sum("not found" in w for w in largest.warnings) == 3
    assert tracked.face.area < faces[0].area
    assert not any("not found" in w for w in tracked.warnings), tracked.warnings
    assert any("found in 3 of 3 checked frames" in w for w in tracked.warnings)
