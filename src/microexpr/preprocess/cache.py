"""The on-disk cache of computed arrays: content-addressed keys, verified entries, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

CACHE_ENV = "MICROEXPR_CACHE"
ENTRY_FORMAT = 2
_RECORD = "_array"  # the key of the integrity record in an entry's JSON metadata


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


def array_digest(array: np.ndarray) -> str:
    """BLAKE2b of an array's bytes in C order (about 1 GB/s: small next to computing it)."""
    return hashlib.blake2b(np.ascontiguousarray(array).data, digest_size=20).hexdigest()


class ArrayCache:
    """Arrays stored as .npy files under `root/namespace/ab/abcdef....npy`, each with a .json.

    The .json holds the caller's metadata (e.g. `{"warnings": [...]}`, see `get_meta`) and an
    integrity record (shape, dtype, BLAKE2b of the bytes) that `get` checks. A bad entry (bytes
    changed, wrong shape or dtype, unreadable, record missing) is a miss: it is removed and
    `(path, reason)` is appended to `self.rejected`, so that the caller can report it, e.g.
    `for path, reason in cache.take_rejected(): warn(f"cache entry {path} was corrupt
    ({reason}); recomputed")`. Entries of the previous format (metadata without a record) are
    removed and recomputed without a report.

    Writes go to a temporary file in the same folder and are renamed into place, so a killed
    process never leaves a half-written entry that a later run would read. Files and folders
    are created with the usual permissions (0666 / 0777 less the umask), so a group can share
    a cache. `root=None` disables the cache (nothing is read or written).
    """

    def __init__(self, root: str | Path | None):
        self.root = Path(root).expanduser() if root is not None else None
        self.rejected: list[tuple[str, str]] = []

    def _path(self, namespace: str, key: str) -> Path:
        assert self.root is not None
        return self.root / namespace / key[:2] / f"{key}.npy"

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        """The entry's array, or None when absent or bad (see the class docstring)."""
        if self.root is None:
            return None
        path = self._path(namespace, key)
        if not path.is_file():
            return None
        meta = _read_json(path.with_suffix(".json"))
        record = meta.get(_RECORD) if isinstance(meta, dict) else None
        if isinstance(meta, dict) and record is None:  # written before entries were verified
            self._remove(path)
            return None
        if not isinstance(record, dict):
            return self._reject(path, "its metadata file is missing or unreadable")
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is a miss
            return self._reject(path, f"unreadable: {type(exc).__name__}: {exc}")
        if not isinstance(array, np.ndarray):
            return self._reject(path, "not a single array")
        if list(array.shape) != record.get("shape"):
            return self._reject(path, f"shape {tuple(array.shape)}, expected "
                                      f"{tuple(record.get('shape') or ())}")
        if array.dtype.str != record.get("dtype"):
            return self._reject(path, f"dtype {array.dtype.str}, expected {record.get('dtype')}")
        if array_digest(array) != record.get("blake2b"):
            return self._reject(path, "content hash mismatch")
        return array

    def take_rejected(self) -> list[tuple[str, str]]:
        """The (path, reason) of the bad entries found since the last call, then forget them."""
        rejected, self.rejected = self.rejected, []
        return rejected

    def get_meta(self, namespace: str, key: str) -> dict | None:
        """The JSON metadata stored with an entry (warnings, ...), or None."""
        if self.root is None:
            return None
        meta = _read_json(self._path(namespace, key).with_suffix(".json"))
        if not isinstance(meta, dict):
            return None
        return {k: v for k, v in meta.items() if k != _RECORD}

    def put(self, namespace: str, key: str, array: np.ndarray, meta: dict | None = None
            ) -> None:
        """Store an entry and its JSON metadata (written first: the .npy marks it done)."""
        if self.root is None:
            return
        array = np.ascontiguousarray(array)
        path = self._path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"format": ENTRY_FORMAT, "shape": list(array.shape),
                  "dtype": array.dtype.str, "blake2b": array_digest(array)}
        payload = json.dumps({**(meta or {}), _RECORD: record}).encode()
        self._atomic_write(path.with_suffix(".json"), lambda handle: handle.write(payload))
        self._atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))

    def _reject(self, path: Path, reason: str) -> None:
        self._remove(path)
        self.rejected.append((str(path), reason))
        return None

    @staticmethod
    def _remove(path: Path) -> None:
        for stale in (path, path.with_suffix(".json")):
            # e.g. a shared cache we may read but not write: still a miss
            with contextlib.suppress(OSError):
                stale.unlink(missing_ok=True)

    @staticmethod
    def _atomic_write(path: Path, write) -> None:
        tmp = path.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}{path.suffix}"
        # os.open with 0o666 lets the umask decide (mkstemp would make it 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def __contains__(self, item: tuple[str, str]) -> bool:
        return self.root is not None and self._path(*item).is_file()


def _read_json(path: Path) -> object:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
