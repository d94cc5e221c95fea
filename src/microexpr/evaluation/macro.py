"""Macro-expression data for a guided run (`evaluate(..., macro=...)`, mimanet).

A source is `NAME=PATH` (an adapter name: `ck+=/data/CK+`, `mmi=/data/MMI`) or a bare PATH,
whose format is recognised from its layout (a `cohn-kanade-images` folder: CK+, a
`Sessions` folder: MMI, else a `class/clip/frames` folder). Macro clips are labelled with
the micro run's label scheme: what it does not map is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from microexpr.data.adapters import get_adapter, load_dataset
from microexpr.data.frames import find_folders
from microexpr.data.problems import INFO, problems_frame
from microexpr.errors import ConfigError


@dataclass(frozen=True)
class MacroSource:
    """One macro-expression database: the adapter that reads it and its folder."""

    adapter: str
    root: Path

    def to_dict(self) -> dict[str, str]:
        return {"format": self.adapter, "root": str(self.root)}


def detect_macro_format(root: Path) -> str:
    """The adapter for a macro folder given without a name, from its layout."""
    def has(name: str) -> bool:
        return root.name.lower() == name or bool(
            find_folders(root, lambda f: f.name.lower() == name, max_depth=3))

    if has("cohn-kanade-images"):
        return "ckplus"
    if has("sessions"):
        return "mmi"
    return "clip_folder"


def parse_macro(macro: str | Path | Sequence[str | Path] | None) -> list[MacroSource]:
    """The sources of `macro` (one or a list of `NAME=PATH` / `PATH`), each checked: a known
    adapter, an existing folder. ConfigError naming the bad one and the fix."""
    if macro is None:
        return []
    items = [macro] if isinstance(macro, str | Path) else list(macro)
    sources = []
    for item in items:
        text = str(item)
        name, sep, path = text.partition("=")
        if not sep or isinstance(item, Path) or "/" in name or "\\" in name:
            name, path = "", text
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"macro data {text!r}: {root} is not a folder; give NAME=PATH "
                              f"(e.g. ck+=/data/CK+) or the folder of a macro-expression "
                              f"database (synthetic: microexpr synth DIR --macro)")
        adapter = get_adapter(name).name if name else detect_macro_format(root)
        sources.append(MacroSource(adapter, root.resolve()))
    if not sources:
        raise ConfigError("macro= is an empty list: give at least one NAME=PATH or PATH")
    return sources


@dataclass
class MacroClips:
    """Labelled macro clips of every source, their problems and a summary for the config."""

    clips: pd.DataFrame
    problems: pd.DataFrame
    info: dict[str, Any]


def load_macro(sources: Sequence[MacroSource], scheme: str | None,
               classes: tuple[str, ...]) -> MacroClips:
    """Read and label every source with the micro run's `scheme`; ConfigError when that
    leaves fewer than 2 of `classes`."""
    if not scheme or scheme == "emotion":
        raise ConfigError("macro data is labelled with the micro run's label scheme (e.g. "
                          "composite3): evaluate a database with labels=SCHEME")
    tables, problems, summary = [], [], []
    for source in sources:
        dataset = load_dataset(source.adapter, source.root, labels=scheme)
        clips = dataset.clips[dataset.clips["label"].isin(classes)]
        dropped = dataset.problems[(dataset.problems["severity"] == INFO)
                                   & (dataset.problems["clip"] != "")]
        tables.append(clips)
        problems.append(dataset.problems)
        summary.append({**source.to_dict(), "n_clips": int(len(clips)),
                        "class_counts": {str(k): int(v) for k, v in
                                         clips["label"].value_counts().sort_index().items()},
                        "left_out": int(len(dropped))})
    clips = pd.concat(tables, ignore_index=True)
    present = sorted(set(clips["label"]))
    if len(present) < 2:
        raise ConfigError(f"the macro data has clips of {present or 'no'} class(es) of "
                          f"{classes} under labels {scheme!r} (sources: "
                          f"{', '.join(str(s.root) for s in sources)}); it needs at least 2")
    frames = [p for p in problems if len(p)]
    return MacroClips(clips, pd.concat(frames, ignore_index=True) if frames
                      else problems_frame([]), {"sources": summary, "labels": scheme,
                                                "n_clips": int(len(clips))})
