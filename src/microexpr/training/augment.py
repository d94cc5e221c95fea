"""Data augmentation safe for micro-motion, applied to batch tensors on the fly while training.

Micro-expressions are movements of a pixel or two, so only transformations that keep that
motion intact are offered: small translations (edge padding, no interpolation: values are
moved, never blended) and horizontal flips. Each sample draws its own transformation, and
every channel (and every frame of an N x C x T x H x W clip) of that sample gets the same
one, so an apex image and its flow stay registered. A horizontal flip mirrors the direction
of horizontal motion, so the channels holding horizontal flow (u) are negated when flipped
(`flip_negate`, channel indices here; `resolve_flip_indices` finds them from the channel
names a TrainConfig holds); vertical flow, strain, magnitude and images only move.

All random draws come from the training loop's seeded generator (on the CPU, whatever the
device), so a run is reproducible. The loop calls this only on training batches: validation
and prediction never see augmented inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from microexpr.errors import ConfigError, InputShapeError


def resolve_flip_indices(flip_negate: Sequence[str | int],
                         channels: Sequence[str] | None) -> tuple[int, ...]:
    """The indices, among `channels` (the names of the input's channels, in order), of the
    channels that a horizontal flip negates.

    `flip_negate` holds channel names ("u"): a name absent from `channels` is simply not
    negated (an apex image has no horizontal flow), and with `channels` None (names unknown)
    nothing is. Integers are channel indices (as older configs hold them) and pass as they
    are. Mixing names and integers is a ConfigError.
    """
    items = tuple(flip_negate)
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in items):
        return tuple(int(c) for c in items)
    if not all(isinstance(c, str) for c in items):
        raise ConfigError(f"flip_negate {items} mixes channel names and indices; give "
                          f"channel names, e.g. flip_negate=[u]")
    if channels is None:
        return ()
    names = [str(c) for c in channels]
    return tuple(names.index(c) for c in items if c in names)


def check_flip_negate(flip_negate: Sequence[int], n_channels: int) -> None:
    """ConfigError naming `flip_negate` when an index is not a channel of the input (or
    when it holds names, which `resolve_flip_indices` turns into indices first)."""
    if any(isinstance(c, str) for c in flip_negate):
        raise ConfigError(f"flip_negate {tuple(flip_negate)} holds channel names; the "
                          f"augmentation needs their indices: resolve them with "
                          f"resolve_flip_indices(flip_negate, channel_names) first")
    bad = [c for c in flip_negate if not 0 <= c < n_channels]
    if bad:
        raise ConfigError(f"flip_negate {tuple(flip_negate)} names channel(s) {bad}, but the "
                          f"input has {n_channels} channel(s) (0..{n_channels - 1})")


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each sample by its own (dy, dx) in [-max_shift, max_shift] pixels.

    Pixels that come in from outside repeat the edge (replicate padding). The last two axes
    are H, W; every other axis of a sample moves together.
    """
    if max_shift <= 0:
        return x
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    offsets = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    offsets = offsets.to(x.device)
    rows = (torch.arange(height, device=x.device)[None, :] - offsets[:, :1]).clamp(0, height - 1)
    cols = (torch.arange(width, device=x.device)[None, :] - offsets[:, 1:]).clamp(0, width - 1)
    flat = x.reshape(n, -1, height, width)
    samples = torch.arange(n, device=x.device)[:, None, None, None]
    planes = torch.arange(flat.shape[1], device=x.device)[None, :, None, None]
    shifted = flat[samples, planes, rows[:, None, :, None], cols[:, None, None, :]]
    return shifted.reshape(x.shape)


def random_flip(x: torch.Tensor, flip_negate: Sequence[int], generator: torch.Generator,
                probability: float = 0.5, negate_about: Sequence[float] | None = None
                ) -> torch.Tensor:
    """Mirror each sample left-right with `probability`; negate channels `flip_negate` of the
    flipped samples (horizontal flow changes sign when the face is mirrored).

    `negate_about` (one value per channel) is where zero motion lies in x's units: inputs
    standardised as (raw - mean) / std have raw zero at -mean / std, and u -> -u becomes
    x -> 2 * (-mean / std) - x. None: zero.
    """
    check_flip_negate(flip_negate, x.shape[1])
    flipped = (torch.rand(x.shape[0], generator=generator) < probability).to(x.device)
    shape = (-1,) + (1,) * (x.ndim - 1)
    out = torch.where(flipped.view(shape), x.flip(-1), x)
    if flip_negate:
        index = list(flip_negate)
        centre = torch.zeros(x.shape[1], dtype=x.dtype)
        if negate_about is not None:
            centre = torch.as_tensor(negate_about, dtype=x.dtype).flatten()
            if len(centre) != x.shape[1]:
                raise InputShapeError(f"negate_about has {len(centre)} values for "
                                      f"{x.shape[1]} channels")
        centre = centre[index].to(x.device).view(1, len(index), *(1,) * (x.ndim - 2))
        out[:, index] = torch.where(flipped.view(shape), 2 * centre - out[:, index],
                                    out[:, index])
    return out


def augment_batch(x: torch.Tensor, *, shift: int = 0, flip: bool = False,
                  flip_negate: Sequence[int] = (), negate_about: Sequence[float] | None = None,
                  generator: torch.Generator) -> torch.Tensor:
    """Augment a channels-first batch (N x C x H x W or N x C x T x H x W).

    `shift`: random translation of up to that many pixels (edge padding); `flip`: mirror half
    of the samples left-right, negating channels `flip_negate` (about `negate_about`, see
    `random_flip`). Returns a new tensor (the input is not changed); with neither option it
    returns `x` itself.
    """
    if x.ndim not in (4, 5):
        raise InputShapeError(f"augmentation takes N x C x H x W or N x C x T x H x W batches, "
                              f"got shape {tuple(x.shape)}")
    if shift < 0:
        raise ConfigError(f"augment_shift must be >= 0 pixels, got {shift}")
    out = random_shift(x, shift, generator)
    if flip:
        out = random_flip(out, flip_negate, generator, negate_about=negate_about)
    return out
