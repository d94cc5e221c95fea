"""The representation registry and config handling (configs are frozen dataclasses)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import numpy as np

from microexpr.errors import ConfigError

# Nested config fields shared by the frame-based representations, built lazily (their modules
# pull in face models and filters that a plain flow run does not need).
NESTED_CONFIGS = {
    "align": ("microexpr.preprocess.align", "AlignConfig"),
    "magnify": ("microexpr.preprocess.magnify", "MagnifyConfig"),
}


@dataclass(frozen=True)
class Representation:
    """A named pure function (clip, config) -> array, its config class and the files it reads.

    `files(clip, config)` lists the frame files the result depends on: their bytes and the
    config make the cache key, so the entry is recomputed only when either changes.
    `channels(config)` names the entries of the result's last axis (e.g. ("u", "v", "strain"));
    None when a representation registered elsewhere does not say.
    """

    name: str
    config_class: type
    compute: Callable[[Mapping[str, Any], Any], np.ndarray]
    files: Callable[[Mapping[str, Any], Any], list[str]]
    version: int
    description: str
    channels: Callable[[Any], tuple[str, ...]] | None = None


REPRESENTATIONS: dict[str, Representation] = {}


def register_representation(rep: Representation) -> Representation:
    if rep.name in REPRESENTATIONS:
        raise ValueError(f"representation {rep.name!r} is registered twice")
    REPRESENTATIONS[rep.name] = rep
    return rep


def get_representation(name: str) -> Representation:
    """The registered representation `name`; ConfigError listing the known ones."""
    if name not in REPRESENTATIONS:
        raise ConfigError(f"unknown representation {name!r}; choose one of "
                          f"{sorted(REPRESENTATIONS)}")
    return REPRESENTATIONS[name]


def nested_class(field_name: str) -> type:
    module, cls = NESTED_CONFIGS[field_name]
    return getattr(importlib.import_module(module), cls)


def _coerce(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for {where}; valid: {sorted(known)}")
    converted = {}
    for key, value in values.items():
        if key in NESTED_CONFIGS and value is not None and not is_dataclass(value):
            if value is True:
                value = nested_class(key)()
            elif value is False:
                value = None
            elif isinstance(value, Mapping):
                value = _coerce(nested_class(key), value, f"{where}.{key}")
            else:
                raise ConfigError(f"{where}.{key} must be true/false or a mapping of options, "
                                  f"got {value!r}")
        elif isinstance(value, list):
            value = tuple(value)
        converted[key] = value
    try:
        return cls(**converted)
    except TypeError as exc:
        raise ConfigError(f"invalid options for {where}: {exc}") from exc


def make_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The config of representation `name` from None, a dict (nested dicts for `align` and
    `magnify`, or true for their defaults) or a config object, plus overrides."""
    cls = get_representation(name).config_class
    if config is None:
        config = cls()
    elif isinstance(config, Mapping):
        config = _coerce(cls, config, f"representation {name}")
    elif not isinstance(config, cls):
        raise ConfigError(f"representation {name} takes a {cls.__name__} or a dict, got "
                          f"{type(config).__name__}")
    if overrides:
        config = _coerce(cls, {**_shallow(config), **overrides}, f"representation {name}")
    return config


def _shallow(config: Any) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def with_size(config: Any, size: int) -> Any:
    """A copy of an AlignConfig with its output size set to the representation's size."""
    return replace(config, size=size)


def set_option(options: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set 'align.backend=haar'-style options into a nested dict (for the command line)."""
    head, _, rest = dotted.partition(".")
    if not rest:
        options[head] = value
        return options
    current = options.get(head)
    options[head] = set_option(dict(current) if isinstance(current, Mapping) else {}, rest,
                               value)
    return options
