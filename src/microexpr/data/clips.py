"""The clips table (one row per labelled clip) and the Dataset holding it with its problems
(`microexpr.data.problems`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from microexpr.data.labels import label_clips
from microexpr.data.problems import ERROR, INFO, WARNING, problems_frame
from microexpr.errors import DatasetError

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

# Where each clip is listed, so problems found later (e.g. by a label scheme) can point at it.
# Filled by the adapters; tables built by hand may leave them out (then "" and <NA>).
SOURCE_COLUMNS: tuple[str, ...] = (
    "source_file",  # annotation file (or clip folder) listing the clip
    "source_row",  # its spreadsheet row number, <NA> when it has none
)


def clips_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Build a clips table from row dicts, checking every CLIP_COLUMNS entry is present
    (SOURCE_COLUMNS are optional)."""
    frame = pd.DataFrame(list(rows), columns=[*CLIP_COLUMNS, *SOURCE_COLUMNS])
    if len(rows):
        missing = [c for c in CLIP_COLUMNS if c not in rows[0]]
        if missing:
            raise ValueError(f"clip rows lack columns {missing}")
    frame["source_file"] = frame["source_file"].fillna("").astype(str)
    frame["source_row"] = frame["source_row"].astype("Int64")
    for col in ("fps",):
        frame[col] = frame[col].astype(float)
    for col in ("onset", "apex", "offset"):
        frame[col] = frame[col].astype("int64")
    frame["apex_estimated"] = frame["apex_estimated"].astype(bool)
    return frame.reset_index(drop=True)


@dataclass
class Dataset:
    """A loaded database: its usable clips, the problems found, and where it came from.

    `clips` holds only usable clips; every clip left out is in `problems`, with severity
    "error" when it cannot be used and "info" when it is left out on purpose (e.g. its
    emotion is blank or not in the label scheme), so nothing is dropped silently. After
    `with_labels`, `clips` has a `label` column and `classes` lists the class names in order.
    """

    name: str
    clips: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=lambda: problems_frame([]))
    root: str = ""
    annotation_file: str = ""
    classes: tuple[str, ...] = ()
    scheme: str = ""

    def _excluded(self, severity: str) -> pd.DataFrame:
        """One row per clip left out with a problem of `severity` (dataset, clip, row)."""
        table = self.problems[(self.problems["severity"] == severity)
                              & (self.problems["clip"] != "")]
        return table[["dataset", "clip", "row"]].drop_duplicates()

    @property
    def n_unusable(self) -> int:
        """Clips left out because they cannot be used (an error in `problems`)."""
        return len(self._excluded(ERROR))

    @property
    def n_left_out(self) -> int:
        """Clips left out on purpose (an info problem: blank or unknown emotion, not in the
        label scheme, excluded by protocol)."""
        return len(self._excluded(INFO))

    @property
    def n_excluded(self) -> int:
        """Number of clips left out, for any reason (each has an error or info problem).

        A clip is counted once per annotation row: a duplicate row of a kept clip id counts.
        """
        return self.n_unusable + self.n_left_out

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
        labelled = label_clips(self.clips, scheme, self.annotation_file)
        problems = pd.concat([self.problems, labelled.problems], ignore_index=True)
        return replace(self, clips=labelled.clips, classes=labelled.classes, scheme=scheme,
                       problems=problems)

    def summary(self) -> str:
        """A few lines: clips, subjects, excluded clips and problems."""
        n_err = int((self.problems["severity"] == ERROR).sum())
        n_warn = int((self.problems["severity"] == WARNING).sum())
        unusable, left_out = self.n_unusable, self.n_left_out
        parts = ([f"{unusable} unusable"] if unusable else []) + (
            [f"{left_out} left out: blank or unknown emotion / not in the label scheme"]
            if left_out else [])
        why = f" ({', '.join(parts)})" if parts else ""
        return (
            f"{self.name}: {len(self.clips)} clips from {self.clips['subject'].nunique()} "
            f"subjects; {unusable + left_out} clips excluded{why}; {n_err} errors, "
            f"{n_warn} warnings"
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
    key = ["dataset", "subject", "clip"]  # clip names repeat across subjects in real releases
    dup = clips[clips.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        owners = [d.name for d in datasets
                  if ((d.clips[key] == first[key]).all(axis=1)).any()]
        where = (f"more than one of the joined datasets ({', '.join(owners)})"
                 if len(owners) > 1 else f"{owners[0]} more than once")
        raise DatasetError(
            f"clip {first['clip']!r} of subject {first['subject']!r} (dataset "
            f"{first['dataset']!r}) is in {where}; {len(dup)} rows share a (dataset, subject, "
            f"clip). Load each database once, or give each its own namespace "
            f"(load_dataset(..., namespace=...))"
        )
    return Dataset(
        name=name or "+".join(d.name for d in datasets),
        clips=clips,
        problems=pd.concat([d.problems for d in datasets], ignore_index=True),
        root=";".join(d.root for d in datasets),
        annotation_file=";".join(d.annotation_file for d in datasets),
        classes=classes,
        scheme=scheme,
    )

