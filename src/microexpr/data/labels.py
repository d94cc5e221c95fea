"""Label schemes: named mappings from annotated emotions to classes (composite, 5-class, ...).

Schemes work on a clips table (a DataFrame), not on a Dataset, so that `Dataset.with_labels`
can use them without this module importing `microexpr.data.clips`.

Macro-expression data (formats `ckplus`, `mmi`, `clip_folder`, for macro -> micro transfer) is
labelled with the micro run's scheme. Its emotion names are first reduced to one of eight
(`happy`/`happiness`, `sad`/`sadness`, `angry`/`anger`, `surprised`/`surprise`,
`disgusted`/`disgust`, `fearful`/`fear`, `contempt`, `neutral`), then mapped per scheme; "-" is
dropped (and counted, as every dropped clip):

| macro emotion | composite3, smic_3, casme3_3 | casme2_5 | samm_5 | casme3_7 |
|---|---|---|---|---|
| anger | negative | - | anger | anger |
| contempt | negative | - | contempt | - |
| disgust | negative | disgust | - | disgust |
| fear | negative | - | - | fear |
| sadness | negative | - | - | sad |
| happiness | positive | happiness | happiness | happy |
| surprise | surprise | surprise | surprise | surprise |
| neutral | - | - | - | - |

CASME II's 5 classes include repression and others, and SAMM's 5 include other, which macro
data has no counterpart for; SAMM's own 5-class scheme drops disgust, fear and sadness, and so
does `samm_5` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from microexpr.data.cells import is_missing
from microexpr.data.problems import INFO, Problem, problems_frame
from microexpr.errors import LabelSchemeError

_NEGATIVE_SAMM = ("anger", "contempt", "disgust", "fear", "sadness")


@dataclass(frozen=True)
class LabelScheme:
    """Maps (format, annotated emotion) to a class; unmapped emotions are dropped and counted.

    `mapping` is keyed by the adapter format ("casme2", "samm", ...) and then by the
    lower-case annotated emotion; the key "*" applies to any format. `exclude` lists
    (format, clip id) pairs a protocol leaves out on purpose.
    """

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, Mapping[str, str]]
    description: str
    exclude: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def formats(self) -> list[str]:
        return sorted(self.mapping)

    def class_of(self, fmt: str, emotion: str) -> str | None:
        """The class of an annotated emotion, or None when the scheme drops it."""
        table = self.mapping.get(fmt, self.mapping.get("*"))
        if table is None:
            return None
        return table.get(emotion.strip().lower())


def _identity(*names: str) -> dict[str, str]:
    return {n: n for n in names}


_COMPOSITE_CASME2 = {"disgust": "negative", "repression": "negative", "happiness": "positive",
                     "surprise": "surprise"}
_COMPOSITE_SAMM = {**{e: "negative" for e in _NEGATIVE_SAMM}, "happiness": "positive",
                   "surprise": "surprise"}
_CASME3_TO_3 = {"anger": "negative", "disgust": "negative", "fear": "negative",
                "sad": "negative", "happy": "positive", "surprise": "surprise"}

#: Adapter formats of macro-expression data, labelled through MACRO_SYNONYMS.
MACRO_FORMATS: tuple[str, ...] = ("ckplus", "mmi", "clip_folder")
#: Each macro emotion and the names databases and class folders write it as.
MACRO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "angry"),
    "contempt": ("contempt",),
    "disgust": ("disgust", "disgusted"),
    "fear": ("fear", "fearful"),
    "happiness": ("happiness", "happy"),
    "sadness": ("sadness", "sad"),
    "surprise": ("surprise", "surprised"),
    "neutral": ("neutral",),
}
_MACRO_TO_3 = {**{e: "negative" for e in _NEGATIVE_SAMM}, "happiness": "positive",
               "surprise": "surprise"}


def _macro(classes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The mapping of every macro format from {macro emotion: class}, spelled every way
    MACRO_SYNONYMS knows."""
    table = {name: classes[emotion] for emotion, names in MACRO_SYNONYMS.items()
             if emotion in classes for name in names}
    return {fmt: table for fmt in MACRO_FORMATS}


