"""Representations: pure functions (clip, config) -> array, cached on disk by a key built from
the clip's files and the config.

`prepare_representation` computes one for every clip of a clips table (in parallel worker
processes if asked), resumes where an interrupted run stopped, and reports per clip what
failed (no face, unreadable frame) without losing what was computed. `compute_representation`
is the same returning the stacked array and raising on the first failure. `channel_names`
names the last axis of a representation's arrays, `resize_inputs` brings prepared arrays to a
model's input size and `check_frames` decodes every frame a representation will read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr import errors
from microexpr.errors import ConfigError, MicroexprError
from microexpr.parallel import make_executor
from microexpr.preprocess.cache import ArrayCache, cache_key, default_cache_dir
from microexpr.progress import track
from microexpr.representations.appearance import ApexConfig, ClipConfig, DynamicConfig
from microexpr.representations.base import (
    REPRESENTATIONS,
    Representation,
    get_representation,
    make_config,
    register_representation,
    set_option,
)
from microexpr.representations.check import check_frames
from microexpr.representations.flow import FlowConfig, onset_apex_flow
from microexpr.representations.frames import Context
from microexpr.representations.landmarks import LandmarkConfig, RegionConfig
from microexpr.representations.resize import resize_inputs


def _load_builtin_representations() -> None:
    """Import every module of this package: each representation registers itself."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_builtin_representations()

__all__ = [
    "REPRESENTATIONS", "ApexConfig", "ClipConfig", "DynamicConfig", "FlowConfig",
    "LandmarkConfig", "PrepareReport", "RegionConfig", "Representation", "channel_names",
    "check_frames", "compute_representation", "get_representation", "list_representations",
    "make_config", "onset_apex_flow", "prepare_representation", "register_representation",
    "resize_inputs", "set_option",
]

FAILURE_COLUMNS = ("dataset", "subject", "clip", "kind", "error")
WARNING_COLUMNS = ("dataset", "subject", "clip", "warning")


def channel_names(name: str, config: Any = None) -> tuple[str, ...]:
    """Names of the last axis of representation `name`'s arrays under `config` (None, a dict
    or a config object), e.g. ("u", "v", "strain"); ConfigError when it does not name them."""
    rep = get_representation(name)
    if rep.channels is None:
        raise ConfigError(f"representation {name} does not name its channels; register it "
                          f"with Representation(..., channels=fn(config) -> names)")
    return tuple(rep.channels(make_config(name, config)))


