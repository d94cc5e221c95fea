"""Representations: pure functions clip -> array, each with a config that is part of its cache key.

`compute_representation(clips, name, config)` returns an N x H x W x C float32 array for a
clips table, reading from and writing to the on-disk cache, optionally in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr.errors import ConfigError, DatasetError
from microexpr.parallel import make_executor
from microexpr.preprocess.cache import ArrayCache, cache_key, default_cache_dir
from microexpr.preprocess.flow import FLOW_METHODS, optical_flow, optical_strain
from microexpr.preprocess.frames_io import read_gray, resize
from microexpr.progress import track

FLOW_CHANNELS = ("u", "v", "strain", "magnitude")


@dataclass(frozen=True)
class FlowConfig:
    """Onset -> apex optical flow: method, working resolution, output size and channels.

    Frames are resized to `compute_size` x `compute_size` before the flow is computed (flow
    values are in pixels at that resolution); the channels are then area-averaged down to
    `size` x `size`.
    """

    method: str = "tvl1"
    compute_size: int = 128
    size: int = 28
    channels: tuple[str, ...] = ("u", "v", "strain")

    def __post_init__(self) -> None:
        if self.method not in FLOW_METHODS:
            raise ConfigError(f"flow method {self.method!r} is unknown; use one of "
                              f"{FLOW_METHODS}")
        if self.size < 4 or self.compute_size < self.size:
            raise ConfigError(f"need 4 <= size <= compute_size, got size={self.size}, "
                              f"compute_size={self.compute_size}")
        bad = [c for c in self.channels if c not in FLOW_CHANNELS]
        if bad or not self.channels:
            raise ConfigError(f"flow channels {bad or '()'} are unknown; use some of "
                              f"{FLOW_CHANNELS}")


def _frame_file(clip: Mapping[str, Any], number: int) -> str:
    numbers = list(clip["frame_numbers"])
    try:
        return clip["frames"][numbers.index(int(number))]
    except ValueError:
        raise DatasetError(
            f"clip {clip['dataset']}/{clip['clip']} has no frame {number} on disk "
            f"(frames {numbers[0]}..{numbers[-1]})"
        ) from None


def onset_apex_files(clip: Mapping[str, Any], config: FlowConfig) -> list[str]:
    return [_frame_file(clip, clip["onset"]), _frame_file(clip, clip["apex"])]


def onset_apex_flow(clip: Mapping[str, Any], config: FlowConfig) -> np.ndarray:
    """Optical flow (u, v), strain and/or magnitude from the onset to the apex frame."""
    onset_file, apex_file = onset_apex_files(clip, config)
    onset = resize(read_gray(onset_file), config.compute_size)
    apex = resize(read_gray(apex_file), config.compute_size)
    flow = optical_flow(onset, apex, config.method)
    maps = {
        "u": flow[..., 0],
        "v": flow[..., 1],
        "strain": optical_strain(flow) if "strain" in config.channels else None,
        "magnitude": np.hypot(flow[..., 0], flow[..., 1]),
    }
    stacked = np.stack([maps[c] for c in config.channels], axis=-1)
    return resize(stacked, config.size).reshape(config.size, config.size, -1).astype(np.float32)


@dataclass(frozen=True)
class Representation:
    """A named clip -> array function, its config class and the files it reads."""

    name: str
    config_class: type
    compute: Callable[[Mapping[str, Any], Any], np.ndarray]
    files: Callable[[Mapping[str, Any], Any], list[str]]
    version: int
    description: str


REPRESENTATIONS: dict[str, Representation] = {
    "onset_apex_flow": Representation(
        name="onset_apex_flow", config_class=FlowConfig, compute=onset_apex_flow,
        files=onset_apex_files, version=1,
        description="optical flow u, v and optical strain from onset to apex, resized",
    ),
}


def get_representation(name: str) -> Representation:
    if name not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {name!r}; choose one of "
                          f"{sorted(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config object of representation `name` from None, a dict or a config, plus overrides."""
    cls = get_representation(name).config_class
    if config is None:
        config = cls()
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for representation {name}; valid: "
                              f"{sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        config = cls(**values)
    return replace(config, **overrides) if overrides else config


def _compute_one(shared: tuple[str, Any, str | None], clip: dict) -> np.ndarray:
    name, config, cache_root = shared
    rep = get_representation(name)
    cache = ArrayCache(cache_root)
    key = cache_key(f"{name}/v{rep.version}", asdict(config), rep.files(clip, config))
    array = cache.get(name, key)
    if array is None:
        array = rep.compute(clip, config)
        cache.put(name, key, array)
    return array


def compute_representation(
    clips: pd.DataFrame,
    name: str = "onset_apex_flow",
    config: Any = None,
    *,
    cache_dir: str | Path | None | bool = True,
    jobs: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Compute (or read from the cache) representation `name` for every clip: N x H x W x C.

    `cache_dir=True` uses the default cache folder, a path uses that folder, None/False turns
    the cache off. Each clip's entry is written as soon as it is computed, so an interrupted
    run resumes where it stopped and a changed config makes new entries.
    """
    config = make_config(name, config)
    if cache_dir is True:
        cache_root: str | None = str(default_cache_dir())
    elif cache_dir in (None, False):
        cache_root = None
    else:
        cache_root = str(Path(cache_dir).expanduser())
    records = clips.to_dict("records")
    if not records:
        raise ConfigError("no clips to compute a representation for")
    results: list[np.ndarray | None] = [None] * len(records)
    executor = make_executor(jobs)
    stream = executor.map(_compute_one, records, shared=(name, config, cache_root))
    for index, array in track(stream, len(records), f"{name}", enabled=progress):
        results[index] = array
    return np.stack(results)  # type: ignore[arg-type]
