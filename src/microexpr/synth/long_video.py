"""Synthetic long videos in the CAS(ME)^2 layout, for spotting::

    from microexpr.synth.long_video import synthesize_long
    root = synthesize_long("data/synthetic-long")   # 3 subjects x 2 videos x 20 s at 30 fps

writes::

    <root>/rawpic/s15/15_0101disgustingteeth/img1.jpg ...   frames, BGR JPEG, numbered from 1
    <root>/CAS(ME)^2code_final.xlsx                         a first sheet without header row
                                                            (participant, video name with
                                                            expression number, onset, apex,
                                                            offset, AUs, estimated emotion,
                                                            type, self-reported emotion) and
                                                            the sheets naming rule1 / 2
    <root>/microexpr_synthetic_long.json                    config, generator version, and per
                                                            video the expressions and the
                                                            nuisance events, frame by frame

which `load_long_videos("casme2_long", root)` reads like the real release. Participant p is
subject folder s<14 + p> (as CAS(ME)^2 numbers them from s15), so the naming rules matter.

Each video is one synthetic person (`microexpr.synth.face`) filmed for `seconds`:

- micro-expressions: 7-16 frames at 30 fps (the same duration in seconds at other rates), a
  raised-cosine onset -> apex -> offset of peak `amplitude` px (at 128 px), on one or two
  action units of the emotion its video elicits (`microexpr.synth.aus`);
- macro-expressions: 0.7-2.5 s, `macro_amplitude` px, all the action units of the emotion.
  Expressions never overlap and are at least 0.5 s apart;
- nuisances, which are not expressions and are not in the annotation (the metadata lists
  them): blinks (the upper lids drop for 0.1-0.25 s, every 2.5-6 s; one due during an
  expression waits until it is over), talking (the jaw and lower lip move at 3-5 syllables a
  second for 1-3 s, shorter where that does not fit), both kept out of the expressions and 0.2 s
  around them, so each annotated interval holds one facial event; slow head turns (the whole
  head shifts by 3-8 px and rolls by 1-3 degrees, there and back, over 1-2.5 s), which may
  overlap anything; and, throughout, the clip generator's slow sway, brightness flicker and
  sensor noise.

The frames are rendered by the clip generator's renderer (`microexpr.synth.clip.
layered_frames`): the neutral face moved by the sum of every event's displacement field times
its amplitude at that frame. The same arguments give the same files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openpyxl

from microexpr.errors import ConfigError
from microexpr.synth.aus import AUChoice, au_field, choose_aus
from microexpr.synth.clip import (
    Nuisance,
    Timeline,
    draw_nuisance,
    finish,
    intensity_profile,
    layered_frames,
)
from microexpr.synth.face import Subject, make_subject

__all__ = [
    "ANNOTATION_FILE",
    "FRAMES_DIR",
    "GENERATOR_VERSION",
    "METADATA_FILE",
    "VIDEOS",
    "LongSynthConfig",
    "synthesize_long",
    "write_long_videos",
]

# Bump when the same config would produce different data.
GENERATOR_VERSION = "1.0"
ANNOTATION_FILE = "CAS(ME)^2code_final.xlsx"
METADATA_FILE = "microexpr_synthetic_long.json"
FRAMES_DIR = "rawpic"
FIRST_SUBJECT_FOLDER = 15  # participant 1 is s15, as in CAS(ME)^2
JPEG_QUALITY = 90
_PARTIAL_PREFIX = ".synthesize_long-"

# The videos of CAS(ME)^2's naming rule2: (name, 4-digit code, the rest of the folder name,
# the emotion whose action units its expressions mostly show). The folder names other than
# 15_0101disgustingteeth are made up.
VIDEOS: tuple[tuple[str, str, str, str], ...] = (
    ("disgust1", "0101", "disgustingteeth", "disgust"),
    ("disgust2", "0102", "eatingworms", "disgust"),
    ("anger1", "0401", "unfairreferee", "sadness"),
    ("anger2", "0402", "rudewaiter", "sadness"),
    ("happy1", "0502", "funnyerrors", "happiness"),
    ("happy2", "0503", "laughingbaby", "happiness"),
    ("happy3", "0505", "cleverdog", "happiness"),
    ("happy4", "0507", "comedysketch", "happiness"),
    ("happy5", "0508", "clownfish", "happiness"),
)
OTHER_EMOTIONS = ("surprise", "repression", "others")  # the rest of a video's expressions
THEME_SHARE = 0.7  # share of a video's expressions that show its emotion
# Annotation's "estimated emotion" (CAS(ME)^2's classes) of each synthetic emotion.
ESTIMATED = {
    "happiness": "positive",
    "disgust": "negative",
    "sadness": "negative",
    "fear": "negative",
    "surprise": "surprise",
    "repression": "others",
    "others": "others",
}

MICRO_FRAMES_AT_30 = (7, 16)  # inclusive onset..offset length at 30 fps
MACRO_SECONDS = (0.7, 2.5)
APEX_SHARE = (0.35, 0.6)  # apex position within onset..offset
MACRO_GAIN = (0.8, 1.2)  # macro peak = macro_amplitude x this
MICRO_GAIN = (0.7, 1.2)  # micro peak = amplitude x this
EXPRESSION_GAP_S = 0.5  # between two expressions
EDGE_S = 0.3  # no expression in the first and last EDGE_S of a video
NUISANCE_MARGIN_S = 0.2  # blinks and talking stay this far from expressions
BLINK_SPACING_S = (2.5, 6.0)
BLINK_SECONDS = (0.1, 0.25)
BLINK_PX = (3.5, 5.0)  # upper-lid travel at 128 px
TALK_EVERY_S = 12.0  # one talking bout per this many seconds (at least one)
TALK_SECONDS = (1.0, 3.0)
TALK_SHORTEST_S = 0.5  # where a drawn bout does not fit between the expressions
TALK_HZ = (3.0, 5.0)
TALK_PX = (2.0, 3.5)  # jaw / lower-lip travel at 128 px
TURN_EVERY_S = 10.0  # one head turn per this many seconds (at least one)
TURN_SECONDS = (1.0, 2.5)
TURN_PX = (3.0, 8.0)  # head shift at 128 px
TURN_DEGREES = (1.0, 3.0)

_INT_RANGES = {
    "subjects": (1, 50),
    "videos_per_subject": (1, len(VIDEOS)),
    "size": (64, 512),
    "seed": (0, 2**63 - 1),
    "micro_per_video": (0, 100),
    "macro_per_video": (0, 100),
}
_FLOAT_RANGES = {
    "seconds": (1.0, 600.0),
    "fps": (10.0, 250.0),
    "amplitude": (0.0, 8.0),
    "macro_amplitude": (0.0, 20.0),
    "head_drift": (0.0, 4.0),
    "noise": (0.0, 25.0),
    "flicker": (0.0, 0.2),
}
_FLAGS = ("blinks", "head_turns", "talking")


@dataclass(frozen=True)
class LongSynthConfig:
    """What `write_long_videos` makes. Every field is validated on construction (ConfigError)."""

    subjects: int = 3
    videos_per_subject: int = 2
    seconds: float = 20.0
    fps: float = 30.0
    size: int = 128  # face image side, pixels
    seed: int = 0
    micro_per_video: int = 2
    macro_per_video: int = 2
    amplitude: float = 2.0  # micro-expression peak displacement, px at size 128
    macro_amplitude: float = 6.0  # macro-expression peak displacement, px at size 128
    blinks: bool = True
    head_turns: bool = True
    talking: bool = True
    head_drift: float = 0.6  # px, the slow sway of the clip generator
    noise: float = 2.0  # sensor noise sigma in grey levels
    flicker: float = 0.02  # relative brightness flicker

    def __post_init__(self) -> None:
        for name, (lo, hi) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be in {lo}..{hi}, got {value}")
            object.__setattr__(self, name, int(value))
        for name, (lo, hi) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(f"{name} must be a number in {lo}..{hi}, got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"{name} must be in {lo}..{hi}, got {value}")
            object.__setattr__(self, name, float(value))
        for name in _FLAGS:
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            object.__setattr__(self, name, bool(value))

    @property
    def n_frames(self) -> int:
        """Frames of every video."""
        return round(self.seconds * self.fps)

    def frames(self, seconds: float) -> int:
        """A duration in frames (at least 1)."""
        return max(1, round(seconds * self.fps))


def synthesize_long(
    out_dir: str | os.PathLike[str],
    *,
    subjects: int = 3,
    videos_per_subject: int = 2,
    seconds: float = 20.0,
    fps: float = 30.0,
    size: int = 128,
    seed: int = 0,
    micro_per_video: int = 2,
    macro_per_video: int = 2,
    blinks: bool = True,
    head_turns: bool = True,
    talking: bool = True,
    amplitude: float = 2.0,
    macro_amplitude: float = 6.0,
    head_drift: float = 0.6,
    noise: float = 2.0,
    flicker: float = 0.02,
) -> Path:
    """Write synthetic long videos in the CAS(ME)^2 layout into `out_dir`; return it.

    See the module docstring for what is drawn; `LongSynthConfig` validates the arguments.
    A folder already holding the same database (same arguments, same generator version) is
    returned as is; one holding CAS(ME)^2 files this generator did not write is refused.
    """
    config = LongSynthConfig(
        subjects=subjects, videos_per_subject=videos_per_subject, seconds=seconds, fps=fps,
        size=size, seed=seed, micro_per_video=micro_per_video, macro_per_video=macro_per_video,
        blinks=blinks, head_turns=head_turns, talking=talking, amplitude=amplitude,
        macro_amplitude=macro_amplitude, head_drift=head_drift, noise=noise, flicker=flicker,
    )
    return write_long_videos(out_dir, config)


# ----------------------------------------------------------------------------- planning
def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream for one purpose (1: subject look, 2: subject's videos, 3: a video's
    schedule, 4: a video's event fields, 5: its sway and flicker, 6: its sensor noise)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class _Event:
    """One facial event of a video: frame indices (0-based) and what moves."""

    kind: str  # "micro", "macro", "blink", "talking", "head_turn"
    onset: int
    apex: int
    offset: int
    emotion: str = ""
    action_units: str = ""


def _micro_range(fps: float) -> tuple[int, int]:
    """Inclusive length range of a micro-expression in frames at `fps`."""
    lo = max(3, round(MICRO_FRAMES_AT_30[0] * fps / 30.0))
    return lo, max(lo, round(MICRO_FRAMES_AT_30[1] * fps / 30.0))


def _place(rng: np.random.Generator, free: np.ndarray, length: int, pad: int) -> int | None:
    """A random start index for `length` frames whose span widened by `pad` on each side lies
    in `free`; None when there is none."""
    n = len(free)
    if length > n:
        return None
    blocked = np.concatenate([[0], np.cumsum(~free)])
    starts = np.arange(n - length + 1)
    lo = np.clip(starts - pad, 0, n)
    hi = np.clip(starts + length + pad, 0, n)
    ok = starts[(blocked[hi] - blocked[lo]) == 0]
    return int(rng.choice(ok)) if len(ok) else None


def _timed(start: int, length: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """(onset, apex, offset) of an event of `length` frames from `start`, apex at 35-60 %."""
    offset = start + length - 1
    rise = min(max(round(rng.uniform(*APEX_SHARE) * (length - 1)), 1), length - 2)
    return start, start + rise, offset


def _plan_expressions(cfg: LongSynthConfig, rng: np.random.Generator,
                      theme: str) -> list[_Event]:
    """Micro- and macro-expressions in random order, at least 0.5 s apart and 0.3 s from the
    ends, the spare time spread at random between them. Macro-expressions are shortened (not
    below 0.7 s) when their drawn lengths do not fit; ConfigError when even that fails."""
    n = cfg.n_frames
    micro_lo, micro_hi = _micro_range(cfg.fps)
    macro_lo = max(micro_hi + 1, cfg.frames(MACRO_SECONDS[0]))
    macro_hi = max(macro_lo, cfg.frames(MACRO_SECONDS[1]))
    kinds = ["macro"] * cfg.macro_per_video + ["micro"] * cfg.micro_per_video
    if not kinds:
        return []
    lengths = [int(rng.integers(*((macro_lo, macro_hi + 1) if k == "macro"
                                  else (micro_lo, micro_hi + 1)))) for k in kinds]
    gap = cfg.frames(EXPRESSION_GAP_S)
    room = n - 2 * cfg.frames(EDGE_S) - gap * (len(kinds) - 1)
    while sum(lengths) > room:
        longest = max(range(len(kinds)), key=lambda i: (kinds[i] == "macro", lengths[i]))
        if kinds[longest] != "macro" or lengths[longest] <= macro_lo:
            raise ConfigError(
                f"cannot fit {cfg.macro_per_video} macro- and {cfg.micro_per_video} "
                f"micro-expressions, {EXPRESSION_GAP_S} s apart, into a {cfg.seconds:g} s "
                f"video; use fewer expressions or longer videos (seconds)"
            )
        lengths[longest] -= 1
    order = rng.permutation(len(kinds))
    cuts = np.sort(rng.integers(0, room - sum(lengths) + 1, size=len(kinds)))
    spare = np.diff(np.concatenate([[0], cuts]))  # the spare frames before each expression
    events = []
    start = cfg.frames(EDGE_S)
    for k, extra in zip(order, spare, strict=True):
        start += int(extra)
        emotion = theme if rng.random() < THEME_SHARE else str(rng.choice(OTHER_EMOTIONS))
        onset, apex, offset = _timed(start, lengths[k], rng)
        events.append(_Event(kinds[k], onset, apex, offset, emotion))
        start = offset + 1 + gap
    return events


def _plan_nuisances(cfg: LongSynthConfig, rng: np.random.Generator,
                    expressions: list[_Event]) -> list[_Event]:
    """Blinks and talking outside the expressions (with a margin), head turns anywhere."""
    n = cfg.n_frames
    away = np.ones(n, dtype=bool)
    margin = cfg.frames(NUISANCE_MARGIN_S)
    for e in expressions:
        away[max(0, e.onset - margin):e.offset + margin + 1] = False
    events: list[_Event] = []
    if cfg.talking:
        free = away.copy()
        for _ in range(max(1, round(cfg.seconds / TALK_EVERY_S))):
            length = cfg.frames(rng.uniform(*TALK_SECONDS))
            start = _place(rng, free, length, 0)
            while start is None and length > cfg.frames(TALK_SHORTEST_S):  # a shorter bout
                length = max(cfg.frames(TALK_SHORTEST_S), length * 3 // 4)
                start = _place(rng, free, length, 0)
            if start is None:
                continue
            free[start:start + length] = False
            events.append(_Event("talking", start, start + length // 2, start + length - 1))
    if cfg.blinks:
        t = cfg.frames(rng.uniform(0.3, BLINK_SPACING_S[0]))
        while t < n:
            length = max(3, cfg.frames(rng.uniform(*BLINK_SECONDS)))
            while t + length <= n and not away[t:t + length].all():
                t += 1  # due during an expression: the blink waits until it is over
            if t + length > n:
                break
            events.append(_Event("blink", *_timed(t, length, rng)))
            t += length + cfg.frames(rng.uniform(*BLINK_SPACING_S))
    if cfg.head_turns:
        free = np.ones(n, dtype=bool)
        for _ in range(max(1, round(cfg.seconds / TURN_EVERY_S))):
            length = max(5, cfg.frames(rng.uniform(*TURN_SECONDS)))
            start = _place(rng, free, length, 0)
            if start is None:
                continue
            free[start:start + length] = False
            events.append(_Event("head_turn", start, start + length // 2, start + length - 1))
    return sorted(events, key=lambda e: (e.onset, e.kind))


# ----------------------------------------------------------------------------- motion
def _profile(event: _Event, n: int) -> np.ndarray:
    """Raised-cosine 0 -> 1 -> 0 from onset over apex to offset, over the whole video."""
    return intensity_profile(Timeline(n, event.onset, event.apex, event.offset))


def _expression_layer(
    cfg: LongSynthConfig, subject: Subject, event: _Event, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray], _Event, float]:
    """The (field, amplitudes) of an expression, the event with its action units, its peak."""
    choice = choose_aus(event.emotion, rng)
    if event.kind == "micro" and len(choice.units) > 2:  # micro-expressions are localised
        keep = sorted(rng.choice(len(choice.units), size=2, replace=False))
        choice = AUChoice(tuple(choice.units[int(i)] for i in keep))
    scale = subject.size / 128.0
    if event.kind == "micro":
        peak = cfg.amplitude * scale * rng.uniform(*MICRO_GAIN)
    else:
        peak = cfg.macro_amplitude * scale * rng.uniform(*MACRO_GAIN)
    field = au_field(subject, choice, rng)
    amplitudes = _profile(event, cfg.n_frames) * peak
    return (field, amplitudes), dataclasses.replace(event, action_units=choice.code), peak


def _nuisance_layer(
    cfg: LongSynthConfig, subject: Subject, event: _Event, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
    """The (field, amplitudes) of a blink or a talking bout and what to record about it."""
    n = cfg.n_frames
    scale = subject.size / 128.0
    if event.kind == "blink":  # the upper lids drop: AU 5 (upper lid raiser) reversed
        field = -au_field(subject, AUChoice(((5, None),)), rng)
        peak = rng.uniform(*BLINK_PX) * scale
        return (field, _profile(event, n) * peak), {"peak_px": round(float(peak), 4)}
    # talking: the jaw and lower lip drop and rise, AU 17 (chin raiser) reversed, per syllable
    field = -au_field(subject, AUChoice(((17, None),)), rng)
    peak = rng.uniform(*TALK_PX) * scale
    hz = rng.uniform(*TALK_HZ)
    t = np.arange(n, dtype=np.float64)
    inside = (t >= event.onset) & (t <= event.offset)
    phase = 2.0 * math.pi * hz * (t - event.onset) / cfg.fps
    syllables = 0.5 - 0.5 * np.cos(phase)
    heights = rng.uniform(0.6, 1.0, size=n)  # each frame's syllable height, smoothed below
    heights = np.convolve(heights, np.ones(5) / 5, mode="same")
    envelope = np.sin(math.pi * np.clip((t - event.onset) / max(1, event.offset - event.onset),
                                        0.0, 1.0)) ** 0.5
    amplitudes = np.where(inside, syllables * heights * envelope * peak, 0.0)
    return (field, amplitudes), {"peak_px": round(float(peak), 4),
                                 "syllables_per_s": round(float(hz), 3)}


def _head_turns(
    cfg: LongSynthConfig, subject: Subject, events: list[_Event], base: Nuisance,
    rng: np.random.Generator,
) -> tuple[Nuisance, dict[int, dict[str, Any]]]:
    """The sway and flicker of `base` plus each head turn's shift and roll, there and back."""
    tx, ty, rotation = base.tx.copy(), base.ty.copy(), base.rotation.copy()
    scale = subject.size / 128.0
    records: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(events):
        if event.kind != "head_turn":
            continue
        profile = _profile(event, cfg.n_frames)
        shift = rng.uniform(*TURN_PX) * scale
        angle = rng.uniform(0.0, 2.0 * math.pi)
        dx, dy = shift * math.cos(angle), 0.4 * shift * math.sin(angle)  # mostly sideways
        roll = math.radians(rng.uniform(*TURN_DEGREES)) * (1 if rng.random() < 0.5 else -1)
        tx += profile * dx
        ty += profile * dy
        rotation += profile * roll
        records[index] = {"shift_px": [round(dx, 3), round(dy, 3)],
                          "roll_degrees": round(math.degrees(roll), 3)}
    return Nuisance(tx=tx, ty=ty, rotation=rotation, gain=base.gain), records


