"""Video analysis: streaming frames, following and aligning the face, spotting intervals, the
results on disk and the command line, on real recordings (../shared/fixtures/faces) and on
sequences made from a real face with a known motion."""

from __future__ import annotations

import inspect
import json
import weakref
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import microexpr
from microexpr.errors import ConfigError, DatasetError, InputShapeError
from microexpr.preprocess.faces import get_face_backend
from microexpr.video import (
    VIDEO_ALIGN,
    LBPSpotter,
    MDMDSpotter,
    RingBuffer,
    SpotConfig,
    VideoAnalysis,
    analyze,
    get_spotter,
    list_spotters,
    open_video,
)
from microexpr.video.reader import natural_key
from microexpr.video.spotters import spot_intervals

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "faces"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real face fixtures not found at {FIXTURES} (they live "
                                  f"next to the project, in ../shared/fixtures/faces)")

FRAME_COLUMNS = ["frame", "time_s", "face_found", "x", "y", "w", "h", "stretch", "segment",
                 "detected", "warning", "score", "signal"]
INTERVAL_COLUMNS = ["onset", "apex", "offset", "start_s", "end_s", "kind", "score"]
PULSE_START, PULSE_LENGTH, PULSE_FRAMES = 25, 8, 60  # an 8-frame motion (0.27 s at 30 fps)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def single() -> VideoAnalysis:
    if not FIXTURES.is_dir():
        pytest.skip(f"real face fixtures not found at {FIXTURES}")
    return analyze(FIXTURES / "single_face.mp4")


@pytest.fixture(scope="module")
def still_face() -> dict:
    """single_face.jpg with its mouth centre and inter-ocular distance (IOD)."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real face fixtures not found at {FIXTURES}")
    image = cv2.cvtColor(cv2.imread(str(FIXTURES / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    face = get_face_backend("auto").detect(image)[0]
    eyes = face.eyes.astype(np.float64)
    iod = float(np.hypot(*(eyes[1] - eyes[0])))
    mouth = (eyes.mean(0) + (0.0, 1.15 * iod) if face.landmarks is None
             else (face.landmarks[48] + face.landmarks[54]) / 2.0)
    return {"image": image, "mouth": np.asarray(mouth, np.float64), "iod": iod}


def pulse_frames(still: dict, kind: str, amplitude: float, *, step: float = 0.0,
                 seed: int = 0) -> list[np.ndarray]:
    """PULSE_FRAMES frames of the still face with sensor noise (sigma 2 grey levels) and, over
    PULSE_LENGTH frames from PULSE_START, a motion rising and falling back (a half sine):
    "mouth" pulls the mouth corners up and out by up to `amplitude` pixels (a localised
    expression), "shift" moves the whole picture by `amplitude` pixels (head motion). `step`
    moves the whole picture by that many pixels from the pulse's start on, for good."""
    image, mouth, iod = still["image"], still["mouth"], still["iod"]
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    bump = np.exp(-(((xs - mouth[0]) / (0.45 * iod)) ** 2 + ((ys - mouth[1]) / (0.3 * iod)) ** 2))
    outwards = np.sign(xs - mouth[0]) * np.minimum(np.abs(xs - mouth[0]) / (0.3 * iod), 1.0)
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(PULSE_FRAMES):
        phase = (t - PULSE_START + 0.5) / PULSE_LENGTH
        a = amplitude * np.sin(np.pi * phase) if 0.0 <= phase <= 1.0 else 0.0
        moved = step if t >= PULSE_START else 0.0
        if kind == "mouth":
            map_x, map_y = xs - a * bump * outwards + moved, ys + a * bump
        else:
            map_x, map_y = xs + a + moved, ys + 0.5 * a
        frame = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        frames.append(np.clip(frame + rng.normal(0.0, 2.0, frame.shape), 0, 255)
                      .astype(np.uint8))
    return frames


