"""Label schemes: named mappings from annotated emotions to classes (composite, 5-class, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pandas as pd

from microexpr.data.clips import Dataset, Problem, problems_frame
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
                                         "others")},
            description="CASME II 5-class (fear and sadness dropped).",
        ),
        LabelScheme(
            name="samm_5",
            classes=("happiness", "surprise", "anger", "contempt", "other"),
            mapping={"samm": {**_identity("happiness", "surprise", "anger", "contempt",
                                          "other"), "others": "other"}},
            description="SAMM 5-class (disgust, fear and sadness dropped).",
        ),
        LabelScheme(
            name="smic_3",
            classes=("negative", "positive", "surprise"),
            mapping={"smic": _identity("negative", "positive", "surprise")},
            description="SMIC 3-class.",
        ),
        LabelScheme(
            name="casme3_7",
            classes=("disgust", "others", "anger", "surprise", "sad", "happy", "fear"),
            mapping={"casme3": _identity("disgust", "others", "anger", "surprise", "sad",
                                         "happy", "fear")},
            description="CAS(ME)^3 part A 7-class.",
        ),
        LabelScheme(
            name="casme3_3",
            classes=("negative", "positive", "surprise"),
            mapping={"casme3": _CASME3_TO_3},
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


def apply_scheme(dataset: Dataset, name: str) -> Dataset:
    """Label `dataset` with scheme `name`: adds `label`, drops and reports unmapped clips."""
    clips = dataset.clips
    if name == EMOTION_SCHEME:
        classes = tuple(sorted(clips["emotion"].unique()))
        labelled = clips.assign(label=clips["emotion"].to_numpy())
        return replace(dataset, clips=labelled.reset_index(drop=True), classes=classes,
                       scheme=name)
    scheme = get_scheme(name)
    unknown = sorted(set(clips["format"]) - set(scheme.mapping) - {"*"})
    if unknown and "*" not in scheme.mapping:
        raise LabelSchemeError(
            f"label scheme {name!r} does not apply to {', '.join(unknown)} clips; it covers "
            f"{', '.join(scheme.formats())}. Use --labels emotion, or a scheme for that database "
            f"(see `microexpr datasets list`)."
        )
    labels = [scheme.class_of(f, e) for f, e in zip(clips["format"], clips["emotion"],
                                                      strict=True)]
    excluded = [(f, c) in scheme.exclude for f, c in zip(clips["format"], clips["clip"],
                                                          strict=True)]
    keep = [lab is not None and not ex for lab, ex in zip(labels, excluded, strict=True)]
    problems = []
    dropped = clips[[not k for k in keep]]
    for (ds, emotion), group in dropped.groupby(["dataset", "emotion"], sort=True):
        mask = [(f, c) in scheme.exclude for f, c in zip(group["format"], group["clip"],
                                                         strict=True)]
        by_protocol = group[mask]
        by_emotion = group[[not m for m in mask]]
        if len(by_emotion):
            problems.append(Problem(
                dataset=str(ds), clip="", severity="info",
                message=f"label scheme {name} drops {len(by_emotion)} clip(s) with emotion "
                f"{emotion!r}"))
        for clip in by_protocol["clip"]:
            problems.append(Problem(
                dataset=str(ds), clip=str(clip), severity="info",
                message=f"label scheme {name} excludes this clip by protocol"))
    labelled = clips[keep].assign(label=[lab for lab, k in zip(labels, keep, strict=True) if k])
    all_problems = pd.concat([dataset.problems, problems_frame(problems)], ignore_index=True)
    return replace(dataset, clips=labelled.reset_index(drop=True), classes=scheme.classes,
                   scheme=name, problems=all_problems)
