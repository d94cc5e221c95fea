"""Where a run writes: the results folder checked before any work, finished folds kept on disk
as they complete, the results moved into place only at the end, and `--resume`.

A run writes into `<out>.partial/` (its `run.json` fingerprints what decides the results;
`folds/foldNNN.npz` holds each finished fold, written atomically). When every fold is done the
results files are written there and the folder is renamed to `<out>`, so `<out>` is either
absent or complete. An interrupted run leaves `<out>.partial/`; `resume=True` continues it
when its fingerprint matches and refuses it when it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import ConfigError

RUN_FILE = "run.json"
FOLDS_DIR = "folds"


def partial_path(out: Path) -> Path:
    """The folder an unfinished run of `out` writes into."""
    return out.with_name(out.name + ".partial")


def fingerprint(values: dict[str, Any]) -> str:
    """A short hash of everything that decides a run's results."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_file_above(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def _check_writable(folder: Path, flag: str) -> None:
    """Create `folder` (and parents) and a file in it; ConfigError naming `flag` if we can't."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{flag} {folder}: cannot write there ({exc.strerror or exc}); choose "
                          f"a folder you can write to") from exc


@dataclass
class RunDir:
    """The partial folder of a run and the folds already finished in it."""

    out: Path
    partial: Path
    done: dict[int, tuple[np.ndarray, dict]]

    @property
    def folds_dir(self) -> Path:
        return self.partial / FOLDS_DIR

    def save_fold(self, index: int, probabilities: np.ndarray, info: dict) -> None:
        """Write one finished fold atomically (a killed run never leaves half a file)."""
        self.folds_dir.mkdir(parents=True, exist_ok=True)
        path = self.folds_dir / f"fold{index:03d}.npz"
        fd, tmp = tempfile.mkstemp(dir=self.folds_dir, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, probabilities=np.asarray(probabilities, dtype=np.float64),
                         info=np.array(json.dumps(info, default=str)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.done[index] = (probabilities, info)

    def finish(self) -> Path:
        """Move the complete results into place (replacing an old `out` the user let go)."""
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.partial, self.out)
        return self.out


def check_out(out: Path, *, overwrite: bool = False, resume: bool = False,
              flag: str = "--out") -> Path:
    """Refuse, before any work, an `out` the run could not finish in (creates nothing).

    Refuses: an `out` that is a file or lies under a file, a place that cannot be written, a
    non-empty `out` without `overwrite` (or `resume`), an interrupted run of `out` unless
    `resume` (continue it) or `overwrite` (start over).
    """
    out = Path(out).expanduser()
    blocker = _first_file_above(out)
    if blocker is not None:
        where = "is a file" if blocker == out else f"lies under the file {blocker}"
        raise ConfigError(f"{flag} {out} {where}; give a folder path for the results")
    partial = partial_path(out)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: resume continues an "
                          "interrupted run, overwrite starts again")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        if resume and not partial.exists():
            raise ConfigError(f"{flag} {out} holds a finished run: nothing to resume (use "
                              f"--overwrite to run again, or another {flag})")
        if not resume:
            raise ConfigError(f"{flag} {out} exists and is not empty; pass --overwrite to "
                              f"replace it, or choose another {flag}")
    if partial.exists() and not resume and not overwrite:
        raise ConfigError(f"an interrupted run of {out} is in {partial}: pass --resume to "
                          f"continue it, or --overwrite to start again")
    existing = next(p for p in [partial, *partial.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {out}: cannot write in {existing} (permission denied); "
                          f"choose a folder you can write to")
    return out


def open_run_dir(out: Path, run_info: dict, *, overwrite: bool = False, resume: bool = False,
                 flag: str = "--out") -> RunDir:
    """Open (or reopen, with `resume`) the partial folder of `out`, after `check_out`'s
    checks; `resume` of a run whose fingerprint (`run_info`) differs is refused."""
    out = check_out(out, overwrite=overwrite, resume=resume, flag=flag)
    partial = partial_path(out)
    done: dict[int, tuple[np.ndarray, dict]] = {}
    if partial.exists():
        if overwrite:
            shutil.rmtree(partial)
        else:
            done = _read_partial(partial, run_info)
    _check_writable(partial, flag)
    if not (partial / RUN_FILE).exists():
        (partial / RUN_FILE).write_text(json.dumps(run_info, indent=2, default=str) + "\n")
    return RunDir(out=out, partial=partial, done=done)


def _read_partial(partial: Path, run_info: dict) -> dict[int, tuple[np.ndarray, dict]]:
    try:
        before = json.loads((partial / RUN_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{partial / RUN_FILE} is missing or unreadable, so the interrupted "
                          f"run cannot be checked; pass --overwrite to start again") from exc
    run_info = json.loads(json.dumps(run_info, default=str))
    if before.get("fingerprint") != run_info.get("fingerprint"):
        changed = sorted(k for k in set(before) | set(run_info)
                         if k != "fingerprint" and before.get(k) != run_info.get(k))
        raise ConfigError(f"--resume: the interrupted run in {partial} was started with a "
                          f"different configuration (differs in: {', '.join(changed) or '?'}); "
                          f"rerun with the same options, or pass --overwrite to start again")
    done = {}
    for path in sorted((partial / FOLDS_DIR).glob("fold*.npz")):
        try:
            with np.load(path, allow_pickle=False) as blob:
                done[int(path.stem[4:])] = (blob["probabilities"],
                                            json.loads(str(blob["info"])))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # unreadable fold: it is run again
    return done
