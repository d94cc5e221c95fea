"""MMI Facial Expression Database (Pantic et al. 2005): posed macro-expressions recorded as
sessions that go neutral -> peak -> neutral, about 25 fps.

Layout read: `Sessions/<session id>/` (the root holds `Sessions`, at most 3 levels down, or is
that folder), one folder per recorded session, as the MMI web release delivers them. A session
folder holds its clip as numbered image files (`frame0001.png ...`) and its metadata as XML
files (`session.xml`, `<name>.xml`).

Frames, not videos: microexpr's clips are numbered frame images (the representations decode
frame files; nothing in the toolkit decodes video), while MMI ships a session as a video
(`S001-001.avi`). A session holding a video and no frames is an error that gives the command
extracting them, e.g. `ffmpeg -i Sessions/1/S001-001.avi Sessions/1/frame%04d.png`.

Emotion: MMI describes each session in its XML metadata. The exact field could not be
established from a release at hand, so every form an `Emotion` field takes in XML is accepted,
in any XML file of the session folder: an attribute (`<session Emotion="3">`), an element
(`<Emotion>3</Emotion>`) or a name/value pair (`<Metatag Name="Emotion" Value="3"/>`). Numbers
1-6 are the six basic emotions in alphabetical order (1 anger, 2 disgust, 3 fear, 4 happiness,
5 sadness, 6 surprise), the numbering MMI's emotion labels use; a name (`happiness`) is taken
as written, lower-cased. A `labels.csv` at the root (or beside `Sessions`) with the columns
`session,emotion[,subject,onset,apex,offset]` takes precedence over the XML for the sessions it
lists: write one when a release's metadata differ. Many MMI sessions are coded with action
units only: a session without an emotion is unlabelled, reported as an info problem naming it
and not a clip.

Subject: `labels.csv`'s subject, else a `Subject` / `SubjectId` field of the XML (the forms
above, or `<subject id="3"/>`); a session with neither is its own subject (one warning counts
them). Timing: onset / apex / offset frame numbers from `labels.csv` when given; otherwise
onset = first frame, offset = last frame and the apex is estimated as the middle frame
(`apex_estimated` True, one warning), as the metadata carry no apex.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.adapters.clip_folder import clip_frames
from microexpr.data.annotations import column_key, read_annotation, records
from microexpr.data.cells import cell_text, is_missing
from microexpr.data.clip_rows import ClipCollector
from microexpr.data.clips import Dataset
from microexpr.data.frames import find_folders, list_frames, subfolders
from microexpr.data.problems import ERROR, INFO, WARNING
from microexpr.errors import ConfigError, DatasetError

NAME = "mmi"
TITLE = "MMI"
FPS = 25.0
SESSIONS_FOLDER = "sessions"
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = (("session", "session id", "sessionid"), "emotion")
OPTIONAL_COLUMNS = ("subject", "onset", "apex", "offset")
# MMI's six basic emotions, numbered 1..6.
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".wmv", ".mov", ".mpg", ".mpeg", ".mkv"})
EMOTION_KEYS = frozenset({"emotion"})
SUBJECT_KEYS = frozenset({"subject", "subjectid", "subjectnumber"})
_CODES = ", ".join(f"{code} {name}" for code, name in enumerate(EMOTIONS, start=1))


def sessions_root_of(root: Path, collector: ClipCollector) -> Path:
    """The Sessions folder: `root` itself or the shallowest one below it."""
    if root.name.lower() == SESSIONS_FOLDER:
        return root
    found = find_folders(root, lambda f: f.name.lower() == SESSIONS_FOLDER, max_depth=3)
    if not found:
        raise DatasetError(
            f"no MMI Sessions folder found in {root}: expected Sessions/<session id>/ folders "
            f"holding each session's frames and XML metadata, at most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several MMI Sessions folders found; using {found[0]}, not "
                                   f"{rest}")
    return found[0]


def emotion_name(value: str) -> str:
    """An emotion from an MMI code 1..6 or a name; ValueError for other numbers or blanks."""
    text = value.strip()
    if is_missing(text):
        raise ValueError(f"the emotion is empty ({value!r})")
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    if number.is_integer() and 1 <= number <= len(EMOTIONS):
        return EMOTIONS[int(number) - 1]
    raise ValueError(f"emotion {text!r} is neither an MMI emotion code ({_CODES}) nor a name")


def _local(name: str) -> str:
    """An XML name without its namespace (`{ns}Emotion` -> `Emotion`), reduced for matching."""
    return column_key(name.rpartition("}")[2])


def xml_fields(path: Path, keys: frozenset[str]) -> list[str]:
    """Values of the fields named `keys` (reduced names) anywhere in an XML file: attributes,
    elements with text or an `id`, and Name/Value pairs. ValueError when it is not XML."""
    try:
        tree = ElementTree.parse(path)
    except (ElementTree.ParseError, OSError) as exc:
        raise ValueError(f"cannot read XML file {path}: {exc}") from None
    values = []
    for element in tree.getroot().iter():
        attributes = {_local(k): v for k, v in element.attrib.items()}
        values += [v for k, v in attributes.items() if k in keys]
        if _local(str(element.tag)) in keys:
            text = (element.text or "").strip()
            values += [text] if text else ([attributes["id"]] if "id" in attributes else [])
        name = attributes.get("name")
        if name is not None and column_key(name) in keys and "value" in attributes:
            values.append(attributes["value"])
    return [v.strip() for v in values if v.strip()]


def _xml_files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(folder / e.name for e in entries if e.is_file()
                      and e.name.lower().endswith(".xml") and not e.name.startswith("."))


def _one_value(folder: Path, keys: frozenset[str], what: str) -> tuple[str | None, str]:
    """The single value of a field in a session's XML files and the file it is in, or None;
    ValueError when the files disagree or cannot be read."""
    found: dict[str, str] = {}
    for path in _xml_files(folder):
        for value in xml_fields(path, keys):
            found.setdefault(value, path.name)
    if len(found) > 1:
        listing = ", ".join(f"{v!r} ({name})" for v, name in found.items())
        raise ValueError(f"the XML files of session {folder} give several {what}s: {listing}; "
                         f"give the session's {what} in {LABELS_FILE} instead")
    if not found:
        return None, ""
    value, name = next(iter(found.items()))
    return value, str(folder / name)


def _find_labels(root: Path, sessions_root: Path) -> Path | None:
    for folder in dict.fromkeys([root, sessions_root.parent, sessions_root]):
        if (folder / LABELS_FILE).is_file():
            return folder / LABELS_FILE
    return None


def read_labels(path: Path, collector: ClipCollector) -> dict[str, dict]:
    """`labels.csv`: session (lower case) -> its row (with `_row`); later duplicates are
    errors."""
    table = read_annotation(path, LABEL_COLUMNS, f"{TITLE} {LABELS_FILE}",
                            optional_columns=OPTIONAL_COLUMNS)
    rows: dict[str, dict] = {}
    for record in records(table):
        session = cell_text(record.get("session"))
        if not session:
            if any(cell_text(v) for k, v in record.items() if k != "_row"):
                collector.problem(WARNING, "row has no session; ignored", row=record["_row"],
                                  file=str(path))
            continue
        if session.lower() in rows:
            first = rows[session.lower()]["_row"]
            collector.problem(ERROR, f"session {session!r} is listed again (first in row "
                                     f"{first}); this row is ignored", clip=session,
                              row=record["_row"], file=str(path))
            continue
        rows[session.lower()] = record
    return rows


def _video_only(collector: ClipCollector, folder: Path) -> bool:
    """True (after an error with the ffmpeg command) for a session with a video and no frames."""
    with os.scandir(folder) as entries:
        videos = sorted(e.name for e in entries
                        if e.is_file() and Path(e.name).suffix.lower() in VIDEO_SUFFIXES)
    if not videos or list_frames(folder):
        return False
    video = folder / videos[0]
    collector.problem(ERROR, f"session {folder} holds the video {videos[0]} but no frame "
                             f"images; microexpr reads clips as numbered frames: extract them "
                             f"with `ffmpeg -i \"{video}\" \"{folder}/frame%04d.png\"` and load "
                             f"again", clip=folder.name, file=str(video))
    return True


def _emotion(collector: ClipCollector, folder: Path, row: dict | None, labels: Path | None
             ) -> tuple[str | None, str, int | None]:
    """(emotion or None when unlabelled or unreadable, the file it came from, its row)."""
    clip = folder.name
    if row is not None and not is_missing(row.get("emotion")):
        where, line = str(labels), row["_row"]
        value = cell_text(row.get("emotion"))
    else:
        line = None
        try:
            found, where = _one_value(folder, EMOTION_KEYS, "emotion")
        except ValueError as exc:
            collector.problem(ERROR, str(exc), clip=clip, file=str(folder))
            return None, "", None
        if found is None:
            listed = f" nor in {labels}" if labels is not None else ""
            collector.problem(INFO, f"unlabelled: session {folder} has no emotion in its XML "
                                    f"metadata{listed} (MMI codes many sessions with action "
                                    f"units only); left out", clip=clip, file=str(folder))
            return None, "", None
        value = found
    try:
        return emotion_name(value), where, line
    except ValueError as exc:
        collector.problem(ERROR, f"{exc}; fix it in {where}", clip=clip, file=where, row=line)
        return None, "", None


def _subject(collector: ClipCollector, folder: Path, row: dict | None) -> str | None:
    """The session's subject from labels.csv or its XML, None when neither names one."""
    if row is not None and cell_text(row.get("subject")):
        return cell_text(row.get("subject"))
    try:
        value, _ = _one_value(folder, SUBJECT_KEYS, "subject")
    except ValueError as exc:
        collector.problem(WARNING, str(exc), clip=folder.name, file=str(folder))
        return None
    return value


