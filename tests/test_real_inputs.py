"""Inputs as real users hold them: clip names repeating across subjects, u/v/strain channels,
broken or empty files, label typos, empty annotation sheets and blank emotions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from microexpr.data.adapters import load_dataset
from microexpr.data.clips import Dataset, concat_datasets
from microexpr.data.manifest import read_manifest
from microexpr.errors import DatasetError, LabelSchemeError, ManifestError

from trees import CASME2_HEADER, SAMM_HEADER, write_frames, write_xlsx

HEADER = "dataset,subject,clip,label,path"


def write_inputs(folder: Path, rows: list[tuple[str, str, str, str]], *, channels: int = 3,
                 size: int = 4, seed: int = 0) -> Path:
    """manifest.csv with one seeded noise .npy (size x size x channels) per (dataset, subject,
    clip, label) row; files are named by row so repeated clip names never share a file."""
    rng = np.random.default_rng(seed)
    (folder / "flow").mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for i, (dataset, subject, clip, label) in enumerate(rows):
        name = f"flow/{i:04d}.npy"
        np.save(folder / name, rng.normal(size=(size, size, channels)).astype(np.float32))
        lines.append(f"{dataset},{subject},{clip},{label},{name}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def casme2_like(n_subjects: int = 4, labels: tuple[str, ...] = ("negative", "positive")
                ) -> list[tuple[str, str, str, str]]:
    """Rows whose clip names c0..c7 repeat in every subject, as CASME II's EP01_01 does."""
    return [("casme2", f"sub{s + 6:02d}", f"c{k}", labels[(s + k) % len(labels)])
            for s in range(n_subjects) for k in range(8)]


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# ----------------------------------------------------------------------------- clip identity
def test_clip_names_repeat_across_subjects(tmp_path: Path) -> None:
    manifest = read_manifest(write_inputs(tmp_path, casme2_like()))
    assert len(manifest.clips) == 32 and manifest.inputs.shape == (32, 4, 4, 3)
    sub06 = manifest.clips[manifest.clips["subject"] == "casme2/sub06"]
    assert list(sub06["clip"]) == [f"c{k}" for k in range(8)]
    assert manifest.clips.groupby("clip")["subject"].nunique().eq(4).all()


def test_true_duplicate_names_both_rows_even_when_subject_is_namespaced(tmp_path: Path) -> None:
    rows = casme2_like(2)
    rows.append(("casme2", "casme2/sub07", "c3", "positive"))  # sub07/c3 is row 13 already
    with pytest.raises(ManifestError) as info:
        read_manifest(write_inputs(tmp_path, rows))
    text = one_line(info)
    assert "row 18" in text and "rows 13 and 18" in text and "'casme2/sub07'" in text


def _dataset(name: str, subjects: list[str], clip: str) -> Dataset:
    clips = pd.DataFrame({"dataset": name, "subject": [f"{name}/{s}" for s in subjects],
                          "clip": clip, "label": "positive"})
    return Dataset(name=name, clips=clips, classes=("positive",), scheme="composite3")


def test_concat_keeps_repeated_clip_names_and_refuses_true_duplicates() -> None:
    joined = concat_datasets([_dataset("casme2", ["sub06"], "EP01_01"),
                              _dataset("casme2", ["sub07"], "EP01_01")])
    assert list(joined.clips["subject"]) == ["casme2/sub06", "casme2/sub07"]
    with pytest.raises(DatasetError, match=r"'EP01_01' of subject 'casme2/sub06'.*namespace"):
        concat_datasets([_dataset("casme2", ["sub06"], "EP01_01"),
                         _dataset("casme2", ["sub06"], "EP01_01")])


def test_casme2_tree_with_ep01_01_in_two_subjects(tmp_path: Path) -> None:
    for subject in ("sub06", "sub07"):
        write_frames(tmp_path / "CASME2_RAW_selected" / subject / "EP01_01", range(1, 6))
    rows = [[6, "EP01_01", 1, 3, 5, "4", "disgust"], [7, "EP01_01", 1, 3, 5, "12", "happiness"]]
    write_xlsx(tmp_path / "CASME2-coding-20190701.xlsx", CASME2_HEADER, rows)
    data = load_dataset("casme2", tmp_path, labels="composite3")
    assert list(data.clips["clip"]) == ["sub06/EP01_01", "sub07/EP01_01"]
    assert data.n_excluded == 0


