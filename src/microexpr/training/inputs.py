"""Input recipes: how a trained model's inputs are computed from clips-table rows.

A model that leaves `evaluate` (`save_models`) or `microexpr.train` carries an `InputRecipe`
(`model.input_recipe`, saved in its file as plain data): per input name the representation
with its full config, the channels the model takes and the size its inputs were resized to.
`model_inputs` computes exactly those inputs for any clips table (a database's clips, the
intervals spotted in a video), the same way the evaluation runner does: both resolve configs
with `input_config` / `representation_configs`, compute with `compute_inputs` and fit arrays
to a single-input model with `fit_inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from microexpr.errors import ConfigError
from microexpr.plain import plain_data
from microexpr.representations import (
    PrepareReport,
    make_config,
    prepare_representation,
    resize_inputs,
)

RECIPE_FORMAT = 1
# Columns of a clips table the representations read (see microexpr.data.clips.CLIP_COLUMNS).
NEEDED_COLUMNS = ("dataset", "clip", "frames", "frame_numbers", "fps", "onset", "apex",
                  "offset", "apex_estimated")
FAILURE_COLUMNS = ("dataset", "subject", "clip", "input", "error")


# -- resolving representation configs -------------------------------------------------------

def input_config(spec: Any, options: Mapping[str, Any] | None = None,
                 representation: str | None = None) -> tuple[str, Any]:
    """(representation, config) of a single-input model: its own representation (or
    `representation` instead) with the model's defaults (its own representation only)
    updated by `options`; ConfigError naming an unknown representation or option."""
    name = representation or spec.representation
    defaults = spec.representation_config if name == spec.representation else {}
    return name, make_config(name, {**defaults, **(options or {})})


def representation_configs(spec: Any, options: dict | None) -> dict[str, tuple[str, Any]]:
    """Name -> (representation, config) of every input and target of a multi-input `spec`,
    its defaults updated by `options` ({name: {option: value}}); ConfigError naming an
    unknown name or option (before any work)."""
    named = {**spec.named_inputs(), **spec.named_targets()}
    options = dict(options or {})
    unknown = sorted(set(options) - set(named))
    if unknown or not all(isinstance(v, dict) for v in options.values()):
        raise ConfigError(f"{spec.name} takes representation options per input / target "
                          f"name ({', '.join(named)}), e.g. representation={{'"
                          f"{next(iter(named))}': {{'size': 32}}}}; got {sorted(options)}")
    configs = {name: (rep, make_config(rep, {**defaults, **options.get(name, {})}))
               for name, (rep, defaults) in named.items()}
    for option in getattr(spec, "shared_options", ()):
        values = {name: getattr(config, option) for name, (_, config) in configs.items()
                  if hasattr(config, option)}
        if len({repr(v) for v in values.values()}) > 1:
            given = ", ".join(f"{name}: {value!r}" for name, value in values.items())
            raise ConfigError(f"{spec.name} needs the same {option!r} for its inputs and "
                              f"targets (they must share their frames and pixels), got "
                              f"{given}; set representation option {option!r} for all of "
                              f"{', '.join(values)}")
    return configs


# -- computing and fitting inputs ---------------------------------------------------------

def compute_inputs(clips: pd.DataFrame, configs: Mapping[str, tuple[str, Any]], *,
                   cache_dir: str | Path | None | bool = None, jobs: int = 1,
                   progress: bool = False) -> tuple[dict[str, PrepareReport], np.ndarray]:
    """Each named representation computed (or read from the cache) for every clip: the
    report per name, and the mask of the clips every one of them succeeded on."""
    reports, keep = {}, np.ones(len(clips), dtype=bool)
    for name, (rep, config) in configs.items():
        report = prepare_representation(clips, rep, config, cache_dir=cache_dir, jobs=jobs,
                                        progress=progress)
        reports[name] = report
        keep &= report.ok
    return reports, keep


def kept_arrays(report: PrepareReport, keep: np.ndarray) -> np.ndarray:
    """The stacked arrays of the clips `keep` marks (each must have succeeded in `report`)."""
    return report.stacked()[keep[report.ok]]


def fit_inputs(spec: Any, x: np.ndarray, names: tuple[str, ...] | None,
               input_size: int | None) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """A single-input model's inputs as it takes them: reduced to its channels (by name, in
    its order; `spec.select_channels`), resized to `input_size` pixels a side, checked
    (InputShapeError naming the fix); returns them with their channel names."""
    x, names = spec.select_channels(x, names)
    if input_size is not None and x.ndim >= 4:
        x = resize_inputs(x, input_size)
    spec.check_input(x.shape)
    return x, names


# -- the recipe ----------------------------------------------------------------------------

def _tupled(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(v) for v in value)


@dataclass(frozen=True)
class InputRecipe:
    """How a model's inputs are computed from clips-table rows, as plain data.

    `representations`: input name -> {"name": representation, **its full config} ("input"
    for a single-input model; empty for a model trained on a manifest's precomputed
    inputs). `channels`: input name -> the names of the channels the model takes (None:
    not named). `input_size`: the side the inputs were resized to (None: as computed).
    `manifest`: {"path", "name", "channels"} of the manifest a model was trained on.
    """

    representations: Mapping[str, Mapping[str, Any]]
    channels: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    input_size: int | None = None
    manifest: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:  # plain data: equal before saving and after loading
        object.__setattr__(self, "representations", {
            str(k): plain_data(dict(v)) for k, v in self.representations.items()})
        object.__setattr__(self, "channels", {str(k): _tupled(v)
                                              for k, v in self.channels.items()})
        if self.manifest is not None:
            object.__setattr__(self, "manifest", plain_data(dict(self.manifest)))

    def configs(self) -> dict[str, tuple[str, Any]]:
        """Input name -> (representation, config object)."""
        return {name: (str(entry["name"]), make_config(
            str(entry["name"]), {k: v for k, v in entry.items() if k != "name"}))
            for name, entry in self.representations.items()}

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-ready data (what a model file holds)."""
        return {"format": RECIPE_FORMAT,
                "representations": plain_data(self.representations),
                "channels": plain_data(self.channels),
                "input_size": self.input_size,
                "manifest": None if self.manifest is None else plain_data(self.manifest)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "the model") -> InputRecipe:
        """The recipe of `to_dict`'s data; ConfigError naming `source` when it is not one."""
        try:
            if int(data.get("format", 0)) > RECIPE_FORMAT:
                raise ConfigError(f"the input recipe of {source} has format "
                                  f"{data['format']}, newer than this microexpr reads "
                                  f"({RECIPE_FORMAT}): upgrade microexpr")
            representations = dict(data.get("representations") or {})
            if not all(isinstance(v, Mapping) and isinstance(v.get("name"), str)
                       for v in representations.values()):
                raise ValueError("a representation without a name")
            size = data.get("input_size")
            return cls(representations, dict(data.get("channels") or {}),
                       None if size is None else int(size), data.get("manifest"))
        except ConfigError:
            raise
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"the input recipe of {source} is malformed ({exc}); retrain "
                              f"the model or re-save it with a recipe "
                              f"(microexpr.training.inputs.make_input_recipe)") from None

    def describe(self) -> str:
        """One line: what the model's inputs are, for messages."""
        if self.manifest is not None:
            return f"precomputed inputs of manifest {self.manifest.get('path')}"
        parts = [f"{name}: {entry['name']}" for name, entry in self.representations.items()]
        size = f", resized to {self.input_size}" if self.input_size else ""
        return ", ".join(parts) + size


