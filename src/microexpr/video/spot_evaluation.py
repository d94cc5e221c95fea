"""Spotting evaluated honestly on a long-video database: leave-one-subject-out, MEGC metric.

`evaluate_spotting(data, spotter)` analyses every long video once (face followed and aligned,
motion scored: `microexpr.video.analyze`), then for each held-out subject:

- a training-free spotter (``mdmd``, ``lbp``, ``motion``) gets its relative threshold ``p``
  chosen on the other subjects' videos only: every candidate of `thresholds` spots their
  stored scores, the one with the best pooled MEGC F1 (ties: the largest p) spots the held-out
  subject's videos. Scores do not depend on p, so each video is analysed once for all folds.
- a learned spotter (one with a ``fit(videos, intervals)`` method, such as ``softnet``) is
  fitted on the other subjects' videos and intervals, and analyses the held-out subject's
  videos; it chooses its own threshold in `fit`, on those training videos.

A second, macro-expression pass (``macro_spotter``, by default ``mdmd`` with a window of
0.9 s on each side) spots the longer expressions; its threshold is chosen first, for the best
macro F1 on the training subjects, and a micro-pass interval that lies mostly inside a
macro-pass interval is dropped as part of it (blinks and mouth motion within a long expression
were most of the micro pass's false positives on the synthetic long videos). The micro
threshold is then chosen for the best overall F1 of the two passes together.

Nothing ever sees the held-out subject before predicting it: the pitfall of the public
spotting code, which picked the threshold on the test videos (../notes/spotting.md).

The results folder holds config.yaml (the spotter, the threshold grid and the threshold chosen
for each fold), predictions.csv (every spotted interval with its fold, in the database's frame
numbers), truth.csv (the annotated intervals scored against), matches.csv (each prediction a
tp or fp, each missed truth a fn), counts.csv (TP / FP / FN per video and kind), metrics.json
(precision, recall, F1 per kind and overall: `microexpr.evaluation.spotting`; with a `model`,
the spot-then-recognise score of its classes for the spotted hits), one folder per
video under videos/ with its intervals.csv and its per-frame scores (frames.csv, with the
macro pass's as score_macro; frames_macro.csv beside a learned spotter's), so any threshold
can be re-applied and every number recomputed.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from microexpr.data.frames import list_frames
from microexpr.data.long_videos import LongVideoDataset, load_long_videos
from microexpr.errors import ConfigError, DatasetError
from microexpr.evaluation.protocols import make_folds
from microexpr.evaluation.rundir import check_out, open_run_dir
from microexpr.evaluation.spotting import match_spots, spotting_counts, spotting_metrics
from microexpr.plain import plain_data
from microexpr.progress import track as progress_bar
from microexpr.training.inputs import model_inputs
from microexpr.video.analysis import analyze
from microexpr.video.reader import open_video
from microexpr.video.recognise import interval_clips, load_recogniser
from microexpr.video.spotters import Spotter, get_spotter, macro_pass, without_overlap

#: The relative thresholds a training-free spotter chooses among on the training subjects.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(p, 2) for p in np.arange(0.05, 1.0, 0.05))
PREDICTION_COLUMNS = ("dataset", "subject", "video", "fold", "onset", "apex", "offset", "kind",
                      "score", "p")


@dataclass
class SpottingResult:
    """What `evaluate_spotting` returns: the spotted intervals, the truth they are scored
    against, the MEGC metrics, the per-fold choices and where the results went."""

    predictions: pd.DataFrame
    truth: pd.DataFrame
    metrics: dict
    config: dict
    out_dir: Path | None = None
    videos: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    macro_videos: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """One line per kind: TP / FP / FN, precision, recall and F1."""
        lines = []
        for part in ("micro", "macro", "overall"):
            if part not in self.metrics:
                continue
            m = self.metrics[part]
            line = (f"{part:>7}: TP {m['tp']} FP {m['fp']} FN {m['fn']}  "
                    f"P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}")
            if part in self.metrics.get("strs", {}):
                strs = self.metrics["strs"][part]
                line += f"  analysis F1 {strs['analysis_f1']:.3f} STRS {strs['strs']:.3f}"
            lines.append(line)
        return "\n".join(lines)


def _frame_numbers(folder: str | Path) -> np.ndarray:
    """The database frame number of each frame of a video folder, in reading order."""
    numbers = [number for number, _ in list_frames(Path(folder))]
    if not numbers:
        raise DatasetError(f"no frames in {folder}")
    return np.asarray(numbers, dtype=np.int64)


def _numbered(intervals: pd.DataFrame, numbers: np.ndarray) -> pd.DataFrame:
    """Intervals with positions in the video turned into the database's frame numbers."""
    table = intervals.copy()
    for column in ("onset", "apex", "offset"):
        table[column] = numbers[table[column].to_numpy(dtype=np.int64)]
    return table


