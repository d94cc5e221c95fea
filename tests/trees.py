"""Builders of miniature database trees for tests (tiny frames, xlsx with real headers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import openpyxl

_IMAGE = np.full((8, 8, 3), 127, dtype=np.uint8)


def write_frames(folder: Path, numbers: Iterable[int], name: str = "img{}.jpg") -> Path:
    """Tiny frames folder/<name.format(n)> for each number; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        assert cv2.imwrite(str(folder / name.format(n)), _IMAGE)
    return folder


def write_xlsx(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]],
               preamble: Sequence[Sequence[object]] = ()) -> Path:
    """An xlsx whose header follows `preamble` rows (text written as text: '01', '/')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    for line in preamble:
        sheet.append(list(line))
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path


CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                 "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
               "Offset Frame", "Duration", "Type", "Action Units", "Notes",
               "Estimated Emotion", "Objective Classes"]


def make_casme2(root: Path) -> Path:
    emotions = ["happiness", "disgust", "repression", "surprise", "fear", "others", "disgust"]
    rows = []
    for i, emotion in enumerate(emotions):
        subject, name = (4, "EP12_01f") if i == 6 else (1 + i % 2, f"EP0{i}_01")
        write_frames(root / "CASME2_RAW_selected" / f"sub{subject:02d}" / name, range(1, 6))
        rows.append([subject, name, 1, 3, 5, "4", emotion])
    write_xlsx(root / "CASME2-coding-20190701.xlsx", CASME2_HEADER, rows)
    return root


def make_samm(root: Path) -> Path:
    emotions = ["Anger", "Contempt", "Happiness", "Surprise", "Other", "Sadness"]
    rows = []
    for i, emotion in enumerate(emotions):
        name = f"006_1_{i}"
        write_frames(root / "SAMM" / "006" / name, range(100, 105), "006_{:05d}.jpg")
        rows.append(["006", name, "1", 100, 102, 104, 5, "Micro - 1/2", "12", "", emotion, 1])
    preamble = [["SAMM FACS codes"]] + [[""] for _ in range(11)]
    write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, rows, preamble=preamble)
    return root


def make_smic(root: Path) -> Path:
    for subject, emotion, code in [("s1", "negative", "ne"), ("s1", "positive", "po"),
                                   ("s2", "surprise", "sur")]:
        folder = root / "HS" / subject / "micro" / emotion / f"{subject}_{code}_01"
        write_frames(folder, range(1000, 1006), "image{:06d}.bmp")
    return root