def make_input_recipe(model: Any, representation: Mapping[str, Any] | None = None, *,
                      input_representation: str | None = None,
                      input_size: int | None = None) -> InputRecipe:
    """The recipe of a trained `model` whose inputs were computed with the model's own
    representation(s) (or `input_representation`), options `representation` (per input name
    for a multi-input model) and `input_size`, as `evaluate` would: for a model fit by hand,
    or loaded from an older file, before `model.save(path)`. The channels are the model's."""
    spec = model.spec
    channels = model.channels
    if spec.multi_input:
        if input_representation or input_size is not None:
            raise ConfigError(f"{spec.name} takes the named inputs {list(spec.named_inputs())}: "
                              f"input_representation and input_size apply to single-input "
                              f"models only")
        configs = representation_configs(spec, dict(representation or {}))
        configs = {name: configs[name] for name in spec.named_inputs()}
    else:
        configs = {"input": input_config(spec, representation, input_representation)}
    per_name = dict(channels) if isinstance(channels, Mapping) else {"input": channels}
    return InputRecipe({name: {"name": rep, **asdict(config)}
                        for name, (rep, config) in configs.items()},
                       {name: _tupled(per_name.get(name)) for name in configs}, input_size)


def recipe_of(model: Any) -> InputRecipe:
    """The input recipe of `model`; ConfigError saying how to get one when it has none."""
    recipe = getattr(model, "input_recipe", None)
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    if recipe is None:
        raise ConfigError(
            f"this {name} model does not record how its inputs are computed (it was saved "
            f"by an older microexpr, or fit on arrays by hand), so it cannot compute inputs "
            f"for new clips; retrain it with `microexpr train` (microexpr.train) or "
            f"`microexpr evaluate --save-models`, or re-save it with its recipe: "
            f"model.input_recipe = microexpr.make_input_recipe(model, {{representation "
            f"options it was trained with}}); model.save(path)")
    if recipe.manifest is not None:
        raise ConfigError(
            f"this {name} model was trained on {recipe.describe()} (channels "
            f"{_channel_words(recipe)}), so it cannot compute its inputs from a clip's "
            f"frames; compute the same inputs yourself and call model.predict_proba(x), or "
            f"train it on a database (microexpr train --dataset ... --root ...)")
    return recipe


