"""Manifest import: precomputed inputs listed in a CSV (dataset, subject, clip, label, path),
with optional channel names and a label scheme; every error names the row or file and the fix."""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from microexpr.errors import ManifestError

MANIFEST_COLUMNS = ("dataset", "subject", "clip", "label", "path")
ARRAY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SIDECAR_KEYS = ("channels",)
CHANNELS_FIX = "--channels u,v,strain lists the channels in file order"
# a label this similar to another (difflib ratio, case ignored) and this much rarer is a typo
TYPO_SIMILARITY = 0.8
TYPO_RARITY = 1 / 5
# classes with fewer clips, or clips from fewer subjects, get a warning
FEW_CLIPS = 3
FEW_SUBJECTS = 2
SHOWN_ROWS = 5


@dataclass
class Manifest:
    """Inputs read from a manifest: one row per clip, arrays stacked as N x H x W x C.

    `channels` names the C channels in file order (None when the manifest declares none);
    `warnings` holds one message per class too small to train and test on fairly; `scheme` is
    the label scheme the labels were checked against ("" when none).
    """

    path: Path
    clips: pd.DataFrame  # dataset, subject (namespaced), clip, label, path, row
    inputs: np.ndarray  # float32, N x H x W x C
    classes: tuple[str, ...]
    channels: tuple[str, ...] | None = None
    warnings: list[str] = field(default_factory=list)
    scheme: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


def _row_error(path: Path, row: int, message: str) -> ManifestError:
    return ManifestError(f"{path}, row {row}: {message}")


def _rows_text(rows: Sequence[int]) -> str:
    """'row 5' or 'rows 5, 9, 12, ... (7 rows)' for messages."""
    rows = [int(r) for r in rows]
    if len(rows) == 1:
        return f"row {rows[0]}"
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS])
    more = f", ... ({len(rows)} rows)" if len(rows) > SHOWN_ROWS else ""
    return f"rows {shown}{more}"


# ----------------------------------------------------------------------------- the CSV itself
def _read_table(path: Path) -> pd.DataFrame:
    """The CSV as text cells; a one-line ManifestError for empty, binary or unparsable files."""
    head = path.read_bytes()[:8192]
    header = ",".join(MANIFEST_COLUMNS)
    if not head.strip():
        raise ManifestError(f"manifest {path} is empty; a manifest is a CSV with the header "
                            f"{header} and one row per input")
    if head.startswith(b"PK\x03\x04") or b"\x00" in head:
        hint = " (it looks like a spreadsheet: save it as CSV)" if head[:2] == b"PK" else ""
        raise ManifestError(f"manifest {path} is not a text CSV file{hint}; a manifest is a "
                            f"CSV with the header {header} and one row per input")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                           encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise ManifestError(f"manifest {path} holds no CSV header; a manifest needs the header "
                            f"{header}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path} is not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start}); save it as a UTF-8 CSV") from exc
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ManifestError(f"manifest {path} is not a readable CSV ({reason}); check its "
                            f"quoting and that every row has {len(MANIFEST_COLUMNS)} "
                            f"comma-separated cells") from exc


def _shown_columns(columns: Sequence[str]) -> str:
    """Column names as found, shortened so binary or long headers stay one readable line."""
    names = [repr(c if len(c) <= 30 else c[:27] + "...") for c in columns[:10]]
    return "[" + ", ".join(names) + (", ..." if len(columns) > 10 else "") + "]"


