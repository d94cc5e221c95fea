"""Recognising spotted intervals with a trained classifier, through the clips table.

Each spotted interval becomes one clips-table row (`interval_clips`): its frames are the
video's frames onset..offset (written as PNG files for a video file, the original files for a
frame folder), with the spotted apex. The classifier's representation is then computed for
those rows exactly as for a database's clips, so any model saved by ``.save()`` (or
`microexpr.evaluate(..., save_models=True)`) works on them unchanged.

A model that records how its inputs are computed (``model.input_recipe``: every model saved
by `train` or `evaluate`) gets exactly those inputs, through
`microexpr.training.inputs.model_inputs`. For a model without a recipe (fit on arrays by hand,
or saved by an older microexpr) a recipe is made (`default_recipe`) from the model's
representation defaults updated by `representation`: they must match the ones the model was
trained with (inputs of another shape are refused naming the fix; another spatial size is
resized to the model's, as ``evaluate(..., input_size=)`` does). A video's frames are whole
frames, so there alignment is switched on (the representation's default ``align`` settings)
when the options do not set ``align``; pass ``representation={"align": None}`` for frames
that are already face crops. A recipe without alignment is used as recorded, with a warning.

A model exported to ONNX (``microexpr export MODEL.pt model.onnx``; a path ending in
``.onnx``) is loaded as a `microexpr.training.export.OnnxClassifier` and used the same way: its
file carries the classes and the input recipe.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from microexpr.data.clips import clips_frame
from microexpr.errors import ConfigError, DatasetError
from microexpr.representations import get_representation
from microexpr.training.inputs import InputRecipe, make_input_recipe, model_inputs, recipe_of
from microexpr.video.reader import VideoSource, open_video

DATASET = "video"  # the dataset name of the clips made from a video's intervals


@dataclass
class Recogniser:
    """A trained classifier with the input recipe its inputs are computed with (its own, or
    one made from its model's defaults and the options given), the path it was loaded from
    ("" when given as an object), whether the recipe is the model's own, and warnings."""

    classifier: Any
    recipe: InputRecipe
    path: str = ""
    recorded: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def configs(self) -> dict[str, tuple[str, Any]]:
        """Input name -> (representation, config)."""
        return self.recipe.configs()

    def describe(self) -> dict[str, Any]:
        """Plain data for the analysis config: model, classes, path, representations."""
        return {"name": self.classifier.spec.name,
                "classes": [str(c) for c in self.classifier.classes],
                "path": self.path or None,
                "inputs": "the model's input recipe" if self.recorded else
                "the model's defaults and the representation options given",
                "representation": {name: {"name": rep, **asdict(config)}
                                   for name, (rep, config) in self.configs.items()}}


def _with_align(rep_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options`, with the representation's alignment on when it has one and they leave it
    unset (a video's frames are whole frames)."""
    options = dict(options)
    if "align" in get_representation(rep_name).config_class.__dataclass_fields__ \
            and "align" not in options:
        options["align"] = {}
    return options


def default_recipe(classifier: Any, options: Mapping[str, Any] | None) -> InputRecipe:
    """The recipe of a model that records none: its model's representation(s) with `options`
    (per input name for a multi-input model), face alignment on, resized to the spatial size
    it was trained on."""
    spec = classifier.spec
    options = dict(options or {})
    if not spec.multi_input:
        shape = tuple(classifier.input_shape or ())
        size = shape[-3] if len(shape) >= 3 and shape[-3] == shape[-2] else None
        return make_input_recipe(classifier, _with_align(spec.representation, options),
                                 input_size=size)
    unknown = sorted(set(options) - set(spec.named_inputs()) - set(spec.named_targets()))
    if unknown:
        raise ConfigError(f"{spec.name} takes representation options per input name "
                          f"({', '.join(spec.named_inputs())}); got {unknown}")
    per_name = {name: _with_align(rep, options.get(name, {}))
                for name, (rep, _) in {**spec.named_inputs(), **spec.named_targets()}.items()}
    return make_input_recipe(classifier, per_name)


def load_recogniser(model: Any, source: VideoSource, device: str | None = None,
                    representation: Mapping[str, Any] | None = None) -> Recogniser:
    """The classifier `model` names (a path saved by ``.save()``, or a .onnx file written by
    `export_onnx`) or is, with its representation configs, checked before the video is read:
    ConfigError for a missing file, bad options, or a source that cannot be read a second
    time (the frames of each interval are read again once the intervals are known)."""
    if not source.rereadable:
        raise ConfigError("recognising intervals reads their frames again after spotting: "
                          "pass a video file or a frame folder (frames given as arrays are "
                          "read once), or analyse without a model")
    path = ""
    if isinstance(model, str | Path):
        path = str(model)
        if not Path(model).is_file():
            raise ConfigError(f"model {model} does not exist; give the file a trained model "
                              f"was saved to (model.save(path), or evaluate(..., "
                              f"save_models=True)) or exported to (microexpr export)")
        if Path(model).suffix.lower() == ".onnx":
            from microexpr.training.export import OnnxClassifier

            classifier = OnnxClassifier.load(model, device=device)
        else:
            from microexpr.training.estimators import load_model

            classifier = load_model(model, device=device)
    elif all(hasattr(model, name) for name in ("predict_proba", "classes", "spec")):
        classifier = model
    else:
        raise ConfigError(f"model must be the path of a saved classifier or a trained "
                          f"TorchClassifier / SklearnClassifier / OnnxClassifier, got "
                          f"{type(model).__name__}")
    recipe = getattr(classifier, "input_recipe", None)
    if recipe is None:
        return Recogniser(classifier, default_recipe(classifier, representation), path)
    if representation:
        raise ConfigError(f"model {path or classifier.spec.name} records how its inputs are "
                          f"computed ({recipe.describe()}); representation options do not "
                          f"apply to it: leave them out")
    recipe = recipe_of(classifier)
    configs = recipe.configs()  # ConfigError for a manifest-trained model
    unaligned = [name for name, (_, config) in configs.items()
                 if hasattr(config, "align") and config.align is None]
    warnings = [f"the model's input {name!r} was computed without face alignment (trained "
                f"on face crops): whole video frames differ from what it saw; train it with "
                f"--align for videos" for name in unaligned]
    return Recogniser(classifier, recipe, path, recorded=True, warnings=warnings)


def interval_clips(intervals: pd.DataFrame, source: VideoSource, folder: str | Path
                   ) -> pd.DataFrame:
    """One clips-table row per interval (in order): frames onset..offset, spotted apex.

    A video file's frames are decoded again and written to `folder`/<interval>/img<frame>.png;
    a frame folder's files are used as they are.
    """
    name = Path(source.info.source).stem or "video"
    spans = [(int(r.onset), int(r.apex), int(r.offset)) for r in intervals.itertuples()]
    files: list[list[Path]] = [[] for _ in spans]
    listed = source.files
    if listed is not None:
        for i, (onset, _, offset) in enumerate(spans):
            files[i] = listed[onset:offset + 1]
    elif spans:
        folder = Path(folder)
        wanted: dict[int, list[int]] = {}
        for i, (onset, _, offset) in enumerate(spans):
            (folder / f"{i:04d}").mkdir(parents=True, exist_ok=True)
            for frame in range(onset, offset + 1):
                wanted.setdefault(frame, []).append(i)
        last = max(wanted)
        frames = source.frames()
        try:
            for index, image in enumerate(frames):
                for i in wanted.get(index, ()):
                    path = folder / f"{i:04d}" / f"img{index}.png"
                    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                        raise DatasetError(f"cannot write frame {path}: check the space and "
                                           f"permissions of {folder}")
                    files[i].append(path)
                if index >= last:
                    break
        finally:
            frames.close()
    rows = []
    for i, (onset, apex, offset) in enumerate(spans):
        if len(files[i]) != offset - onset + 1:
            raise DatasetError(f"{source.info.source}: frames {onset}..{offset} of interval {i} "
                               f"could not all be read again (the video changed?)")
        rows.append({"dataset": DATASET, "format": DATASET, "subject": f"{DATASET}/{name}",
                     "clip": f"{name}/{i:04d}", "frames": tuple(str(p) for p in files[i]),
                     "frame_numbers": tuple(range(onset, offset + 1)), "fps": source.fps,
                     "onset": onset, "apex": apex, "offset": offset, "apex_estimated": True,
                     "emotion": "", "action_units": "",
                     "source_file": source.info.source, "source_row": None})
    return clips_frame(rows)


def _model_inputs(recogniser: Recogniser, clips: pd.DataFrame
                  ) -> tuple[Any, np.ndarray, list[str]]:
    """(inputs for the classifier or None, mask of the clips that have them, failures)."""
    computed = model_inputs(recogniser.classifier, clips, recipe=recogniser.recipe)
    failures = [f"{row.clip}: {row.error}" for row in computed.failures.itertuples()]
    return computed.inputs, computed.ok, failures


def recognise_intervals(analysis: Any, recogniser: Recogniser, *,
                        work_dir: str | Path | None = None) -> Any:
    """`analysis` with label and p_<class> columns in its intervals ("" and NaN for an
    interval whose representation failed, e.g. no face on its onset frame; each is named in
    the summary's warnings). A video file's interval frames go to `work_dir` (default: a
    temporary folder, removed afterwards)."""
    classifier = recogniser.classifier
    classes = [str(c) for c in classifier.classes]
    intervals = analysis.intervals.copy()
    proba = np.full((len(intervals), len(classes)), np.nan)
    if len(intervals):
        source = open_video(analysis.summary["source"], analysis.fps)
        with tempfile.TemporaryDirectory(prefix="microexpr-intervals-") as temporary:
            folder = Path(work_dir) if work_dir is not None else Path(temporary)
            clips = interval_clips(intervals, source, folder)
            inputs, ok, failures = _model_inputs(recogniser, clips)
            if inputs is not None:
                proba[ok] = classifier.predict_proba(inputs)
        analysis.summary["warnings"].extend(
            f"interval {failure} (not recognised)" for failure in failures)
    analysis.summary["warnings"].extend(recogniser.warnings)
    labels = [classes[int(np.argmax(p))] if np.isfinite(p).all() else "" for p in proba]
    intervals["label"] = pd.Series(labels, index=intervals.index, dtype="object")
    for j, name in enumerate(classes):
        intervals[f"p_{name}"] = proba[:, j]
    analysis.summary["config"]["model"] = recogniser.describe()
    analysis.intervals = intervals
    return analysis