# ----------------------------------------------------------------------------- channels
def test_channels_from_argument_or_sidecar(tmp_path: Path) -> None:
    path = write_inputs(tmp_path, casme2_like(2))
    assert read_manifest(path).channels is None
    assert read_manifest(path, channels=" U, v ,Strain").channels == ("u", "v", "strain")
    assert read_manifest(path, channels=["u", "v", "strain"]).channels == ("u", "v", "strain")
    sidecar = tmp_path / "manifest.yaml"
    for text in ("channels: [u, v, strain]\n", "channels: u,v,strain\n"):
        sidecar.write_text(text)
        assert read_manifest(path).channels == ("u", "v", "strain")
        assert read_manifest(path, channels="u,v,strain").channels == ("u", "v", "strain")
    sidecar.write_text("channels: [u, v, on]\n")  # YAML 1.1 would read `on` as True
    assert read_manifest(path).channels == ("u", "v", "on")


def test_channel_errors_name_sources_count_and_fix(tmp_path: Path) -> None:
    path = write_inputs(tmp_path, casme2_like(2), channels=3)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, channels="u,v")
    text = one_line(info)
    assert str(path) in text and "2 channel name(s)" in text and "3 channel(s)" in text
    assert "--channels u,v,strain lists the channels in file order" in text
    for bad, expected in (("u,,strain", "empty name"), ("u,U,strain", "more than once")):
        with pytest.raises(ManifestError, match=expected):
            read_manifest(path, channels=bad)
    sidecar = tmp_path / "manifest.yaml"
    sidecar.write_text("channels: [u, v, magnitude]\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path, channels="u,v,strain")
    text = one_line(info)
    assert "channels argument (u,v,strain)" in text and "manifest.yaml (u,v,magnitude)" in text
    sidecar.write_text("channels: [u, v, strain]\nsize: 28\n")
    with pytest.raises(ManifestError, match=r"unknown key\(s\) size; valid keys: channels"):
        read_manifest(path)


# ----------------------------------------------------------------------------- broken files
def test_nan_inputs_name_the_first_row_and_file(tmp_path: Path) -> None:
    path = write_inputs(tmp_path, casme2_like(2))
    for index, value in ((2, np.nan), (9, np.inf)):
        array = np.load(tmp_path / "flow" / f"{index:04d}.npy")
        array[1, 2, 0] = value
        np.save(tmp_path / "flow" / f"{index:04d}.npy", array)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    text = one_line(info)
    assert text.startswith(f"{path}, row 4: input ") and "0002.npy" in text
    assert "NaN or infinite" in text and "2 of 16 rows" in text and "rows 4, 11" in text


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "is empty"),
    (b"\n \n", "is empty"),
    ((HEADER + "\n").encode(), "lists no inputs"),
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "save it as CSV"),
    (bytes(range(256)) * 8, "not a text CSV"),
    (b"dataset,subject\xff\xfe,clip\n", "not UTF-8"),
    (b'dataset,subject,clip,label,path\nd,"s1,c1,a,x.npy\n', "not a readable CSV"),
])
def test_unreadable_manifest_is_one_line(tmp_path: Path, content: bytes, expected: str
                                         ) -> None:
    path = tmp_path / "manifest.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    text = one_line(info)
    assert expected in text and str(path) in text


# ----------------------------------------------------------------------------- labels
def test_label_typo_is_refused_with_rows_and_fix(tmp_path: Path) -> None:
    rows = casme2_like(4)
    rows[5] = (*rows[5][:3], "postive")
    rows[20] = (*rows[20][:3], "postive")
    with pytest.raises(ManifestError) as info:
        read_manifest(write_inputs(tmp_path, rows))
    text = one_line(info)
    assert "rows 7, 22" in text and "'postive' (2 row(s)) looks like a typo of 'positive'" in text
    assert "correct those cells to 'positive'" in text


def test_case_only_difference_is_refused(tmp_path: Path) -> None:
    rows = [(*r[:3], r[3].capitalize() if i % 2 else r[3]) for i, r in enumerate(casme2_like())]
    with pytest.raises(ManifestError, match="differs only in case"):
        read_manifest(write_inputs(tmp_path, rows))


