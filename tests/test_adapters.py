"""Database adapters read miniature trees in each real layout, and report broken inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from microexpr.data.adapters import ADAPTERS, list_adapters, load_dataset
from microexpr.data.annotations import find_annotation, read_annotation
from microexpr.data.clip_rows import make_clip
from microexpr.data.clips import CLIP_COLUMNS, Dataset
from microexpr.data.frames import IMAGE_SUFFIXES, find_child, frame_number, list_frames
from microexpr.errors import ConfigError, DatasetError

from trees import write_frames, write_xlsx


def problems_of(dataset: Dataset, clip: str | None = None, severity: str | None = None
                ) -> pd.DataFrame:
    """The problems of one clip (or database-level ones with clip '') and severity."""
    table = dataset.problems
    if clip is not None:
        table = table[table["clip"] == clip]
    if severity is not None:
        table = table[table["severity"] == severity]
    return table


def messages(dataset: Dataset, clip: str | None = None, severity: str | None = None) -> str:
    """The matching problem messages joined into one string for `in` checks."""
    return " | ".join(problems_of(dataset, clip, severity)["message"])


CASME2_HEADER = ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame",
                 "Unnamed: 6", "Action Units", "Estimated Emotion"]


def casme2_row(subject: object, name: str, onset: object, apex: object, offset: object,
               emotion: str = "Happiness", aus: str | None = "12") -> list[object]:
    """One CASME II coding row in CASME2_HEADER order."""
    return [subject, name, None, onset, apex, offset, None, aus, emotion]


@pytest.fixture
def casme2_root(tmp_path: Path) -> Path:
    """CASME II raw release: two subjects, frames img<N>.jpg, Subject as 1 and '02'."""
    frames = tmp_path / "CASME2_RAW_selected"
    write_frames(frames / "sub01" / "EP02_01f", range(6, 13))
    write_frames(frames / "sub01" / "EP03_02", range(20, 26))
    write_frames(frames / "sub02" / "EP01_11f", range(1, 6))
    rows = [
        casme2_row(1, "EP02_01f", 6, 8, 12, "Happiness", "12"),
        casme2_row(1, "EP03_02", 20, "/", 25, "Disgust", "4+L10"),
        casme2_row("02", "EP01_11f", 1, 3, 5, " Repression ", None),
    ]
    write_xlsx(tmp_path / "CASME2-coding-20190701.xlsx", CASME2_HEADER, rows)
    return tmp_path


# ----------------------------------------------------------------------------- frames
@pytest.mark.parametrize(
    ("name", "number"),
    [("img46.jpg", 46), ("reg_img46.jpg", 46), ("006_05562.jpg", 5562),
     ("image012345.bmp", 12345), ("175.jpg", 175), ("thumbs.jpg", None)],
)
def test_frame_number(name: str, number: int | None) -> None:
    assert frame_number(name) == number


def test_list_frames_numeric_order_and_filters(tmp_path: Path) -> None:
    write_frames(tmp_path, [10, 9, 100])
    (tmp_path / "img11.txt").write_text("not an image")
    (tmp_path / "thumbs.jpg").write_bytes((tmp_path / "img9.jpg").read_bytes())
    (tmp_path / "IMG12.JPG").write_bytes((tmp_path / "img9.jpg").read_bytes())
    assert [n for n, _ in list_frames(tmp_path)] == [9, 10, 12, 100]
    assert list_frames(tmp_path)[0][1].name == "img9.jpg"
    assert ".tiff" in IMAGE_SUFFIXES and list_frames(tmp_path / "missing") == []


def test_find_child_matches_case_and_zero_padding(tmp_path: Path) -> None:
    (tmp_path / "sub01").mkdir()
    (tmp_path / "006").mkdir()
    assert find_child(tmp_path, "SUB01") == tmp_path / "sub01"
    assert find_child(tmp_path, "sub1") == tmp_path / "sub01"
    assert find_child(tmp_path, "6") == tmp_path / "006"
    assert find_child(tmp_path, "sub02") is None


# ----------------------------------------------------------------------------- annotations
def test_read_annotation_finds_header_after_preamble(tmp_path: Path) -> None:
    preamble = [["SAMM micro-expression FACS codes"]] + [[None]] * 5 + [["notes"]] + [[]] * 5
    path = write_xlsx(tmp_path / "codes.xlsx", ["Subject ", "filename", "Onset Frame", None],
                      [["006", "006_1_2", "/", None], [None, None, None, None],
                       [7, "007_3_1", 5, None]], preamble=preamble)
    table = read_annotation(path, ["Subject", "Filename", "OnsetFrame"], "SAMM")
    assert list(table.columns) == ["Subject", "Filename", "OnsetFrame", "_row"]
    assert table["Subject"].tolist() == ["006", 7] and type(table.loc[1, "Subject"]) is int
    assert table["OnsetFrame"].tolist()[0] == "/"
    assert table["_row"].tolist() == [14, 16]


def test_read_annotation_missing_column_names_file_and_found(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", ["Subject", "Filename", "Onset"], [[1, "x", 2]])
    with pytest.raises(DatasetError) as info:
        read_annotation(path, ["Subject", "Filename", "OffsetFrame"], "CASME II")
    text = str(info.value)
    assert "a.xlsx" in text and "'OffsetFrame'" in text and "'Onset'" in text


def test_read_annotation_csv(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("title line\nSubject,Filename,Onset\n01,x,5\n")
    table = read_annotation(path, ["Subject", "Filename", "Onset"], "X")
    assert table.loc[0, "Subject"] == "01" and table.loc[0, "_row"] == 3


def test_find_annotation_by_name_and_by_columns(tmp_path: Path) -> None:
    nested = write_xlsx(tmp_path / "a" / "b" / "casme2-CODING-20140508.XLSX", ["x"], [])
    assert find_annotation(tmp_path, ["CASME2-coding-20140508.xlsx"], ["Subject"], "X") == nested
    other = write_xlsx(tmp_path / "mine.xlsx", ["Subject", "Filename"], [[1, "a"]])
    assert find_annotation(tmp_path, ["nothing.xlsx"], ["Subject", "Filename"], "X") == other
    with pytest.raises(DatasetError) as info:
        find_annotation(tmp_path, ["nothing.xlsx"], ["Subject", "OnsetF"], "CASME")
    assert str(tmp_path) in str(info.value) and "nothing.xlsx" in str(info.value)
    assert "'OnsetF'" in str(info.value)


def _clip(folder: Path, onset: object, apex: object, offset: object):
    """make_clip on `folder` with fixed metadata and the given bounds."""
    return make_clip(namespace="t", format="t", subject="s1", clip="s1/c", folder=folder,
                     onset=onset, apex=apex, offset=offset, fps=10, emotion=" Happy ",
                     action_units=float("nan"), file="f.xlsx", row=7,
                     columns=("On", "Ap", "Off"))


def test_make_clip_rows_and_problems(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "c", [1, 2, 3, 5, 6])
    row, problems = _clip(folder, 1, None, 6)
    assert row is not None and set(row) == set(CLIP_COLUMNS)
    assert row["frame_numbers"] == (1, 2, 3, 5, 6) and row["apex"] == 3
    assert row["apex_estimated"] and row["emotion"] == "happy" and row["action_units"] == ""
    text = " ".join(p.message for p in problems)
    assert "1 of 6 frames missing" in text and "estimated as frame 3" in text
    assert all(p.severity == "warning" and p.row == 7 for p in problems)
    assert "same frame" in _clip(folder, 1, 1, 3)[1][0].message
    for args, expected in [((5, 5, 2), "after offset"), ((1, 6, 5), "outside"),
                           (("x1", 2, 3), "On value 'x1'"), ((1, 4, 6), "apex frame 4"),
                           ((1, 2, 8), "offset frame 8")]:
        row, problems = _clip(folder, *args)
        assert row is None and expected in problems[0].message
        assert problems[0].severity == "error" and problems[0].file == "f.xlsx"
    assert "not found" in _clip(tmp_path / "gone", 1, 2, 3)[1][0].message


# ----------------------------------------------------------------------------- casme2
def test_casme2_raw(casme2_root: Path) -> None:
    data = load_dataset("casme2", casme2_root)
    clips = data.clips.set_index("clip")
    assert list(clips.index) == ["sub01/EP02_01f", "sub01/EP03_02", "sub02/EP01_11f"]
    assert data.subjects == ["casme2/sub01", "casme2/sub02"]
    first = clips.loc["sub01/EP02_01f"]
    assert first["frame_numbers"] == tuple(range(6, 13))
    assert [Path(f).name for f in first["frames"][3:5]] == ["img9.jpg", "img10.jpg"]
    assert (first["onset"], first["apex"], first["offset"]) == (6, 8, 12)
    assert first["fps"] == 200 and first["format"] == "casme2" and first["dataset"] == "casme2"
    assert clips.loc["sub02/EP01_11f", "emotion"] == "repression"
    assert clips.loc["sub01/EP03_02", "action_units"] == "4+L10"
    estimated = clips.loc["sub01/EP03_02"]
    assert estimated["apex_estimated"] and estimated["apex"] == 23
    assert "apex not annotated" in messages(data, "sub01/EP03_02", "warning")
    assert data.n_excluded == 0 and data.annotation_file.endswith("20190701.xlsx")


def test_casme2_broken_rows_are_excluded_with_file_and_row(casme2_root: Path) -> None:
    frames = casme2_root / "CASME2_RAW_selected"
    write_frames(frames / "sub03" / "EP01_01", [1, 2, 3, 5])  # apex 4 missing
    write_frames(frames / "sub03" / "EP01_02", [1, 2, 4, 5])  # frame 3 dropped
    write_frames(frames / "sub03" / "EP09_09", [1, 2])  # nobody annotates it
    rows = [
        casme2_row(3, "EP01_01", 1, 4, 5),
        casme2_row(3, "EP01_02", 1, 2, 5),
        casme2_row(3, "EP05_05", 1, 2, 3),  # no folder
        casme2_row(3, "EP01_02", 5, 4, 1),  # duplicate id and onset > offset
        casme2_row(4, "EP01_01", "abc", 2, 3),
        casme2_row(None, "EP07_07", 1, 2, 3),
    ]
    write_xlsx(casme2_root / "CASME2-coding-20190701.xlsx", CASME2_HEADER, rows)
    data = load_dataset("casme2", casme2_root)
    assert data.clips["clip"].tolist() == ["sub03/EP01_02"]
    assert data.n_excluded == 5
    errors = problems_of(data, severity="error").set_index("clip")
    assert errors.loc["sub03/EP01_01", "row"] == 2
    assert "apex frame 4 not found" in errors.loc["sub03/EP01_01", "message"]
    assert "sub03/EP05_05" in errors.index and "row 3" in messages(data, "sub03/EP01_02",
                                                                   "error")
    assert "OnsetFrame value 'abc'" in messages(data, "sub04/EP01_01", "error")
    assert "Subject is empty" in errors.loc["?/EP07_07", "message"]
    assert errors["file"].str.endswith("CASME2-coding-20190701.xlsx").all()
    assert "frame drops" in messages(data, "sub03/EP01_02", "warning")
    assert "EP09_09" in messages(data, "", "warning")


def test_casme2_prefers_cropped_and_variant_raw(casme2_root: Path) -> None:
    write_frames(casme2_root / "Cropped" / "sub01" / "EP02_01f", range(6, 13), "reg_img{}.jpg")
    data = load_dataset("casme2", casme2_root)
    assert Path(data.clips.loc[0, "frames"][0]).name == "reg_img6.jpg"
    assert "variant='raw'" in messages(data, "", "warning")
    assert data.n_excluded == 2  # the other clips are not in the cropped folder
    raw = load_dataset("casme2", casme2_root, variant="raw")
    assert len(raw.clips) == 3 and Path(raw.clips.loc[0, "frames"][0]).name == "img6.jpg"
    with pytest.raises(ConfigError, match="variant"):
        load_dataset("casme2", casme2_root, variant="small")
    with pytest.raises(ConfigError, match="subset"):
        load_dataset("casme2", casme2_root, subset="HS")


def test_casme2_root_is_frames_folder_and_namespace(casme2_root: Path) -> None:
    data = load_dataset("casme2", casme2_root / "CASME2_RAW_selected", namespace="c2")
    assert len(data.clips) == 3 and data.subjects == ["c2/sub01", "c2/sub02"]
    assert set(data.clips["dataset"]) == {"c2"} and set(data.clips["format"]) == {"casme2"}


def test_casme2_annotation_found_by_columns(casme2_root: Path) -> None:
    (casme2_root / "CASME2-coding-20190701.xlsx").rename(casme2_root / "my codes.xlsx")
    assert len(load_dataset("casme2", casme2_root).clips) == 3


def test_casme2_missing_annotation_and_column(casme2_root: Path) -> None:
    (casme2_root / "CASME2-coding-20190701.xlsx").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset("casme2", casme2_root)
    assert str(casme2_root) in str(info.value)
    assert "CASME2-coding-20190701.xlsx" in str(info.value)
    header = [h for h in CASME2_HEADER if h != "OffsetFrame"]
    write_xlsx(casme2_root / "CASME2-coding-20190701.xlsx", header, [[1, "EP02_01f"]])
    with pytest.raises(DatasetError, match="'OffsetFrame'"):
        load_dataset("casme2", casme2_root)


# ----------------------------------------------------------------------------- samm
def test_samm_preamble_and_subject_folders(tmp_path: Path) -> None:
    samm = tmp_path / "SAMM"
    write_frames(samm / "006" / "006_1_2", range(5562, 5568), "006_{:05d}.jpg")
    write_frames(samm / "007" / "007_6_1", range(98, 103), "007_{:05d}.jpg")
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
              "Offset Frame", "Duration", "Type", "Action Units", "Notes", "Estimated Emotion",
              "Objective Classes"]
    preamble = [["SAMM"], ["Micro-Movements"]] + [[None]] * 10
    rows = [[6, "006_1_2", 1, 5562, 5564, 5567, 6, "Micro - 1/2", "R12", None, "Happiness", 1],
            ["007", "007_6_1", 6, 98, 100, 102, 5, "Micro", "4", None, "Anger", 2]]
    write_xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", header, rows, preamble)
    for root in (tmp_path, samm):
        data = load_dataset("samm", root)
        assert data.clips["clip"].tolist() == ["006/006_1_2", "007/007_6_1"]
        assert data.subjects == ["samm/006", "samm/007"]
        assert data.clips.loc[0, "frame_numbers"] == tuple(range(5562, 5568))
        assert data.clips["emotion"].tolist() == ["happiness", "anger"]
        assert data.clips.loc[0, "fps"] == 200 and data.n_excluded == 0
    problems = problems_of(load_dataset("samm", tmp_path))
    assert problems.empty


# ----------------------------------------------------------------------------- smic
def test_smic_hs_emotions_from_folders(tmp_path: Path) -> None:
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    write_frames(hs / "s1" / "micro" / "negative" / "s1_ne_01", range(8, 13), "image{:06d}.bmp")
    write_frames(hs / "s1" / "micro" / "positive" / "s1_po_01", range(99, 102), "image{:06d}.bmp")
    write_frames(hs / "s10" / "micro" / "surprise" / "s10_sur_01", range(1, 4), "image{:06d}.bmp")
    (hs / "s10" / "micro" / "surprise" / "s10_sur_02").mkdir()
    for root in (tmp_path, hs):
        data = load_dataset("smic", root)
        clips = data.clips.set_index("clip")
        assert list(clips.index) == ["s1/s1_ne_01", "s1/s1_po_01", "s10/s10_sur_01"]
        assert data.subjects == ["smic/s1", "smic/s10"]
        first = clips.loc["s1/s1_ne_01"]
        assert (first["onset"], first["apex"], first["offset"]) == (8, 10, 12)
        assert first["apex_estimated"] and first["emotion"] == "negative"
        assert clips.loc["s1/s1_po_01", "frame_numbers"] == (99, 100, 101)
        assert (clips["fps"] == 100).all()
        assert problems_of(data, severity="warning")["clip"].tolist() == [""]
        assert "estimated" in messages(data, "", "warning")
        assert data.n_excluded == 1 and "no image frames" in messages(data, "s10/s10_sur_02")


# ----------------------------------------------------------------------------- casme3
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "Duration", "AU",
                 "Objective class", "emotion", "Expression type"]


def test_casme3_micro_rows_unique_ids_and_known_problems(tmp_path: Path) -> None:
    part_a = tmp_path / "part_A"
    write_frames(part_a / "spNO.1" / "a" / "color", [*range(170, 180), *range(181, 190)],
                 "{}.jpg")
    write_frames(part_a / "spNO.2" / "b" / "color", range(1, 30), "{}.jpg")
    rows = [
        ["spNO.1", "a", 175, 177, 179, 5, "4", "1", "disgust", "micro-expression"],
        ["spNO.1", "a", 180, 180, 185, 6, "12", "2", "Happy", "micro-expression"],
        ["spNO.1", "a", 170, 172, 189, 20, "12", "2", "happy", "macro-expression"],
        [2, "b", 3, 5, 9, 7, "1+2", "3", "surprise", "Micro"],
    ]
    write_xlsx(part_a / "annotation" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
               CASME3_HEADER, rows)
    data = load_dataset("casme3", tmp_path)
    assert data.clips["clip"].tolist() == ["spNO.1/a_175", "spNO.2/b_3"]
    assert data.subjects == ["casme3/spNO.1", "casme3/spNO.2"]
    assert data.clips.loc[0, "frame_numbers"] == (175, 176, 177, 178, 179)
    assert data.n_excluded == 1  # a_180: onset frame 180 was dropped
    assert "onset frame 180 not found" in messages(data, "spNO.1/a_180", "error")
    assert (data.clips["fps"] == 30).all() and data.clips.loc[1, "emotion"] == "surprise"
    assert "1 macro-expression row(s)" in messages(data, "", "warning")
    rows[0][3] = 175
    rows[1][2] = 177
    rows[1][3] = 177
    write_xlsx(part_a / "annotation" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
               CASME3_HEADER[:-1], [r[:-1] for r in rows])
    data = load_dataset("casme3", tmp_path)
    assert data.clips["clip"].tolist() == ["spNO.1/a_175", "spNO.1/a_177", "spNO.1/a_170",
                                           "spNO.2/b_3"]
    assert "same frame" in messages(data, "spNO.1/a_175", "warning")
    assert "frame drops" in messages(data, "spNO.1/a_177", "warning")
    # the release's ME label file has no type column: all its rows are micro-expressions
    assert "macro" not in messages(data, "", "warning")


# ----------------------------------------------------------------------------- mmew
def test_mmew_clip_found_under_any_emotion_folder(tmp_path: Path) -> None:
    micro = tmp_path / "MMEW" / "Micro_Expression"
    write_frames(micro / "happiness" / "S01_01", range(1, 8), "{}.jpg")
    write_frames(micro / "repression" / "S02_03", range(10, 15), "{}.jpg")
    header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
              "Estimated Emotion", "remarks"]
    rows = [["S01", "S01_01", 1, 4, 7, "6+12", "Happiness", None],
            ["S02", "S02_03", 10, 12, 14, "4", "Others", "apex unclear"],
            ["S02", "S02_09", 1, 2, 3, "4", "Fear", None]]
    write_xlsx(tmp_path / "MMEW" / "MMEW_Micro_Exp.xlsx", header, rows)
    data = load_dataset("mmew", tmp_path)
    assert data.clips["clip"].tolist() == ["S01/S01_01", "S02/S02_03"]
    assert data.subjects == ["mmew/S01", "mmew/S02"]
    assert data.clips["emotion"].tolist() == ["happiness", "others"]
    assert (data.clips["fps"] == 90).all() and data.n_excluded == 1
    assert "not found under any emotion folder" in messages(data, "S02/S02_09", "error")
    assert "apex unclear" in messages(data, "S02/S02_03", "warning")


# ----------------------------------------------------------------------------- 4dme
def test_fourdme(tmp_path: Path) -> None:
    gray = tmp_path / "gray_micro"
    write_frames(gray / "S01" / "S01_T1_01", range(1, 11), "{}.jpg")
    header = ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion"]
    write_xlsx(tmp_path / "4DME_Labelling_Micro_release v1.xlsx", header,
               [["S01", "S01_T1_01", 2, 5, 9, "AU12", "Positive"]])
    data = load_dataset("4dme", tmp_path)
    assert data.clips["clip"].tolist() == ["S01/S01_T1_01"]
    assert data.subjects == ["4dme/S01"] and data.clips.loc[0, "fps"] == 60
    assert data.clips.loc[0, "frame_numbers"] == tuple(range(2, 10))
    assert data.clips.loc[0, "emotion"] == "positive"
    assert data.clips.loc[0, "action_units"] == "AU12"


# ----------------------------------------------------------------------------- casme
def test_casme_one(tmp_path: Path) -> None:
    frames = tmp_path / "CASME_raw_selected"
    write_frames(frames / "sub01" / "EP01_5", range(1, 12))
    header = ["Subject", "Filename", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "Duration",
              "Action Units", "Emotion"]
    write_xlsx(tmp_path / "CASME-coding.xlsx", header,
               [[1, "EP01_5", 2, 4, 6, 11, 10, "1+2", "Surprise"]])
    data = load_dataset("casme", tmp_path)
    assert data.clips["clip"].tolist() == ["sub01/EP01_5"]
    assert data.subjects == ["casme/sub01"] and data.clips.loc[0, "fps"] == 60
    row = data.clips.loc[0]
    assert (row["onset"], row["apex"], row["offset"]) == (2, 4, 11)
    assert row["emotion"] == "surprise"


# ----------------------------------------------------------------------------- registry
def test_registry(casme2_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {a.name for a in list_adapters()} == {"casme2", "samm", "smic", "casme3", "mmew",
                                                 "4dme", "casme", "ckplus", "mmi",
                                                 "clip_folder"}
    assert ADAPTERS["smic"].fps == 100 and ADAPTERS["casme3"].fps == 30
    with pytest.raises(DatasetError, match="casme2"):
        load_dataset("casme9", casme2_root)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("casme2", casme2_root / "nowhere")
    with pytest.raises(ConfigError, match="namespace"):
        load_dataset("casme2", casme2_root, namespace="a/b")
    monkeypatch.setattr(Dataset, "with_labels", lambda self, scheme: f"labelled {scheme}")
    assert load_dataset("CASME2", casme2_root, labels="casme2-5") == "labelled casme2-5"
