"""The clips table (one row per labelled clip), per-clip problems and the Dataset holding both."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

# Columns every clips table has, in this order. `frames` holds the frame files of the clip in
# temporal order and `frame_numbers` their numbers as annotated (not always contiguous).
CLIP_COLUMNS: tuple[str, ...] = (
    "dataset",  # namespace of the subject and clip, e.g. "casme2"
    "format",  # adapter that read it (decides how its emotion vocabulary maps to classes)
    "subject",  # namespaced subject id, e.g. "casme2/sub01"
    "clip",  # clip id, unique within the dataset, e.g. "sub01/EP02_01f"
    "frames",  # tuple[str, ...] of frame paths, onset..offset order
    "frame_numbers",  # tuple[int, ...] of the frame numbers of `frames`
    "fps",  # frames per second of the recording
    "onset",  # frame number of the onset
    "apex",  # frame number of the apex
    "offset",  # frame number of the offset
    "apex_estimated",  # True when the apex was not annotated and was estimated
    "emotion",  # emotion as annotated, lower case
    "action_units",  # action units as annotated (string, "" when none)
)

PROBLEM_COLUMNS: tuple[str, ...] = (
    "dataset",
    "clip",
    "severity",  # "error": unusable, excluded; "warning": kept; "info": left out on purpose
    "file",
    "row",  # spreadsheet row number (1-based, as shown by a spreadsheet program) or None
    "message",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one clip (or with the whole database when `clip` is empty)."""

    dataset: str
    clip: str
    severity: str
    message: str
    file: str = ""
    row: int | None = None

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        prefix = f"{self.dataset}/{self.clip}" if self.clip else self.dataset
        return f"[{self.severity}] {prefix}: {self.message}" + (f" ({where})" if where else "")


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """Problems as a DataFrame with PROBLEM_COLUMNS."""
    rows = [
        {
            "dataset": p.dataset,
            "clip": p.clip,
            "severity": p.severity,
            "file": p.file,
            "row": p.row,
            "message": p.message,
        }
        for p in problems
    ]
    frame = pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))
    frame["row"] = frame["row"].astype("Int64")
    return frame


def clips_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Build a clips table from row dicts, checking every column is present."""
    frame = pd.DataFrame(list(rows), columns=list(CLIP_COLUMNS))
    if len(rows):
        missing = [c for c in CLIP_COLUMNS if c not in rows[0]]
        if missing:
            raise ValueError(f"clip rows lack columns {missing}")
    for col in ("fps",):
        frame[col] = frame[col].astype(float)
    for col in ("onset", "apex", "offset"):
        frame[col] = frame[col].astype("int64")
    frame["apex_estimated"] = frame["apex_estimated"].astype(bool)
    return frame.reset_index(drop=True)


@dataclass
class Dataset:
    """A loaded database: its usable clips, the problems found, and where it came from.

    `clips` holds only usable clips; every clip left out is in `problems` with severity
    "error", so nothing is dropped silently. After `with_labels`, `clips` has a `label` column
    and `classes` lists the class names in order.
    """

    name: str
    clips: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=lambda: problems_frame([]))
    root: str = ""
    annotation_file: str = ""
    classes: tuple[str, ...] = ()
    scheme: str = ""

    @property
    def n_excluded(self) -> int:
        """Number of clips left out (each has an error in `problems`)."""
        errors = self.problems[self.problems["severity"] == "error"]
        return int(errors[errors["clip"] != ""]["clip"].nunique())

    @property
    def subjects(self) -> list[str]:
        return sorted(self.clips["subject"].unique())

    def class_counts(self) -> pd.DataFrame:
        """Clips per class (rows) and dataset (columns), with totals."""
        column = "label" if "label" in self.clips.columns else "emotion"
        table = pd.crosstab(self.clips[column], self.clips["dataset"], margins=True,
                            margins_name="total")
        if self.classes:
            order = [c for c in self.classes if c in table.index] + ["total"]
            table = table.reindex(order)
        return table

    def with_labels(self, scheme: str) -> Dataset:
        """A copy with a `label` column from the named label scheme (see `label_schemes`)."""
        from microexpr.data.labels import apply_scheme

        return apply_scheme(self, scheme)

    def summary(self) -> str:
        """A few lines: clips, subjects, excluded clips and problems."""
        n_err = int((self.problems["severity"] == "error").sum())
        n_warn = int((self.problems["severity"] == "warning").sum())
        return (
            f"{self.name}: {len(self.clips)} clips from {self.clips['subject'].nunique()} "
            f"subjects; {self.n_excluded} clips excluded; {n_err} errors, {n_warn} warnings"
        )

    def __repr__(self) -> str:
        return f"<Dataset {self.summary()}>"


def concat_datasets(datasets: Sequence[Dataset], name: str = "") -> Dataset:
    """Join several datasets into one (subjects stay namespaced, so they never collide)."""
    if not datasets:
        raise ValueError("concat_datasets needs at least one dataset")
    classes = datasets[0].classes
    scheme = datasets[0].scheme
    for d in datasets[1:]:
        if d.classes != classes or d.scheme != scheme:
            raise ValueError(
                f"cannot join {d.name} (scheme {d.scheme!r}) with {datasets[0].name} "
                f"(scheme {scheme!r}): label all datasets with the same scheme first"
            )
    clips = pd.concat([d.clips for d in datasets], ignore_index=True)
    dup = clips[clips.duplicated(["dataset", "clip"], keep=False)]
    if len(dup):
        raise ValueError(f"duplicate clips across datasets: {dup[['dataset', 'clip']].head()}")
    return Dataset(
        name=name or "+".join(d.name for d in datasets),
        clips=clips,
        problems=pd.concat([d.problems for d in datasets], ignore_index=True),
        root=";".join(d.root for d in datasets),
        annotation_file=";".join(d.annotation_file for d in datasets),
        classes=classes,
        scheme=scheme,
    )