def test_integer_among_class_names_is_refused(tmp_path: Path) -> None:
    rows = casme2_like(4)
    rows[3] = (*rows[3][:3], "1")
    with pytest.raises(ManifestError) as info:
        read_manifest(write_inputs(tmp_path, rows))
    text = one_line(info)
    assert "row 5: integer label(s) '1'" in text and "'negative', 'positive'" in text


def test_real_imbalanced_label_sets_are_accepted(tmp_path: Path) -> None:
    # CASME II 5-class counts (99 others, 32 happiness, ...) and numbered classes are no typos
    counts = {"others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25,
              "class_1": 40, "class_2": 5}
    rows = [("casme2", f"sub{i % 26:02d}", f"EP{i:03d}", label)
            for i, label in enumerate(lab for lab, n in counts.items() for _ in range(n))]
    manifest = read_manifest(write_inputs(tmp_path, rows, channels=1, size=2))
    assert set(manifest.classes) == set(counts) and manifest.warnings == []


def test_small_classes_are_warnings(tmp_path: Path) -> None:
    rows = casme2_like(3)
    rows += [("samm", "006", "x1", "fear"), ("samm", "006", "x2", "fear"),
             ("samm", "007", "x3", "contempt"), ("samm", "007", "x4", "contempt"),
             ("samm", "007", "x5", "contempt")]
    manifest = read_manifest(write_inputs(tmp_path, rows))
    assert len(manifest.warnings) == 2
    fear, contempt = sorted(manifest.warnings)[::-1]
    assert "'fear' has only 2 clip(s)" in fear and "samm/006" in fear
    assert "'contempt' has 3 clips, all from subject samm/007" in contempt


def test_label_scheme_gives_classes_and_refuses_other_labels(tmp_path: Path) -> None:
    rows = casme2_like(4, labels=("positive", "Negative", "surprise"))
    path = write_inputs(tmp_path, rows)
    manifest = read_manifest(path, labels="composite3")
    assert manifest.classes == ("negative", "positive", "surprise")
    assert set(manifest.clips["label"]) == {"negative", "positive", "surprise"}
    assert manifest.scheme == "composite3" and manifest.warnings == []
    with pytest.raises(ManifestError) as info:
        read_manifest(path, labels="casme2_5")
    text = one_line(info)
    assert "row 2: label 'positive' is not a class of label scheme casme2_5" in text
    assert "happiness, surprise, disgust, repression, others" in text
    with pytest.raises(LabelSchemeError, match="unknown label scheme 'composite'"):
        read_manifest(path, labels="composite")
    assert read_manifest(write_inputs(tmp_path / "e", casme2_like()),
                         labels="emotion").classes == ("negative", "positive")


def test_scheme_class_without_clips_is_a_warning(tmp_path: Path) -> None:
    manifest = read_manifest(write_inputs(tmp_path, casme2_like()), labels="smic_3")
    assert manifest.classes == ("negative", "positive", "surprise")
    assert manifest.warnings == ["class 'surprise' has no clips; it cannot be learned or tested"]


# ----------------------------------------------------------------------------- annotations
def _casme2_tree(root: Path) -> Path:
    write_frames(root / "CASME2_RAW_selected" / "sub01" / "EP01_01", range(1, 6))
    return root / "CASME2-coding-20190701.xlsx"


def _samm_tree(root: Path) -> Path:
    write_frames(root / "SAMM" / "006" / "006_1_2", range(100, 105), "006_{:05d}.jpg")
    return root / "SAMM_Micro_FACS_Codes_v2.xlsx"


def _casme3_tree(root: Path) -> Path:
    write_frames(root / "part_A" / "spNO.1" / "a" / "color", range(1, 6), "{}.jpg")
    return root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"


def _mmew_tree(root: Path) -> Path:
    write_frames(root / "MMEW" / "Micro_Expression" / "happiness" / "S01_01", range(1, 6),
                 "{}.jpg")
    return root / "MMEW" / "MMEW_Micro_Exp.xlsx"


