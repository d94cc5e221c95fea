"""The adapter registry: one loader per database, looked up by name in `load_dataset`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from microexpr.data.clips import Dataset
from microexpr.errors import ConfigError, DatasetError

Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class AdapterInfo:
    """A registered database adapter: its name, what it reads, and the loader function."""

    name: str
    title: str
    fps: float
    description: str
    loader: Loader
    aliases: tuple[str, ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        """Keyword options the loader takes besides `root` and `namespace`."""
        parameters = inspect.signature(self.loader).parameters
        return tuple(
            name for name, p in parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "namespace"
        )


ADAPTERS: dict[str, AdapterInfo] = {}
# Other names users call a database by (`ck+`, `cohn-kanade`) -> the registered adapter name.
ALIASES: dict[str, str] = {}


def register_adapter(
    name: str, title: str, fps: float, description: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[Loader], Loader]:
    """Decorator registering `loader(root, *, namespace, ...) -> Dataset` under `name`.

    `aliases` are other (lower-case) names `get_adapter` accepts for it, such as `ck+`.
    """

    def decorate(loader: Loader) -> Loader:
        if name in ADAPTERS and ADAPTERS[name].loader is not loader:
            raise ValueError(f"adapter {name!r} is registered twice")
        if name in ALIASES:
            raise ValueError(f"adapter name {name!r} is already an alias of {ALIASES[name]!r}")
        for alias in aliases:
            if alias != alias.strip().lower() or alias in ADAPTERS or ALIASES.get(
                    alias, name) != name:
                raise ValueError(f"alias {alias!r} of adapter {name!r} is not a free lower-case "
                                 f"name")
        ADAPTERS[name] = AdapterInfo(name, title, float(fps), description, loader,
                                     tuple(aliases))
        ALIASES.update({alias: name for alias in aliases})
        return loader

    return decorate


def list_adapters() -> list[AdapterInfo]:
    """The registered adapters, sorted by name."""
    return [ADAPTERS[name] for name in sorted(ADAPTERS)]


def list_datasets() -> pd.DataFrame:
    """The supported databases: name, title, fps, options and the label schemes for each."""
    from microexpr.data.labels import SCHEMES

    rows = []
    for info in list_adapters():
        schemes = [s.name for s in SCHEMES.values() if info.name in s.mapping]
        also = f" (also called {', '.join(info.aliases)})" if info.aliases else ""
        rows.append({"name": info.name, "title": info.title, "fps": info.fps,
                     "label schemes": ", ".join([*schemes, "emotion"]),
                     "options": ", ".join(info.options), "reads": info.description + also})
    return pd.DataFrame(rows)


def get_adapter(name: str) -> AdapterInfo:
    """The adapter called `name` or one of its aliases (case-insensitive, `ck+` -> ckplus);
    DatasetError listing the known ones."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ADAPTERS:
        known = ", ".join(sorted(ADAPTERS))
        aliases = ", ".join(f"{alias} ({target})" for alias, target in sorted(ALIASES.items()))
        also = f"; aliases: {aliases}" if aliases else ""
        raise DatasetError(f"unknown database format {name!r}; known formats: {known}{also}")
    return ADAPTERS[key]


def load_dataset(
    name: str,
    root: str | Path,
    *,
    namespace: str | None = None,
    labels: str | None = None,
    **options: Any,
) -> Dataset:
    """Read the database `name` unpacked at `root` into a Dataset (clips + problems).

    `namespace` prefixes subject ids (default: the adapter name), `labels` applies a label
    scheme, and `options` go to the adapter (e.g. `variant="raw"` for casme2).
    """
    adapter = get_adapter(name)
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise DatasetError(
            f"{adapter.title} folder {path} does not exist or is not a folder; pass the folder "
            f"where the database was unpacked"
        )
    prefix = adapter.name if namespace is None else namespace.strip()
    if not prefix or "/" in prefix:
        raise ConfigError(f"namespace {namespace!r} must be a non-empty name without '/'; it "
                          f"prefixes subject ids ('{adapter.name}/sub01')")
    unknown = sorted(set(options) - set(adapter.options))
    if unknown:
        accepted = ", ".join(adapter.options) or "none"
        raise ConfigError(
            f"{adapter.name} does not take the option(s) {', '.join(unknown)}; it accepts: "
            f"{accepted}"
        )
    dataset = adapter.loader(path, namespace=prefix, **options)
    if labels is not None:
        dataset = dataset.with_labels(labels)
    return dataset