def _add_session(collector: ClipCollector, folder: Path, row: dict | None,
                 labels: Path | None) -> tuple[bool, bool]:
    """One session folder; returns (subject unknown, apex estimated) for the summaries."""
    clip = folder.name
    if _video_only(collector, folder):
        return False, False
    frames = clip_frames(collector, folder, clip)
    if frames is None:
        return False, False
    emotion, where, line = _emotion(collector, folder, row, labels)
    if emotion is None:
        return False, False
    subject = _subject(collector, folder, row)
    timing = row or {}
    onset, apex, offset = (timing.get(c) for c in ("onset", "apex", "offset"))
    added = collector.add(
        clip=clip, row=line, subject=(subject or clip).replace("/", "_"), folder=folder,
        frames=frames, onset=frames[0][0] if is_missing(onset) else onset,
        apex=None if is_missing(apex) else apex,
        offset=frames[-1][0] if is_missing(offset) else offset, emotion=emotion,
        file=where, columns=("onset", "apex", "offset"), report_estimated_apex=False,
    )
    return added and subject is None, added and is_missing(apex)


@register_adapter(
    NAME, TITLE, FPS,
    "MMI: Sessions/<session>/ numbered frames + XML metadata with an Emotion field (1-6) or "
    "a labels.csv (session,emotion[,subject,onset,apex,offset]); videos must be extracted",
)
def load(root: Path, *, namespace: str, fps: float = FPS) -> Dataset:
    """Read MMI-style sessions at `root`; `fps` is the recordings' frame rate (default 25)."""
    root = Path(root)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 10000:
        raise ConfigError(f"fps must be a positive number of frames per second, not {fps!r}")
    collector = ClipCollector(namespace, NAME, float(fps))
    sessions_root = sessions_root_of(root, collector)
    labels = _find_labels(root, sessions_root)
    rows = read_labels(labels, collector) if labels is not None else {}
    folders = subfolders(sessions_root)
    no_subject = estimated = 0
    for folder in folders:
        unknown, guessed = _add_session(collector, folder, rows.get(folder.name.lower()), labels)
        no_subject += unknown
        estimated += guessed
    names = {f.name.lower() for f in folders}
    for session, row in rows.items():
        if session not in names:
            collector.problem(ERROR, f"session {row['session']!r} has no folder in "
                                     f"{sessions_root}; unpack it or remove the row",
                              clip=cell_text(row["session"]), row=row["_row"], file=str(labels))
    if no_subject:
        collector.problem(WARNING, f"{no_subject} session(s) name no subject (neither "
                                   f"{LABELS_FILE} nor their XML): each is its own subject; add "
                                   f"a subject column to {LABELS_FILE} to group them by person")
    if estimated:
        collector.problem(WARNING, f"no apex annotated for {estimated} session(s): the apex of "
                                   f"each is estimated as its middle frame (apex_estimated is "
                                   f"True)")
    return collector.dataset(root, labels or sessions_root)