def _fourdme_tree(root: Path) -> Path:
    write_frames(root / "gray_micro" / "S01" / "S01_T1_01", range(1, 6), "{}.jpg")
    return root / "4DME_Labelling_Micro_release v1.xlsx"


def _casme_tree(root: Path) -> Path:
    write_frames(root / "CASME_raw_selected" / "sub01" / "EP01_5", range(1, 6))
    return root / "CASME-coding.xlsx"


EMPTY_SHEETS = {
    "casme2": (_casme2_tree, CASME2_HEADER),
    "samm": (_samm_tree, SAMM_HEADER),
    "casme3": (_casme3_tree, ["Subject", "Filename", "Onset", "Apex", "Offset", "AU",
                              "emotion"]),
    "mmew": (_mmew_tree, ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                          "Action Units", "Estimated Emotion"]),
    "4dme": (_fourdme_tree, ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs",
                             "Emotion"]),
    "casme": (_casme_tree, ["Subject", "Filename", "OnsetF", "ApexF1", "ApexF2", "OffsetF",
                            "Duration", "Action Units", "Emotion"]),
}


@pytest.mark.parametrize("name", sorted(EMPTY_SHEETS))
def test_annotation_with_only_a_header_lists_no_clips(tmp_path: Path, name: str) -> None:
    tree, header = EMPTY_SHEETS[name]
    annotation = write_xlsx(tree(tmp_path), header, [])
    with pytest.raises(DatasetError) as info:
        load_dataset(name, tmp_path, labels="emotion")
    text = one_line(info)
    assert f"annotation file {annotation} lists no clips" in text


def test_smic_without_clip_folders(tmp_path: Path) -> None:
    (tmp_path / "HS" / "s1" / "micro" / "negative").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no smic clips found in .*holds no clip folders"):
        load_dataset("smic", tmp_path)


def test_blank_and_unknown_emotions_are_counted_per_clip(tmp_path: Path) -> None:
    frames = tmp_path / "CASME2_RAW_selected"
    emotions = ["happiness", "", "confused", "surprise", "/", "disgust", "happiness"]
    rows = []
    for i, emotion in enumerate(emotions):
        subject, name = f"sub0{1 + i % 3}", f"EP01_0{i}"
        write_frames(frames / subject / name, range(1, 6) if i != 6 else [1, 2, 4, 5])
        rows.append([subject, name, 1, 3, 5, "4", emotion])
    annotation = write_xlsx(tmp_path / "CASME2-coding-20190701.xlsx", CASME2_HEADER, rows)
    data = load_dataset("casme2", tmp_path)
    assert data.n_excluded == 1  # the last clip lacks its apex frame 3
    five = data.with_labels("casme2_5")
    assert list(five.clips["clip"]) == ["sub01/EP01_00", "sub01/EP01_03", "sub03/EP01_05"]
    info = five.problems[five.problems["severity"] == "info"].set_index("clip")
    assert list(info.index) == ["sub02/EP01_01", "sub03/EP01_02", "sub02/EP01_04"]
    assert list(info["row"]) == [3, 4, 6] and (info["file"] == str(annotation)).all()
    assert "emotion cell is blank" in info.loc["sub02/EP01_01", "message"]
    assert "drops emotion 'confused'" in info.loc["sub03/EP01_02", "message"]
    assert five.n_excluded == 4 == len(emotions) - len(five.clips)
    assert ("3 clips from 2 subjects; 4 clips excluded (1 unusable, 3 left out: blank or "
            "unknown emotion / not in the label scheme); 1 errors") in five.summary()
    every = data.with_labels("emotion")
    assert "" not in every.classes and "/" not in every.classes and "confused" in every.classes
    assert every.n_excluded == 3


def test_labelling_a_database_whose_clips_are_all_unusable(tmp_path: Path) -> None:
    write_frames(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP01_01", [1, 2])
    write_xlsx(tmp_path / "CASME2-coding-20190701.xlsx", CASME2_HEADER,
               [[1, "EP01_01", 1, 3, 5, "4", "happiness"]])
    for scheme in ("composite3", "emotion"):
        data = load_dataset("casme2", tmp_path, labels=scheme)
        assert data.clips.empty and "label" in data.clips.columns and data.n_excluded == 1
        assert "0 clips from 0 subjects; 1 clips excluded (1 unusable)" in data.summary()
