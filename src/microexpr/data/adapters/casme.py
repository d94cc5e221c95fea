"""CASME (I) (Chinese Academy of Sciences, 2013): 19 subjects at 60 fps.

Frames: per-clip folders `sub<NN>/<Filename>/` (usually below a folder such as
CASME_raw_selected or CASME_cropped). Annotation: `CASME-coding.xlsx` (or any sheet with the
columns Subject, Filename, OnsetF, ApexF1, OffsetF, Emotion; ApexF2 optional). ApexF1 is used
as the apex.
"""

from __future__ import annotations

from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.adapters.casme2 import (
    annotation_search,
    choose_frames_root,
    clip_folders,
    resolver,
)
from microexpr.data.annotations import read_annotation
from microexpr.data.clip_rows import ClipCollector, add_annotated_clips
from microexpr.data.clips import Dataset

NAME = "casme"
TITLE = "CASME"
FPS = 60.0
KNOWN_NAMES = ("CASME-coding.xlsx", "CASME_coding.xlsx")
REQUIRED = (
    "Subject",
    "Filename",
    "OnsetF",
    "ApexF1",
    "OffsetF",
    ("Emotion", "Estimated Emotion"),
)
OPTIONAL = ("ApexF2", ("Action Units", "AU", "AUs"))


@register_adapter(
    NAME, TITLE, FPS, "CASME (I): sub<NN>/<clip>/ frame folders + CASME coding xlsx"
)
def load(root: Path, *, namespace: str, variant: str | None = None) -> Dataset:
    """Read CASME (I) at `root`; `variant` 'cropped' or 'raw' picks the frames folder."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = choose_frames_root(root, variant, TITLE, collector)
    annotation = annotation_search(root, frames_root, KNOWN_NAMES, REQUIRED, TITLE)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    add_annotated_clips(
        collector, table, resolver(frames_root),
        subject="Subject", name="Filename", bounds=("OnsetF", "ApexF1", "OffsetF"),
        emotion="Emotion", action_units="Action Units",
    )
    collector.report_unmentioned(clip_folders(frames_root))
    return collector.dataset(root, annotation)