# ----------------------------------------------------------------------------- channels
def _channel_names(value: object, source: str, path: Path) -> tuple[str, ...]:
    """Channel names from a sequence or a comma string: lower case, stripped, distinct."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Sequence):
        items = [str(v) for v in value]
    else:
        raise ManifestError(f"{path}: channels from {source} must be a list or a comma "
                            f"string of names, not {value!r}; {CHANNELS_FIX}")
    names = tuple(str(item).strip().lower() for item in items)
    if not names or any(not name for name in names):
        raise ManifestError(f"{path}: channels from {source} ({value!r}) has an empty name; "
                            f"{CHANNELS_FIX}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ManifestError(f"{path}: channels from {source} names {', '.join(repeated)} more "
                            f"than once; give each channel one distinct name ({CHANNELS_FIX})")
    return names


def sidecar_path(path: Path) -> Path:
    """The YAML file beside a manifest CSV: inputs/manifest.csv -> inputs/manifest.yaml."""
    return path.with_suffix(".yaml")


def _sidecar_channels(path: Path) -> tuple[tuple[str, ...] | None, str]:
    """(channel names or None, their source) from the manifest's sidecar YAML, if any."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None, ""
    try:  # BaseLoader keeps every scalar as text: a channel named `on` stays "on"
        content = yaml.load(sidecar.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ManifestError(f"{sidecar}: not readable YAML ({reason}); write e.g. "
                            f"`channels: [u, v, strain]`") from exc
    if content is None or content == "":
        return None, ""
    if not isinstance(content, dict):
        raise ManifestError(f"{sidecar}: expected `key: value` lines such as `channels: [u, v, "
                            f"strain]`; valid keys: {', '.join(SIDECAR_KEYS)}")
    unknown = sorted(str(k) for k in content if k not in SIDECAR_KEYS)
    if unknown:
        raise ManifestError(f"{sidecar}: unknown key(s) {', '.join(unknown)}; valid keys: "
                            f"{', '.join(SIDECAR_KEYS)}")
    if "channels" not in content:
        return None, ""
    source = f"{sidecar}"
    return _channel_names(content["channels"], source, path), source


def _declared_channels(path: Path, channels: str | Sequence[str] | None
                       ) -> tuple[tuple[str, ...] | None, str]:
    """(channel names or None, where they come from): the argument and/or the sidecar."""
    given = None if channels is None else _channel_names(channels, "the channels argument",
                                                        path)
    sidecar, source = _sidecar_channels(path)
    if given is not None and sidecar is not None and given != sidecar:
        raise ManifestError(
            f"{path}: the channels argument ({','.join(given)}) and {source} "
            f"({','.join(sidecar)}) disagree; give the channels in one place, or make them "
            f"the same"
        )
    if given is not None:
        return given, "the channels argument"
    return sidecar, source


def _check_channel_count(path: Path, names: tuple[str, ...] | None, source: str,
                         shape: tuple[int, ...]) -> None:
    if names is not None and len(names) != shape[-1]:
        raise ManifestError(
            f"manifest {path}: {len(names)} channel name(s) {','.join(names)} (from {source}) "
            f"but its inputs have {shape[-1]} channel(s) (shape {shape[0]} x {shape[1]} x "
            f"{shape[2]}); name each of the {shape[-1]} channels: {CHANNELS_FIX}"
        )


# ----------------------------------------------------------------------------- labels
def _is_integer(label: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", label) is not None


def _check_label_kinds(path: Path, table: pd.DataFrame) -> None:
    """Refuse a mix of integer and named labels (an integer among names is a stray class)."""
    integer = table["label"].map(_is_integer)
    if integer.all() or not integer.any():
        return
    ints, names = table[integer], table[~integer]
    odd, usual = (ints, names) if len(ints) <= len(names) else (names, ints)
    kind, other = ("integer", "names") if odd is ints else ("named", "integers")
    raise ManifestError(
        f"{path}, {_rows_text(list(odd['row']))}: {kind} label(s) "
        f"{', '.join(repr(v) for v in sorted(set(odd['label']))[:SHOWN_ROWS])} among "
        f"{len(usual)} rows labelled with {other} "
        f"({', '.join(repr(v) for v in sorted(set(usual['label']))[:SHOWN_ROWS])}); use one "
        f"kind of label in every row (class names or integers), then read the manifest again"
    )


def _numbered_variants(a: str, b: str) -> bool:
    """True when `a` and `b` differ only where digits are (class_1 / class_2, au12 / au14)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal" and not any(c.isdigit() for c in a[i1:i2] + b[j1:j2]):
            return False
    return True


def _resembles(rare: str, common: str) -> bool:
    """True when `rare` looks like a misspelling of `common` (case ignored)."""
    a, b = rare.lower(), common.lower()
    if a == b:
        return True
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < TYPO_SIMILARITY or _numbered_variants(a, b):
        return False
    return matcher.ratio() >= TYPO_SIMILARITY


def _check_label_typos(path: Path, table: pd.DataFrame) -> None:
    """Refuse a label that is a rare look-alike of another (postive among positive).

    Labels that differ only in case are refused whatever their counts; otherwise the
    look-alike must have at most TYPO_RARITY of the other's clips.
    """
    counts = table["label"].value_counts()
    for rare, n_rare in counts.sort_values(kind="stable").items():
        for common, n_common in counts.items():
            case_only = rare.lower() == common.lower()
            if rare == common or (case_only and (n_rare, rare) > (n_common, common)):
                continue  # of two spellings differing in case, report the rarer
            if not case_only and (n_rare > n_common * TYPO_RARITY
                                  or not _resembles(rare, common)):
                continue
            rows = list(table.loc[table["label"] == rare, "row"])
            how = "differs only in case from" if case_only else "looks like a typo of"
            raise ManifestError(
                f"{path}, {_rows_text(rows)}: label {rare!r} ({n_rare} row(s)) {how} "
                f"{common!r} ({n_common} row(s)) and would become a class of its own; correct "
                f"those cells to {common!r} (or rename the class if it really is a different "
                f"one)"
            )


def _scheme_labels(path: Path, table: pd.DataFrame, name: str
                   ) -> tuple[pd.Series, tuple[str, ...]]:
    """Labels checked against label scheme `name`: its classes, in its order.

    A built-in scheme's classes are matched ignoring case; the `emotion` scheme has no fixed
    class list, so the labels are taken as they are (checked like labels without a scheme).
    """
    from microexpr.data.labels import EMOTION_SCHEME, get_scheme

    if name == EMOTION_SCHEME:
        return _plain_labels(path, table)
    scheme = get_scheme(name)
    by_key = {c.lower(): c for c in scheme.classes}
    labels = table["label"].map(lambda v: by_key.get(v.lower()))
    unknown = table[labels.isna()]
    if len(unknown):
        first = unknown.iloc[0]
        n = len(unknown)
        others = sorted(set(unknown["label"]) - {first["label"]})
        also = f" (also {', '.join(repr(v) for v in others[:SHOWN_ROWS])})" if others else ""
        raise _row_error(
            path, int(first["row"]),
            f"label {first['label']!r} is not a class of label scheme {name} "
            f"({', '.join(scheme.classes)}); {n} row(s) have labels outside it{also}. Write "
            f"the scheme's class names in the label column, or choose another label scheme "
            f"(or none)"
        )
    return labels.astype(str), tuple(scheme.classes)


def _plain_labels(path: Path, table: pd.DataFrame) -> tuple[pd.Series, tuple[str, ...]]:
    """Labels as strings and the class order: numeric when every label is an integer."""
    _check_label_kinds(path, table)
    values = table["label"]
    if values.map(_is_integer).all():
        numbers = values.astype(int)
        return numbers.astype(str), tuple(str(v) for v in sorted(set(numbers)))
    _check_label_typos(path, table)
    return values, tuple(sorted(set(values)))


def class_warnings(clips: pd.DataFrame, classes: Sequence[str]) -> list[str]:
    """One message per class with fewer than FEW_CLIPS clips or clips from one subject only."""
    messages = []
    for name in classes:
        members = clips[clips["label"] == name]
        subjects = sorted(members["subject"].unique())
        if len(members) == 0:
            messages.append(f"class {name!r} has no clips; it cannot be learned or tested")
        elif len(members) < FEW_CLIPS:
            messages.append(f"class {name!r} has only {len(members)} clip(s) (from "
                            f"{', '.join(subjects)}); its scores will rest on very few clips")
        elif len(subjects) < FEW_SUBJECTS:
            messages.append(f"class {name!r} has {len(members)} clips, all from subject "
                            f"{subjects[0]}; leave-one-subject-out never trains on it when "
                            f"testing that subject")
    return messages


# ----------------------------------------------------------------------------- inputs
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


def _read_inputs(path: Path, table: pd.DataFrame) -> np.ndarray:
    """Every input listed, stacked; errors name the row and file (NaN / inf included)."""
    arrays: list[np.ndarray] = []
    not_finite: list[tuple[int, Path]] = []
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
        if not np.isfinite(array).all():
            not_finite.append((int(rec.row), file))
        arrays.append(array)
    if not_finite:
        row, file = not_finite[0]
        rows = [r for r, _ in not_finite]
        raise _row_error(
            path, row,
            f"input {file} contains NaN or infinite values ({len(rows)} of {len(table)} rows "
            f"affected: {_rows_text(rows)}); recompute those inputs or remove their rows"
        )
    return np.stack(arrays)


# ----------------------------------------------------------------------------- the manifest
def _check_duplicates(path: Path, table: pd.DataFrame) -> None:
    """Refuse a (dataset, subject, clip) listed twice; clip names may repeat across subjects."""
    key = ["dataset", "subject", "clip"]
    duplicated = table[table.duplicated(key, keep="first")]
    if len(duplicated):
        second = duplicated.iloc[0]
        same = (table[key] == second[key]).all(axis=1)
        first_row = int(table.loc[same, "row"].iloc[0])
        raise _row_error(
            path, int(second["row"]),
            f"clip {second['clip']!r} of subject {second['subject']!r} (dataset "
            f"{second['dataset']!r}) is listed twice, in rows {first_row} and {second['row']}; "
            f"remove one of the two rows"
        )


def read_manifest(
    path: str | Path,
    *,
    channels: str | Sequence[str] | None = None,
    labels: str | None = None,
) -> Manifest:
    """Read a manifest CSV and every input it lists; errors name the row and the fix.

    Paths are relative to the CSV's folder. Subjects are namespaced by dataset
    (`casme2` + `sub01` -> `casme2/sub01`) so ids from different databases never collide;
    a clip is identified by (dataset, subject, clip), so clip names may repeat across
    subjects, as they do in CASME II, SAMM and SMIC.

    `channels` names the inputs' channels in file order (a sequence, or a comma string such as
    "u,v,strain"); they may instead be declared beside the CSV in `<csv stem>.yaml` with a line
    `channels: [u, v, strain]` (or `channels: u,v,strain`). Both together must agree. Names are
    lower-cased and must be distinct and as many as the inputs' channels; `Manifest.channels`
    is None when nothing declares them.

    Labels: without `labels`, each distinct label is a class (integer labels sort
    numerically); a mix of integer and named labels, and a rare look-alike of another label
    (`postive` among many `positive`, or a difference in case only), are refused as likely
    mistakes. `labels=SCHEME` (a name from `label_schemes()`) checks every label against that
    scheme's classes (case ignored) and takes its class order; the `emotion` scheme takes the
    labels as they are. Classes with fewer than 3 clips, or clips from one subject only, are
    listed in `Manifest.warnings`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    declared, source = _declared_channels(path, channels)
    table = _read_table(path)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {missing}; a manifest needs the header "
            f"{','.join(MANIFEST_COLUMNS)} (found {_shown_columns(list(table.columns))})"
        )
    if table.empty:
        raise ManifestError(f"{path}: the manifest lists no inputs (it has a header but no "
                            f"rows); add one row per input below the header")
    table = table[list(MANIFEST_COLUMNS)].apply(lambda s: s.str.strip())
    table["row"] = np.arange(len(table)) + 2  # line number in the file (header is line 1)
    for column in MANIFEST_COLUMNS:
        empty = table[table[column] == ""]
        if len(empty):
            raise _row_error(path, int(empty["row"].iloc[0]), f"empty {column!r}")
    table["subject"] = [s if "/" in s else f"{d}/{s}"
                        for d, s in zip(table["dataset"], table["subject"], strict=True)]
    _check_duplicates(path, table)
    if labels is None:
        values, classes = _plain_labels(path, table)
    else:
        values, classes = _scheme_labels(path, table, labels)
    inputs = _read_inputs(path, table)
    _check_channel_count(path, declared, source, inputs.shape[1:])
    clips = table.assign(label=values.to_numpy()).reset_index(drop=True)
    return Manifest(path=path, clips=clips, inputs=inputs, classes=classes, channels=declared,
                    warnings=class_warnings(clips, classes), scheme=labels or "")
