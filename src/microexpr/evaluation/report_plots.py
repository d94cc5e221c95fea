"""The figures of the HTML report, each returned as PNG bytes.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, so no
global figure registry to leak into and nothing to close), at a modest resolution and in a
256-colour palette, so that a report of many runs stays a few hundred kilobytes. matplotlib
is imported on first use: importing this module stays cheap.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 80
MEDIAN_COLOR = "#c0392b"
FOLD_COLOR = "#7f8c8d"
BAR_COLOR = "#2e86c1"
HISTORY_ORDER = ("train_loss", "val_loss")  # then every loss term, in file order


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas, laid out by matplotlib's constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def to_png(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as a small PNG: drawn at `dpi`, reduced to a 256-colour palette (plots
    have few colours; images and heat maps lose little) and compressed. Glyphs a font lacks
    (e.g. in CJK names) are drawn as boxes without a warning per character."""
    from PIL import Image

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        warnings.filterwarnings("ignore", message=".*constrained_layout.*")
        figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def confusion_png(matrix: np.ndarray, classes: Sequence[str]) -> bytes:
    """Confusion matrix: counts in the cells, shaded by the share of the true class."""
    matrix = np.asarray(matrix, dtype=np.int64).reshape(len(classes), len(classes))
    side = max(3.2, 0.75 * len(classes) + 1.8)
    figure = new_figure(side + 0.6, side)
    ax = figure.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=10,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), list(classes), rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return to_png(figure)


def bars_png(labels: Sequence[str], values: Sequence[float], *, xlabel: str,
             annotations: Sequence[str] | None = None, limit: float | None = 1.0) -> bytes:
    """Horizontal bars, one per label, top to bottom in the order given; a NaN value is
    drawn as an empty bar marked "n/a"."""
    values = np.asarray(values, dtype=float)
    height = min(0.28 * len(labels) + 1.0, 14.0)
    figure = new_figure(6.0, max(1.8, height))
    ax = figure.add_subplot()
    positions = np.arange(len(labels))
    ax.barh(positions, np.nan_to_num(values, nan=0.0), color=BAR_COLOR, height=0.7)
    texts = list(annotations) if annotations is not None else [
        "n/a" if np.isnan(v) else f"{v:.3f}" for v in values]
    for y, value, text in zip(positions, values, texts, strict=True):
        ax.text(0.0 if np.isnan(value) else value, y, " " + text, va="center",
                fontsize=8 if len(labels) > 20 else 9)
    ax.set_yticks(positions, list(labels), fontsize=8 if len(labels) > 20 else 9)
    ax.invert_yaxis()
    if limit is not None:
        ax.set_xlim(0, limit * 1.15)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return to_png(figure)


def history_columns(history: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The curves of a history table: training loss, validation loss, then each loss term
    in file order; and the terms left out because they repeat the training loss (a lone
    cross_entropy term does)."""
    values = [c for c in history.columns if c not in ("fold", "epoch")
              and pd.api.types.is_numeric_dtype(history[c]) and history[c].notna().any()]
    ordered = [c for c in HISTORY_ORDER if c in values] + [
        c for c in values if c not in HISTORY_ORDER]
    repeated = []
    if "train_loss" in values:
        train = history["train_loss"].to_numpy(float)
        repeated = [c for c in ordered if c not in HISTORY_ORDER and np.allclose(
            history[c].to_numpy(float), train, equal_nan=True)]
    return [c for c in ordered if c not in repeated], repeated


def history_png(history: pd.DataFrame, columns: Sequence[str]) -> bytes:
    """One panel per curve: a thin line per fold, the median across folds in bold."""
    n = len(columns)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    figure = new_figure(3.4 * ncols, 2.6 * nrows)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    folds = sorted(history["fold"].unique()) if "fold" in history.columns else [0]
    for ax, column in zip(axes, columns, strict=False):
        for fold in folds:
            rows = history if "fold" not in history.columns else history[
                history["fold"] == fold]
            rows = rows.dropna(subset=[column]).sort_values("epoch")
            ax.plot(rows["epoch"], rows[column], color=FOLD_COLOR, alpha=0.35, linewidth=0.8)
        median = history.dropna(subset=[column]).groupby("epoch")[column].median()
        ax.plot(median.index, median.to_numpy(), color=MEDIAN_COLOR, linewidth=2.2,
                label=f"median of {len(folds)} fold{'s' if len(folds) != 1 else ''}")
        ax.set_title(column, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    for ax in axes[n:]:
        ax.set_visible(False)
    return to_png(figure)
