"""A picture of what a MOL network predicts for one clip: its landmarks on the frames and its
flow between them, next to the targets when given."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import InputShapeError
from microexpr.evaluation.auxiliary import crop_flows


def _flow_image(flow: np.ndarray, scale: float) -> np.ndarray:
    """2 x H x W flow (u, v) as an RGB image: hue = direction, brightness = magnitude /
    scale."""
    import matplotlib.colors as colors

    angle = (np.arctan2(flow[1], flow[0]) + np.pi) / (2 * np.pi)
    value = np.clip(np.linalg.norm(flow, axis=0) / max(scale, 1e-9), 0, 1)
    return colors.hsv_to_rgb(np.stack([angle, np.ones_like(angle), value], axis=-1))


def plot_mol(model: Any, clip: np.ndarray, targets: Mapping[str, np.ndarray] | None = None,
             path: str | Path | None = None, title: str = ""):
    """Plot a trained MOL classifier's predictions for one frame clip (T x H x W x C, the
    `frame_clip` representation it was trained on): row 1 the frames 2..T of its test crop
    with the predicted landmarks (and the target ones, when `targets["landmarks"]` (T x 68 x
    2, input pixels) is given), row 2 the predicted flow t -> t+1 as colour (hue direction,
    brightness magnitude, one scale for the whole figure), row 3 the target flow
    (`targets["flow"]`, (T-1) x H x W x 2) cropped the same way. Returns the matplotlib
    figure; with `path`, also saves it as a PNG.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clip = np.asarray(clip)
    if clip.ndim != 4:
        raise InputShapeError(f"plot_mol takes one frame clip T x H x W x C, got shape "
                              f"{clip.shape}; pass clips[i], not the whole array")
    outputs = model.predict_outputs(clip[None])
    if "flow" not in outputs and "landmarks" not in outputs:
        raise InputShapeError("this model predicts neither flow nor landmarks: plot_mol "
                              "needs a mol network with at least one of its heads")
    targets = dict(targets or {})
    offsets = np.asarray(outputs["crop_offsets"])
    top, left = (int(v) for v in offsets[0])
    crop = int(model.module.crop)
    frames = clip[:, top:top + crop, left:left + crop, 0]
    pairs = clip.shape[0] - 1
    flows = {}  # name -> P x 2 x crop x crop
    if "flow" in outputs:
        flows["predicted"] = np.asarray(outputs["flow"])[0]
    if "flow" in targets:
        flows["target"] = crop_flows(np.asarray(targets["flow"])[None], offsets, crop)[0]
    rows = 1 + len(flows)
    fig, axes = plt.subplots(rows, pairs, figsize=(1.6 * pairs, 1.7 * rows), squeeze=False)
    scale = max((float(np.percentile(np.linalg.norm(f, axis=1), 99)) for f in flows.values()),
                default=1.0)
    marks = outputs.get("landmarks")
    true_marks = targets.get("landmarks")
    for p in range(pairs):
        ax = axes[0, p]
        ax.imshow(frames[p + 1], cmap="gray")
        if true_marks is not None:
            points = np.asarray(true_marks)[p + 1] - (left, top)
            ax.scatter(points[:, 0], points[:, 1], s=3, c="lime", label="target")
        if marks is not None:
            points = np.asarray(marks)[0, p]
            ax.scatter(points[:, 0], points[:, 1], s=3, c="red", label="predicted")
        ax.set_title(f"frame {p + 2}", fontsize=8)
        for row, (name, values) in enumerate(flows.items(), start=1):
            axes[row, p].imshow(_flow_image(values[p], scale))
            axes[row, p].set_title(f"{name} {p + 1}->{p + 2}", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    if marks is not None or true_marks is not None:
        axes[0, 0].legend(fontsize=6, loc="lower left", markerscale=2)
    fig.suptitle(title or f"MOL: landmarks (red predicted, green target), flow scale "
                          f"{scale:.2f} px", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
