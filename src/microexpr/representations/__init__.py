"""Representations: pure functions (clip, config) -> array, cached on disk by a key built from
the clip's files and the config.

`prepare_representation` computes one for every clip of a clips table (in parallel worker
processes if asked), resumes where an interrupted run stopped, and reports per clip what
failed (no face, unreadable frame) without losing what was computed. `compute_representation`
is the same returning the stacked array and raising on the first failure.
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
from microexpr.representations.flow import FlowConfig, onset_apex_flow
from microexpr.representations.frames import Context
from microexpr.representations.landmarks import LandmarkConfig, RegionConfig


def _load_builtin_representations() -> None:
    """Import every module of this package: each representation registers itself."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_builtin_representations()

__all__ = [
    "REPRESENTATIONS", "ApexConfig", "ClipConfig", "DynamicConfig", "FlowConfig",
    "LandmarkConfig", "PrepareReport", "RegionConfig", "Representation",
    "compute_representation", "get_representation", "list_representations", "make_config",
    "onset_apex_flow", "prepare_representation", "register_representation", "set_option",
]


@dataclass
class PrepareReport:
    """What `prepare_representation` did: arrays (None where a clip failed) and a summary."""

    name: str
    config: Any
    arrays: list[np.ndarray | None]
    computed: int = 0
    cached: int = 0
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["dataset", "clip", "kind", "error"]))
    warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["dataset", "clip", "warning"]))
    cache_dir: str | None = None

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


def list_representations() -> pd.DataFrame:
    """The registered representations with their default config."""
    return pd.DataFrame([{"name": r.name, "description": r.description,
                          "defaults": asdict(r.config_class())}
                         for r in REPRESENTATIONS.values()])


def _resolve_cache(cache_dir: str | Path | None | bool) -> str | None:
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
    try:
        key = cache_key(f"{name}/v{rep.version}", asdict(config), rep.files(clip, config))
        array = context.cache.get(name, key)
        if array is not None:
            meta = context.cache.get_meta(name, key) or {}
            return array, True, None, list(meta.get("warnings", []))
        array = rep.compute(clip, config, context)
        context.cache.put(name, key, array, meta={"warnings": context.warnings})
        return array, False, None, context.warnings
    except MicroexprError as exc:
        return None, False, (type(exc).__name__, str(exc)), context.warnings
    except OSError as exc:
        message = f"cannot read {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        return None, False, ("DatasetError", message), context.warnings


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
    cache_root = _resolve_cache(cache_dir)
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
    failures = [{"dataset": r["dataset"], "clip": r["clip"], "kind": e[0], "error": e[1]}
                for r, e in zip(records, errors, strict=True) if e is not None]
    warnings = [{"dataset": r["dataset"], "clip": r["clip"], "warning": w}
                for r, clip_notes in zip(records, notes, strict=True) for w in clip_notes]
    if failures:
        report.failures = pd.DataFrame(failures)
    if warnings:
        report.warnings = pd.DataFrame(warnings)
    return report


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
        raise error_type(f"{len(report.failures)} clip(s) failed; first: {first['dataset']}/"
                         f"{first['clip']}: {first['error']}")
    return report.stacked()
