"""Saved models: the one writer and the one reader of microexpr's model files.

A torch model is a `torch.save` archive {"meta": JSON text, "state_dict", "arrays"} (version
2; version 1 files, which kept "mean" / "std" at the top level, are read too); a
scikit-learn model a pickle {"format", "meta", "estimator"}. Files are written to a
temporary name beside the target and renamed, so an interrupted save never leaves a
half-written model behind.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from microexpr.errors import ConfigError

TORCH_VERSION = 2
SKLEARN_FORMAT = "microexpr-sklearn-1"


@dataclass
class Checkpoint:
    """A saved model as read back: its kind ("torch" / "sklearn"), metadata (model name,
    classes, params, ...), and the torch weights and arrays or the fitted estimator."""

    kind: str
    meta: dict[str, Any]
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    estimator: Any = None


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Write `path` through `write(stream)` into a temporary file beside it, then rename it
    into place: readers see the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_checkpoint(path: str | Path, meta: Mapping[str, Any],
                     state_dict: Mapping[str, torch.Tensor] | None = None,
                     arrays: Mapping[str, Any] | None = None, *, estimator: Any = None) -> Path:
    """Save a torch model (meta, state_dict, arrays such as the input statistics) or, with
    `estimator`, a scikit-learn one; returns the path."""
    path = Path(path)
    if estimator is not None:
        blob = {"format": SKLEARN_FORMAT, "meta": dict(meta), "estimator": estimator}
        return atomic_write(path, lambda stream: pickle.dump(blob, stream))
    meta = {"format_version": TORCH_VERSION, **meta}
    blob = {"meta": json.dumps(meta, default=list), "state_dict": dict(state_dict or {}),
            "arrays": dict(arrays or {})}
    return atomic_write(path, lambda stream: torch.save(blob, stream))


def checkpoint_kind(path: str | Path) -> str:
    """"torch" or "sklearn" from the file's first bytes (a torch archive is a zip file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no saved model at {path}")
    with open(path, "rb") as handle:
        return "torch" if handle.read(2) == b"PK" else "sklearn"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a model file written by `write_checkpoint` (or by an older microexpr);
    ConfigError naming the file when it is missing or not a microexpr model."""
    path = Path(path)
    kind = checkpoint_kind(path)
    try:
        if kind == "torch":
            blob = torch.load(path, map_location="cpu", weights_only=False)
            meta = json.loads(blob["meta"])
            arrays = blob.get("arrays") or {k: blob[k] for k in ("mean", "std") if k in blob}
            return Checkpoint("torch", meta, blob["state_dict"], arrays)
        with open(path, "rb") as handle:
            blob = pickle.load(handle)
        if not isinstance(blob, dict) or blob.get("format") != SKLEARN_FORMAT:
            raise ValueError("unknown format")
        meta = blob.get("meta") or {k: v for k, v in blob.items()
                                    if k not in ("format", "estimator")}  # older files
        return Checkpoint("sklearn", dict(meta), estimator=blob["estimator"])
    except Exception as exc:  # noqa: BLE001 - any failure means: not our file
        raise ConfigError(f"{path} is not a model saved by microexpr ({type(exc).__name__}: "
                          f"{exc}); save models with .save() or `microexpr evaluate "
                          f"--save-models`") from None