def _channel_words(recipe: InputRecipe) -> str:
    names = [",".join(v) if v else "unnamed" for v in recipe.channels.values()]
    return "; ".join(names) or "unnamed"


class ModelInputs(NamedTuple):
    """What `model_inputs` computed: the inputs of the clips in `ok` (an array, or a
    mapping per input name; None when no clip has inputs), the boolean mask `ok` over the
    clips given, and one row per failure (dataset, subject, clip, input, error)."""

    inputs: np.ndarray | dict[str, np.ndarray] | None
    ok: np.ndarray
    failures: pd.DataFrame


def model_inputs(model: Any, clips: pd.DataFrame, *, recipe: InputRecipe | None = None,
                 cache_dir: str | Path | None | bool = None, jobs: int = 1,
                 progress: bool = False) -> ModelInputs:
    """The inputs `model` was trained on, computed for every clip of `clips` from its input
    recipe: each representation with its recorded config (cached in `cache_dir`; None: no
    cache), the model's channels picked and the inputs resized as when it was trained.

    A clip whose representation fails (no face on its onset frame, an unreadable frame) or
    gives NaN / infinite values is left out (`ok` False) and named in `failures`; predict
    the others with `model.predict_proba(result.inputs)`. ConfigError for a model without a
    recipe (older files: retrain or re-save it), one trained on a manifest, or a clips
    table missing the columns the representations read. `recipe` overrides the model's (for a
    model without one: `make_input_recipe(model, options)`).
    """
    recipe = recipe_of(model) if recipe is None else recipe
    if not isinstance(clips, pd.DataFrame):
        raise ConfigError(f"clips must be a clips table (pandas DataFrame, one row per clip), "
                          f"got {type(clips).__name__}")
    missing = [c for c in NEEDED_COLUMNS if c not in clips.columns]
    if missing:
        raise ConfigError(f"the clips table lacks column(s) {missing}, which the "
                          f"representations read; build it with "
                          f"microexpr.data.clips.clips_frame or load it with "
                          f"microexpr.load_dataset")
    spec = model.spec
    failures: list[dict[str, Any]] = []
    if not len(clips):
        return ModelInputs(None, np.zeros(0, dtype=bool), _failures_frame(failures))
    reports, ok = compute_inputs(clips, recipe.configs(), cache_dir=cache_dir, jobs=jobs,
                                 progress=progress)
    for name, report in reports.items():
        failures += [{"dataset": row.dataset, "subject": row.subject, "clip": row.clip,
                      "input": name, "error": f"{report.name} failed: {row.error}"}
                     for row in report.failures.itertuples(index=False)]
    if not ok.any():
        return ModelInputs(None, ok, _failures_frame(failures))
    arrays: dict[str, np.ndarray] = {}
    for name, report in reports.items():
        x, names = kept_arrays(report, ok), tuple(report.channels) or None
        if not spec.multi_input:
            x, names = fit_inputs(spec, x, names, recipe.input_size)
        expected = recipe.channels.get(name)
        if expected is not None and names is not None and tuple(names) != tuple(expected):
            raise ConfigError(f"{spec.name} was trained on channels {list(expected)} of input "
                              f"{name!r}, but {report.name} gives {list(names)} under the "
                              f"recorded config; the model file and this microexpr disagree: "
                              f"retrain the model")
        arrays[name] = x
    finite = np.ones(int(ok.sum()), dtype=bool)
    for x in arrays.values():
        finite &= np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(ok)[~finite]
        failures += [{"dataset": clips.iloc[i]["dataset"],
                      "subject": clips.iloc[i].get("subject", ""), "clip": clips.iloc[i]["clip"],
                      "input": ",".join(arrays), "error": "NaN or infinite input values"}
                     for i in rows]
        ok = ok.copy()
        ok[rows] = False
        arrays = {k: v[finite] for k, v in arrays.items()}
    inputs: Any = arrays["input"] if list(arrays) == ["input"] else arrays
    return ModelInputs(inputs if ok.any() else None, ok, _failures_frame(failures))


def _failures_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))


__all__ = ["InputRecipe", "ModelInputs", "compute_inputs", "fit_inputs", "input_config",
           "make_input_recipe", "model_inputs", "recipe_of", "representation_configs"]