def _check_thresholds(thresholds: Sequence[float] | None) -> tuple[float, ...]:
    values = tuple(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    if not values or any(not isinstance(p, int | float) or not 0 <= p <= 1 for p in values):
        raise ConfigError(f"thresholds must be numbers in 0..1 (the relative threshold p), "
                          f"got {list(values)}")
    return tuple(sorted({float(p) for p in values}))


def _spot(spotter: Spotter, frames: pd.DataFrame, fps: float, numbers: np.ndarray,
          p: float | None) -> pd.DataFrame:
    """The intervals `spotter` (at relative threshold `p`, or its own) finds in one video's
    stored per-frame scores, in database frame numbers."""
    chosen = spotter if p is None else type(spotter)(spotter.config, p=p)
    spotting = chosen.spot(frames["score"].to_numpy(dtype=np.float64),
                           frames["segment"].to_numpy(dtype=np.int64), fps)
    return _numbered(spotting.intervals, numbers)


def _predictions(rows: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [r for r in rows if len(r)]
    if not frames:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    return table[[c for c in PREDICTION_COLUMNS if c in table.columns]
                 + [c for c in table.columns if c not in PREDICTION_COLUMNS]]


def _tagged(intervals: pd.DataFrame, video: Mapping[str, Any], fold: int,
            p: float | None) -> pd.DataFrame:
    table = intervals.drop(columns=[c for c in ("start_s", "end_s") if c in intervals.columns])
    return table.assign(dataset=video["dataset"], subject=video["subject"],
                        video=video["video"], fold=fold, p=p)


def choose_threshold(thresholds: Sequence[float], predict: Callable[[float], pd.DataFrame],
                     truth: pd.DataFrame, *, iou: float = 0.5
                     ) -> tuple[float, dict[float, float]]:
    """The relative threshold p of `thresholds` whose predictions (`predict(p)`, on the
    training videos only) have the best pooled MEGC F1 against `truth` (ties: the largest p,
    the fewest false positives), and the F1 of every candidate."""
    scores: dict[float, float] = {}
    for p in thresholds:
        f1 = spotting_metrics(predict(p), truth, iou)["overall"]["f1"]
        scores[p] = float(f1) if np.isfinite(f1) else 0.0
    best = max(scores.values())
    return max(p for p, f1 in scores.items() if f1 == best), scores


def _spot_videos(spotter: Spotter, analyses: Mapping[str, pd.DataFrame], videos: pd.DataFrame,
                 numbers: Mapping[str, np.ndarray], p: float | None, fold: int,
                 kind: str | None = None) -> pd.DataFrame:
    """The intervals `spotter` finds at threshold `p` in the stored scores of `videos`
    (every interval called `kind` when given: the macro pass's are all macro)."""
    rows = []
    for video in videos.to_dict("records"):
        found = _spot(spotter, analyses[video["video"]], video["fps"],
                      numbers[video["video"]], p)
        if kind is not None:
            found = found.assign(kind=kind)
        rows.append(_tagged(found, video, fold, p))
    return _predictions(rows)


def _analyse(video: Mapping[str, Any], spotter: Spotter, align: Any, track_options: Any,
             macro: Spotter | None = None) -> pd.DataFrame:
    """The per-frame table of one long video (scores of `spotter`, and of `macro` as
    score_macro when given)."""
    analysis = analyze(video["folder"], spotter=spotter, macro_spotter=macro,
                       fps=float(video["fps"]), align=align, track=track_options)
    return analysis.frames


def recognise_spots(predictions: pd.DataFrame, videos: pd.DataFrame,
                    numbers: Mapping[str, np.ndarray], model: Any, *,
                    device: str | None = None) -> tuple[pd.DataFrame, list[str], dict]:
    """`predictions` with the class a trained `model` (a saved file, or a classifier)
    recognises in each spotted interval (`label`, "" when its inputs failed) and p_<class>
    columns; also the failures and the model's description."""
    recogniser = None
    table = predictions.copy()
    classes: list[str] = []
    labels = pd.Series("", index=table.index, dtype="object")
    proba: dict[str, pd.Series] = {}
    failures: list[str] = []
    for video in videos.to_dict("records"):
        mine = table[table["video"] == video["video"]]
        if mine.empty:
            continue
        source = open_video(video["folder"], float(video["fps"]))
        if recogniser is None:
            recogniser = load_recogniser(model, source, device)
            classes = [str(c) for c in recogniser.classifier.classes]
            proba = {c: pd.Series(np.nan, index=table.index) for c in classes}
        spans = np.searchsorted(numbers[video["video"]],
                                mine[["onset", "apex", "offset"]].to_numpy(dtype=np.int64))
        intervals = pd.DataFrame(spans, columns=["onset", "apex", "offset"])
        with tempfile.TemporaryDirectory(prefix="microexpr-spots-") as folder:
            clips = interval_clips(intervals, source, folder)
            computed = model_inputs(recogniser.classifier, clips, recipe=recogniser.recipe)
        failures += [f"{video['video']} {row.clip}: {row.error}"
                     for row in computed.failures.itertuples()]
        if computed.inputs is None:
            continue
        p = recogniser.classifier.predict_proba(computed.inputs)
        index = mine.index[computed.ok]
        labels[index] = [classes[int(i)] for i in p.argmax(axis=1)]
        for j, name in enumerate(classes):
            proba[name][index] = p[:, j]
    table["label"] = labels
    for name in classes:
        table[f"p_{name}"] = proba[name]
    described = recogniser.describe() if recogniser is not None else {"path": str(model)}
    return table, failures + (recogniser.warnings if recogniser else []), described


def _combined(micro: pd.DataFrame, macro: pd.DataFrame | None) -> pd.DataFrame:
    """The micro pass's intervals less those inside a macro interval, with the macro ones."""
    if macro is None:
        return micro
    return _predictions([without_overlap(micro, macro), macro])


def _predictor(spotter: Spotter, analyses: Mapping[str, pd.DataFrame], videos: pd.DataFrame,
               numbers: Mapping[str, np.ndarray], fold: int, *, kind: str | None = None,
               macro_found: pd.DataFrame | None = None) -> Callable[[float], pd.DataFrame]:
    """p -> the predictions on `videos` at threshold p (combined with `macro_found`)."""
    def predict(p: float) -> pd.DataFrame:
        return _combined(_spot_videos(spotter, analyses, videos, numbers, p, fold, kind),
                         macro_found)
    return predict


def evaluate_spotting(
    data: LongVideoDataset | str | Path,
    spotter: str | Spotter = "default",
    *,
    macro_spotter: str | Spotter | None = "default",
    model: Any = None,
    device: str | None = None,
    root: str | Path | None = None,
    protocol: str = "loso",
    thresholds: Sequence[float] | None = None,
    iou: float = 0.5,
    align: Mapping[str, Any] | None = None,
    track: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    write: bool = True,
    progress: bool = True,
) -> SpottingResult:
    """Spot micro- and macro-expressions in every video of a long-video database under
    leave-one-subject-out and score them with the MEGC metric (module notes).

    `data`: a loaded `LongVideoDataset`, or a format name ("casme2_long", "samm_long",
    "casme3_long") with `root`. `spotter`: the micro-expression spotter, a name or a
    `Spotter` (options through ``get_spotter(name, **options)``). `macro_spotter`: the
    macro-expression pass ("default": ``mdmd`` over MACRO_HALF_DURATION_S; None: none).
    `model`: a trained classifier (its file, from `microexpr train`, or a loaded one) that
    recognises every spotted interval: predictions gain `label` and p_<class>, and the
    metrics the spot-then-recognise score (STRS) against the annotated emotions, compared with
    the model's class names as written (lower case). The model must not have been trained on
    the evaluated database's subjects (a model of another database, as MEGC's STR task).
    `thresholds`: the candidate relative thresholds of the training-free spotters (default
    0.05, 0.10, ..., 0.95). `align` / `track`: face options of `analyze`. `out`: the results
    folder (default results/spot-<data>-<spotter>), refused when not empty unless
    `overwrite`; written only when `write`.
    """
    if not isinstance(data, LongVideoDataset):
        if root is None:
            raise ConfigError(f"give the folder of the {data} database: root=PATH (CLI "
                              f"--root PATH)")
        data = load_long_videos(str(data), root)
    chosen = get_spotter(spotter)
    macro = macro_pass(macro_spotter)
    learns = callable(getattr(chosen, "fit", None))
    if learns and thresholds is not None and macro is None:
        raise ConfigError(f"spotter {chosen.name!r} chooses its own threshold on the training "
                          f"subjects when it is fitted: drop thresholds")
    grid = _check_thresholds(thresholds)
    if protocol != "loso":
        raise ConfigError(f"spotting is evaluated leave-one-subject-out (protocol='loso'), "
                          f"got {protocol!r}")
    if not 0 < iou <= 1:
        raise ConfigError(f"iou must be in (0, 1], got {iou}")
    videos = data.videos.reset_index(drop=True)
    if videos.empty:
        raise DatasetError(f"{data.name} has no video with frames to spot in")
    if videos["subject"].nunique() < 2:
        raise ConfigError(f"{data.name} has videos of one subject only: leave-one-subject-out "
                          f"needs at least 2 subjects")
    out_path = None
    if write:
        out_path = check_out(Path(out) if out is not None else
                             Path("results") / f"spot-{data.name}-{chosen.name}",
                             overwrite=overwrite)
    truth = data.intervals.reset_index(drop=True)
    numbers = {v: _frame_numbers(f) for v, f in zip(videos["video"], videos["folder"],
                                                    strict=True)}
    folds = make_folds(protocol, videos["subject"].astype(str).to_numpy(),
                       videos["dataset"].astype(str).to_numpy())
    started = time.perf_counter()
    records = videos.to_dict("records")
    analyses: dict[str, pd.DataFrame] = {}
    macro_analyses: dict[str, pd.DataFrame] = {}
    # training-free scores do not depend on the fold: one pass per video and spotter
    if not learns or macro is not None:
        for video in progress_bar(records, len(records), "analysing videos", progress):
            if learns:  # the macro pass alone: the micro pass is fitted per fold
                macro_analyses[video["video"]] = _analyse(video, macro, align, track)
                continue
            frames = _analyse(video, chosen, align, track, macro)
            analyses[video["video"]] = frames
            if macro is not None:  # both passes in one stream: the macro scores as "score"
                macro_analyses[video["video"]] = frames[["frame", "segment", "score_macro"]
                                                        ].rename(columns={"score_macro":
                                                                          "score"})
    rows, fold_info = [], []
    for fold in folds:
        train_videos, test_videos = videos.iloc[fold.train], videos.iloc[fold.test]
        train_truth = truth[truth["video"].isin(train_videos["video"])]
        info: dict[str, Any] = {"fold": fold.index, "held_out": fold.held_out,
                                "train_videos": int(len(train_videos)),
                                "test_videos": int(len(test_videos))}
        macro_train = macro_test = None
        if macro is not None:  # macro threshold: the best macro F1 on the training subjects
            p_macro, f1s = choose_threshold(
                grid, _predictor(macro, macro_analyses, train_videos, numbers, fold.index,
                                 kind="macro"),
                train_truth[train_truth["kind"] == "macro"], iou=iou)
            info.update({"p_macro": p_macro, "train_macro_f1": f1s[p_macro]})
            macro_train = _spot_videos(macro, macro_analyses, train_videos, numbers, p_macro,
                                       fold.index, "macro")
            macro_test = _spot_videos(macro, macro_analyses, test_videos, numbers, p_macro,
                                      fold.index, "macro")
        if learns:
            face = {k: v for k, v in (("align", align), ("track", track)) if v is not None}
            fitted = copy.deepcopy(chosen).fit(train_videos, train_truth, progress=False,
                                               **face)
            info["spotter"] = fitted.describe()
            found = []
            for video in test_videos.to_dict("records"):
                frames = _analyse(video, fitted, align, track)
                analyses[video["video"]] = frames
                found.append(_tagged(_spot(fitted, frames, video["fps"],
                                           numbers[video["video"]], None),
                                     video, fold.index, None))
            rows.append(_combined(_predictions(found), macro_test))
        else:  # micro threshold: the best overall F1 on the training subjects
            p, f1s = choose_threshold(
                grid, _predictor(chosen, analyses, train_videos, numbers, fold.index,
                                 macro_found=macro_train), train_truth, iou=iou)
            info.update({"p": p, "train_f1": f1s[p], "train_f1_per_p": f1s})
            rows.append(_combined(_spot_videos(chosen, analyses, test_videos, numbers, p,
                                               fold.index), macro_test))
        fold_info.append(info)
    predictions = _predictions(rows)
    recognition = None
    if model is not None:
        predictions, failures, described = recognise_spots(predictions, videos, numbers, model,
                                                           device=device)
        recognition = {"model": described, "failures": failures}
        truth = truth.assign(label=truth["emotion"].astype(str).str.strip().str.lower())
        predictions["label"] = predictions["label"].str.lower()
    metrics = spotting_metrics(predictions, truth, iou, labels="label")
    config = {
        "task": "spot",
        "data": {"name": data.name, "format": data.format, "root": data.root,
                 "annotation": data.annotation_file, "videos": int(len(videos)),
                 "subjects": int(videos["subject"].nunique()),
                 "intervals": {k: int(v) for k, v in truth["kind"].value_counts().items()}},
        "spotter": chosen.describe(),
        "macro_spotter": None if macro is None else macro.describe(),
        "recognition": recognition,
        "learned": learns,
        "protocol": protocol,
        "thresholds": list(grid),
        "threshold_chosen_on": "the training subjects of each fold, never the test subject",
        "iou": iou,
        "align": dict(align or {}),
        "track": dict(track or {}),
        "folds": fold_info,
        "seconds": round(time.perf_counter() - started, 3),
    }
    result = SpottingResult(predictions, truth, metrics, config, videos=analyses,
                            macro_videos=macro_analyses)
    if write and out_path is not None:
        result.out_dir = _write(out_path, result, data, overwrite)
    return result


def _write(out: Path, result: SpottingResult, data: LongVideoDataset, overwrite: bool
           ) -> Path:
    """The results folder, written in `<out>.partial` and moved into place when complete."""
    run = open_run_dir(out, {"fingerprint": "spot", "task": "spot"}, overwrite=overwrite)
    folder = run.partial
    (folder / "config.yaml").write_text(yaml.safe_dump(plain_data(result.config), sort_keys=False))
    result.predictions.to_csv(folder / "predictions.csv", index=False)
    result.truth.to_csv(folder / "truth.csv", index=False)
    match_spots(result.predictions, result.truth, result.config["iou"]).to_csv(
        folder / "matches.csv", index=False)
    spotting_counts(result.predictions, result.truth, result.config["iou"]).to_csv(
        folder / "counts.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps(plain_data(result.metrics), indent=2) + "\n")
    if len(data.problems):
        data.problems.to_csv(folder / "problems.csv", index=False)
    for video, frames in result.videos.items():
        target = folder / "videos" / video
        target.mkdir(parents=True, exist_ok=True)
        frames.to_csv(target / "frames.csv", index=False)
        if video in result.macro_videos and "score_macro" not in frames.columns:
            result.macro_videos[video].to_csv(target / "frames_macro.csv", index=False)
        mine = result.predictions[result.predictions["video"] == video]
        mine.to_csv(target / "intervals.csv", index=False)
    (folder / "run.json").unlink(missing_ok=True)
    return run.finish()