def write_frames(frames: list[np.ndarray], folder: Path, pattern: str = "img{}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / pattern.format(i + 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def pulse_window() -> range:
    return range(PULSE_START, PULSE_START + PULSE_LENGTH)


# ----------------------------------------------------------------------------- real videos
@needs_fixtures
def test_single_face_video_has_a_face_on_nearly_every_frame(single):
    frames = single.frames
    assert list(frames.columns) == FRAME_COLUMNS
    assert len(frames) == 72 and single.summary["frames"] == 72
    assert frames["face_found"].mean() >= 0.95
    assert frames["frame"].tolist() == list(range(72))
    np.testing.assert_allclose(frames["time_s"], frames["frame"] / 30.0)
    found = frames[frames["face_found"]]
    assert np.isfinite(found[["x", "y", "w", "h"]].to_numpy()).all()
    assert (found["w"] > 100).all() and (found["stretch"] >= 0).all()
    # the face is detected every few frames, not on each: tracking keeps it real-time
    assert 5 <= frames["detected"].sum() <= 30
    # scores exist once a whole window (k = 6 frames each side at 30 fps) has a face
    k = single.config["k"]
    assert k == 6
    assert frames["score"].iloc[:k].isna().all() and frames["score"].iloc[k:-k].notna().all()
    assert list(single.intervals.columns) == INTERVAL_COLUMNS
    assert single.summary["fps"] == 30.0 and single.summary["seconds"] > 0
    assert single.summary["frames_per_second"] > 0
    for table in (single.frames, single.intervals):
        assert table.attrs["config"]["spotter"]["name"] == "mdmd"
        assert table.attrs["config"]["align"]["size"] == VIDEO_ALIGN.size
    assert "single_face.mp4" in repr(single)


@needs_fixtures
def test_video_without_a_face_gives_no_interval_and_no_error():
    result = analyze(FIXTURES / "no_face.mp4")
    assert not result.frames["face_found"].any()
    assert result.frames["score"].isna().all() and result.frames["signal"].isna().all()
    assert len(result.intervals) == 0 and list(result.intervals.columns) == INTERVAL_COLUMNS
    assert result.summary["faces_found"] == 0
    assert any("no face" in w for w in result.summary["warnings"])
    assert np.isnan(result.threshold)


@needs_fixtures
def test_frames_after_the_face_leaves_are_reported_not_guessed():
    result = analyze(FIXTURES / "face_noface.mov")
    frames = result.frames
    found = frames["face_found"].to_numpy()
    assert found[:60].all(), "the face is there at the start"
    gone = int(np.flatnonzero(~found)[0])
    assert not found[gone:].any(), "once it has left it does not come back"
    assert 60 <= gone <= 90
    assert "face lost" in frames.loc[gone, "warning"]
    assert frames.loc[gone:, "score"].isna().all()
    assert frames.loc[gone:, ["x", "y", "w", "h"]].isna().all().all()
    assert (frames.loc[gone:, "stretch"] == -1).all()
    for row in result.intervals.itertuples():
        assert found[row.onset:row.offset + 1].all(), "no interval spans a frame without face"


@needs_fixtures
def test_a_folder_of_frames_works_like_the_video(single, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(FIXTURES / "single_face.mp4"))
    count = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        count += 1
        cv2.imwrite(str(folder / f"frame{count}.png"), bgr)  # unpadded numbers
    capture.release()
    (folder / "notes.txt").write_text("not a frame")
    source = open_video(folder, fps=30)
    assert source.info.kind == "folder" and source.info.frame_count == count
    assert [p.name for p in source.files[:3]] == ["frame1.png", "frame2.png", "frame3.png"]
    assert source.files[9].name == "frame10.png"  # natural order, not frame1, frame10, ...
    result = analyze(folder, fps=30)
    pd.testing.assert_series_equal(result.frames["face_found"], single.frames["face_found"])
    np.testing.assert_allclose(result.frames["score"], single.frames["score"], atol=1e-6)
    pd.testing.assert_frame_equal(result.intervals, single.intervals)
    assert result.summary["kind"] == "folder"


def test_natural_order_of_frame_names():
    names = ["img10.jpg", "img2.jpg", "img1.jpg", "IMG3.jpg"]
    assert sorted(names, key=natural_key) == ["img1.jpg", "img2.jpg", "IMG3.jpg", "img10.jpg"]


# ----------------------------------------------------------------------------- errors
def test_unreadable_inputs_are_named_with_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        analyze(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty holds no image frames"):
        analyze(tmp_path / "empty")
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(DatasetError, match=r"cannot read video .*fake\.mp4.*ffmpeg"):
        analyze(fake)
    with pytest.raises(ConfigError, match=r"fps 5 .*outside 10\.\.1000"):
        analyze(np.zeros((3, 32, 32, 3), np.uint8), fps=5)
    with pytest.raises(InputShapeError, match="one image"):
        analyze(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="unknown spotter 'sofnet'"):
        analyze(np.zeros((3, 32, 32, 3), np.uint8), spotter="sofnet")
    with pytest.raises(ConfigError, match="softnet spotter is not fitted"):
        analyze(np.zeros((3, 32, 32, 3), np.uint8), spotter="softnet")
    with pytest.raises(ConfigError, match="has no option 'treshold'.*min_score"):
        get_spotter("mdmd", treshold=0.3)
    with pytest.raises(ConfigError, match="within 0..1"):
        MDMDSpotter(p=1.5)
    with pytest.raises(ConfigError, match="gray face crops"):
        analyze(np.zeros((3, 32, 32, 3), np.uint8), align={"color": True})
    with pytest.raises(ConfigError, match="read once"):
        analyze(np.zeros((3, 32, 32, 3), np.uint8), model="model.pt")


@needs_fixtures
def test_an_unwritable_result_folder_is_refused_before_work(single, tmp_path):
    single.to_dir(tmp_path / "out")
    with pytest.raises(ConfigError, match="already holds intervals.csv"):
        single.to_dir(tmp_path / "out")
    single.to_dir(tmp_path / "out", overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        single.to_dir(tmp_path / "file")


# ----------------------------------------------------------------------------- streaming
def test_frames_are_streamed_and_not_kept(tmp_path):
    """The analysis holds no decoded frame after the next one arrives: memory stays bounded
    whatever the video's length."""
    alive: list[weakref.ref] = []
    most = 0

    def frames():
        nonlocal most
        rng = np.random.default_rng(0)
        for _ in range(90):
            frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            alive.append(weakref.ref(frame))
            most = max(most, sum(ref() is not None for ref in alive))
            yield frame
            del frame

    result = analyze(frames(), fps=30, track={"detect_every_s": 1.0})
    assert len(result.frames) == 90
    assert most <= 2, f"{most} decoded frames were alive at once"
    assert result.summary["buffer_frames"] == 2 * result.config["k"] + 1
    if FIXTURES.is_dir():
        assert inspect.isgenerator(open_video(FIXTURES / "single_face.mp4").frames())


def test_the_ring_buffer_never_holds_more_than_its_size():
    buffer = RingBuffer(5)
    for i in range(12):
        buffer.append(np.full((4, 4), i, np.uint8), i)
        assert len(buffer) <= 5
    assert buffer.peak == 5 and buffer.window() == [7, 8, 9, 10, 11]
    buffer.append(None, None)  # a frame without a face: no window holding it is scored
    assert buffer.window() is None
    buffer.clear()
    assert len(buffer) == 0 and buffer.window() is None


# ----------------------------------------------------------------------------- spotting
@needs_fixtures
def test_a_localised_motion_is_spotted_and_a_head_translation_is_not(still_face):
    mouth = analyze(pulse_frames(still_face, "mouth", 4.0), fps=30)
    assert len(mouth.intervals) == 1, mouth.intervals
    hit = mouth.intervals.iloc[0]
    assert hit["kind"] == "micro" and hit["apex"] in pulse_window()
    assert hit["onset"] <= PULSE_START + 1 and hit["offset"] >= PULSE_START + PULSE_LENGTH - 2
    assert hit["start_s"] == pytest.approx(hit["onset"] / 30.0)
    # the same motion of the whole picture (the head moving) is removed with the median flow
    head = analyze(pulse_frames(still_face, "shift", 4.0), fps=30)
    assert len(head.intervals) == 0, head.intervals
    assert mouth.frames["score"].max() > 3 * head.frames["score"].max()
    # without removing head motion the translation dominates the score
    raw = analyze(pulse_frames(still_face, "shift", 4.0), fps=30,
                  spotter=MDMDSpotter(head_motion="none"))
    assert raw.frames["score"].max() > mouth.frames["score"].max()


@needs_fixtures
def test_a_head_that_moves_and_stays_is_realigned_without_an_interval(still_face):
    result = analyze(pulse_frames(still_face, "mouth", 0.0, step=0.3 * still_face["iod"]),
                     fps=30)
    assert result.summary["stretches"] == 2
    moved = result.frames[result.frames["warning"].str.contains("re-aligned")]
    assert len(moved) == 1 and PULSE_START <= moved["frame"].iloc[0] <= PULSE_START + 8
    assert len(result.intervals) == 0, result.intervals


@needs_fixtures
def test_the_lbp_spotter_finds_the_motion_too(still_face):
    result = analyze(pulse_frames(still_face, "mouth", 8.0), fps=30, spotter="lbp")
    assert result.config["spotter"]["name"] == "lbp"
    assert any(row.onset <= row.apex <= row.offset and row.apex in pulse_window()
               for row in result.intervals.itertuples())


@needs_fixtures
def test_several_faces_use_the_largest_and_say_so():
    image = cv2.cvtColor(cv2.imread(str(FIXTURES / "multi_face.jpg")), cv2.COLOR_BGR2RGB)
    faces = get_face_backend("auto").detect(image)
    result = analyze([image] * 8, fps=30)
    assert result.frames["face_found"].all()
    assert "faces: using the largest" in result.frames.loc[0, "warning"]
    x, y, w, h = result.frames.loc[0, ["x", "y", "w", "h"]]
    assert (x, y, w, h) == pytest.approx(faces[0].box)


def test_intervals_from_scores_follow_the_documented_steps():
    fps, k = 30.0, 6
    config = SpotConfig(p=0.5, min_score=0.1, smooth_s=0.0)
    scores = np.zeros(100)
    scores[40] = 2.0  # one brief rise and fall
    scores[70:90] = 1.0  # a long raised stretch: its edges stand out, its middle does not
    segments = np.zeros(100, dtype=np.int64)
    spotting = spot_intervals(scores, segments, fps, config, k)
    first = spotting.intervals.iloc[0]
    assert (first["onset"], first["apex"], first["offset"]) == (34, 40, 46)
    assert first["kind"] == "micro" and first["score"] == pytest.approx(2.0)
    assert spotting.threshold == pytest.approx(spotting.signal.mean()
                                               + 0.5 * (2.0 - spotting.signal.mean()))
    # frames without a face: the interval stops at them
    segments[:38] = -1
    clipped = spot_intervals(scores, segments, fps, config, k).intervals.iloc[0]
    assert clipped["onset"] == 38
    # a long motion above the threshold makes a macro interval
    long = np.zeros(100)
    long[30:60] = np.hanning(30) * 3
    wide = spot_intervals(long, np.zeros(100, dtype=np.int64), fps,
                          SpotConfig(p=0.1, contrast=False, smooth_s=0.0), k).intervals
    assert (wide["kind"] == "macro").any()
    # nothing above the floor: no interval
    quiet = spot_intervals(np.full(100, 0.05), np.zeros(100, dtype=np.int64), fps, config, k)
    assert len(quiet.intervals) == 0


def test_spotters_are_small_objects_with_a_config():
    default = get_spotter("default")
    assert isinstance(default, MDMDSpotter) and default.window(30) == 6
    assert default.window(200) == 40 and default.window(23.98) == 5
    custom = LBPSpotter(p=0.3)
    assert get_spotter(custom) is custom and custom.config.p == 0.3
    assert custom.describe()["name"] == "lbp" and "p=0.3" in repr(custom)
    table = list_spotters()
    assert set(table["name"]) == {"mdmd", "lbp", "motion", "softnet"}
    assert table["default"].sum() == 1


# ----------------------------------------------------------------------------- results
@needs_fixtures
def test_to_dir_writes_the_tables_the_timeline_and_the_summary(single, tmp_path):
    out = single.to_dir(tmp_path / "analysis")
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "intervals.csv",
                                                     "summary.json", "timeline.png"]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("fps", "frames", "faces_found", "seconds", "frames_per_second", "config"):
        assert key in summary
    assert summary["config"]["spotter"]["name"] == "mdmd"
    frames = pd.read_csv(out / "frames.csv")
    assert list(frames.columns) == FRAME_COLUMNS and len(frames) == 72
    intervals = pd.read_csv(out / "intervals.csv")
    assert list(intervals.columns) == INTERVAL_COLUMNS
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = single.plot()
    assert figure.axes and figure.axes[0].get_xlabel() == "time (s)"


@needs_fixtures
def test_intervals_are_recognised_by_a_saved_model(still_face, tmp_path):
    from microexpr.training.estimators import make_classifier

    rng = np.random.default_rng(0)
    model = make_classifier("logreg", ("negative", "positive")).fit(
        rng.normal(size=(12, 28, 28, 3)).astype(np.float32), ["negative", "positive"] * 6)
    path = model.save(tmp_path / "logreg.pt")
    folder = write_frames(pulse_frames(still_face, "mouth", 6.0), tmp_path / "pulse")
    result = microexpr.analyze(folder, str(path), representation={"method": "dis"})
    intervals = result.intervals
    assert len(intervals) == 1
    assert list(intervals.columns) == [*INTERVAL_COLUMNS, "label", "p_negative", "p_positive"]
    assert intervals["label"].iloc[0] in ("negative", "positive")
    assert intervals[["p_negative", "p_positive"]].sum(axis=1).iloc[0] == pytest.approx(1.0)
    assert result.config["model"]["name"] == "logreg"
    assert result.config["model"]["representation"]["input"]["method"] == "dis"


@needs_fixtures
def test_a_model_with_an_input_recipe_gets_the_inputs_it_was_trained_on(still_face, tmp_path):
    inputs = pytest.importorskip("microexpr.training.inputs")
    if not hasattr(inputs, "make_input_recipe"):
        pytest.skip("this microexpr's models record no input recipe")
    from microexpr.training.estimators import make_classifier

    rng = np.random.default_rng(1)
    model = make_classifier("logreg", ("negative", "positive")).fit(
        rng.normal(size=(12, 28, 28, 3)).astype(np.float32), ["negative", "positive"] * 6)
    model.input_recipe = inputs.make_input_recipe(model, {"method": "dis", "align": {}})
    path = model.save(tmp_path / "recipe.pt")
    folder = write_frames(pulse_frames(still_face, "mouth", 6.0), tmp_path / "pulse")
    with pytest.raises(ConfigError, match="representation options do not apply"):
        analyze(folder, path, representation={"method": "tvl1"})
    result = analyze(folder, path)
    assert result.config["model"]["inputs"] == "the model's input recipe"
    assert result.config["model"]["representation"]["input"]["method"] == "dis"
    assert result.intervals["label"].iloc[0] in ("negative", "positive")

@needs_fixtures
def test_the_command_line_analyses_a_video(tmp_path):
    from microexpr.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["analyze", str(FIXTURES / "single_face.mp4"), "--out",
                                 str(out), "--no-progress", "--spot-option", "p=0.6",
                                 "--annotate"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "72 frames at 30 fps, a face on" in text and "frames/s" in text
    assert f"results written to {out}" in text
    assert {p.name for p in out.iterdir()} == {"frames.csv", "intervals.csv", "summary.json",
                                               "timeline.png", "annotated.mp4"}
    assert json.loads((out / "summary.json").read_text())["config"]["spotter"]["p"] == 0.6
    written = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
    written.release()
    again = runner.invoke(app, ["analyze", str(FIXTURES / "single_face.mp4"), "--out",
                                str(out), "--no-progress"])
    assert again.exit_code != 0 and isinstance(again.exception, ConfigError)
    assert "already holds" in str(again.exception)


def test_synthetic_long_video_micro_expressions_are_hit_by_the_megc_metric(tmp_path):
    """End to end with the long-video stage: a synthetic CAS(ME)^2-layout video, read by its
    loader, analysed as a frame folder and scored with the MEGC interval metric."""
    long_video = pytest.importorskip("microexpr.synth.long_video")
    long_videos = pytest.importorskip("microexpr.data.long_videos")
    spotting = pytest.importorskip("microexpr.evaluation.spotting")
    root = long_video.synthesize_long(tmp_path / "long", subjects=1, videos_per_subject=1,
                                      seconds=8, micro_per_video=3, macro_per_video=0,
                                      blinks=False, talking=False, head_turns=False)
    data = long_videos.load_long_videos("casme2_long", root)
    video = data.videos.iloc[0]
    result = analyze(video["folder"], fps=video["fps"])
    assert result.frames["face_found"].all()
    first = int(video["first_frame"])  # the files are numbered from 1, frames from 0
    predicted = result.intervals.assign(video=video["video"],
                                        onset=result.intervals["onset"] + first,
                                        offset=result.intervals["offset"] + first)
    metrics = spotting.spotting_metrics(predicted, data.intervals)
    assert metrics["micro"]["tp"] >= 1, (predicted, data.intervals)
    assert metrics["overall"]["fp"] <= metrics["overall"]["tp"]


def test_peaks_of_one_motion_give_one_interval():
    fps, config = 30.0, SpotConfig(p=0.0, min_score=0.5, smooth_s=0.0, contrast=False)
    scores = np.zeros(120)
    scores[40:70] = 1.0  # one long motion: its plateau holds several peaks k apart
    scores[[45, 55, 65]] = 2.0
    found = spot_intervals(scores, np.zeros(120, dtype=np.int64), fps, config, 6).intervals
    assert len(found) == 1
    assert found.iloc[0][["onset", "apex", "offset"]].tolist() == [39, 45, 71]
    assert found.iloc[0]["kind"] == "macro"  # 33 frames: 1.1 s