SCHEMES: dict[str, LabelScheme] = {
    s.name: s
    for s in (
        LabelScheme(
            name="composite3",
            classes=("negative", "positive", "surprise"),
            mapping={
                "casme2": _COMPOSITE_CASME2,
                "samm": _COMPOSITE_SAMM,
                "smic": _identity("negative", "positive", "surprise"),
                **_macro(_MACRO_TO_3),
            },
            exclude=frozenset(
                {("casme2", "sub04/EP12_01f"), ("casme2", "sub05/EP12_03f"),
                 ("casme2", "sub24/EP02_07")}
            ),
            description="MEGC 2019 composite 3-class (SMIC + CASME II + SAMM); CASME II fear, "
            "sadness, others and SAMM other are dropped, as are the 3 clips the organisers "
            "removed.",
        ),
        LabelScheme(
            name="casme2_5",
            classes=("happiness", "surprise", "disgust", "repression", "others"),
            mapping={"casme2": _identity("happiness", "surprise", "disgust", "repression",
                                         "others"),
                     **_macro(_identity("happiness", "surprise", "disgust"))},
            description="CASME II 5-class (fear and sadness dropped).",
        ),
        LabelScheme(
            name="samm_5",
            classes=("happiness", "surprise", "anger", "contempt", "other"),
            mapping={"samm": {**_identity("happiness", "surprise", "anger", "contempt",
                                          "other"), "others": "other"},
                     **_macro(_identity("happiness", "surprise", "anger", "contempt"))},
            description="SAMM 5-class (disgust, fear and sadness dropped).",
        ),
        LabelScheme(
            name="smic_3",
            classes=("negative", "positive", "surprise"),
            mapping={"smic": _identity("negative", "positive", "surprise"),
                     **_macro(_MACRO_TO_3)},
            description="SMIC 3-class.",
        ),
        LabelScheme(
            name="casme3_7",
            classes=("disgust", "others", "anger", "surprise", "sad", "happy", "fear"),
            mapping={"casme3": _identity("disgust", "others", "anger", "surprise", "sad",
                                         "happy", "fear"),
                     **_macro({"anger": "anger", "disgust": "disgust", "fear": "fear",
                               "surprise": "surprise", "happiness": "happy",
                               "sadness": "sad"})},
            description="CAS(ME)^3 part A 7-class.",
        ),
        LabelScheme(
            name="casme3_3",
            classes=("negative", "positive", "surprise"),
            mapping={"casme3": _CASME3_TO_3, **_macro(_MACRO_TO_3)},
            description="CAS(ME)^3 part A 3-class (anger, disgust, fear, sad -> negative; happy "
            "-> positive; others dropped).",
        ),
    )
}

#: The scheme name meaning "every annotated emotion is its own class".
EMOTION_SCHEME = "emotion"


def label_schemes() -> pd.DataFrame:
    """The available label schemes: name, classes, formats they apply to, description."""
    rows = [
        {"name": s.name, "classes": ", ".join(s.classes), "formats": ", ".join(s.formats()),
         "description": s.description}
        for s in SCHEMES.values()
    ]
    rows.append({"name": EMOTION_SCHEME, "classes": "(the annotated emotions)", "formats": "*",
                 "description": "Each annotated emotion is a class, nothing is dropped."})
    return pd.DataFrame(rows)


def get_scheme(name: str) -> LabelScheme:
    """Look up a label scheme by name, with a message listing the valid names."""
    if name in SCHEMES:
        return SCHEMES[name]
    raise LabelSchemeError(
        f"unknown label scheme {name!r}; choose one of {sorted([*SCHEMES, EMOTION_SCHEME])}"
    )