# ----------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class _VideoPlan:
    """One video of one participant: where it goes and what it elicits."""

    participant: int  # 1-based
    index: int  # 0-based among the subject's videos
    name: str  # "disgust1"
    code: str  # "0101"
    folder: str  # "15_0101disgustingteeth"
    theme: str  # the emotion it elicits


def _plan_videos(cfg: LongSynthConfig, participant: int) -> list[_VideoPlan]:
    """Which of the VIDEOS a participant watched (sorted by code)."""
    rng = _rng(cfg.seed, 2, participant)
    chosen = sorted(rng.choice(len(VIDEOS), size=cfg.videos_per_subject, replace=False))
    number = FIRST_SUBJECT_FOLDER + participant - 1
    return [
        _VideoPlan(participant, i, VIDEOS[k][0], VIDEOS[k][1],
                   f"{number}_{VIDEOS[k][1]}{VIDEOS[k][2]}", VIDEOS[k][3])
        for i, k in enumerate(int(k) for k in chosen)
    ]


def _write_video(cfg: LongSynthConfig, subject: Subject, plan: _VideoPlan,
                 folder: Path) -> dict[str, Any]:
    """Render and write one video's frames; its ground truth for the metadata."""
    key = (plan.participant, plan.index)
    schedule = _rng(cfg.seed, 3, *key)
    expressions = _plan_expressions(cfg, schedule, plan.theme)
    nuisances = _plan_nuisances(cfg, schedule, expressions)
    fields = _rng(cfg.seed, 4, *key)
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    truth: list[dict[str, Any]] = []
    for planned in expressions:
        layer, event, peak = _expression_layer(cfg, subject, planned, fields)
        layers.append(layer)
        truth.append({"kind": event.kind, "onset": event.onset + 1, "apex": event.apex + 1,
                      "offset": event.offset + 1, "emotion": event.emotion,
                      "estimated_emotion": ESTIMATED[event.emotion],
                      "action_units": event.action_units, "peak_px": round(float(peak), 4)})
    base = draw_nuisance(_rng(cfg.seed, 5, *key), cfg.n_frames, cfg.fps, subject.size,
                         cfg.head_drift, cfg.flicker)
    nuisance, turns = _head_turns(cfg, subject, nuisances, base, fields)
    others: list[dict[str, Any]] = []
    for index, event in enumerate(nuisances):
        record = {"kind": event.kind, "onset": event.onset + 1, "apex": event.apex + 1,
                  "offset": event.offset + 1}
        if event.kind == "head_turn":
            record.update(turns[index])
        else:
            layer, extra = _nuisance_layer(cfg, subject, event, fields)
            layers.append(layer)
            record.update(extra)
        others.append(record)
    folder.mkdir(parents=True, exist_ok=True)
    noise_rng = _rng(cfg.seed, 6, *key)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    for i, face in enumerate(layered_frames(subject, layers, nuisance)):
        frame = finish(face, float(nuisance.gain[i]), subject.noise_sigma, noise_rng)
        ok, buffer = cv2.imencode(".jpg", frame, params)
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
            raise RuntimeError(f"OpenCV failed to encode frame {i + 1} of {folder}")
        (folder / f"img{i + 1}.jpg").write_bytes(buffer.tobytes())
    return {
        "participant": plan.participant,
        "subject": f"s{FIRST_SUBJECT_FOLDER + plan.participant - 1}",
        "folder": plan.folder,
        "name": plan.name,
        "code": plan.code,
        "first_frame": 1,
        "n_frames": cfg.n_frames,
        "expressions": [{"name": f"{plan.name}_{k}", **t} for k, t in enumerate(truth, 1)],
        "nuisances": others,
    }


