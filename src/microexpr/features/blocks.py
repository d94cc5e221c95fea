"""The regular block grid the block histograms (LBP-TOP, Bi-WOOF, HOOF) are computed over."""

from __future__ import annotations

import numpy as np

from microexpr.errors import ConfigError


def as_grid(blocks: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(rows, cols) from an int (square grid) or a pair; ConfigError when not positive."""
    grid = (int(blocks), int(blocks)) if np.isscalar(blocks) else tuple(int(b) for b in blocks)
    if len(grid) != 2 or min(grid) < 1:
        raise ConfigError(f"blocks must be a positive int or a (rows, cols) pair, got {blocks!r}")
    return grid  # type: ignore[return-value]


def block_labels(length: int, n: int, positions: np.ndarray | None = None) -> np.ndarray:
    """The block (0..n-1) of each position along an axis of `length` pixels cut into `n`
    blocks of (nearly) equal size: block b holds pixels [round(b L / n), round((b+1) L / n)).

    `positions` (default 0..length-1) are pixel indices on that axis; a position outside
    0..length-1 is clipped to the first or last block.
    """
    positions = np.arange(length) if positions is None else np.asarray(positions)
    edges = np.rint(np.linspace(0.0, length, n + 1)).astype(np.int64)
    return np.clip(np.searchsorted(edges, positions, side="right") - 1, 0, n - 1)


def grid_labels(height: int, width: int, blocks: int | tuple[int, int],
                rows_at: np.ndarray | None = None, cols_at: np.ndarray | None = None
                ) -> np.ndarray:
    """len(rows_at) x len(cols_at) array of row-major block indices (0..rows*cols-1) of a
    height x width image cut into a `blocks` grid (default: every pixel)."""
    rows, cols = as_grid(blocks)
    row_of = block_labels(height, rows, rows_at)
    col_of = block_labels(width, cols, cols_at)
    return row_of[:, None] * cols + col_of[None, :]
