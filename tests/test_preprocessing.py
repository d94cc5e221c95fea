"""Face preprocessing on synthetic full-frame clips: the aligned crop holds the face, and the
onset->apex flow is concentrated where the simulated action units act. Reading frames: a
partial (truncated) file is refused with its name, a complete one reads as cv2.imread does."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import microexpr
from microexpr.data.images import read_image
from microexpr.errors import DatasetError
from microexpr.preprocess.align import AlignConfig, canonical_eyes
from microexpr.preprocess.faces import get_face_backend
from microexpr.representations import prepare_representation
from microexpr.representations.landmarks import region_names

# where each synthetic emotion moves the face, and a region it leaves still
MOVES = {"happiness": ("mouth", "left_cheek", "right_cheek"),
         "surprise": ("left_brow", "right_brow"),
         "disgust": ("left_brow", "right_brow", "nose")}
STILL = {"happiness": ("left_brow", "right_brow"),
         "surprise": ("mouth", "chin"),
         "disgust": ("chin",)}


@pytest.fixture(scope="module")
def full_frame_clips(tmp_path_factory):
    # head motion off: this checks localisation, not robustness to distractors
    root = microexpr.synthesize(tmp_path_factory.mktemp("raw"), subjects=2, clips_per_class=1,
                                full_frame=True, frame_size=(360, 480), head_motion=0.0,
                                head_drift=0.0, seed=3)
    data = microexpr.load_dataset("casme2", root)
    assert data.clips["frames"].iloc[0][0].count("CASME2_RAW_selected") == 1
    return data.clips


def test_aligned_crop_contains_the_face_with_eyes_in_place(full_frame_clips):
    report = prepare_representation(full_frame_clips, "apex_frame",
                                    {"size": 128, "color": True, "align": {}},
                                    cache_dir=None, progress=False)
    assert len(report.failures) == 0
    crops = report.stacked().astype(np.uint8)
    backend = get_face_backend("mediapipe")
    expected = canonical_eyes(AlignConfig(size=128))
    for crop in crops:
        faces = backend.detect(crop)
        assert len(faces) == 1
        # the eyes found in the crop sit where the alignment put them (within 5% of the side)
        assert np.abs(faces[0].eyes - expected).max() < 0.05 * 128


def test_apex_flow_is_concentrated_in_the_action_unit_regions(full_frame_clips):
    flow = prepare_representation(full_frame_clips, "onset_apex_flow", {
        "method": "dis", "align": {}, "channels": ["magnitude"], "compute_size": 128,
        "size": 32}, cache_dir=None, progress=False).stacked()[..., 0]
    boxes = prepare_representation(full_frame_clips, "face_regions", {"size": 128},
                                   cache_dir=None, progress=False).stacked()
    names = region_names()
    scale = 32 / 128
    for k, clip in enumerate(full_frame_clips.to_dict("records")):
        mean = {}
        for name, (x, y, w, h) in zip(names, boxes[k], strict=True):
            rows = slice(int(y * scale), int((y + h) * scale) + 1)
            cols = slice(int(x * scale), int((x + w) * scale) + 1)
            mean[name] = float(flow[k, rows, cols].mean())
        moving = np.mean([mean[r] for r in MOVES[clip["emotion"]]])
        still = np.mean([mean[r] for r in STILL[clip["emotion"]]])
        assert moving > 2 * still, (clip["emotion"], mean)


def test_no_face_clip_is_reported_not_fatal(full_frame_clips, tmp_path):
    broken = full_frame_clips.copy()
    blank = tmp_path / "blank"
    blank.mkdir()
    files = []
    for path in broken.at[0, "frames"]:
        target = blank / path.rsplit("/", 1)[-1]
        cv2.imwrite(str(target), np.full((360, 480, 3), 128, np.uint8))
        files.append(str(target))
    broken.at[0, "frames"] = tuple(files)
    report = prepare_representation(broken, "apex_frame", {"size": 32, "align": {}},
                                    cache_dir=None, progress=False)
    assert len(report.failures) == 1 and report.failures["kind"].iloc[0] == "FaceNotFoundError"
    assert report.stacked().shape[0] == len(broken) - 1


# --- reading frames: partial files are refused before decoding ---------------------------

def _texture(size=96, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size // 8, size // 8)).astype(np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(
        np.uint8)


def _encoded(ext, image, params=()):
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize(("ext", "params", "reason"), [
    (".jpg", (), "no JPEG end-of-image marker"),
    (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "no JPEG end-of-image marker"),
    (".png", (), "no PNG IEND chunk"),
    (".bmp", (), "5147 bytes, its BMP header needs 10294"),  # 54 + 1024 palette + 96 x 96
])
def test_a_frame_cut_in_half_is_refused_and_named(tmp_path, capfd, ext, params, reason):
    data = _encoded(ext, _texture(), params)
    path = tmp_path / f"img042{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"frame .*img042\{ext} is truncated \({reason}.*"
                                           r"re-extract or re-download"):
        read_image(path, what="frame")
    assert "Premature end" not in capfd.readouterr().err  # refused before libjpeg saw it


def test_a_jpeg_cut_in_its_headers_or_empty_is_refused(tmp_path):
    data = _encoded(".jpg", _texture())
    (tmp_path / "head.jpg").write_bytes(data[:40])
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="head.jpg is truncated"):
        read_image(tmp_path / "head.jpg")
    with pytest.raises(DatasetError, match=r"empty.jpg is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.jpg")
    with pytest.raises(DatasetError, match="gone.jpg: it does not exist"):
        read_image(tmp_path / "gone.jpg")


def test_a_cut_jpeg_whose_thumbnail_ends_near_the_cut_is_still_refused(tmp_path):
    """An EXIF thumbnail carries its own end-of-image marker: only one after the scan counts."""
    image = _texture()
    main = _encoded(".jpg", image)
    payload = b"Exif\0\0" + _encoded(".jpg", image[::8, ::8])
    full = main[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + main[2:]
    (tmp_path / "whole.jpg").write_bytes(full)
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) * 3 // 4])
    assert read_image(tmp_path / "whole.jpg").shape == image.shape
    with pytest.raises(DatasetError, match="cut.jpg is truncated"):
        read_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("padding", [b"\0" * 10_000, b"\xff" * 16])
def test_complete_files_with_trailing_padding_are_read_as_before(tmp_path, padding):
    image = _texture()
    plain, padded = tmp_path / "plain.jpg", tmp_path / "padded.jpg"
    plain.write_bytes(_encoded(".jpg", image))
    padded.write_bytes(_encoded(".jpg", image) + padding)
    expected = cv2.imread(str(plain), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(read_image(padded), expected)
    colour = cv2.cvtColor(cv2.imread(str(plain), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_image(padded, color=True), colour)
    for ext in (".png", ".bmp"):
        path = tmp_path / f"padded{ext}"
        path.write_bytes(_encoded(ext, image) + padding)
        np.testing.assert_array_equal(read_image(path), image)  # lossless formats


def test_a_face_photo_reads_like_imread_and_its_first_half_is_refused(tmp_path):
    path = Path("/work/shared/fixtures/faces/single_face.jpg")
    if not path.exists():
        pytest.skip("face fixture not present")
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    half = tmp_path / "half.jpg"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="half.jpg is truncated"):
        read_image(half)  # cv2.imread returns it with a flat grey lower half
