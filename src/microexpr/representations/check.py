"""Checking a database's frames before a long run: decode every file a representation will
read, so a truncated or unreadable frame is found up front and named, not met mid-run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from microexpr.data.images import read_image
from microexpr.errors import ConfigError, MicroexprError
from microexpr.parallel import make_executor
from microexpr.progress import track
from microexpr.representations.base import get_representation, make_config

FRAME_PROBLEM_COLUMNS = ("dataset", "subject", "clip", "file", "message")


def _check_clip(shared: tuple[str, Any], clip: Mapping[str, Any]) -> tuple[int, list[dict]]:
    """(files decoded, problems) for one clip."""
    name, config = shared
    where = {"dataset": clip["dataset"], "subject": clip["subject"], "clip": clip["clip"]}
    try:
        files = list(dict.fromkeys(get_representation(name).files(clip, config)))
    except MicroexprError as exc:  # e.g. the annotated apex frame is not on disk
        return 0, [{**where, "file": "", "message": str(exc)}]
    problems = []
    for path in files:
        try:
            read_image(path, what="frame")
        except MicroexprError as exc:
            problems.append({**where, "file": str(path), "message": str(exc)})
    return len(files), problems


def check_frames(clips: pd.DataFrame, name: str = "onset_apex_flow", config: Any = None, *,
                 jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Decode every frame file representation `name` (with `config`) reads for each clip.

    Returns the problems, one row per bad file (or per clip whose files cannot be listed):
    columns dataset, subject, clip, file, message; empty when every file decodes. The
    table's `attrs["files"]` holds how many files were decoded, `attrs["clips"]` the clips.
    """
    config = make_config(name, config)
    records = clips.to_dict("records")
    if not records:
        raise ConfigError("no clips to check the frames of")
    results: list[tuple[int, list[dict]]] = [(0, [])] * len(records)
    stream = make_executor(jobs).map(_check_clip, records, shared=(name, config))
    for index, result in track(stream, len(records), f"checking {name} frames", progress):
        results[index] = result
    # in the clips' order, whatever order the workers finished in
    rows = [problem for _, problems in results for problem in problems]
    table = pd.DataFrame(rows, columns=list(FRAME_PROBLEM_COLUMNS))
    table.attrs["files"] = sum(count for count, _ in results)
    table.attrs["clips"] = len(records)
    return table