def _write_annotation(path: Path, videos: list[dict[str, Any]]) -> None:
    """The CAS(ME)^2 annotation workbook: the headerless first sheet and the naming rules."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for video in videos:
        for e in video["expressions"]:
            kind = "micro-expression" if e["kind"] == "micro" else "macro-expression"
            sheet.append([video["participant"], e["name"], e["onset"], e["apex"], e["offset"],
                          e["action_units"], e["estimated_emotion"], kind, e["emotion"]])
    rule1 = book.create_sheet("naming rule1")
    for participant in sorted({v["participant"] for v in videos}):
        number = FIRST_SUBJECT_FOLDER + participant - 1
        rule1.append([number, f"s{number}", participant])
    rule2 = book.create_sheet("naming rule2")
    for name, code, _, _ in VIDEOS:
        rule2.append([code, name])  # the code as text: '0101'
    book.save(path)


def _config_dict(cfg: LongSynthConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _is_complete(root: Path, cfg: LongSynthConfig) -> bool:
    """True when `root` holds a finished database of this version made from `cfg`."""
    try:
        meta = json.loads((root / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    if meta.get("version") != GENERATOR_VERSION or meta.get("config") != _config_dict(cfg):
        return False
    if not (root / ANNOTATION_FILE).is_file():
        return False
    for video in meta.get("videos", []):
        folder = root / FRAMES_DIR / video["subject"] / video["folder"]
        if not all((folder / f"img{i}.jpg").is_file() for i in range(1, video["n_frames"] + 1)):
            return False
    return len(meta.get("videos", [])) == cfg.subjects * cfg.videos_per_subject


def _remove_stale_partials(root: Path) -> None:
    """Delete work folders of interrupted runs (whose process no longer exists)."""
    for folder in root.glob(f"{_PARTIAL_PREFIX}*.partial"):
        pid = folder.name[len(_PARTIAL_PREFIX):-len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(folder, ignore_errors=True)


def write_long_videos(out_dir: str | os.PathLike[str], config: LongSynthConfig) -> Path:
    """Write the database `config` describes into `out_dir` (see `synthesize_long`).

    It is built in a work folder inside `out_dir` and moved into place when complete, the
    metadata file last; other files of `out_dir` are left alone.
    """
    if not isinstance(config, LongSynthConfig):
        raise ConfigError(f"config must be a LongSynthConfig, got {type(config).__name__}")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"out_dir {root} exists and is not a folder; give a folder path")
    if _is_complete(root, config):
        return root
    theirs = [n for n in (FRAMES_DIR, ANNOTATION_FILE) if (root / n).exists()]
    if theirs and not (root / METADATA_FILE).exists():
        raise ConfigError(f"{root} already holds {' and '.join(theirs)} that synthesize_long "
                          f"did not write (no {METADATA_FILE}); choose an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    work = root / f"{_PARTIAL_PREFIX}{os.getpid()}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        videos, subjects = [], {}
        for participant in range(1, config.subjects + 1):
            subject = make_subject(_rng(config.seed, 1, participant), config.size, config.noise)
            name = f"s{FIRST_SUBJECT_FOLDER + participant - 1}"
            subjects[name] = {
                "participant": participant,
                "landmarks": {k: [round(x, 3), round(y, 3)]
                              for k, (x, y) in subject.landmarks.items()},
                "inter_ocular_px": round(subject.iod, 3),
            }
            for plan in _plan_videos(config, participant):
                folder = work / FRAMES_DIR / name / plan.folder
                videos.append(_write_video(config, subject, plan, folder))
        _write_annotation(work / ANNOTATION_FILE, videos)
        meta = {
            "generator": "microexpr.synth.long_video",
            "version": GENERATOR_VERSION,
            "config": _config_dict(config),
            "layout": {"frames": f"{FRAMES_DIR}/s<N>/<N>_<code><name>/img<n>.jpg",
                       "annotation": ANNOTATION_FILE},
            "frames": "1-based frame numbers, inclusive bounds, as in the annotation",
            "subjects": subjects,
            "videos": videos,
        }
        (work / METADATA_FILE).write_text(json.dumps(meta, indent=1))
        (root / METADATA_FILE).unlink(missing_ok=True)
        if (root / FRAMES_DIR).exists():
            shutil.rmtree(root / FRAMES_DIR)
        os.replace(work / FRAMES_DIR, root / FRAMES_DIR)
        os.replace(work / ANNOTATION_FILE, root / ANNOTATION_FILE)
        os.replace(work / METADATA_FILE, root / METADATA_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root