def _source(clip: pd.Series, annotation_file: str) -> tuple[str, int | None]:
    """(file, row) where a clip is listed, for problems that point at it."""
    file = str(clip.get("source_file", "") or "") or annotation_file
    row = clip.get("source_row")
    return file, (None if row is None or pd.isna(row) else int(row))


def _left_out(clips: pd.DataFrame, messages: list[str], annotation_file: str) -> list[Problem]:
    """One info problem per clip a scheme leaves out, naming the clip, file and row."""
    problems = []
    for (_, clip), message in zip(clips.iterrows(), messages, strict=True):
        file, row = _source(clip, annotation_file)
        problems.append(Problem(dataset=str(clip["dataset"]), clip=str(clip["clip"]),
                                severity=INFO, message=message, file=file, row=row))
    return problems


def _why_dropped(name: str, scheme: LabelScheme | None, emotion: str, by_protocol: bool
                 ) -> str:
    if by_protocol:
        return f"label scheme {name} excludes this clip by protocol"
    if is_missing(emotion):
        return (f"left out: the emotion cell is blank ({emotion!r}), so label scheme {name} "
                f"has no class for it; fill in the emotion to use this clip")
    classes = f" ({', '.join(scheme.classes)})" if scheme is not None else ""
    return (f"left out: label scheme {name} drops emotion {emotion!r}, which it maps to none "
            f"of its classes{classes}")


class LabelledClips(NamedTuple):
    """What a label scheme makes of a clips table (see `label_clips`)."""

    clips: pd.DataFrame  # the kept clips, with a `label` column, index 0..n-1
    classes: tuple[str, ...]  # class names in order
    problems: pd.DataFrame  # one info problem per clip left out (PROBLEM_COLUMNS)


def label_clips(clips: pd.DataFrame, name: str, annotation_file: str = "") -> LabelledClips:
    """Label a clips table with scheme `name`: adds `label`, drops and reports unmapped clips.

    Each clip left out (blank emotion, an emotion the scheme drops, a protocol exclusion) gets
    an info problem naming the clip and its annotation row (`annotation_file` when the row has
    no `source_file`), so `Dataset.summary()` counts it. `Dataset.with_labels` is the usual
    way to call it.
    """
    emotions = clips["emotion"].fillna("").astype(str)
    if name == EMOTION_SCHEME:
        scheme = None
        labels: list[str | None] = [None if is_missing(e) else e for e in emotions]
        excluded = [False] * len(clips)
    else:
        scheme = get_scheme(name)
        unknown = sorted(set(clips["format"]) - set(scheme.mapping) - {"*"})
        if unknown and "*" not in scheme.mapping:
            raise LabelSchemeError(
                f"label scheme {name!r} does not apply to {', '.join(unknown)} clips; it covers "
                f"{', '.join(scheme.formats())}. Use --labels emotion, or a scheme for that "
                f"database (see `microexpr datasets list`)."
            )
        labels = [scheme.class_of(f, e) for f, e in zip(clips["format"], emotions, strict=True)]
        excluded = [(f, c) in scheme.exclude for f, c in zip(clips["format"], clips["clip"],
                                                              strict=True)]
    keep = np.array([lab is not None and not ex for lab, ex in zip(labels, excluded,
                                                                     strict=True)], dtype=bool)
    dropped = clips[~keep]
    messages = [_why_dropped(name, scheme, e, ex) for e, ex, k in zip(emotions, excluded, keep,
                                                                        strict=True) if not k]
    labelled = clips[keep].assign(label=[lab for lab, k in zip(labels, keep, strict=True) if k])
    classes = (tuple(sorted(set(labelled["label"]))) if scheme is None
               else scheme.classes)
    return LabelledClips(clips=labelled.reset_index(drop=True), classes=classes,
                         problems=problems_frame(_left_out(dropped, messages, annotation_file)))
