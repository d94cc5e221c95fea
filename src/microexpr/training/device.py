"""Seeding and device choice: CUDA when present, else CPU; nothing assumes a GPU."""

from __future__ import annotations

import random

import numpy as np
import torch

from microexpr.errors import ConfigError


def resolve_device(device: str | None = None) -> torch.device:
    """'auto'/None -> CUDA if available else CPU; 'cpu', 'cuda', 'cuda:1' are taken as given."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {device!r}: use auto, cpu or cuda[:N]") from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available; use "
                          f"--device cpu or auto")
    return chosen


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch Generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
