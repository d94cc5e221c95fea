"""Frame discovery: frame numbers from file names, and finding folders in database trees."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

_DIGITS = re.compile(r"\d+")
_PREFIX_NUMBER = re.compile(r"^(\D*)(\d+)$")


def frame_number(path: str | Path) -> int | None:
    """The number in the last digit group of the file stem (`reg_img46.jpg` -> 46), or None."""
    groups = _DIGITS.findall(Path(path).stem)
    return int(groups[-1]) if groups else None


def is_image(path: str | Path) -> bool:
    """True when the file name ends with one of IMAGE_SUFFIXES (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_frames(folder: str | Path) -> list[tuple[int, Path]]:
    """(number, path) of the numbered image files in `folder`, in numeric order.

    Non-image files and images without digits in their name are ignored; a folder that does
    not exist gives an empty list (callers report the missing folder themselves).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found: list[tuple[int, str, Path]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_image(entry.name) or not entry.is_file():
                continue
            number = frame_number(entry.name)
            if number is not None:
                found.append((number, entry.name, Path(entry.path)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(number, path) for number, _, path in found]


def subfolders(folder: str | Path) -> list[Path]:
    """The sub-folders of `folder` sorted by name (empty when it is not a folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    return [folder / name for name in names]


def _name_key(name: str) -> tuple[str, int] | None:
    """('sub', 1) for 'sub01' or 'SUB1'; None for names that are not prefix + digits."""
    match = _PREFIX_NUMBER.match(name.strip())
    if match is None:
        return None
    return match.group(1).lower(), int(match.group(2))


def find_child(parent: str | Path, name: str) -> Path | None:
    """The sub-folder of `parent` called `name`, matched exactly, then ignoring case, then by
    number (`sub1` finds `sub01`, `6` finds `006`); None when there is no such folder.

    Annotation files and folder names disagree on case and zero padding in real releases.
    """
    parent = Path(parent)
    exact = parent / name
    if name and exact.is_dir():
        return exact
    children = subfolders(parent)
    lowered = name.strip().lower()
    for child in children:
        if child.name.lower() == lowered:
            return child
    key = _name_key(name)
    if key is None:
        return None
    for child in children:
        if _name_key(child.name) == key:
            return child
    return None


def walk_folders(root: str | Path, max_depth: int) -> Iterator[tuple[int, Path]]:
    """(depth, folder) for `root` (depth 0) and its sub-folders down to `max_depth`, by depth."""
    level = [Path(root)]
    for depth in range(max_depth + 1):
        following: list[Path] = []
        for folder in level:
            yield depth, folder
            if depth < max_depth:
                following.extend(subfolders(folder))
        level = following


def find_folders(
    root: str | Path, accept: Callable[[Path], bool], max_depth: int = 3
) -> list[Path]:
    """Folders at most `max_depth` below `root` (root included) that `accept` says yes to.

    The search does not go inside an accepted folder; results are ordered shallowest first.
    """
    found: list[Path] = []
    for _, folder in walk_folders(root, max_depth):
        if any(folder.is_relative_to(f) for f in found):
            continue
        if accept(folder):
            found.append(folder)
    return found


def has_subfolders_like(folder: Path, pattern: str) -> bool:
    """True when `folder` has a sub-folder whose whole name matches the regex (ignoring case)."""
    regex = re.compile(pattern, re.IGNORECASE)
    return any(regex.fullmatch(child.name) for child in subfolders(folder))
