"""Face preprocessing on synthetic full-frame clips: the aligned crop holds the face, and the
onset->apex flow is concentrated where the simulated action units act."""

import numpy as np
import pytest

import microexpr
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
    import cv2

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
