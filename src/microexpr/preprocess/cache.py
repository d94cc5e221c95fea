"""The on-disk cache of computed arrays: content-addressed keys, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

CACHE_ENV = "MICROEXPR_CACHE"


def default_cache_dir() -> Path:
    """$MICROEXPR_CACHE, else ~/.cache/microexpr."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "microexpr"


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes, so that a copied or touched database keeps its cache."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(namespace: str, config: Mapping, files: Iterable[str | Path]) -> str:
    """A key from what an entry depends on: its kind, its config and its input files' bytes."""
    payload = json.dumps(
        {"namespace": namespace, "config": dict(config),
         "files": [file_digest(f) for f in files]},
        sort_keys=True, default=str,
    )
    return hashlib.sha1(payload.encode()).hexdigest()


class ArrayCache:
    """Arrays stored as .npy files under `root/namespace/ab/abcdef....npy`.

    Writes go to a temporary file in the same folder and are renamed into place, so a killed
    process never leaves a half-written entry that a later run would read. `root=None`
    disables the cache (nothing is read or written).
    """

    def __init__(self, root: str | Path | None):
        self.root = Path(root).expanduser() if root is not None else None

    def _path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npy"

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        if self.root is None:
            return None
        path = self._path(namespace, key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)  # unreadable entry (e.g. disk error): recompute it
            return None

    def get_meta(self, namespace: str, key: str) -> dict | None:
        """The JSON metadata stored with an entry (warnings, ...), or None."""
        if self.root is None:
            return None
        path = self._path(namespace, key).with_suffix(".json")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def put(self, namespace: str, key: str, array: np.ndarray, meta: dict | None = None
            ) -> None:
        """Store an entry (and optional JSON metadata, written first: the .npy marks it done)."""
        if self.root is None:
            return
        path = self._path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if meta is not None:
            self._atomic_write(path.with_suffix(".json"),
                               lambda handle: handle.write(json.dumps(meta).encode()))
        self._atomic_write(path, lambda handle: np.save(handle, np.ascontiguousarray(array),
                                                        allow_pickle=False))

    @staticmethod
    def _atomic_write(path: Path, write) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __contains__(self, item: tuple[str, str]) -> bool:
        return self.root is not None and self._path(*item).is_file()
