"""Attention maps of a run's saved fold models, for the HTML report.

A run keeps its trained networks when it was evaluated with `save_models` (`models/
fold000.pt`, ...). For the models that attend, each test clip is shown with what its own
fold's network (the one that never saw its subject) attends to:

- `micro_attention`: the map of the micro-attention unit of every residual block
  (`microexpr.models.micro_attention.attention_maps_for`), over the input;
- `sma_stn`: the weight of each DSSI segment (`predict_outputs(x)["segment_weights"]`);
- `deep_emotion`: the window its spatial transformer samples (`module.theta`) and the warped
  image the classifier sees (`module.transform`).

The inputs are recomputed from the clips' frames with each model's input recipe (read from
the representation cache when present), so the database folder recorded in `config.yaml`
must still be there; for a manifest run, the manifest's arrays are read again. Whatever
cannot be rendered is left out with a note saying why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr.errors import MicroexprError
from microexpr.evaluation.report_plots import new_figure, to_png

# model -> (its parameter that switches the attention off, what the figures show)
ATTENTION_MODELS: dict[str, tuple[str, str]] = {
    "micro_attention": ("attention", "micro-attention map of each residual block over the "
                                     "input, stretched from its lowest (dark) to its highest "
                                     "value (bright; the range is in each title)"),
    "sma_stn": ("temporal_attention", "weight of each DSSI segment over its dynamic image "
                                      "(then the global one, and the weights against a "
                                      "uniform 1/K)"),
    "deep_emotion": ("stn", "the window the spatial transformer samples (red, on the input) "
                            "and the warped image the classifier sees"),
}
KEY = ("dataset", "subject", "clip")
_MODEL_FILE = re.compile(r"fold(\d+)(?:_m(\d+))?\.pt")


@dataclass
class AttentionFigure:
    """One figure (PNG bytes) and the clips of its rows, top to bottom, as plain text."""

    png: bytes
    rows: list[str]


@dataclass
class Attention:
    """What the report shows of a run's attention: what the maps are, figures, notes."""

    model: str
    what: str
    figures: list[AttentionFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fold_models(run_dir: Path) -> dict[int, Path]:
    """Fold index -> the saved model of that fold (ensemble member 0)."""
    found: dict[int, Path] = {}
    for path in sorted((run_dir / "models").glob("fold*.pt")):
        match = _MODEL_FILE.fullmatch(path.name)
        if match and match.group(2) in (None, "0"):
            found[int(match.group(1))] = path
    return found


def pick_examples(predictions: pd.DataFrame, classes: Sequence[str], per_class: int
                  ) -> pd.DataFrame:
    """Up to `per_class` test clips of each true class, spread over its subjects (evenly
    spaced in (subject, clip) order), grouped by class in `classes` order."""
    picked = []
    for name in classes:
        rows = predictions[predictions["y_true"].astype(str) == name].sort_values(
            ["subject", "clip"], kind="stable")
        if len(rows):
            index = np.unique(np.linspace(0, len(rows) - 1, min(per_class, len(rows)))
                              .round().astype(int))
            picked.append(rows.iloc[index])
    return pd.concat(picked) if picked else predictions.iloc[:0]


def attention_for(run_dir: Path, config: dict | None, predictions: pd.DataFrame | None, *,
                  per_class: int = 2, cache_dir: str | Path | bool | None = True
                  ) -> Attention | None:
    """The attention maps of `run_dir`'s saved models for a few test clips of each class;
    None for a model that has no attention to show."""
    model = str(((config or {}).get("model") or {}).get("name", ""))
    if model not in ATTENTION_MODELS:
        return None
    switch, what = ATTENTION_MODELS[model]
    found = Attention(model, what)
    params = (config or {}).get("model", {}).get("params") or {}
    if params.get(switch) is False:
        found.notes.append(f"this run switched the attention off ({switch}=false): no map")
        return found
    models = fold_models(run_dir)
    if not models:
        found.notes.append("the run did not save its models (evaluate --save-models / "
                           "save_models=True), and attention maps need them")
        return found
    if predictions is None or not set(KEY) <= set(predictions.columns):
        found.notes.append("predictions.csv is missing, so the test clips of each fold are "
                           "unknown: no attention maps")
        return found
    classes = list((config or {}).get("classes") or sorted(predictions["y_true"].unique()))
    saved = predictions[predictions["fold"].isin(list(models))]
    examples = pick_examples(saved, classes, per_class)
    if not len(examples):
        found.notes.append("no test clip of a fold with a saved model: no attention maps")
        return found
    try:
        rows = _data_rows(config or {}, examples)
        if isinstance(rows, str):
            found.notes.append(rows)
            return found
        from microexpr.training.estimators import load_model

        loaded = {fold: load_model(models[fold], device="cpu")
                  for fold in sorted(examples["fold"].astype(int).unique())}
        for name in classes:
            chosen = examples["y_true"].astype(str) == name
            if chosen.any():
                figure = _class_figure(model, name, examples[chosen],
                                       _take(rows, np.flatnonzero(chosen.to_numpy())),
                                       loaded, config or {}, cache_dir, found.notes)
                if figure is not None:
                    found.figures.append(figure)
    except (MicroexprError, OSError, RuntimeError, ValueError) as exc:
        found.notes.append(f"attention maps could not be computed: {exc}")
    return found


def _data_rows(config: dict, examples: pd.DataFrame) -> Any:
    """The examples' rows in the data the run was evaluated on, in their order: a clips
    table (frames to compute inputs from) or a manifest's arrays (a list of (array, channel
    names)); a note (str) saying why not when the data cannot be re-read."""
    from microexpr.data.adapters import get_adapter, load_dataset

    data = config.get("data") or {}
    kind, name = data.get("kind"), str(data.get("name", ""))
    if kind == "manifest":
        from microexpr.data.manifest import read_manifest

        path = Path(str(data.get("path", "")))
        if not path.is_file():
            return (f"the manifest {path} recorded in config.yaml is not there: its inputs "
                    f"are needed to compute the maps")
        manifest = read_manifest(path, channels=data.get("channels"),
                                 labels=data.get("labels") or None)
        index = _match(manifest.clips, examples)
        if isinstance(index, str):
            return index
        return [(manifest.inputs[i], manifest.channels) for i in index]
    if kind != "dataset":
        return (f"the run was evaluated on {kind or 'unrecorded'} data given in Python, "
                f"which config.yaml does not record how to read again: no attention maps")
    roots = [r for r in str(data.get("root") or "").split(";") if r]
    if name == "composite" and len(roots) == 3:
        from microexpr.data.composite import COMPOSITE_PARTS, load_composite

        missing = [r for r in roots if not Path(r).is_dir()]
        if missing:
            return f"the database folder {missing[0]} recorded in config.yaml is not there"
        clips = load_composite(**dict(zip(COMPOSITE_PARTS, roots, strict=True))).clips
    else:
        try:
            get_adapter(name)
        except MicroexprError:
            return (f"config.yaml records the database {name!r}, which is not a database "
                    f"format (a namespace?): it cannot be read again for the maps")
        if len(roots) != 1 or not Path(roots[0]).is_dir():
            return (f"the database folder {data.get('root')} recorded in config.yaml is not "
                    f"there: the maps need the clips' frames")
        clips = load_dataset(name, roots[0]).clips
    index = _match(clips, examples)
    if isinstance(index, str):
        return index
    return clips.iloc[index].reset_index(drop=True)


def _match(table: pd.DataFrame, examples: pd.DataFrame) -> np.ndarray | str:
    """Positions in `table` of the examples' (dataset, subject, clip), or a note."""
    keys = {tuple(str(v) for v in row): i
            for i, row in enumerate(table[list(KEY)].itertuples(index=False))}
    wanted = [tuple(str(v) for v in row) for row in examples[list(KEY)].itertuples(index=False)]
    missing = [k for k in wanted if k not in keys]
    if missing:
        return (f"clip {'/'.join(missing[0])} of predictions.csv is no longer in the data "
                f"recorded in config.yaml: no attention maps")
    return np.array([keys[k] for k in wanted], dtype=int)


def _take(rows: Any, positions: Sequence[int]) -> Any:
    """The rows at `positions` of a clips table or a list of manifest arrays."""
    if isinstance(rows, pd.DataFrame):
        return rows.iloc[list(positions)].reset_index(drop=True)
    return [rows[i] for i in positions]


def _inputs(model: Any, rows: Any, config: dict, cache_dir: Any) -> tuple[np.ndarray, Any]:
    """(inputs as the model takes them, channel names) of `rows` (a clips table or
    manifest arrays)."""
    if isinstance(rows, pd.DataFrame):
        from microexpr.training.inputs import model_inputs

        computed = model_inputs(model, rows, cache_dir=cache_dir)
        if not computed.ok.all():
            failure = computed.failures.iloc[0]
            raise MicroexprError(f"the input of clip {failure['clip']} could not be "
                                 f"computed again ({failure['error']})")
        return np.asarray(computed.inputs), model.channels
    from microexpr.training.inputs import fit_inputs

    x = np.stack([array for array, _ in rows])
    names = rows[0][1]
    return fit_inputs(model.spec, x, names, config.get("input_size"))


def _class_figure(model_name: str, label: str, examples: pd.DataFrame, rows: Any,
                  models: dict[int, Any], config: dict, cache_dir: Any, notes: list[str]
                  ) -> AttentionFigure | None:
    """The figure of one class's examples: one row per clip, computed by its fold's model
    (`models`: fold -> loaded classifier)."""
    panels: list[tuple[str, list[tuple[str, np.ndarray, Any]]]] = []
    for position, example in enumerate(examples.itertuples(index=False)):
        model = models[int(example.fold)]
        x, channels = _inputs(model, _take(rows, [position]), config, cache_dir)
        text = (f"{example.subject}, clip {example.clip}: true {example.y_true}, predicted "
                f"{example.y_pred} (fold {int(example.fold)})")
        panels.append((text, _PANELS[model_name](model, x, channels)))
    if not panels:
        notes.append(f"no clip of class {label} could be shown")
        return None
    columns = max(len(p) for _, p in panels)
    figure = new_figure(1.55 * columns + 0.4, 1.7 * len(panels) + 0.3)
    axes = figure.subplots(len(panels), columns, squeeze=False)
    for r, (_, row_panels) in enumerate(panels):
        for c, ax in enumerate(axes[r]):
            if c >= len(row_panels):
                ax.set_visible(False)
                continue
            title, image, draw = row_panels[c]
            if image is not None:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if draw is not None:
                draw(ax, None if image is None else image.shape)
            ax.set_title(title, fontsize=8)
        axes[r][0].set_ylabel(f"{label} #{r + 1}", fontsize=9)
    return AttentionFigure(to_png(figure), [text for text, _ in panels])


# -- what each model shows -------------------------------------------------------------

def display_image(sample: np.ndarray, channels: Sequence[str] | None) -> np.ndarray:
    """An H x W x C input as an image in 0..1: the gray channel of an apex frame, the RGB
    channels, the flow magnitude of u and v, else the first channel."""
    names = [str(c) for c in channels] if channels else []
    sample = np.asarray(sample, dtype=np.float64)
    if "gray" in names:
        image = sample[..., names.index("gray")]
    elif {"r", "g", "b"} <= set(names):
        image = sample[..., [names.index(c) for c in "rgb"]]
    elif {"u", "v"} <= set(names):
        image = np.hypot(sample[..., names.index("u")], sample[..., names.index("v")])
    else:
        image = sample[..., 0]
    low, high = np.nanpercentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return np.clip(np.nan_to_num(scaled), 0, 1)


def _heat(values: np.ndarray) -> Any:
    """An overlay drawing `values` (h x w) stretched over the axes' image, from its lowest
    (dark) to its highest value (bright)."""
    low, high = float(np.min(values)), float(np.max(values))

    def draw(ax: Any, shape: tuple[int, ...]) -> None:
        height, width = shape[:2]
        ax.imshow(values, cmap="inferno", vmin=low, vmax=high if high > low else low + 1e-6,
                  alpha=0.6, interpolation="bilinear",
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    return draw


def _micro_attention(model: Any, x: np.ndarray, channels: Any) -> list:
    from microexpr.models.micro_attention import attention_maps_for

    maps = attention_maps_for(model, x)
    image = display_image(x[0], channels)
    return [("input", image, None)] + [
        (f"block {i + 1}: {m[0].min():.2f}-{m[0].max():.2f}", image, _heat(m[0]))
        for i, m in enumerate(maps)]


def _sma_stn(model: Any, x: np.ndarray, channels: Any) -> list:
    weights = np.asarray(model.predict_outputs(x)["segment_weights"])[0]
    segments = x[0]  # (K + 1) x H x W x C, the global image last
    panels = [(f"segment {k + 1}: {w:.2f}", display_image(segments[k], channels), None)
              for k, w in enumerate(weights)]

    def bars(ax: Any, _: Any) -> None:
        ax.bar(np.arange(1, len(weights) + 1), weights, color="#2e86c1")
        ax.axhline(1 / len(weights), color="#7f8c8d", linestyle="--", linewidth=1)
        ax.set_xticks(np.arange(1, len(weights) + 1))
        ax.set_ylim(0, max(1.0, float(weights.max()) * 1.1))
        ax.tick_params(labelsize=7)

    return [*panels, ("global", display_image(segments[-1], channels), None),
            ("weights (--- uniform)", None, bars)]


def _deep_emotion(model: Any, x: np.ndarray, channels: Any) -> list:
    import torch

    module = model.module
    module.eval()
    inputs = torch.from_numpy(np.ascontiguousarray(model.network_inputs(x))).to(model.device)
    with torch.no_grad():
        theta = module.theta(inputs).cpu().numpy()[0]
        warped = module.transform(inputs).cpu().numpy()[0]  # C x H x W, standardised
    image = display_image(x[0], channels)
    seen = display_image(np.moveaxis(warped, 0, -1), channels)

    def window(ax: Any, shape: tuple[int, ...]) -> None:
        height, width = shape[:2]
        corners = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]], float)
        points = corners @ theta.T  # normalised input coordinates (align_corners=False)
        ax.plot((points[:, 0] + 1) / 2 * width - 0.5, (points[:, 1] + 1) / 2 * height - 0.5,
                color="red", linewidth=1.5)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)

    return [("input + window", image, window), ("what it sees", seen, None)]


_PANELS = {"micro_attention": _micro_attention, "sma_stn": _sma_stn,
           "deep_emotion": _deep_emotion}
