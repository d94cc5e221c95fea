"""The synthetic generator: layout, annotations, determinism, validation and the signal."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from microexpr.errors import ConfigError
from microexpr.synth import (
    ANNOTATION_FILE,
    GENERATOR_VERSION,
    METADATA_FILE,
    SUPPORTED_EMOTIONS,
    SynthConfig,
    synthesize,
)
from microexpr.synth.aus import ACTION_UNITS, EMOTION_AUS, OTHERS_POOL
from microexpr.synth.clip import Timeline, intensity_profile

XLSX_COLUMNS = [
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
]
# Small enough to run in about a second, big enough for leave-one-subject-out.
SMALL = dict(subjects=4, clips_per_class=3, fps=100, seed=0)
TINY = dict(subjects=1, clips_per_class=1, fps=25, size=48, emotions=("happiness", "surprise"))


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "db", **SMALL)


@pytest.fixture(scope="module")
def still_db(tmp_path_factory) -> Path:
    """Same as small_db but with no expression motion at all."""
    return synthesize(tmp_path_factory.mktemp("still") / "db", amplitude=0.0, **SMALL)


def _table(root: Path) -> pd.DataFrame:
    return pd.read_excel(root / ANNOTATION_FILE)


def _meta(root: Path) -> dict:
    return json.loads((root / METADATA_FILE).read_text())


def _frame_numbers(folder: Path) -> list[int]:
    names = [p.name for p in folder.iterdir()]
    assert all(re.fullmatch(r"reg_img\d+\.jpg", n) for n in names), names[:5]
    return sorted(int(n[7:-4]) for n in names)


def _grey(root: Path, row, frame: int) -> np.ndarray:
    path = root / "Cropped" / f"sub{row.Subject:02d}" / row.Filename / f"reg_img{frame}.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, path
    return image


def _onset_apex_flows(root: Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    table = _table(root)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = [
        dis.calc(_grey(root, r, r.OnsetFrame), _grey(root, r, r.ApexFrame), None)
        for r in table.itertuples()
    ]
    return table, flows


# --- layout and annotations ---------------------------------------------------------------


def test_layout_and_file_names(small_db):
    cropped = small_db / "Cropped"
    subjects = sorted(p.name for p in cropped.iterdir())
    assert subjects == [f"sub{i:02d}" for i in range(1, 5)]
    meta = _meta(small_db)
    firsts = set()
    for clip in meta["clips"]:
        folder = cropped / f"sub{clip['subject']:02d}" / clip["filename"]
        assert re.fullmatch(r"EP\d{2}_\d{2}", clip["filename"])
        numbers = _frame_numbers(folder)
        first = clip["first_frame"]
        assert numbers == list(range(first, first + clip["n_frames"]))
        firsts.add(first)
    assert len(firsts) > 1  # the numbering starts at a random per-clip offset
    image = cv2.imread(str(next(cropped.glob("sub01/*/reg_img*.jpg"))), cv2.IMREAD_UNCHANGED)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert not list(small_db.glob(".synthesize-*"))  # no work folder left behind


def test_xlsx_columns_and_values(small_db):
    table = _table(small_db)
    assert list(table.columns) == XLSX_COLUMNS
    assert pd.api.types.is_integer_dtype(table["Subject"])
    assert len(table) == 4 * 3 * 3
    counts = table.groupby(["Subject", "Estimated Emotion"]).size()
    assert set(counts) == {3}
    assert set(table["Estimated Emotion"]) == {"happiness", "disgust", "surprise"}
    assert not table.duplicated(["Subject", "Filename"]).any()
    for row in table.itertuples():
        folder = small_db / "Cropped" / f"sub{row.Subject:02d}" / row.Filename
        numbers = _frame_numbers(folder)
        assert numbers[0] < row.OnsetFrame < row.ApexFrame < row.OffsetFrame < numbers[-1]
        duration = (row.OffsetFrame - row.OnsetFrame) / 100  # fps=100
        assert 0.15 <= duration <= 0.5
        rise = (row.ApexFrame - row.OnsetFrame) / (row.OffsetFrame - row.OnsetFrame)
        assert 0.3 <= rise <= 0.65
        assert row.OnsetFrame - numbers[0] >= 7  # neutral stretch (75-200 ms)
        assert numbers[-1] - row.OffsetFrame >= 2  # neutral tail (25-100 ms)
    units = {
        "happiness": r"(6\+)?[LR]?12",
        "disgust": r"4\+(7\+)?9(\+10)?",
        "surprise": r"1\+2(\+5)?",
    }
    for _, row in table.iterrows():
        emotion, code = row["Estimated Emotion"], str(row["Action Units"])
        assert re.fullmatch(units[emotion], code), (emotion, code)


def test_metadata_records_config_and_version(small_db):
    meta = _meta(small_db)
    assert meta["version"] == GENERATOR_VERSION
    expected = dataclasses.asdict(SynthConfig(**SMALL))
    for name in ("full_frame", "frame_size", "face_scale", "head_motion"):
        del expected[name]  # recorded in full-frame mode only
    assert meta["config"] == {**expected, "emotions": list(expected["emotions"])}
    assert meta["layout"]["frames"] == "Cropped/sub<NN>/<Filename>/reg_img<N>.jpg"
    assert "in_frame" not in meta["clips"][0]
    assert len(meta["clips"]) == 36 and set(meta["subjects"]) == {f"sub0{i}" for i in range(1, 5)}
    for info in meta["subjects"].values():
        lm = info["landmarks"]
        assert lm["eye_r"][1] < lm["nose_tip"][1] < lm["lip_up"][1] < lm["chin"][1]
        assert all(0 <= v < 128 for xy in lm.values() for v in xy)


def test_intensity_profile_is_a_raised_cosine():
    t = Timeline(n_frames=60, onset=10, apex=25, offset=50)
    p = intensity_profile(t)
    assert p[:11].max() == 0 and p[50:].max() == 0 and p[25] == 1
    assert np.all(np.diff(p[10:26]) > 0) and np.all(np.diff(p[25:51]) < 0)
    assert p[10 + 15 // 2] == pytest.approx(0.5 * (1 - np.cos(np.pi * 7 / 15)))


def test_every_supported_emotion_gets_its_action_units(tmp_path):
    assert {"happiness", "disgust", "surprise", "repression", "sadness", "fear"} <= set(
        SUPPORTED_EMOTIONS
    )
    root = synthesize(
        tmp_path, subjects=2, clips_per_class=2, fps=25, size=48, emotions=SUPPORTED_EMOTIONS
    )
    for _, row in _table(root).iterrows():
        emotion, code = row["Estimated Emotion"], str(row["Action Units"])
        units = [int(u.lstrip("LR")) for u in code.split("+")]
        assert all(u in ACTION_UNITS for u in units)
        options = EMOTION_AUS[emotion]
        if options:
            allowed = {int(u.lstrip("*")) for _, spec in options for u in spec.split("+")}
        else:
            allowed = set(OTHERS_POOL)
        assert set(units) <= allowed, (emotion, code)


# --- the signal ---------------------------------------------------------------------------

REGIONS = {
    "brows": ("brow_in_r", "brow_in_l", "brow_out_r", "brow_out_l"),
    "mouth_corners": ("mouth_r", "mouth_l"),
    "nose_wings": ("nose_wing_r", "nose_wing_l"),
    "chin": ("chin",),
}
# emotion -> (region its AUs move, region they do not touch)
WHERE = {
    "happiness": ("mouth_corners", "brows"),  # AU12 (+6) vs the brows
    "surprise": ("brows", "mouth_corners"),  # AU1+2 vs the lip corners
    "disgust": ("nose_wings", "chin"),  # AU9 (+4) vs the chin
}


def _region_means(mag: np.ndarray, landmarks: dict, iod: float) -> dict[str, float]:
    ys, xs = np.mgrid[0 : mag.shape[0], 0 : mag.shape[1]]
    out = {}
    for name, points in REGIONS.items():
        mask = np.zeros(mag.shape, bool)
        for p in points:
            x, y = landmarks[p]
            mask |= (xs - x) ** 2 + (ys - y) ** 2 <= (0.15 * iod) ** 2
        out[name] = float(mag[mask].mean())
    return out


def test_apex_motion_is_where_the_action_units_act(small_db):
    table, flows = _onset_apex_flows(small_db)
    subjects = _meta(small_db)["subjects"]
    ratios: dict[str, list[float]] = {e: [] for e in WHERE}
    for (_, row), flow in zip(table.iterrows(), flows, strict=True):
        info = subjects[f"sub{row['Subject']:02d}"]
        means = _region_means(
            np.linalg.norm(flow, axis=2), info["landmarks"], info["inter_ocular_px"]
        )
        emotion = row["Estimated Emotion"]
        inside, outside = WHERE[emotion]
        ratios[emotion].append(means[inside] / means[outside])
    for emotion, r in ratios.items():
        assert np.median(r) > 2.5, (emotion, np.round(r, 2))
        assert np.mean(np.array(r) > 1.0) >= 0.9, (emotion, np.round(r, 2))


def _loso_accuracy(root: Path) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table, flows = _onset_apex_flows(root)
    x = np.stack([cv2.resize(f, (28, 28), interpolation=cv2.INTER_AREA).ravel() for f in flows])
    y = table["Estimated Emotion"].to_numpy()
    groups = table["Subject"].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    pred = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(n_splits=4))
    return float(np.mean(pred == y))


def test_onset_apex_flow_separates_the_classes(small_db):
    # Measured: 1.00 here (3 classes, chance 0.33); TV-L1 at 128 px on the default database
    # (12 subjects, 144 clips) gives 1.00 too.
    assert _loso_accuracy(small_db) >= 0.9


def test_no_expression_motion_means_chance(still_db):
    # Everything but the AU motion (subjects, timing, drift, noise, flicker) is still there.
    assert _loso_accuracy(still_db) <= 0.6


# --- determinism, reuse, validation ---------------------------------------------------------


def _frames(root: Path) -> dict[str, np.ndarray]:
    return {
        str(p.relative_to(root)): cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        for p in sorted(root.glob("Cropped/*/*/*.jpg"))
    }


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = synthesize(tmp_path / "a", **TINY)
    b = synthesize(tmp_path / "b", SynthConfig(**TINY))
    c = synthesize(tmp_path / "c", **{**TINY, "seed": 1})
    fa, fb, fc = _frames(a), _frames(b), _frames(c)
    assert fa.keys() == fb.keys() and len(fa) > 10
    assert all(np.array_equal(fa[k], fb[k]) for k in fa)
    pd.testing.assert_frame_equal(_table(a), _table(b))
    assert (a / METADATA_FILE).read_text() == (b / METADATA_FILE).read_text()
    assert not _table(a).equals(_table(c))
    first_a, first_c = next(iter(fa.values())), next(iter(fc.values()))
    assert first_a.shape == first_c.shape and not np.array_equal(first_a, first_c)


def test_existing_database_is_reused_or_replaced(tmp_path):
    root = synthesize(tmp_path / "db", **TINY)
    frame = next(root.glob("Cropped/*/*/*.jpg"))
    stamp = frame.stat().st_mtime_ns
    (root / "notes.txt").write_text("mine")
    assert synthesize(root, **TINY) == root
    assert frame.stat().st_mtime_ns == stamp  # same config: nothing rewritten
    synthesize(root, **{**TINY, "clips_per_class": 2})
    assert len(_table(root)) == 4 and len(_meta(root)["clips"]) == 4
    assert (root / "notes.txt").read_text() == "mine"  # foreign files are left alone
    # A swap that was interrupted (old metadata gone, marker left) is finished by the next call.
    (root / METADATA_FILE).unlink()
    (root / ".synthesize-replacing").touch()
    synthesize(root, **TINY)
    assert len(_table(root)) == 2 and not (root / ".synthesize-replacing").exists()


def test_refuses_to_overwrite_a_database_it_did_not_write(tmp_path):
    (tmp_path / "Cropped").mkdir()
    with pytest.raises(ConfigError, match="did not write"):
        synthesize(tmp_path, **TINY)


def test_progress_bar(tmp_path, capsys):
    synthesize(tmp_path, progress=True, **TINY)
    assert "synthesizing" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subjects": 0}, r"subjects must be in 1\.\.99"),
        ({"subjects": 2.5}, r"subjects must be an integer"),
        ({"clips_per_class": 0}, r"clips_per_class"),
        ({"seed": -1}, r"seed"),
        ({"size": 8}, r"size must be in 32\.\.1024"),
        ({"amplitude": -1.0}, r"amplitude must be in 0\.0\.\.8\.0"),
        ({"amplitude": float("nan")}, r"amplitude"),
        ({"fps": 10}, r"fps must be in 25\.\.1000"),
        ({"head_drift": 9}, r"head_drift"),
        ({"noise": -0.1}, r"noise"),
        ({"flicker": 1.0}, r"flicker"),
        ({"emotions": ("happiness", "anger")}, r"unknown emotion 'anger'.*supported: disgust"),
        ({"emotions": ()}, r"emotions is empty"),
        ({"emotions": "happiness"}, r"emotions must be a tuple"),
        ({"emotions": ("fear", "Fear")}, r"listed twice"),
        ({"full_frame": 1}, r"full_frame must be True or False"),
        ({"frame_size": (480,)}, r"frame_size must be \(height, width\)"),
        ({"frame_size": (480, 640.0)}, r"frame_size must be"),
        ({"frame_size": (32, 32)}, r"frame_size must be"),
        ({"face_scale": 0.9}, r"face_scale must be in 0\.15\.\.0\.75"),
        ({"head_motion": -1}, r"head_motion"),
        ({"frame_size": (480, 240)}, r"face does not fit the frame"),
        ({"frame_size": (64, 64), "face_scale": 0.3}, r"faces would be as small as 16 px"),
        ({"face_scale": 0.75, "head_motion": 20}, r"face does not fit the frame"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_overrides_are_checked_and_normalised(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown synthesize argument\(s\) subject;.*subjects"):
        synthesize(tmp_path, subject=3)
    with pytest.raises(ConfigError, match="size"):
        synthesize(tmp_path, SynthConfig(), size=1)
    cfg = SynthConfig(emotions=["Happiness", " fear"])
    assert cfg.emotions == ("happiness", "fear")
    assert SynthConfig(frame_size=[240, np.int64(320)]).frame_size == (240, 320)


# --- full frames ------------------------------------------------------------------------------

# 320x240 frames keep these fast; the face box is then about 108 px, like a default crop.
FULL = dict(full_frame=True, frame_size=(240, 320), subjects=3, clips_per_class=2, fps=50, seed=3)
FULL_TINY = dict(full_frame=True, frame_size=(120, 160), subjects=1, clips_per_class=1, fps=25)


@pytest.fixture(scope="module")
def frame_db(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("frames") / "db", **FULL)


def _raw_grey(root: Path, clip: dict, frame: int) -> np.ndarray:
    path = root / "CASME2_RAW_selected" / f"sub{clip['subject']:02d}" / clip["filename"]
    image = cv2.imread(str(path / f"img{frame}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert image is not None, path
    return image


def test_full_frame_layout_and_size(frame_db, tmp_path):
    assert not (frame_db / "Cropped").exists()
    raw = frame_db / "CASME2_RAW_selected"
    assert sorted(p.name for p in raw.iterdir()) == ["sub01", "sub02", "sub03"]
    meta = _meta(frame_db)
    assert meta["layout"]["frames"] == "CASME2_RAW_selected/sub<NN>/<Filename>/img<N>.jpg"
    assert meta["config"]["full_frame"] is True and meta["config"]["frame_size"] == [240, 320]
    for clip in meta["clips"]:
        folder = raw / f"sub{clip['subject']:02d}" / clip["filename"]
        names = [p.name for p in folder.iterdir()]
        assert all(re.fullmatch(r"img\d+\.jpg", n) for n in names), names[:5]
        first = clip["first_frame"]
        assert sorted(int(n[3:-4]) for n in names) == list(range(first, first + clip["n_frames"]))
    image = cv2.imread(str(next(raw.glob("sub01/*/img*.jpg"))), cv2.IMREAD_UNCHANGED)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    # The same clips as in cropped mode: the same table.
    cropped = synthesize(tmp_path / "cropped", **{**FULL, "full_frame": False, "size": 32})
    pd.testing.assert_frame_equal(_table(frame_db), _table(cropped))


def test_full_frame_reads_as_casme2_raw(frame_db):
    import microexpr

    data = microexpr.load_dataset("casme2", frame_db, namespace="synth")
    assert len(data.clips) == 18 and data.n_excluded == 0


def test_face_box_is_in_the_frame_off_centre_and_sized(frame_db):
    meta = _meta(frame_db)
    height, width = 240, 320
    for clip in meta["clips"]:
        info = clip["in_frame"]
        x, y, w, h = info["face_box"]
        assert w == h == meta["subjects"][f"sub{clip['subject']:02d}"]["face_px"]
        assert 0.45 * 0.85 * height - 1 <= w <= 0.45 * 1.15 * height + 1
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert abs(x + w / 2 - width / 2) > 0.04 * width  # off centre
        for px, py in info["landmarks"].values():
            assert x < px < x + w and y < py < y + h
        left, right = info["eye_centres"]
        assert left[0] < right[0] and {tuple(left), tuple(right)} == {
            tuple(info["landmarks"]["eye_r"]),
            tuple(info["landmarks"]["eye_l"]),
        }
        iod = np.hypot(right[0] - left[0], right[1] - left[1])
        assert 0.25 * w < iod < 0.45 * w
    # per-clip jitter and head motion: the same subject is not always at the same place
    boxes = {tuple(c["in_frame"]["face_box"][:2]) for c in meta["clips"] if c["subject"] == 1}
    assert len(boxes) == 6


def test_face_is_composited_onto_the_background(frame_db):
    from microexpr.synth.generator import _make_look

    meta = _meta(frame_db)
    cfg = SynthConfig(**FULL)
    for s in (1, 2, 3):
        clip = next(c for c in meta["clips"] if c["subject"] == s)
        background = _make_look(cfg, s).scene.background
        path = frame_db / "CASME2_RAW_selected" / f"sub{s:02d}" / clip["filename"]
        frame = cv2.imread(str(path / f"img{clip['onset']}.jpg")).astype(np.float32)
        diff = np.abs(frame - background).mean(axis=2)
        info = clip["in_frame"]
        x, y, w, _ = info["face_box"]
        ys, xs = np.mgrid[0:240, 0:320]
        nose = info["landmarks"]["nose_tip"]
        face = np.hypot(xs - nose[0], ys - nose[1]) < 0.25 * w
        far = np.hypot(xs - (x + w / 2), ys - (y + w / 2)) > 1.2 * w
        assert diff[face].mean() > 20, (s, diff[face].mean())  # the face, not the background
        assert diff[far].mean() < 6, (s, diff[far].mean())  # the background (noise, flicker)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_haar_cascade_finds_the_face(frame_db):
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    ious = []
    for clip in _meta(frame_db)["clips"]:
        box = clip["in_frame"]["face_box"]
        found = cascade.detectMultiScale(
            _raw_grey(frame_db, clip, clip["onset"]), 1.1, 5, minSize=(40, 40)
        )
        ious.append(max((_iou(d, box) for d in found), default=0.0))
    assert np.mean(np.array(ious) > 0.3) >= 0.9, np.round(ious, 2)


def test_full_frame_apex_motion_is_where_the_action_units_act(frame_db):
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ratios: dict[str, list[float]] = {e: [] for e in WHERE}
    for clip in _meta(frame_db)["clips"]:
        info = clip["in_frame"]
        # Align the apex frame on the onset frame by the recorded whole-head translation (what
        # face alignment does), then measure the flow in the face box.
        dx, dy = info["head_shift"]["apex"]
        apex = _raw_grey(frame_db, clip, clip["apex"])
        apex = cv2.warpAffine(
            apex,
            np.float32([[1, 0, -dx], [0, 1, -dy]]),
            apex.shape[::-1],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        x, y, w, h = (round(v) for v in info["face_box"])
        flow = dis.calc(_raw_grey(frame_db, clip, clip["onset"]), apex, None)[y : y + h, x : x + w]
        landmarks = {k: (px - x, py - y) for k, (px, py) in info["landmarks"].items()}
        (lx, ly), (rx, ry) = info["eye_centres"]
        means = _region_means(np.linalg.norm(flow, axis=2), landmarks, np.hypot(rx - lx, ry - ly))
        inside, outside = WHERE[clip["emotion"]]
        ratios[clip["emotion"]].append(means[inside] / means[outside])
    # Measured: medians 7.1 (happiness), 17.7 (surprise), 13.1 (disgust); over seeds 0-5 the
    # lowest median is 2.1 (disgust: the chin is near the edge of what moves with the head).
    for emotion, r in ratios.items():
        assert np.median(r) > 2.5, (emotion, np.round(r, 2))
        assert np.mean(np.array(r) > 1.0) >= 0.8, (emotion, np.round(r, 2))


def test_full_frames_are_deterministic_and_replace_cropped_ones(tmp_path):
    a = synthesize(tmp_path / "a", **FULL_TINY)
    b = synthesize(tmp_path / "b", SynthConfig(**FULL_TINY))
    frames_a = sorted(a.glob("CASME2_RAW_selected/*/*/*.jpg"))
    assert len(frames_a) > 10
    assert [p.relative_to(a) for p in frames_a] == [
        p.relative_to(b) for p in sorted(b.glob("CASME2_RAW_selected/*/*/*.jpg"))
    ]
    assert all(p.read_bytes() == (b / p.relative_to(a)).read_bytes() for p in frames_a)
    assert (a / METADATA_FILE).read_text() == (b / METADATA_FILE).read_text()
    c = synthesize(tmp_path / "c", **{**FULL_TINY, "seed": 1})
    assert _meta(c)["clips"][0]["in_frame"] != _meta(a)["clips"][0]["in_frame"]
    # Switching mode in the same folder leaves one kind of frames only.
    synthesize(a, **{**FULL_TINY, "full_frame": False, "size": 32})
    assert (a / "Cropped").is_dir() and not (a / "CASME2_RAW_selected").exists()
    synthesize(a, **FULL_TINY)
    assert not (a / "Cropped").exists() and len(list(a.glob("CASME2_RAW_selected/*/*/*"))) > 10
