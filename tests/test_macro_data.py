"""Macro-expression data for macro -> micro transfer: the CK+, MMI and clip-folder adapters,
their label mapping onto the micro schemes, and the synthetic CK+ writer (`synth --macro`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from microexpr.cli import main
from microexpr.data.adapters import (
    ADAPTERS,
    ALIASES,
    get_adapter,
    list_datasets,
    load_dataset,
)
from microexpr.data.adapters._registry import register_adapter
from microexpr.data.clips import Dataset
from microexpr.errors import ConfigError, DatasetError, LabelSchemeError
from microexpr.evaluation.macro import detect_macro_format, load_macro, parse_macro
from microexpr.synth.macro import MIN_SEQUENCE_FRAMES, write_ckplus

from trees import write_frames


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), " ".join((out.out + out.err).split())


def problems_of(data: Dataset, severity: str) -> pd.DataFrame:
    return data.problems[data.problems["severity"] == severity]


def messages(data: Dataset, severity: str) -> str:
    return "\n".join(problems_of(data, severity)["message"])


# ----------------------------------------------------------------------------- CK+
def _sequence(images: Path, subject: str, sequence: str, n: int, digits: int = 8) -> Path:
    return write_frames(images / subject / sequence, range(1, n + 1),
                        f"{subject}_{sequence}_{{:0{digits}d}}.png")


def _label(labels: Path, subject: str, sequence: str, frame: int, text: str | None) -> Path:
    folder = labels / subject / sequence
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{subject}_{sequence}_{frame:08d}_emotion.txt"
    if text is not None:
        path.write_text(text)
    return path


def make_ckplus(base: Path, images_parent: str = "") -> dict[str, Path]:
    """A miniature CK+ release at `base` (images below `images_parent`), with every kind of
    trouble a real one has; returns the files the problems must name."""
    images = base / images_parent / "cohn-kanade-images"
    emotion, facs = base / "Emotion", base / "FACS"
    _sequence(images, "S005", "001", 5)
    _label(emotion, "S005", "001", 5, "   3.0000000e+00\n")
    (facs / "S005" / "001").mkdir(parents=True)
    (facs / "S005" / "001" / "S005_001_00000005_facs.txt").write_text(
        "   1.0000000e+00   0.0000000e+00\n   4.0000000e+00   3.0000000e+00\n")
    _sequence(images, "S005", "002", 4)  # unlabelled: an empty Emotion folder
    (emotion / "S005" / "002").mkdir(parents=True)
    happy = _sequence(images, "S010", "001", 6, digits=9)  # extra digits, macOS/Windows litter
    (happy / ".DS_Store").write_bytes(b"\0\1")
    (happy / "Thumbs.db").write_bytes(b"\0\1")
    _label(emotion, "S010", "001", 6, "   5.0000000e+00\n")
    _sequence(images, "S010", "002", 3)  # unlabelled: no Emotion folder at all
    files = {
        "empty": _label(emotion, "S011", "001", 3, ""),
        "word": _label(emotion, "S011", "002", 3, "happy\n"),
        "range": _label(emotion, "S011", "003", 3, "   9.0000000e+00\n"),
        "no_images": _label(emotion, "S011", "004", 3, "   7.0000000e+00\n"),
        "orphan": _label(emotion, "S012", "001", 3, "   7.0000000e+00\n"),
    }
    for sequence in ("001", "002", "003"):
        _sequence(images, "S011", sequence, 3)
    files["empty_folder"] = images / "S011" / "004"
    files["empty_folder"].mkdir()
    (files["empty_folder"] / ".DS_Store").write_bytes(b"\0")
    files["unnumbered"] = write_frames(images / "S011" / "005", ["a", "b"], "frame_{}.png")
    _sequence(images, "S014", "001", 4)
    _label(emotion, "S014", "001", 4, "7.0\n")
    (base / "Landmarks" / "S005" / "001").mkdir(parents=True)
    (base / "Landmarks" / "S005" / "001" / "S005_001_00000001_landmarks.txt").write_text("1 2\n")
    return files


def test_ckplus_reads_labelled_sequences_and_reports_the_rest(tmp_path: Path) -> None:
    files = make_ckplus(tmp_path / "CK+")
    data = load_dataset("ckplus", tmp_path)
    clips = data.clips.set_index("clip")
    assert list(clips.index) == ["S005/001", "S010/001", "S014/001"]
    assert data.subjects == ["ckplus/S005", "ckplus/S010", "ckplus/S014"]
    assert list(clips["emotion"]) == ["disgust", "happy", "surprise"]
    s005 = clips.loc["S005/001"]
    assert (s005["onset"], s005["apex"], s005["offset"]) == (1, 5, 5)
    assert s005["frame_numbers"] == (1, 2, 3, 4, 5) and s005["fps"] == 30
    assert s005["action_units"] == "1+4" and not s005["apex_estimated"]
    assert s005["source_file"].endswith("S005_001_00000005_emotion.txt")
    assert clips.loc["S010/001", "frame_numbers"] == (1, 2, 3, 4, 5, 6)
    assert all(name.endswith(".png") for name in clips.loc["S010/001", "frames"])

    info = problems_of(data, "info").set_index("clip")
    assert sorted(info.index) == ["S005/002", "S010/002"]
    assert info["message"].str.startswith("unlabelled").all()
    assert info.loc["S005/002", "file"].endswith(str(Path("cohn-kanade-images/S005/002")))

    errors = problems_of(data, "error").set_index("clip")
    assert sorted(errors.index) == ["S011/001", "S011/002", "S011/003", "S011/004",
                                    "S011/004", "S011/005", "S012/001"]
    by_clip = errors.groupby(level=0)["message"].apply(" | ".join)
    assert f"{files['empty']} is empty" in by_clip["S011/001"]
    assert f"{files['word']} holds 'happy', not a number" in by_clip["S011/002"]
    assert f"{files['range']} holds '9.0000000e+00', which is not an emotion code" in (
        by_clip["S011/003"])
    assert f"no image frames in {files['empty_folder']}" in by_clip["S011/004"]
    assert f"emotion label {files['no_images']} belongs to sequence" in by_clip["S011/004"]
    assert (f"no numbered frames in {files['unnumbered']}" in by_clip["S011/005"]
            and "frame_a.png" in by_clip["S011/005"])
    assert f"emotion label {files['orphan']} has no image sequence" in by_clip["S012/001"]
    assert problems_of(data, "warning").empty  # Landmarks, .DS_Store, Thumbs.db: no noise
    assert data.summary() == ("ckplus: 3 clips from 3 subjects; 8 clips excluded (6 unusable, "
                              "2 left out: blank or unknown emotion / not in the label "
                              "scheme); 7 errors, 0 warnings")


@pytest.mark.parametrize("layout", ["CK+", "images", "extended"])
def test_ckplus_roots(tmp_path: Path, layout: str) -> None:
    if layout == "CK+":  # CK+/cohn-kanade-images + CK+/Emotion, root given as CK+/
        make_ckplus(tmp_path / "CK+")
        root = tmp_path / "CK+"
    elif layout == "images":  # the cohn-kanade-images folder itself, Emotion beside it
        make_ckplus(tmp_path / "CK+")
        root = tmp_path / "CK+" / "cohn-kanade-images"
    else:  # extended-cohn-kanade-images/cohn-kanade-images, Emotion at the top
        make_ckplus(tmp_path, images_parent="extended-cohn-kanade-images")
        root = tmp_path
    data = load_dataset("ck+", root)
    assert list(data.clips["clip"]) == ["S005/001", "S010/001", "S014/001"]
    assert data.n_unusable == 6 and data.n_left_out == 2
    assert detect_macro_format(root) == "ckplus"


def test_ckplus_label_files_that_cannot_be_used(tmp_path: Path) -> None:
    images, emotion, facs = (tmp_path / n for n in ("cohn-kanade-images", "Emotion", "FACS"))
    _sequence(images, "S005", "001", 3)
    _label(emotion, "S005", "001", 3, "5\n")
    (facs / "S005" / "001").mkdir(parents=True)
    bad_facs = facs / "S005" / "001" / "S005_001_00000003_facs.txt"
    bad_facs.write_text("AU12 strong\n")
    _sequence(images, "S005", "002", 3)
    _label(emotion, "S005", "002", 3, "5\n")
    _label(emotion, "S005", "002", 2, "6\n")
    data = load_dataset("ckplus", tmp_path)
    assert list(data.clips["clip"]) == ["S005/001"]
    assert data.clips["emotion"].iloc[0] == "happy" and data.clips["action_units"].iloc[0] == ""
    assert f"FACS file {bad_facs} ({'AU12 strong'!r}) does not start with an action-unit" in (
        messages(data, "warning"))
    assert ("holds several emotion files (S005_002_00000002_emotion.txt, "
            "S005_002_00000003_emotion.txt)") in messages(data, "error")


def test_ckplus_without_emotion_labels_says_what_to_unpack(tmp_path: Path) -> None:
    _sequence(tmp_path / "cohn-kanade-images", "S005", "001", 3)
    with pytest.raises(DatasetError, match="no CK\\+ Emotion folder.*Emotion_labels.zip"):
        load_dataset("ckplus", tmp_path)
    with pytest.raises(DatasetError, match="no CK\\+ images found"):
        load_dataset("ckplus", tmp_path / "cohn-kanade-images" / "S005" / "001")


def test_aliases_resolve_to_their_adapter(tmp_path: Path) -> None:
    for name in ("ck+", "CK+", " ck ", "cohn-kanade", "ckplus"):
        assert get_adapter(name).name == "ckplus"
    assert get_adapter("clip-folder").name == "clip_folder"
    assert ALIASES["ck+"] == "ckplus"
    with pytest.raises(DatasetError, match=r"known formats: .*ckplus.*aliases: .*ck\+ \(ckplus\)"):
        get_adapter("ck++")
    with pytest.raises(ValueError, match="not a free"):
        register_adapter("other", "Other", 30, "x", aliases=("ck+",))(lambda root: None)
    with pytest.raises(ValueError, match="already an alias"):
        register_adapter("ck", "Other", 30, "x")(lambda root: None)
    assert "other" not in ADAPTERS and "ck" not in ADAPTERS
    make_ckplus(tmp_path / "CK+")
    [source] = parse_macro(f"ck+={tmp_path / 'CK+'}")
    assert source.adapter == "ckplus"
    assert load_dataset("ck+", tmp_path).subjects[0] == "ckplus/S005"


# ----------------------------------------------------------------------------- MMI
def _session(sessions: Path, name: str, xml: str | None = None, frames: int = 4) -> Path:
    folder = write_frames(sessions / name, range(1, frames + 1), "frame{:04d}.png")
    if xml is not None:
        (folder / "session.xml").write_text(xml)
    return folder


def make_mmi(base: Path) -> dict[str, Path]:
    sessions = base / "MMI" / "Sessions"
    _session(sessions, "1", '<?xml version="1.0"?><session sessionId="1">'
                            '<Metatag Name="Emotion" Value="4"/><subject id="7"/></session>')
    _session(sessions, "2", "<session><Emotion>6</Emotion></session>")
    _session(sessions, "3", '<session Emotion="2" Subject="12"/>')
    video = sessions / "4" / "S004-004.avi"
    video.parent.mkdir()
    video.write_bytes(b"RIFF....AVI ")
    _session(sessions, "5", '<session><track type="AU">12</track></session>')
    files = {
        "video": video,
        "code": _session(sessions, "6", '<session Emotion="9"/>') / "session.xml",
        "broken": _session(sessions, "7", "<session><Emotion>") / "session.xml",
        "empty": sessions / "8",
    }
    files["empty"].mkdir()
    _session(sessions, "9", '<session Emotion="anger"/>')
    labels = base / "MMI" / "labels.csv"
    labels.write_text("session,emotion,subject,onset,apex,offset\n"
                      "3,disgusted,S3,1,3,4\n"
                      "9,,,,,\n"
                      "99,happiness,,,,\n")
    files["labels"] = labels
    return files


def test_mmi_sessions_with_xml_and_labels_csv(tmp_path: Path) -> None:
    files = make_mmi(tmp_path)
    data = load_dataset("mmi", tmp_path)
    clips = data.clips.set_index("clip")
    assert list(clips.index) == ["1", "2", "3", "9"]
    assert list(clips["emotion"]) == ["happiness", "surprise", "disgusted", "anger"]
    assert list(clips["subject"]) == ["mmi/7", "mmi/2", "mmi/S3", "mmi/9"]
    assert (clips.loc["3", "onset"], clips.loc["3", "apex"], clips.loc["3", "offset"]) == (1, 3, 4)
    assert clips.loc["3", "source_file"] == str(files["labels"])
    assert clips.loc["3", "source_row"] == 2 and not clips.loc["3", "apex_estimated"]
    assert clips.loc["1", "apex_estimated"] and clips.loc["1", "apex"] == 3
    assert (clips["fps"] == 25).all()

    info = problems_of(data, "info")
    assert list(info["clip"]) == ["5"] and "unlabelled" in info["message"].iloc[0]
    errors = problems_of(data, "error").set_index("clip")["message"]
    assert sorted(errors.index) == ["4", "6", "7", "8", "99"]
    assert f'ffmpeg -i "{files["video"]}"' in errors["4"] and "frame%04d.png" in errors["4"]
    assert "emotion '9' is neither an MMI emotion code" in errors["6"]
    assert str(files["code"]) in errors["6"]
    assert f"cannot read XML file {files['broken']}" in errors["7"]
    assert f"no image frames in {files['empty']}" in errors["8"]
    assert "session '99' has no folder" in errors["99"]
    assert problems_of(data, "error").set_index("clip").loc["99", "row"] == 4
    warnings = messages(data, "warning")
    assert "2 session(s) name no subject" in warnings  # sessions 2 and 9
    assert "no apex annotated for 3 session(s)" in warnings
    assert detect_macro_format(tmp_path) == "mmi"
    assert load_dataset("mmi", tmp_path / "MMI" / "Sessions", fps=24).clips["fps"].iloc[0] == 24


def test_mmi_needs_a_sessions_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no MMI Sessions folder"):
        load_dataset("mmi", tmp_path)


# ----------------------------------------------------------------------------- clip folders
def test_clip_folder(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    write_frames(root / "Happy" / "S01_smile", range(1, 5), "{:04d}.png")
    write_frames(root / "Happy" / "S02_smile", range(3, 6), "img{}.jpg")
    write_frames(root / "surprise" / "clip3", range(1, 4), "{}.png")
    (root / "sad").mkdir()
    write_frames(root / "disgust" / "S01_nose", range(1, 3), "{}.png")
    write_frames(root / "disgust", [1], "loose{}.png")
    (root / "anger" / "S03_frown").mkdir(parents=True)
    (root / "subjects.csv").write_text("clip,subject\nclip3,S09\nnowhere,S10\n")
    data = load_dataset("clip_folder", root, fps=50)
    clips = data.clips.set_index("clip")
    assert list(clips.index) == ["Happy/S01_smile", "Happy/S02_smile", "disgust/S01_nose",
                                 "surprise/clip3"]
    assert list(clips["subject"]) == ["clip_folder/S01", "clip_folder/S02", "clip_folder/S01",
                                      "clip_folder/S09"]
    assert list(clips["emotion"]) == ["happy", "happy", "disgust", "surprise"]
    row = clips.loc["Happy/S02_smile"]
    assert (row["onset"], row["apex"], row["offset"], row["fps"]) == (3, 5, 5, 50)
    errors = problems_of(data, "error")
    assert list(errors["clip"]) == ["anger/S03_frown"]
    assert f"no image frames in {root / 'anger' / 'S03_frown'}" in errors["message"].iloc[0]
    warnings = messages(data, "warning")
    assert f"class folder {root / 'sad'} is empty" in warnings
    assert f"class folder {root / 'disgust'} holds 1 image file(s) directly (loose1.png)" in (
        warnings)
    assert "clip 'nowhere' (subject 'S10') is not a usable clip folder" in warnings
    assert detect_macro_format(root) == "clip_folder"
    with pytest.raises(ConfigError, match="fps"):
        load_dataset("clip_folder", root, fps=0)
    with pytest.raises(DatasetError, match="no clip_folder clips found"):
        load_dataset("clip_folder", root / "sad")


# ----------------------------------------------------------------------------- label mapping
MACRO_NAMES = ("angry", "contempt", "disgusted", "fearful", "happy", "neutral", "sad",
               "surprised")


@pytest.fixture
def every_emotion(tmp_path: Path) -> Dataset:
    for i, name in enumerate(MACRO_NAMES):
        write_frames(tmp_path / "macro" / name / f"P{i % 3}_{name}", range(1, 3), "{}.png")
    return load_dataset("clip_folder", tmp_path / "macro")


@pytest.mark.parametrize(("scheme", "expected"), [
    ("composite3", {"angry": "negative", "contempt": "negative", "disgusted": "negative",
                    "fearful": "negative", "sad": "negative", "happy": "positive",
                    "surprised": "surprise"}),
    ("casme2_5", {"happy": "happiness", "surprised": "surprise", "disgusted": "disgust"}),
    ("samm_5", {"happy": "happiness", "surprised": "surprise", "angry": "anger",
                "contempt": "contempt"}),
    ("casme3_7", {"angry": "anger", "disgusted": "disgust", "fearful": "fear",
                  "surprised": "surprise", "happy": "happy", "sad": "sad"}),
    ("smic_3", {"angry": "negative", "contempt": "negative", "disgusted": "negative",
                "fearful": "negative", "sad": "negative", "happy": "positive",
                "surprised": "surprise"}),
])
def test_macro_emotions_map_onto_micro_schemes(every_emotion: Dataset, scheme: str,
                                               expected: dict[str, str]) -> None:
    labelled = every_emotion.with_labels(scheme)
    assert dict(zip(labelled.clips["emotion"], labelled.clips["label"], strict=True)) == expected
    dropped = problems_of(labelled, "info")
    assert sorted(dropped["clip"].str.split("/").str[0]) == sorted(
        set(MACRO_NAMES) - set(expected))
    assert dropped["message"].str.contains(f"label scheme {scheme} drops emotion").all()
    assert labelled.n_left_out == len(MACRO_NAMES) - len(expected)
    assert f"{len(MACRO_NAMES) - len(expected)} clips excluded" in labelled.summary()


def test_ckplus_names_map_too(tmp_path: Path) -> None:
    make_ckplus(tmp_path / "CK+")
    labelled = load_dataset("ckplus", tmp_path, labels="casme2_5")
    assert list(labelled.clips["label"]) == ["disgust", "happiness", "surprise"]
    assert labelled.n_left_out == 2  # the unlabelled sequences, counted before the scheme


def test_datasets_list_names_the_macro_adapters(capsys: pytest.CaptureFixture[str]) -> None:
    table = list_datasets().set_index("name")
    for name in ("ckplus", "mmi", "clip_folder"):
        assert table.loc[name, "label schemes"] == ("composite3, casme2_5, samm_5, smic_3, "
                                                    "casme3_7, casme3_3, emotion")
    assert "also called ck+" in table.loc["ckplus", "reads"]
    code, text = run(["datasets", "list"], capsys)
    assert code == 0 and all(n in text for n in ("ckplus", "mmi", "clip_folder", "ck+"))


def test_a_micro_scheme_still_refuses_unknown_formats() -> None:
    clips = pd.DataFrame({"dataset": ["x"], "format": ["unknown"], "clip": ["c"],
                          "emotion": ["happy"]})
    from microexpr.data.labels import label_clips

    with pytest.raises(LabelSchemeError, match="ckplus, clip_folder, mmi"):
        label_clips(clips, "composite3")


# ----------------------------------------------------------------------------- synthetic CK+
@pytest.fixture(scope="module")
def synthetic_ckplus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ckplus(tmp_path_factory.mktemp("macro") / "ck", subjects=3,
                        sequences_per_class=2, size=64, unlabelled=2)


def test_write_ckplus_reads_back_as_ckplus(synthetic_ckplus: Path) -> None:
    root = synthetic_ckplus
    assert sorted(p.name for p in root.iterdir()) == ["Emotion", "FACS", "cohn-kanade-images"]
    assert detect_macro_format(root) == "ckplus"
    data = load_dataset("ckplus", root)
    assert data.subjects == ["ckplus/S501", "ckplus/S502", "ckplus/S503"]
    assert len(data.clips) == 3 * 2 * 3 - 2 and data.n_left_out == 2 and data.n_unusable == 0
    assert sorted(problems_of(data, "info")["clip"]) == ["S501/006", "S502/006"]
    assert set(data.clips["emotion"]) == {"disgust", "happy", "surprise"}
    lengths = data.clips["frames"].map(len)
    assert lengths.min() >= MIN_SEQUENCE_FRAMES
    assert (data.clips["onset"] == 1).all() and (data.clips["apex"] == lengths).all()
    assert (data.clips["offset"] == data.clips["apex"]).all()
    assert (data.clips["action_units"] != "").all()
    label = Path(data.clips["source_file"].iloc[0])
    assert re.fullmatch(r"S501_001_000000\d\d_emotion\.txt", label.name)
    assert re.fullmatch(r" {3}[357]\.0000000e\+00\n", label.read_text())
    labelled = data.with_labels("composite3")
    assert set(labelled.clips["label"]) == {"negative", "positive", "surprise"}
    macro = load_macro(parse_macro(str(root)), "composite3", labelled.classes)
    assert macro.info["n_clips"] == len(data.clips)


def test_write_ckplus_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="among disgust, fear, happiness, sadness, surprise"):
        write_ckplus(tmp_path, emotions=("anger",))
    with pytest.raises(ConfigError, match="unlabelled must be an integer in 0..2"):
        write_ckplus(tmp_path, subjects=1, sequences_per_class=1, unlabelled=3)
    with pytest.raises(ConfigError, match="subjects"):
        write_ckplus(tmp_path, subjects=0)
    small = write_ckplus(tmp_path / "small", subjects=1, sequences_per_class=1, size=32,
                         emotions=("happiness", "surprise"))
    data = load_dataset("ckplus", small)  # 2 sequences: one left unlabelled by default
    assert len(data.clips) == 1 and data.n_left_out == 1


def test_cli_synth_macro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ck"
    code, text = run(["synth", str(out), "--macro", "--subjects", "2", "--clips-per-class", "1",
                      "--size", "48", "--emotions", "happiness,surprise", "--unlabelled", "1"],
                     capsys)
    assert code == 0, text
    assert str(out) in text and f"--model mimanet --macro {out}" in text
    data = load_dataset("ckplus", out)
    assert len(data.clips) == 3 and data.n_left_out == 1
    assert set(data.clips["emotion"]) == {"happy", "surprise"}
    code, text = run(["synth", str(tmp_path / "x"), "--macro", "--full-frame"], capsys)
    assert code == 2 and "--full-frame" in text
    code, text = run(["synth", str(tmp_path / "x"), "--unlabelled", "2"], capsys)
    assert code == 2 and "--unlabelled applies to --macro only" in text
