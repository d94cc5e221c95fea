"""Checking frames before a long run: every file a representation reads is decoded, and a
truncated one is reported with its dataset, subject, clip and path (and the CLI exits 1)."""

from pathlib import Path

import pytest

import microexpr
from microexpr.cli import main
from microexpr.representations import check_frames

from trees import make_casme2


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def tree(tmp_path):
    # clips EP01_01 of sub02 and EP12_01f of sub04; onset 1, apex 3, offset 5 (tests/trees.py)
    root = make_casme2(tmp_path)
    _cut(root / "CASME2_RAW_selected" / "sub02" / "EP01_01" / "img3.jpg")  # an apex
    _cut(root / "CASME2_RAW_selected" / "sub04" / "EP12_01f" / "img2.jpg")  # not onset/apex
    return root


def test_check_frames_finds_the_truncated_frames_a_representation_reads(tree):
    clips = microexpr.load_dataset("casme2", tree).clips
    problems = check_frames(clips, progress=False)  # onset_apex_flow: onset and apex
    assert problems.attrs["files"] == 2 * len(clips) and problems.attrs["clips"] == len(clips)
    assert list(problems.columns) == ["dataset", "subject", "clip", "file", "message"]
    assert len(problems) == 1
    row = problems.iloc[0]
    assert (row["dataset"], row["subject"]) == ("casme2", "casme2/sub02")
    assert row["clip"].endswith("EP01_01") and row["file"].endswith("sub02/EP01_01/img3.jpg")
    assert "is truncated (no JPEG end-of-image marker): re-extract" in row["message"]
    # a representation reading the whole onset..offset range meets the other one too
    every = check_frames(clips, "frame_clip", progress=False)
    assert every.attrs["files"] == 5 * len(clips)
    assert sorted(Path(f).name for f in every["file"]) == ["img2.jpg", "img3.jpg"]


def test_check_frames_reports_a_clip_whose_files_cannot_be_listed(tree):
    clips = microexpr.load_dataset("casme2", tree).clips
    clips.at[0, "apex"] = 9  # an annotated apex frame that is not on disk
    problems = check_frames(clips.iloc[:1], "apex_frame", {"apex": "annotated"},
                            progress=False)
    assert len(problems) == 1 and problems["file"].iloc[0] == ""
    assert "has no frame 9" in problems["message"].iloc[0]


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, " ".join((out.out + out.err).split())


def test_datasets_check_frames_prints_problems_and_exits_1(tree, capsys):
    code, text = _run(["datasets", "check", "casme2", "--root", str(tree), "--frames"], capsys)
    assert code == 1
    assert "decoded 14 frame files of 7 clips (onset_apex_flow): 1 problem" in text
    assert "sub02/EP01_01/img3.jpg is truncated" in text
    code, text = _run(["datasets", "check", "casme2", "--root", str(tree), "--frames",
                       "--representation", "frame_clip", "--problems", "1"], capsys)
    assert code == 1 and "2 problems" in text and "... and 1 more" in text


def test_datasets_check_frames_passes_a_sound_tree(tmp_path, capsys):
    root = make_casme2(tmp_path)
    code, text = _run(["datasets", "check", "casme2", "--root", str(root), "--frames"], capsys)
    assert code == 0 and "decoded 14 frame files of 7 clips (onset_apex_flow): no problems" in text
