"""Action-unit displacement fields and the emotion -> action-unit table.

An action unit (AU) is a short list of bumps. A bump is a smooth Gaussian-weighted local
displacement anchored at a landmark of the subject: the skin around the anchor moves by a
vector given in the face frame (`out`: away from the face midline, `up`: towards the
forehead) with weight exp(-r^2 / (2 sigma^2)). Sizes are in units of the subject's
inter-ocular distance (IOD, about 42 pixels at 128x128), so the fields follow each subject's
geometry. Paired anchors (eyes, brows, nose wings, lip corners, cheeks) act on both sides
unless the AU is unilateral in a clip (written `L12` / `R12` as CASME II does).

Fields are forward displacements (where the skin at p goes) and are returned normalised so
that the largest displacement is 1; the generator multiplies by the clip's peak amplitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from microexpr.synth.face import Subject

PAIRED = ("eye", "brow_in", "brow_out", "brow_mid", "nose_wing", "mouth", "cheek", "lip_side")
MIDLINE = ("lip_up", "lip_lo", "chin", "nose_tip", "glabella")


@dataclass(frozen=True)
class Bump:
    """One Gaussian-weighted local displacement of an action unit."""

    anchor: str  # a PAIRED anchor (acts on each side) or a MIDLINE anchor
    out: float  # displacement away from the midline (paired anchors only), relative units
    up: float  # displacement towards the forehead, relative units
    sigma: float  # Gaussian radius in IOD units
    shift: tuple[float, float] = (0.0, 0.0)  # anchor offset (out, up) in IOD units


@dataclass(frozen=True)
class ActionUnit:
    code: int
    name: str
    bumps: tuple[Bump, ...]


def _au(code: int, name: str, *bumps: Bump) -> tuple[int, ActionUnit]:
    return code, ActionUnit(code, name, bumps)


# The AU library (FACS names; the motion is the visible 2D displacement of the skin).
ACTION_UNITS: dict[int, ActionUnit] = dict(
    [
        _au(
            1,
            "inner brow raiser",  # inner brow ends up (and slightly together), forehead above
            Bump("brow_in", -0.1, 1.0, 0.16),
            Bump("brow_in", 0.0, 0.5, 0.2, shift=(0.0, 0.25)),
        ),
        _au(
            2,
            "outer brow raiser",  # outer brow ends up, the brow arch follows
            Bump("brow_out", 0.1, 1.0, 0.16),
            Bump("brow_mid", 0.0, 0.5, 0.14),
        ),
        _au(
            4,
            "brow lowerer",  # brows down and drawn together
            Bump("brow_in", -0.7, -0.7, 0.15),
            Bump("brow_mid", -0.3, -0.6, 0.15),
        ),
        _au(
            5,
            "upper lid raiser",  # upper eyelid up
            Bump("eye", 0.0, 1.0, 0.08, shift=(0.0, 0.09)),
        ),
        _au(
            6,
            "cheek raiser",  # cheeks up and slightly out, lower lid pushed up
            Bump("cheek", 0.2, 1.0, 0.2),
            Bump("eye", 0.0, 0.5, 0.1, shift=(0.0, -0.13)),
        ),
        _au(
            7,
            "lid tightener",  # lower lid up, upper lid slightly down
            Bump("eye", 0.0, 1.0, 0.09, shift=(0.0, -0.12)),
            Bump("eye", 0.0, -0.3, 0.08, shift=(0.0, 0.09)),
        ),
        _au(
            9,
            "nose wrinkler",  # nose sides up, upper lip follows, inner brows pulled down
            Bump("nose_wing", 0.0, 1.0, 0.12),
            Bump("lip_up", 0.0, 0.4, 0.12),
            Bump("brow_in", 0.0, -0.25, 0.12),
        ),
        _au(
            10,
            "upper lip raiser",  # upper lip up, most at its centre
            Bump("lip_up", 0.0, 1.0, 0.14),
            Bump("lip_side", 0.0, 0.7, 0.12),
        ),
        _au(
            12,
            "lip corner puller",  # lip corners up and out, cheek slightly up
            Bump("mouth", 0.6, 0.8, 0.14),
            Bump("cheek", 0.0, 0.3, 0.2),
        ),
        _au(
            14,
            "dimpler",  # lip corners tightened outwards, dimple folds in beside them
            Bump("mouth", 0.5, 0.15, 0.09),
            Bump("mouth", -0.6, 0.0, 0.08, shift=(0.14, 0.0)),
        ),
        _au(
            15,
            "lip corner depressor",  # lip corners down
            Bump("mouth", 0.15, -1.0, 0.13),
        ),
        _au(
            17,
            "chin raiser",  # chin boss and lower lip pushed up
            Bump("chin", 0.0, 1.0, 0.22),
            Bump("lip_lo", 0.0, 0.6, 0.14),
        ),
        _au(
            20,
            "lip stretcher",  # lip corners pulled sideways (slightly down), lower lip stretched
            Bump("mouth", 1.0, -0.25, 0.13),
            Bump("lip_lo", 0.0, -0.25, 0.15),
        ),
        _au(
            24,
            "lip pressor",  # lips pressed together
            Bump("lip_up", 0.0, -0.5, 0.1),
            Bump("lip_lo", 0.0, 0.6, 0.1),
            Bump("mouth", -0.2, 0.0, 0.1),
        ),
    ]
)

# Emotion -> weighted alternatives of AU combinations, in CASME II notation. A `*` before an
# AU makes it unilateral on a random side (written L or R). `others` draws 1-2 AUs from
# OTHERS_POOL instead (a non-emotional mix, as CASME II's "others" often is).
EMOTION_AUS: dict[str, tuple[tuple[float, str], ...]] = {
    "happiness": ((0.55, "6+12"), (0.35, "12"), (0.10, "6+*12")),
    "disgust": ((0.5, "4+9"), (0.3, "4+9+10"), (0.2, "4+7+9")),
    "surprise": ((0.75, "1+2"), (0.25, "1+2+5")),
    "repression": ((0.35, "14"), (0.35, "17"), (0.15, "*14"), (0.15, "14+24")),
    "sadness": ((0.7, "1+4+15"), (0.3, "1+4+15+17")),
    "fear": ((0.6, "1+2+4+20"), (0.25, "1+4+20"), (0.15, "4+20")),
    "others": (),
}
OTHERS_POOL: tuple[int, ...] = (4, 7, 10, 14, 17, 24)
SUPPORTED_EMOTIONS: tuple[str, ...] = tuple(sorted(EMOTION_AUS))


@dataclass(frozen=True)
class AUChoice:
    """The AUs of one clip: (code, side) with side None (both), "L" or "R"."""

    units: tuple[tuple[int, str | None], ...]

    @property
    def code(self) -> str:
        """CASME II notation, e.g. "6+12", "4+9", "R14"."""
        return "+".join(f"{side or ''}{au}" for au, side in self.units)


def choose_aus(emotion: str, rng: np.random.Generator) -> AUChoice:
    """Draw the AU combination of one clip of `emotion`."""
    options = EMOTION_AUS[emotion]
    if not options:
        count = 1 if rng.random() < 0.6 else 2
        aus = sorted(int(a) for a in rng.choice(OTHERS_POOL, size=count, replace=False))
        return AUChoice(tuple((a, None) for a in aus))
    weights = np.array([w for w, _ in options])
    _, spec = options[int(rng.choice(len(options), p=weights / weights.sum()))]
    units: list[tuple[int, str | None]] = []
    for token in spec.split("+"):
        if token.startswith("*"):
            units.append((int(token[1:]), "L" if rng.random() < 0.5 else "R"))
        else:
            units.append((int(token), None))
    return AUChoice(tuple(units))


def _anchor(subject: Subject, name: str, side: str | None) -> np.ndarray:
    lm = subject.landmarks

    def p(key: str) -> np.ndarray:
        return np.asarray(lm[key], dtype=np.float64)

    if name == "brow_mid":
        return (p(f"brow_in_{side}") + p(f"brow_out_{side}")) / 2
    if name == "lip_side":
        return (p("lip_up") + p(f"mouth_{side}")) / 2
    if name == "glabella":
        return (p("brow_in_r") + p("brow_in_l")) / 2
    return p(f"{name}_{side}") if side else p(name)


def au_field(subject: Subject, choice: AUChoice, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 2) float32 forward displacement of `choice` on `subject`, peak 1.

    Per clip, every bump's anchor is jittered, its direction rotated a little, its radius and
    strength scaled, each side gets its own gain and each AU its own weight, so that no two
    clips move exactly alike.
    """
    size = subject.size
    iod = subject.iod
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((size, size, 2), np.float32)
    for au, only in choice.units:
        weight = rng.uniform(0.6, 1.0)
        gains = {"r": rng.uniform(0.8, 1.0), "l": rng.uniform(0.8, 1.0)}
        for bump in ACTION_UNITS[au].bumps:
            paired = bump.anchor in PAIRED
            sides: tuple[str | None, ...] = (
                (only.lower(),) if paired and only else ("r", "l") if paired else (None,)
            )
            for side in sides:
                out = subject.outward(side) if side else np.zeros(2)
                centre = (
                    _anchor(subject, bump.anchor, side)
                    + (bump.shift[0] * out + bump.shift[1] * subject.up) * iod
                    + rng.normal(0.0, 0.03 * iod, size=2)
                )
                vec = bump.out * out + bump.up * subject.up
                angle = math.radians(rng.normal(0.0, 8.0))
                c, s = math.cos(angle), math.sin(angle)
                vec = np.array([c * vec[0] - s * vec[1], s * vec[0] + c * vec[1]])
                vec = vec * weight * rng.uniform(0.85, 1.15) * (gains[side] if side else 1.0)
                sigma = bump.sigma * iod * rng.uniform(0.85, 1.15)
                g = np.exp(((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (-2.0 * sigma**2))
                field[..., 0] += g * np.float32(vec[0])
                field[..., 1] += g * np.float32(vec[1])
    peak = float(np.sqrt((field**2).sum(axis=-1)).max())
    return field / peak if peak > 0 else field
