"""Seeding, device choice, mixed precision and deterministic mode.

The device is CUDA when present, else the CPU; nothing assumes a GPU. `amp` (mixed
precision) is a CUDA feature: asked for on another device it is refused with a ConfigError
rather than silently run in float32 (or in bfloat16, which changes results on a CPU for no
speed). `deterministic` training asks torch for deterministic kernels (see
`deterministic_mode`).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from microexpr.errors import ConfigError

DEVICE_CHOICES = "auto, cpu or cuda[:N]"
# cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2); read when its handle is made
CUBLAS_WORKSPACE = ":4096:8"


def parse_device(device: str) -> torch.device:
    """`device` as a torch.device, without asking whether it exists here."""
    try:
        return torch.device(str(device).strip().lower())
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid device (--device) {device!r}: use {DEVICE_CHOICES}") from exc


def resolve_device(device: str | None = None) -> torch.device:
    """'auto'/None -> CUDA if available else CPU; 'cpu', 'cuda', 'cuda:1' are taken as given
    (a CUDA device must exist on this machine: ConfigError naming --device otherwise)."""
    if device is None or str(device).strip().lower() in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = parse_device(device)
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            build = " (a CPU-only build)" if torch.version.cuda is None else ""
            raise ConfigError(f"device (--device) {device!r} was asked for, but CUDA is not "
                              f"available on this machine (torch {torch.__version__}{build}): "
                              f"use --device auto or cpu, or run on a machine with a GPU and "
                              f"a CUDA build of torch")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ConfigError(f"device (--device) {device!r} was asked for, but this machine "
                              f"has {count} CUDA device(s): use cuda:0..cuda:{count - 1}")
    return chosen


def check_device(device: str | None, *, here: bool = True) -> str:
    """`device` checked before any work and returned as given ("auto" for None): a valid
    device name, and with `here` one that exists on this machine (a run whose models train
    elsewhere, on a Ray cluster, passes here=False)."""
    if device is None or str(device).strip().lower() in ("", "auto"):
        return "auto"
    if here:
        resolve_device(device)
    else:
        parse_device(device)
    return str(device)


def check_amp(amp: bool, device: torch.device | str | None) -> None:
    """ConfigError when mixed precision (`amp`) is asked for on a device that is not CUDA."""
    if not amp:
        return
    chosen = device if isinstance(device, torch.device) else resolve_device(device)
    if chosen.type != "cuda":
        raise ConfigError(f"training option amp=true (--amp) is mixed precision on a CUDA "
                          f"GPU, but this training runs on {chosen}: drop --amp (amp=false) "
                          f"to train in float32, or train on a GPU (--device cuda)")


@contextlib.contextmanager
def deterministic_mode(enabled: bool, device: torch.device | None = None) -> Iterator[None]:
    """Within the block (when `enabled`), torch uses deterministic kernels where it has them
    (`torch.use_deterministic_algorithms(True, warn_only=True)`: an operation that has none
    warns, naming itself, and runs anyway), cuDNN picks deterministic algorithms and no
    benchmarking, and on CUDA `CUBLAS_WORKSPACE_CONFIG` is set (if unset) so that cuBLAS is
    deterministic too. The previous settings are restored afterwards.

    Together with the seeds (`seed_everything`) a run then gives the same numbers on the
    same hardware, software and thread count; results across devices (CPU / GPU, two GPU
    models) still differ in the last bits. On the CPU, training is deterministic already
    for a fixed thread count; this mode costs speed on a GPU.
    """
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device is not None and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch Generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