@dataclass
class PrepareReport:
    """What `prepare_representation` did: arrays (None where a clip failed) and a summary.

    `failures` and `warnings` name each clip by dataset, subject and clip (clip names repeat
    across subjects in real releases); `channels` names the arrays' last axis.
    """

    name: str
    config: Any
    arrays: list[np.ndarray | None]
    computed: int = 0
    cached: int = 0
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(FAILURE_COLUMNS)))
    warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(WARNING_COLUMNS)))
    cache_dir: str | None = None
    channels: tuple[str, ...] = ()

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the clips that have an array."""
        return np.array([a is not None for a in self.arrays], dtype=bool)

    def stacked(self) -> np.ndarray:
        """The arrays of the clips that succeeded, stacked (N_ok x ...)."""
        arrays = [a for a in self.arrays if a is not None]
        if not arrays:
            raise ConfigError(f"no clip could be prepared for {self.name}; first failure: "
                              f"{self.failures['error'].iloc[0] if len(self.failures) else '?'}")
        return np.stack(arrays)

    def summary(self) -> str:
        return (f"{self.name}: {len(self.arrays)} clips, {self.computed} computed, "
                f"{self.cached} from the cache, {len(self.failures)} failed, "
                f"{len(self.warnings)} warnings (cache: {self.cache_dir or 'off'})")

    def summary_of_failures(self, limit: int = 3) -> str:
        """"N of M clips failed for <name>: ..." with the first `limit` failures (dataset,
        subject, clip and reason) and how many more; "" when no clip failed."""
        if not len(self.failures):
            return ""
        shown = [f"{_clip_id(row['dataset'], row['subject'], row['clip'])}: {row['error']}"
                 for row in self.failures.head(max(limit, 0)).to_dict("records")]
        more = len(self.failures) - len(shown)
        tail = f"; ... and {more} more" if more > 0 and shown else ""
        head = (f"{len(self.failures)} of {len(self.arrays)} clips failed for {self.name} "
                f"and were left out")
        return head + (": " + "; ".join(shown) if shown else "") + tail


def _clip_id(dataset: Any, subject: Any, clip: Any) -> str:
    """dataset/clip, with the subject added when the clip name does not already hold it."""
    subject, clip = str(subject).rsplit("/", 1)[-1], str(clip)
    named = not subject or clip.split("/")[0] == subject
    return f"{dataset}/{clip}" if named else f"{dataset}/{subject}/{clip}"


def list_representations() -> pd.DataFrame:
    """The registered representations with their default config."""
    return pd.DataFrame([{"name": r.name, "description": r.description,
                          "defaults": asdict(r.config_class())}
                         for r in REPRESENTATIONS.values()])


def resolve_cache(cache_dir: str | Path | None | bool) -> str | None:
    """The cache folder that `cache_dir` means: True the default, None / False none."""
    if cache_dir is True:
        return str(default_cache_dir())
    if cache_dir in (None, False):
        return None
    return str(Path(cache_dir).expanduser())


def _prepare_one(shared: tuple[str, Any, str | None], clip: dict
                 ) -> tuple[np.ndarray | None, bool, tuple[str, str] | None, list[str]]:
    """(array or None, from cache?, (error type, message) or None, warnings) for one clip."""
    name, config, cache_root = shared
    rep = get_representation(name)
    context = Context(cache=ArrayCache(cache_root))
    notes: list[str] = []  # this run's notes only: never stored with the entry

    def rejected() -> list[str]:
        return [f"cache entry {path} was corrupt ({reason}); recomputed"
                for path, reason in context.cache.take_rejected()]

    try:
        key = cache_key(f"{name}/v{rep.version}", asdict(config), rep.files(clip, config))
        array = context.cache.get(name, key)
        notes += rejected()
        if array is not None:
            meta = context.cache.get_meta(name, key) or {}
            return array, True, None, notes + list(meta.get("warnings", []))
        array = rep.compute(clip, config, context)
        notes += rejected()  # e.g. a bad alignment entry read through the same cache
        context.cache.put(name, key, array, meta={"warnings": context.warnings})
        return array, False, None, notes + context.warnings
    except MicroexprError as exc:
        return None, False, (type(exc).__name__, str(exc)), notes + context.warnings
    except OSError as exc:
        message = f"cannot read {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        return None, False, ("DatasetError", message), notes + context.warnings


def prepare_representation(
    clips: pd.DataFrame,
    name: str = "onset_apex_flow",
    config: Any = None,
    *,
    cache_dir: str | Path | None | bool = True,
    jobs: int = 1,
    progress: bool = True,
) -> PrepareReport:
    """Compute (or read from the cache) representation `name` for every clip.

    `cache_dir=True` uses the default cache folder ($MICROEXPR_CACHE or ~/.cache/microexpr), a
    path uses that folder, None/False turns the cache off. Each clip's entry is written
    atomically as soon as it is computed, so an interrupted run resumes where it stopped and a
    changed config makes new entries. A clip that fails (no face, unreadable frame) is
    reported in `failures`; the others go on.
    """
    config = make_config(name, config)
    cache_root = resolve_cache(cache_dir)
    records = clips.to_dict("records")
    if not records:
        raise ConfigError("no clips to compute a representation for")
    report = PrepareReport(name=name, config=config, arrays=[None] * len(records),
                           cache_dir=cache_root)
    errors: list[tuple[str, str] | None] = [None] * len(records)
    notes: list[list[str]] = [[] for _ in records]
    stream = make_executor(jobs).map(_prepare_one, records, shared=(name, config, cache_root))
    for index, (array, cached, error, warnings) in track(stream, len(records), name,
                                                         progress):
        report.arrays[index], errors[index], notes[index] = array, error, warnings
        if error is None:
            report.cached += int(cached)
            report.computed += int(not cached)
    # reported in the clips' order, whatever order the workers finished in
    failures = [{**_identity(r), "kind": e[0], "error": e[1]}
                for r, e in zip(records, errors, strict=True) if e is not None]
    warnings = [{**_identity(r), "warning": w}
                for r, clip_notes in zip(records, notes, strict=True) for w in clip_notes]
    if failures:
        report.failures = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    if warnings:
        report.warnings = pd.DataFrame(warnings, columns=list(WARNING_COLUMNS))
    report.channels = _channels_of(get_representation(name), config, report.arrays)
    return report


def _identity(record: dict) -> dict[str, Any]:
    """What names a clip: dataset, subject and clip (a clips table without a subject column,
    e.g. one built by hand, gets "")."""
    return {"dataset": record["dataset"], "subject": record.get("subject", ""),
            "clip": record["clip"]}


def _channels_of(rep: Representation, config: Any, arrays: list[np.ndarray | None]
                 ) -> tuple[str, ...]:
    """The representation's channel names, or channel0.. from the first array's last axis
    when it does not name them."""
    if rep.channels is not None:
        return tuple(rep.channels(config))
    first = next((a for a in arrays if a is not None), None)
    return () if first is None else tuple(f"channel{k}" for k in range(first.shape[-1]))


def compute_representation(
    clips: pd.DataFrame,
    name: str = "onset_apex_flow",
    config: Any = None,
    *,
    cache_dir: str | Path | None | bool = True,
    jobs: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Representation `name` for every clip, stacked: N x ...; raises on the first failure
    (after every other clip was computed and cached)."""
    report = prepare_representation(clips, name, config, cache_dir=cache_dir, jobs=jobs,
                                    progress=progress)
    if len(report.failures):
        first = report.failures.iloc[0]
        error_type = getattr(errors, first["kind"], MicroexprError)
        raise error_type(f"{len(report.failures)} clip(s) failed; first: "
                         f"{_clip_id(first['dataset'], first['subject'], first['clip'])}: "
                         f"{first['error']}")
    return report.stacked()
