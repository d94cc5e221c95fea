"""Manifest import: precomputed inputs listed in a CSV (dataset, subject, clip, label, path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from microexpr.errors import ManifestError

MANIFEST_COLUMNS = ("dataset", "subject", "clip", "label", "path")
ARRAY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Manifest:
    """Inputs read from a manifest: one row per clip, arrays stacked as N x H x W x C."""

    path: Path
    clips: pd.DataFrame  # dataset, subject (namespaced), clip, label, path, row
    inputs: np.ndarray  # float32, N x H x W x C
    classes: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.stem


def _row_error(path: Path, row: int, message: str) -> ManifestError:
    return ManifestError(f"{path}, row {row}: {message}")


def _labels_and_classes(labels: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    """Labels as strings and the class order: numeric when every label is an integer."""
    values = labels.astype(str).str.strip()
    if values.str.fullmatch(r"-?\d+").all():
        numbers = values.astype(int)
        return numbers.astype(str), tuple(str(v) for v in sorted(set(numbers)))
    return values, tuple(sorted(set(values)))


def read_input(file: Path) -> np.ndarray:
    """Read one precomputed input as float32 H x W x C (.npy array or image)."""
    suffix = file.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        array = np.load(file, allow_pickle=False)
    elif suffix in IMAGE_SUFFIXES:
        array = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ValueError("the image cannot be decoded")
        if array.ndim == 3:
            array = array[..., ::-1]  # OpenCV reads BGR; store RGB like the .npy inputs
    else:
        raise ValueError(
            f"unsupported file type {suffix!r}; use .npy (H x W x C) or "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def read_manifest(path: str | Path) -> Manifest:
    """Read a manifest CSV and every input it lists; errors name the row and the fix.

    Paths are relative to the CSV's folder. Subjects are namespaced by dataset
    (`casme2` + `sub01` -> `casme2/sub01`) so ids from different databases never collide.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from exc
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {missing}; a manifest needs the header "
            f"{','.join(MANIFEST_COLUMNS)} (found {list(table.columns)})"
        )
    if table.empty:
        raise ManifestError(f"{path}: the manifest lists no inputs")
    table = table[list(MANIFEST_COLUMNS)].apply(lambda s: s.str.strip())
    table["row"] = np.arange(len(table)) + 2  # line number in the file (header is line 1)
    for column in MANIFEST_COLUMNS:
        empty = table[table[column] == ""]
        if len(empty):
            raise _row_error(path, int(empty["row"].iloc[0]), f"empty {column!r}")
    duplicated = table[table.duplicated(["dataset", "clip"], keep="first")]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise _row_error(path, int(first["row"]),
                         f"clip {first['clip']!r} of dataset {first['dataset']!r} is listed twice")
    arrays = []
    for rec in table.itertuples(index=False):
        file = (path.parent / rec.path).resolve()
        if not file.is_file():
            raise _row_error(path, rec.row, f"input file {file} does not exist (paths are "
                                            f"relative to the manifest's folder)")
        try:
            array = read_input(file)
        except (ValueError, OSError) as exc:
            raise _row_error(path, rec.row, f"cannot read {file}: {exc}") from exc
        if arrays and array.shape != arrays[0].shape:
            raise _row_error(path, rec.row, f"{file} has shape {array.shape} but the first "
                                            f"input has {arrays[0].shape}; all inputs must "
                                            f"have one shape (H x W x C)")
        arrays.append(array)
    subjects = [s if "/" in s else f"{d}/{s}" for d, s in zip(table["dataset"],
                                                              table["subject"], strict=True)]
    labels, classes = _labels_and_classes(table["label"])
    clips = table.assign(subject=subjects, label=labels)
    return Manifest(path=path, clips=clips.reset_index(drop=True), inputs=np.stack(arrays),
                    classes=classes)
