"""Long-video databases (CAS(ME)^2, SAMM Long Videos), the synthetic long-video generator and
the MEGC spotting metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from microexpr.data.long_videos import (
    INTERVAL_COLUMNS,
    VIDEO_COLUMNS,
    expression_kind,
    list_long_video_formats,
    load_long_videos,
)
from microexpr.errors import ConfigError, DatasetError
from microexpr.evaluation.spotting import (
    interval_iou,
    match_intervals,
    match_spots,
    precision_recall_f1,
    spotting_counts,
    spotting_metrics,
)
from microexpr.synth.long_video import (
    ANNOTATION_FILE,
    METADATA_FILE,
    LongSynthConfig,
    synthesize_long,
)

from trees import write_frames, write_xlsx


# ----------------------------------------------------------------------------- CAS(ME)^2
def write_casme2_sheets(path: Path, rows: list[list[object]], *, header: bool = False,
                        rule1: list[list[object]] | None = None) -> Path:
    """A CAS(ME)^2 code file: the first sheet without header row, then the naming rules."""
    book = openpyxl.Workbook()
    sheet = book.active
    if header:
        sheet.append(["Participant", "Video", "Onset", "Apex", "Offset", "AUs", "Emotion",
                      "Type", "Self-report"])
    for row in rows:
        sheet.append(row)
    first = book.create_sheet("naming rule1")
    for row in rule1 if rule1 is not None else [[15, "s15", 1], [16, "s16", 2]]:
        first.append(row)
    second = book.create_sheet("naming rule2")
    for row in [["0101", "disgust1"], ["0502", "happy1"]]:
        second.append(row)
    book.save(path)
    return path


CASME2_ROWS = [
    [1, "disgust1_1", 10, 15, 22, "4+9", "negative", "micro-expression", "disgust"],  # 1
    [1, "disgust1_2", 30, 40, 0, "12", "positive", "macro-expression", "happy"],  # 2: offset 0
    [1, "happy1_1", 1, 20, 39, "6+12", "positive", "macro-expression", "happy"],  # 3: frame 1
    [2, "happy1_1", 5, 8, 12, "12", "positive", "micro-expression", "happy"],  # 4: no folder
    [2, "disgust1_1", "1O", 12, 14, "4", "negative", "micro-expression", "disgust"],  # 5: bad
    [2, "disgust1_2", 20, 25, 30, "", "surprise", "Micro", ""],  # 6
    [3, "disgust1_1", 10, 12, 14, "4", "negative", "micro-expression", "disgust"],  # 7
    [1, "disgust1_3", 44, 46, 48, "", "others", "blink", ""],  # 8: unknown type
]


def make_casme2_long(root: Path, *, header: bool = False,
                     rule1: list[list[object]] | None = None) -> Path:
    write_frames(root / "rawpic" / "s15" / "15_0101disgustingteeth", range(1, 61))
    write_frames(root / "rawpic" / "s15" / "15_0502funnyerrors", range(1, 41))
    write_frames(root / "rawpic" / "s16" / "16_0101disgustingteeth", range(1, 51))
    # expression frames only: must not be taken for the videos
    write_frames(root / "selectedpic" / "s15" / "15_0101disgustingteeth", range(10, 23))
    write_casme2_sheets(root / "CAS(ME)^2code_final.xlsx", CASME2_ROWS, header=header,
                        rule1=rule1)
    return root


def _problem(data, row: int) -> pd.DataFrame:
    return data.problems[data.problems["row"] == row]


def test_casme2_long_reads_videos_intervals_and_problems(tmp_path):
    root = make_casme2_long(tmp_path / "CASME_sq")
    data = load_long_videos("casme2_long", root)
    annotation = str(root.resolve() / "CAS(ME)^2code_final.xlsx")

    assert list(data.videos.columns) == list(VIDEO_COLUMNS)
    assert list(data.intervals.columns) == list(INTERVAL_COLUMNS)
    videos = data.videos.set_index("video")
    assert list(videos.index) == ["s15/15_0101disgustingteeth", "s15/15_0502funnyerrors",
                                  "s16/16_0101disgustingteeth"]
    first = videos.loc["s15/15_0101disgustingteeth"]
    assert first["subject"] == "casme2_long/s15"
    assert Path(first["folder"]).parent.parent.name == "rawpic"
    assert (first["fps"], first["n_frames"], first["first_frame"], first["last_frame"]) == (
        30.0, 60, 1, 60)
    assert (first["n_micro"], first["n_macro"]) == (1, 1)
    assert data.subjects == ["casme2_long/s15", "casme2_long/s16"]

    kept = data.intervals.set_index("source_row")
    assert sorted(kept.index) == [1, 2, 3, 6]
    assert kept.loc[1, ["onset", "apex", "offset", "kind", "emotion", "action_units"]].tolist() \
        == [10, 15, 22, "micro", "negative", "4+9"]
    # offset 0: the apex is the offset
    assert (kept.loc[2, "offset"], kept.loc[2, "offset_estimated"]) == (40, True)
    assert "apex 40 is used as the offset" in _problem(data, 2)["message"].iloc[0]
    assert kept.loc[3, ["video", "onset", "kind"]].tolist() == [
        "s15/15_0502funnyerrors", 1, "macro"]
    assert kept.loc[6, ["subject", "kind", "name"]].tolist() == [
        "casme2_long/s16", "micro", "disgust1_2"]
    assert (kept["source_file"] == annotation).all()

    errors = data.problems[data.problems["severity"] == "error"].set_index("row")
    assert sorted(errors.index) == [4, 5, 7, 8]
    assert "16_0502" in errors.loc[4, "message"] and "unpacked" in errors.loc[4, "message"]
    assert "'1O' is not a frame number" in errors.loc[5, "message"]
    assert errors.loc[5, "file"] == annotation
    assert "naming rule1" in errors.loc[7, "message"]
    assert "neither micro nor macro" in errors.loc[8, "message"]
    assert data.n_left_out == 4
    assert any("selectedpic" in m for m in data.problems["message"])
    assert "3 videos of 2 subjects; 2 micro and 2 macro intervals" in data.summary()
    assert [n for n, _ in data.video_frames("s15/15_0502funnyerrors")] == list(range(1, 41))


def test_casme2_long_updated_file_header_row_namespace_and_naming_rule_variant(tmp_path):
    root = make_casme2_long(tmp_path / "db")
    # the (Updated) file is preferred; this copy has a header row, and a naming rule1 whose
    # folder number is in its second column
    updated = write_casme2_sheets(root / "CAS(ME)^2code_final(Updated).xlsx", CASME2_ROWS,
                                  header=True, rule1=[["P", 15, 1], ["Q", 16, 2]])
    data = load_long_videos("casme2_long", root / "rawpic", namespace="lv")
    assert data.annotation_file == str(updated.resolve())
    assert sorted(data.intervals["source_row"]) == [2, 3, 4, 7]  # the rows moved down by one
    assert set(data.intervals["subject"]) == {"lv/s15", "lv/s16"}
    assert (data.videos["dataset"] == "lv").all()


def test_casme2_long_without_naming_rule2_says_what_is_missing(tmp_path):
    root = tmp_path / "db"
    write_frames(root / "rawpic" / "s15" / "15_0101disgustingteeth", range(1, 5))
    book = openpyxl.Workbook()
    book.active.append([1, "disgust1_1", 1, 2, 3, "4", "negative", "micro-expression", ""])
    book.save(root / "CAS(ME)^2code_final.xlsx")
    with pytest.raises(DatasetError, match="naming rule2"):
        load_long_videos("casme2_long", root)


# ----------------------------------------------------------------------------- SAMM-LV
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration",
               "Type", "Action Units", "Notes"]


def make_samm_long(root: Path) -> Path:
    frames = root / "SAMM_longvideos"
    write_frames(frames / "006_1", range(1, 101), "006_1_{:04d}.jpg")
    write_frames(frames / "006_2", range(1, 81), "006_2_{:04d}.jpg")
    write_frames(frames / "007_1", range(1, 51), "007_1_{:04d}.jpg")  # no interval
    rows = [
        [6, "006_1_1", 1, 1, 50, 100, 100, "Macro", "12", ""],  # row 12: the whole video
        [6, "006_1_2", 1, 20, 25, 30, 11, "Micro - 1/2", "4", ""],  # 13
        [6, "006_1_3", 1, 60, -1, 70, 11, "Micro - 1/2", "R14", "no apex"],  # 14
        [6, "006_3_1", 1, 5, 6, 7, 3, "Micro - 1/2", "4", ""],  # 15: no such video
        [6, "006_2_1", 1, 10, 200, 20, 11, "Macro", "4", ""],  # 16: apex outside
        [7, "007_1_1", 2, 10, 12, 99, 90, "Macro", "4", ""],  # 17: past the last frame
        [7, "007_1_2", 2, 10, 12, 14, 5, "Macro", "4", ""],  # 18: the video is 007_1
    ]
    preamble = [["SAMM Long Videos"], ["Release V3"]] + [[""] for _ in range(8)]
    write_xlsx(root / "SAMM_LongVideos_V3_Release.xlsx", SAMM_HEADER, rows, preamble=preamble)
    return root


def test_samm_long_reads_the_sheet_after_its_preamble(tmp_path):
    root = make_samm_long(tmp_path / "SAMM_LV")
    data = load_long_videos("samm_long", root)
    videos = data.videos.set_index("video")
    assert list(videos.index) == ["006_1", "006_2", "007_1"]
    assert videos.loc["006_1", "subject"] == "samm_long/006"
    assert videos.loc["006_1", ["fps", "n_frames", "first_frame", "last_frame"]].tolist() == [
        200.0, 100, 1, 100]
    assert videos.loc["007_1", ["n_micro", "n_macro"]].tolist() == [0, 1]

    kept = data.intervals.set_index("source_row")
    assert sorted(kept.index) == [12, 13, 14, 18]
    assert kept.loc[12, ["onset", "apex", "offset", "kind"]].tolist() == [1, 50, 100, "macro"]
    assert kept.loc[13, ["kind", "action_units", "emotion"]].tolist() == ["micro", "4", ""]
    assert (kept.loc[14, "apex"], kept.loc[14, "apex_estimated"]) == (65, True)
    errors = data.problems[data.problems["severity"] == "error"].set_index("row")
    assert sorted(errors.index) == [15, 16, 17]
    assert "006_3" in errors.loc[15, "message"]
    assert "outside onset..offset" in errors.loc[16, "message"]
    assert "1..50" in errors.loc[17, "message"]
    assert errors.loc[17, "file"].endswith("SAMM_LongVideos_V3_Release.xlsx")


CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class",
                 "emotion", "Expression type"]


@pytest.mark.parametrize("typed", [True, False])
def test_casme3_long_reads_part_a_sequences(tmp_path, typed):
    part_a = tmp_path / "CASME3" / "part_A"
    write_frames(part_a / "spNO.1" / "a" / "color", range(0, 100), "{}.jpg")  # from frame 0
    write_frames(part_a / "spNO.2" / "b", range(1, 31), "{}.jpg")  # no color folder
    rows = [
        [1, "a", 0, 5, 10, "4", 1, "disgust", "micro-expression"],  # row 2: frame 0 is a frame
        [1, "a", 40, 60, 90, "12", 2, "happy", "macro-expression"],  # 3
        [2, "b", 3, 4, 6, "", 3, "others", "micro-expression"],  # 4
        [2, "c", 3, 4, 6, "", 3, "others", "micro-expression"],  # 5: no such sequence
    ]
    header = CASME3_HEADER if typed else CASME3_HEADER[:-1]
    write_xlsx(tmp_path / "CASME3" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", header,
               [r if typed else r[:-1] for r in rows])
    data = load_long_videos("casme3_long", tmp_path / "CASME3")
    assert list(data.videos["video"]) == ["spNO.1/a", "spNO.2/b"]
    assert data.videos["first_frame"].tolist() == [0, 1]
    kept = data.intervals.set_index("source_row")
    assert sorted(kept.index) == [2, 3, 4]
    assert kept.loc[2, ["subject", "name", "onset", "emotion"]].tolist() == [
        "casme3_long/spNO.1", "a_0", 0, "disgust"]
    assert kept.loc[3, "kind"] == ("macro" if typed else "micro")
    assert data.problems.set_index("row").loc[5, "severity"] == "error"
    untyped_warning = data.problems["message"].str.contains("no expression-type column")
    assert untyped_warning.any() != typed


@pytest.mark.parametrize("text, kind", [
    ("micro-expression", "micro"), ("Micro - 1/2", "micro"), ("Macro", "macro"),
    ("macro-expression", "macro"), ("MaE", "macro"), ("ME", "micro"), ("blink", None),
    (None, None),
])
def test_expression_kind(text, kind):
    assert expression_kind(text) == kind


def test_formats_names_and_namespaces_are_checked(tmp_path):
    assert list(list_long_video_formats()["name"]) == ["casme2_long", "casme3_long", "samm_long"]
    with pytest.raises(DatasetError, match="known formats: casme2_long, casme3_long, samm_long"):
        load_long_videos("casme9_long", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_long_videos("samm_long", tmp_path / "absent")
    with pytest.raises(ConfigError, match="namespace"):
        load_long_videos("samm_long", tmp_path, namespace="a/b")
    with pytest.raises(DatasetError, match="no SAMM Long Videos frames"):
        load_long_videos("samm_long", tmp_path)


# ----------------------------------------------------------------------------- synthetic
SMALL = dict(subjects=1, videos_per_subject=2, seconds=5.0, fps=30.0, size=64,
             micro_per_video=2, macro_per_video=1, seed=3)


@pytest.fixture(scope="module")
def long_db(tmp_path_factory) -> Path:
    return synthesize_long(tmp_path_factory.mktemp("long") / "db", **SMALL)


def test_synthetic_long_videos_read_back_as_their_ground_truth(long_db):
    meta = json.loads((long_db / METADATA_FILE).read_text())
    data = load_long_videos("casme2_long", long_db)
    assert data.problems.empty, data.problems.to_string()
    assert len(data.videos) == 2 and (data.videos["n_frames"] == 150).all()
    assert (data.videos["first_frame"] == 1).all() and (data.videos["fps"] == 30.0).all()
    truth = sorted(
        (f"{v['subject']}/{v['folder']}", e["name"], e["onset"], e["apex"], e["offset"],
         e["kind"], e["estimated_emotion"], e["action_units"])
        for v in meta["videos"] for e in v["expressions"]
    )
    read = sorted(data.intervals[["video", "name", "onset", "apex", "offset", "kind", "emotion",
                                  "action_units"]].itertuples(index=False, name=None))
    assert [tuple(map(str, r)) for r in read] == [tuple(map(str, t)) for t in truth]
    assert list(data.intervals["kind"].value_counts().sort_index()) == [2, 4]  # macro, micro
    for row in data.intervals.itertuples():
        length = row.offset - row.onset + 1
        assert 7 <= length <= 16 if row.kind == "micro" else length >= 21
    frame = cv2.imread(data.videos["folder"].iloc[0] + "/img1.jpg")
    assert frame.shape == (64, 64, 3)


def test_synthetic_nuisances_are_recorded_and_kept_out_of_the_expressions(long_db):
    meta = json.loads((long_db / METADATA_FILE).read_text())
    assert meta["version"] and meta["config"]["seconds"] == 5.0
    for video in meta["videos"]:
        kinds = {n["kind"] for n in video["nuisances"]}
        assert {"talking", "head_turn"} <= kinds
        for n in video["nuisances"]:
            assert 1 <= n["onset"] < n["offset"] <= video["n_frames"]
            if n["kind"] in ("blink", "talking"):
                assert all(n["offset"] < e["onset"] or n["onset"] > e["offset"]
                           for e in video["expressions"])
            if n["kind"] == "head_turn":
                assert len(n["shift_px"]) == 2 and "roll_degrees" in n
    assert any(n["kind"] == "blink" for v in meta["videos"] for n in v["nuisances"])


def test_synthetic_annotation_is_laid_out_like_the_release(long_db):
    book = openpyxl.load_workbook(long_db / ANNOTATION_FILE)
    assert book.sheetnames == ["Sheet1", "naming rule1", "naming rule2"]
    first = [c.value for c in next(book["Sheet1"].iter_rows())]
    assert first[0] == 1 and isinstance(first[2], int)  # data from the first row: no header
    assert first[7] in ("micro-expression", "macro-expression")
    assert [c.value for c in next(book["naming rule1"].iter_rows())] == [15, "s15", 1]
    assert ["0101", "disgust1"] in [[c.value for c in r] for r in book["naming rule2"].rows]


def test_synthetic_expressions_move_the_face(long_db):
    meta = json.loads((long_db / METADATA_FILE).read_text())
    video = meta["videos"][0]
    folder = long_db / "rawpic" / video["subject"] / video["folder"]

    def change(a: int, b: int) -> float:
        one, two = (cv2.imread(str(folder / f"img{n}.jpg")).astype(float) for n in (a, b))
        return float(np.abs(one - two).mean())

    macro = [e for e in video["expressions"] if e["kind"] == "macro"][0]
    micro = [e for e in video["expressions"] if e["kind"] == "micro"][0]
    assert change(macro["onset"], macro["apex"]) > change(micro["onset"], micro["apex"])


def test_synthetic_generator_is_deterministic_and_checks_its_arguments(long_db, tmp_path):
    assert synthesize_long(long_db, **SMALL) == long_db  # complete: reused as is
    again = synthesize_long(tmp_path / "again", **SMALL)
    assert (again / ANNOTATION_FILE).exists()
    one = sorted(p.relative_to(long_db) for p in (long_db / "rawpic").rglob("*.jpg"))
    assert one == sorted(p.relative_to(again) for p in (again / "rawpic").rglob("*.jpg"))
    assert all((long_db / p).read_bytes() == (again / p).read_bytes() for p in one[::17])
    with pytest.raises(ConfigError, match="cannot fit"):
        synthesize_long(tmp_path / "crowded", seconds=2.0, micro_per_video=3, macro_per_video=3)
    with pytest.raises(ConfigError, match="videos_per_subject"):
        LongSynthConfig(videos_per_subject=10)
    with pytest.raises(ConfigError, match="blinks"):
        LongSynthConfig(blinks="yes")
    foreign = tmp_path / "foreign"
    (foreign / "rawpic").mkdir(parents=True)
    with pytest.raises(ConfigError, match="did not write"):
        synthesize_long(foreign, **SMALL)


# ----------------------------------------------------------------------------- the metric
def test_the_documented_megc_check():
    result = precision_recall_f1(130, 6428, 357 - 130)
    assert (round(result["precision"], 4), round(result["recall"], 4),
            round(result["f1"], 4)) == (0.0198, 0.3641, 0.0376)


def test_megc_check_through_the_tables():
    rng = np.random.default_rng(0)
    truth_rows, pred_rows = [], []
    for k in range(357):  # 357 ground truths in 7 videos, far apart
        video, start = f"v{k % 7}", 1000 * (k // 7)
        truth_rows.append({"video": video, "onset": start, "offset": start + 20,
                           "kind": "macro" if k % 3 else "micro"})
        if k < 130:
            pred_rows.append({"video": video, "onset": start + 1, "offset": start + 20,
                              "kind": "macro" if k % 3 else "micro"})
    for _ in range(6428):  # false positives between the ground truths
        start = 1000 * int(rng.integers(0, 51)) + 100 + int(rng.integers(0, 800))
        pred_rows.append({"video": f"v{int(rng.integers(0, 7))}", "onset": start,
                          "offset": start + 10, "kind": "micro"})
    result = spotting_metrics(pd.DataFrame(pred_rows), pd.DataFrame(truth_rows))
    overall = result["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (130, 6428, 227)
    assert round(overall["f1"], 4) == 0.0376
    parts = [result[k] for k in ("micro", "macro")]
    assert sum(p["tp"] for p in parts) == 130 and sum(p["fp"] for p in parts) == 6428


def test_iou_is_in_frames_with_inclusive_bounds():
    assert interval_iou((10, 19), (10, 14)) == 0.5
    assert interval_iou((10, 19), (0, 19)) == 0.5
    assert interval_iou((10, 19), (10, 13)) == 0.4
    assert interval_iou((10, 19), (19, 28)) == pytest.approx(1 / 19)
    assert interval_iou((10, 19), (20, 29)) == 0.0
    assert match_intervals([(10, 14)], [(10, 19)]) == [(0, 0, 0.5)]  # exactly 0.5 is a hit
    assert match_intervals([(10, 13)], [(10, 19)]) == []


def test_one_prediction_never_matches_two_ground_truths():
    truth = pd.DataFrame({"video": ["a", "a"], "onset": [0, 8], "offset": [20, 14],
                          "kind": ["macro", "micro"]})
    prediction = pd.DataFrame({"video": ["a"], "onset": [5], "offset": [17]})
    assert interval_iou((5, 17), (0, 20)) >= 0.5 and interval_iou((5, 17), (8, 14)) >= 0.5
    result = spotting_metrics(prediction, truth)
    assert (result["overall"]["tp"], result["overall"]["fp"], result["overall"]["fn"]) == (
        1, 0, 1)
    # untyped predictions: per kind only hits and misses, no false positives or precision
    assert result["macro"]["tp"] == 1 and result["micro"]["fn"] == 1
    assert result["micro"]["fp"] is None and math.isnan(result["micro"]["precision"])
    # typed: the micro prediction is only compared with micro ground truth
    typed = spotting_metrics(prediction.assign(kind="micro"), truth)
    assert (typed["micro"]["tp"], typed["macro"]["fn"], typed["macro"]["fp"]) == (1, 1, 0)


def test_optimal_matching_finds_the_most_hits_greedy_may_not():
    truth = [(0, 9), (2, 9)]
    predicted = [(1, 9), (0, 5)]
    assert [(i, j) for i, j, _ in match_intervals(predicted, truth)] == [(0, 1), (1, 0)]
    assert [(i, j) for i, j, _ in match_intervals(predicted, truth, method="greedy")] == [(0, 0)]


def test_empty_predictions_or_truth_give_zero_or_nan_never_a_division_error():
    truth = pd.DataFrame({"video": ["a"] * 3, "onset": [0, 50, 90], "offset": [10, 60, 99],
                          "kind": ["micro", "macro", "macro"]})
    none = pd.DataFrame(columns=["video", "onset", "offset", "kind"])
    missed = spotting_metrics(none, truth)["overall"]
    assert math.isnan(missed["precision"]) and missed["recall"] == 0 and missed["f1"] == 0
    assert (missed["fn"], missed["n_predicted"]) == (3, 0)
    noise = spotting_metrics(truth.assign(video="b"), truth.iloc[:0])["overall"]
    assert noise["precision"] == 0 and math.isnan(noise["recall"]) and noise["f1"] == 0
    nothing = spotting_metrics(pd.DataFrame(), pd.DataFrame())["overall"]
    assert all(math.isnan(nothing[k]) for k in ("precision", "recall", "f1"))
    assert spotting_counts(none, truth)["fn"].sum() == 3


def test_strs_is_spotting_f1_times_the_recognition_f1_of_the_hits():
    truth = pd.DataFrame({"video": ["a"] * 4, "onset": [0, 100, 200, 300],
                          "offset": [10, 110, 210, 310], "kind": ["micro"] * 4,
                          "emotion": ["negative", "positive", "negative", "surprise"]})
    predictions = pd.DataFrame({"video": ["a"] * 4, "onset": [0, 100, 200, 500],
                                "offset": [10, 110, 210, 510], "kind": ["micro"] * 4,
                                "emotion": ["negative", "negative", "negative", "positive"]})
    result = spotting_metrics(predictions, truth)
    spotting_f1 = 2 * 3 / (2 * 3 + 1 + 1)
    # hits: negative->negative twice, positive->negative: F1 negative 0.8, positive 0
    analysis_f1 = (0.8 + 0.0) / 2
    strs = result["strs"]["overall"]
    assert result["overall"]["f1"] == pytest.approx(spotting_f1)
    assert strs["analysis_f1"] == pytest.approx(analysis_f1)
    assert strs["strs"] == pytest.approx(spotting_f1 * analysis_f1)
    assert strs["hits"] == 3
    assert math.isnan(result["strs"]["macro"]["strs"])  # no macro ground truth or prediction
    spots = match_spots(predictions, truth)
    assert spots["outcome"].value_counts().to_dict() == {"tp": 3, "fp": 1, "fn": 1}


def test_bad_intervals_are_refused_with_the_row():
    truth = pd.DataFrame({"video": ["a"], "onset": [0], "offset": [10]})
    with pytest.raises(ValueError, match="row 1 has onset 9 after offset 3"):
        spotting_metrics(pd.DataFrame({"video": ["a", "a"], "onset": [0, 9],
                                       "offset": [4, 3]}), truth)
    with pytest.raises(ValueError, match="not whole frame numbers"):
        match_intervals([(0.5, 4)], [(0, 4)])
    with pytest.raises(ValueError, match="kinds"):
        spotting_metrics(truth.assign(kind="blink"), truth.assign(kind="micro"))
    with pytest.raises(ValueError, match="method"):
        match_intervals([(0, 4)], [(0, 4)], method="hungarian")
