"""One self-contained HTML report of one or more results directories.

`report(dirs, out)` reads only what `evaluate` wrote (config.yaml, predictions.csv,
metrics.json, history.csv, problems.csv, folds/, models/), so any old run re-renders; a part
whose file an older run lacks is left out with a note. The page has inline CSS, no script
and every figure embedded as a base64 PNG, so it can be mailed or archived as one file.

Per run: the configuration, UF1 / UAR / accuracy overall and per database, the confusion
matrix, per-class F1, per-subject accuracy, training curves, auxiliary metrics and, for
models that attend and whose fold models were saved, attention maps of a few test clips.
Across runs: a table sorted by UF1 with the linear baselines marked, and paired per-clip
comparisons (clips matched by dataset, subject and clip) with an exact McNemar test.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from microexpr.errors import ConfigError
from microexpr.evaluation.metrics import PROBABILITY_PREFIX, compute_metrics
from microexpr.evaluation.report import load_results
from microexpr.evaluation.report_plots import (
    bars_png,
    confusion_png,
    history_columns,
    history_png,
)

LINEAR_BASELINES = ("logreg", "linear_svm")
RESULT_FILES = ("config.yaml", "predictions.csv", "metrics.json")
CLIP_KEY = ("dataset", "subject", "clip")
PREDICTION_DTYPES = {"y_true": str, "y_pred": str, "clip": str, "subject": str, "dataset": str}
ALL_PAIRS_UP_TO = 5  # runs; with more, each run is compared with the best one only
# auxiliary metric -> (the trivial baseline it must beat, what that baseline is); lower wins
AUXILIARY_BASELINES = {"flow_epe": ("flow_epe_zero", "zero flow"),
                       "landmark_nme": ("landmark_nme_mean_shape", "training mean shape")}


# -- reading results directories ----------------------------------------------------------

@dataclass
class Run:
    """What a results directory holds, as read back; `notes` says what it lacks."""

    path: Path
    name: str
    config: dict | None
    config_text: str | None
    predictions: pd.DataFrame | None
    metrics: dict | None
    history: pd.DataFrame | None = None
    problems: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        """The model's name ("unknown" without config.yaml)."""
        return str(((self.config or {}).get("model") or {}).get("name") or "unknown")

    @property
    def is_baseline(self) -> bool:
        """Whether the model is one of the linear baselines (the floor to beat)."""
        return self.model in LINEAR_BASELINES

    def metric(self, key: str) -> float:
        """An overall metric (uf1, uar, accuracy); NaN when absent or undefined."""
        return _number((self.metrics or {}).get(key))

    @property
    def classes(self) -> list[str]:
        """The class names in the run's order."""
        listed = (self.metrics or {}).get("classes") or (self.config or {}).get("classes")
        if listed:
            return [str(c) for c in listed]
        return _classes_of(self.predictions) if self.predictions is not None else []


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _classes_of(predictions: pd.DataFrame) -> list[str]:
    columns = [c for c in predictions.columns if c.startswith(PROBABILITY_PREFIX)]
    if columns:
        return [c[len(PROBABILITY_PREFIX):] for c in columns]
    return sorted(set(predictions["y_true"]) | set(predictions["y_pred"]))


def _unreadable(path: Path, exc: Exception) -> ConfigError:
    return ConfigError(f"{path} cannot be read ({exc}); restore it from the run or leave "
                       f"this results directory out of the report")


def _read_file(path: Path, reader: Callable[[Path], Any]) -> Any:
    """`reader(path)`; ConfigError naming the file when it cannot be read."""
    try:
        return reader(path)
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _unreadable(path, exc) from None


def _checked(path: Path, value: Any) -> Any:
    """What was read from `path`, checked to be what the file should hold."""
    try:
        return _READERS[path.name][1](value)
    except ValueError as exc:
        raise _unreadable(path, exc) from None


def _check_config(config: Any) -> dict:
    if not isinstance(config, dict):
        raise ValueError("it does not hold a mapping of settings")
    return config


def _check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("clip", "y_true", "y_pred") if c not in predictions.columns]
    if missing:
        raise ValueError(f"it has no column(s) {', '.join(missing)}")
    return predictions


def _check_metrics(metrics: Any) -> dict:
    if not isinstance(metrics, dict):
        raise ValueError("it does not hold a mapping of metrics")
    return metrics


# file -> (read it as `load_results` does, check what was read)
_READERS: dict[str, tuple[Callable[[Path], Any], Callable[[Any], Any]]] = {
    "config.yaml": (lambda p: yaml.safe_load(p.read_text(encoding="utf-8")), _check_config),
    "predictions.csv": (lambda p: pd.read_csv(p, dtype=PREDICTION_DTYPES),
                        _check_predictions),
    "metrics.json": (lambda p: json.loads(p.read_text(encoding="utf-8")), _check_metrics),
}


def read_run(path: str | Path, name: str | None = None) -> Run:
    """Read a results directory for the report: config.yaml, predictions.csv, metrics.json
    (with `load_results` when all are there), history.csv and problems.csv.

    A missing file leaves its part out with a note (metrics are recomputed from
    predictions.csv when metrics.json is missing; training curves come from folds/ when
    history.csv is). ConfigError naming the folder when it is not a results directory,
    naming the file when one cannot be read.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"results directory {path} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{path} is not a results directory (a folder written by "
                          f"`microexpr evaluate --out`)")
    present = {f: (path / f).is_file() for f in RESULT_FILES}
    if not present["predictions.csv"] and not present["metrics.json"]:
        hint = ""
        if (path / "folds").is_dir():
            hint = ("; its folds/ holds the finished folds of an unfinished run: complete it "
                    "with the same `microexpr evaluate` command and --resume")
        raise ConfigError(f"{path} is not a results directory: it holds neither "
                          f"predictions.csv nor metrics.json{hint}")
    notes: list[str] = []
    if all(present.values()):
        try:
            loaded = load_results(path)
        except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
            for file, (reader, _) in _READERS.items():  # name the file that is broken
                _read_file(path / file, reader)
            raise ConfigError(f"{path} cannot be read ({exc})") from None
    else:
        loaded = tuple(_read_file(path / f, _READERS[f][0]) if present[f] else None
                       for f in RESULT_FILES)
    config, predictions, metrics = (None if value is None else _checked(path / file, value)
                                    for file, value in zip(RESULT_FILES, loaded, strict=True))
    config_text = (path / "config.yaml").read_text(encoding="utf-8") if config else None
    if config is None:
        notes.append("config.yaml is missing: the run's configuration is unknown")
    if predictions is None:
        notes.append("predictions.csv is missing: per-subject accuracy and the paired "
                      "comparisons leave this run out")
    if metrics is None:
        classes = (config or {}).get("classes") or _classes_of(predictions)
        try:
            metrics = compute_metrics(predictions, [str(c) for c in classes])
        except ValueError as exc:
            raise _unreadable(path / "predictions.csv", exc) from None
        notes.append("metrics.json is missing: the metrics were recomputed from "
                     "predictions.csv")
    run = Run(path, name or path.resolve().name, config, config_text, predictions, metrics,
              notes=notes)
    run.history = _history(run)
    if (path / "problems.csv").is_file():
        run.problems = _read_file(path / "problems.csv",
                                  lambda p: pd.read_csv(p, dtype=str, keep_default_na=False))
    return run


def _history(run: Run) -> pd.DataFrame | None:
    """history.csv, or the per-fold histories kept in folds/*.npz when it is missing."""
    file = run.path / "history.csv"
    if file.is_file():
        history = _read_file(file, pd.read_csv)
        return history if len(history) and "epoch" in history.columns else None
    if run.config is not None and run.config.get("train") is None:
        return None  # a scikit-learn model: trained in one step
    rows = []
    for fold_file in sorted((run.path / "folds").glob("fold*.npz")):
        number = fold_file.stem.removeprefix("fold")
        if not number.isdigit():
            continue
        try:
            with np.load(fold_file, allow_pickle=False) as saved:
                info = json.loads(str(saved["info"])) if "info" in saved.files else {}
        except (OSError, ValueError, KeyError):
            continue
        rows += [{"fold": int(number), **row} for row in info.get("history") or []]
    if rows:
        run.notes.append("history.csv is missing: the training curves were read from "
                         "folds/")
        return pd.DataFrame(rows)
    run.notes.append("history.csv is missing (a run written before microexpr recorded "
                     "training curves): no training curves")
    return None


# -- comparing runs -------------------------------------------------------------------------

@dataclass(frozen=True)
class Paired:
    """Two runs' predictions on the clips they share (matched by dataset, subject, clip):
    how many only `a` got right, only `b`, both, neither, and the exact McNemar p-value
    (two-sided binomial test of only_a against only_a + only_b at 1/2)."""

    a: str
    b: str
    n_a: int
    n_b: int
    shared: int
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float
    notes: tuple[str, ...] = ()


def _by_clip(predictions: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, int]:
    """(key columns, y_true, y_pred) as text, first row of each clip; repeated clips."""
    table = predictions[[*key, "y_true", "y_pred"]].astype(str)
    repeated = table.duplicated(key)
    return table[~repeated], int(repeated.sum())


def paired_comparison(a: Run, b: Run) -> Paired:
    """Compare two runs clip by clip on the clips both predicted (see `Paired`)."""
    from scipy.stats import binomtest

    if a.predictions is None or b.predictions is None:
        missing = a.name if a.predictions is None else b.name
        return Paired(a.name, b.name, 0, 0, 0, 0, 0, 0, 0, math.nan,
                      (f"{missing} has no predictions.csv: no paired comparison",))
    key = [k for k in CLIP_KEY if k in a.predictions.columns and k in b.predictions.columns]
    notes = []
    if key != list(CLIP_KEY):
        notes.append(f"clips matched by {', '.join(key)} only (older predictions.csv)")
    left, repeated_a = _by_clip(a.predictions, key)
    right, repeated_b = _by_clip(b.predictions, key)
    for run, repeated in ((a, repeated_a), (b, repeated_b)):
        if repeated:
            notes.append(f"{run.name} predicts {repeated} clip(s) more than once: the first "
                         f"prediction of each is compared")
    merged = left.merge(right, on=key, suffixes=("_a", "_b"))
    differ = merged["y_true_a"] != merged["y_true_b"]
    if differ.any():
        notes.append(f"{int(differ.sum())} shared clip(s) have different true labels in the "
                     f"two runs (another label scheme?) and are left out")
        merged = merged[~differ]
    n_a, n_b, shared = len(left), len(right), len(merged)
    if shared == 0:
        notes.append("the two runs share no clip: they cannot be compared clip by clip")
    elif shared < max(n_a, n_b):
        notes.append(f"not the same clips: {a.name} has {n_a}, {b.name} {n_b}; compared on "
                     f"the {shared} they share")
    right_a = (merged["y_pred_a"] == merged["y_true_a"]).to_numpy()
    right_b = (merged["y_pred_b"] == merged["y_true_b"]).to_numpy()
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    discordant = only_a + only_b
    p_value = (math.nan if shared == 0 else 1.0 if discordant == 0
               else float(binomtest(only_a, discordant, 0.5).pvalue))
    return Paired(a.name, b.name, n_a, n_b, shared, int((right_a & right_b).sum()), only_a,
                  only_b, int((~right_a & ~right_b).sum()), p_value, tuple(notes))


def rank_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs by UF1, best first (undefined UF1 last; ties keep the given order)."""
    return sorted(runs, key=lambda r: -r.metric("uf1") if not math.isnan(r.metric("uf1"))
                  else math.inf)


def comparison_pairs(ranked: Sequence[Run]) -> list[tuple[Run, Run]]:
    """Every pair of runs (the better ranked first) up to ALL_PAIRS_UP_TO runs, else each
    run against the best."""
    if len(ranked) <= ALL_PAIRS_UP_TO:
        return list(itertools.combinations(ranked, 2))
    return [(ranked[0], other) for other in ranked[1:]]


# -- HTML pieces ------------------------------------------------------------------------------

class Html(str):
    """Text that is already HTML; anything else is escaped where it is put into the page."""


def esc(value: Any) -> Html:
    """`value` as HTML: markup kept, anything else escaped (quotes included)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def fmt(value: Any, digits: int = 4) -> str:
    """A metric as text: fixed digits, "n/a" for a missing or undefined value."""
    number = _number(value)
    return "n/a" if math.isnan(number) else f"{number:.{digits}f}"


def _value_text(value: Any) -> str:
    """A config value as short text: options as key=value, lists comma-separated."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_nested_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return str(value)


def _nested_text(value: Any) -> str:
    if isinstance(value, dict) and value:
        return "{" + _value_text(value) + "}"
    return _value_text(value)


def _representation_text(representation: Any) -> str:
    if not isinstance(representation, dict):
        return _value_text(representation)
    if "name" in representation:
        options = {k: v for k, v in representation.items() if k != "name"}
        return f"{representation['name']} ({_value_text(options)})"
    return "; ".join(f"{k}: {_representation_text(v)}" for k, v in representation.items())


def _table(header: Sequence[Any], rows: Sequence[Sequence[Any]], css: str = "",
           row_css: Sequence[str] | None = None) -> Html:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_css[i]}"' if row_css and row_css[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    cls = f' class="{css}"' if css else ""
    return Html(f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                f"</tbody></table>")


def _img(png: bytes, alt: str) -> Html:
    data = base64.b64encode(png).decode("ascii")
    return Html(f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">')


def _figure(png: bytes, alt: str, caption: Any, css: str = "") -> Html:
    cls = f' class="{css}"' if css else ""
    return Html(f"<figure{cls}>{_img(png, alt)}<figcaption>{esc(caption)}</figcaption>"
                f"</figure>")


def _note(text: Any) -> Html:
    return Html(f'<p class="note">{esc(text)}</p>')


def _details(summary: str, content: Html) -> Html:
    return Html(f"<details><summary>{esc(summary)}</summary>{content}</details>")


def _badge(run: Run) -> Html:
    return Html('<span class="badge">linear baseline</span>' if run.is_baseline else "")


# -- one run ------------------------------------------------------------------------------

def _data_text(config: dict) -> str:
    data = config.get("data") or {}
    where = data.get("root") or data.get("path") or ""
    labels = f", labels {data['labels']}" if data.get("labels") else ""
    return f"{data.get('kind', '?')} {data.get('name', '?')}{labels}" + (
        f" ({where})" if where else "")


def _config_rows(config: dict) -> list[tuple[str, str]]:
    model = config.get("model") or {}
    rows = [("model", str(model.get("name", "?"))),
            ("reference", str(model.get("reference", ""))),
            ("recipe", str(model.get("recipe", "default"))),
            ("parameters", _value_text(model.get("params") or {})),
            ("training", _value_text(config.get("train")) if config.get("train") is not None
             else "scikit-learn model (no training options)"),
            ("data", _data_text(config)),
            ("classes", ", ".join(str(c) for c in config.get("classes") or [])),
            ("clips / subjects", f"{config.get('n_clips', '?')} / "
                                 f"{config.get('n_subjects', '?')}"),
            ("representation", _representation_text(config.get("representation"))),
            ("channels", _value_text(config.get("channels"))),
            ("input shape", _value_text(config.get("input_shape"))
             + (f", resized to {config['input_size']}" if config.get("input_size") else "")),
            ("protocol", f"{config.get('protocol', '?')}, {config.get('n_folds', '?')} folds"),
            ("seed", str(config.get("seed", "?"))),
            ("ensemble", str(config.get("ensemble", 1))),
            ("tuning", _tuning_text(config.get("tuning"))),
            ("pretrained weights", _value_text(config.get("init"))),
            ("macro data", _value_text((config.get("macro") or {}).get("sources"))
             if config.get("macro") else "none"),
            ("run", f"{config.get('created', '?')}, microexpr "
                    f"{config.get('microexpr_version', '?')}, Python "
                    f"{config.get('python', '?')}, device {config.get('device', '?')}")]
    return [(k, v) for k, v in rows if v != ""]


def _balanced_split(lengths: Sequence[int], width: int = 60) -> int:
    """Where to split rows of these text lengths into two columns of about equal height
    (a row takes a line per `width` characters)."""
    lines = np.array([1 + n // width for n in lengths])
    if len(lines) < 2:
        return len(lines)
    before = np.cumsum(lines)
    return int(np.argmin(np.abs(before - (before[-1] - before)))) + 1


def _tuning_text(tuning: Any) -> str:
    if not tuning:
        return "none"
    points = tuning.get("points") or []
    return (f"nested, {len(points)} grid points from {tuning.get('source', '?')}, "
            f"{tuning.get('inner_folds', '?')} inner folds, metric {tuning.get('metric', '?')}")


def _folds_table(config: dict) -> Html:
    folds = config.get("folds") or []
    if not folds:
        return Html("")
    rows = [[f.get("index", ""), f.get("held_out", ""), f.get("n_train", ""),
             f.get("n_test", ""), f.get("epochs_run", "-"), f.get("best_epoch", "-"),
             fmt(f.get("final_train_loss"), 4) if "final_train_loss" in f else "-",
             f.get("fit_seconds", "-"),
             (f.get("tuning") or {}).get("label", "-")] for f in folds]
    return _details(f"folds ({len(folds)})", _table(
        ["fold", "held out", "train clips", "test clips", "epochs", "best epoch",
         "final training loss", "fit seconds", "tuned point"], rows))


def _metrics_section(run: Run) -> list[str]:
    metrics = run.metrics or {}
    rows = [["all", fmt(metrics.get("uf1")), fmt(metrics.get("uar")),
             fmt(metrics.get("accuracy")), metrics.get("n", "?")]]
    for dataset, part in (metrics.get("per_dataset") or {}).items():
        rows.append([dataset, fmt(part.get("uf1")), fmt(part.get("uar")),
                     fmt(part.get("accuracy")), part.get("n", "?")])
    out = ["<h3>Metrics</h3>",
           '<p class="hint">pooled over all folds (MEGC 2019: UF1 = mean per-class F1, UAR = '
           'mean per-class recall)</p>']
    tables = [_table(["part", "UF1", "UAR", "accuracy", "clips"], rows, css="num")]
    classes = run.classes
    figures = []
    confusion = metrics.get("confusion")
    if confusion is not None and classes:
        figures.append(_figure(confusion_png(np.array(confusion), classes), "confusion matrix",
                               "confusion matrix (rows: true class)"))
    per_class = metrics.get("per_class") or {}
    if per_class:
        names = list(per_class)
        f1 = [_number(per_class[c].get("f1")) for c in names]
        figures.append(_figure(bars_png(names, f1, xlabel="F1"), "per-class F1",
                               "per-class F1"))
        tables.append(_table(["class", "F1", "recall", "support"],
                             [[c, fmt(per_class[c].get("f1")), fmt(per_class[c].get("recall")),
                               per_class[c].get("support", "?")] for c in names], css="num"))
    out.append(Html(f'<div class="figures">{"".join(tables)}</div>'))
    if figures:
        out.append(Html(f'<div class="figures">{"".join(figures)}</div>'))
    return out


def subject_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per subject: its database, test clips, clips right and accuracy."""
    right = predictions["y_pred"].astype(str) == predictions["y_true"].astype(str)
    keys = [k for k in ("dataset", "subject") if k in predictions.columns]
    table = predictions[keys].astype(str).assign(right=right.to_numpy())
    grouped = table.groupby(keys, sort=True)["right"]
    out = grouped.agg(clips="size", right="sum").reset_index()
    out["accuracy"] = out["right"] / out["clips"]
    return out


def _subjects_section(run: Run) -> list[str]:
    if run.predictions is None:
        return []
    if "subject" not in run.predictions.columns:
        return ["<h3>Per-subject accuracy</h3>",
                _note("predictions.csv has no subject column: no per-subject accuracy")]
    table = subject_accuracy(run.predictions)
    labels = table["subject"].tolist()
    image = bars_png(labels, table["accuracy"].tolist(), xlabel="accuracy",
                     annotations=[f"{r}/{n}" for r, n in zip(table["right"], table["clips"],
                                                             strict=True)])
    rows = [[*(r[k] for k in ("dataset", "subject") if k in table.columns), r["clips"],
             r["right"], fmt(r["accuracy"], 3)] for _, r in table.iterrows()]
    header = [k for k in ("dataset", "subject") if k in table.columns] + [
        "clips", "right", "accuracy"]
    return ["<h3>Per-subject accuracy</h3>",
            _figure(image, "per-subject accuracy",
                    "accuracy on each held-out subject (clips right / test clips)"),
            _details(f"per-subject table ({len(table)} subjects)",
                     _table(header, rows, css="num"))]


def _history_section(run: Run) -> list[str]:
    if run.history is None:
        return []
    columns, repeated = history_columns(run.history)
    if not columns:
        return ["<h3>Training curves</h3>", _note("history.csv has no loss column")]
    n_folds = run.history["fold"].nunique() if "fold" in run.history.columns else 1
    same = (f"; {', '.join(repeated)} equal{'s' if len(repeated) == 1 else ''} the training "
            f"loss" if repeated else "")
    return ["<h3>Training curves</h3>",
            _figure(history_png(run.history, columns), "training curves",
                    f"{', '.join(columns)}: one thin line per fold ({n_folds}), the median "
                    f"across folds in red{same}")]


def _auxiliary_section(run: Run) -> list[str]:
    auxiliary = (run.metrics or {}).get("auxiliary")
    if not auxiliary:
        return []
    rows, shown = [], set()
    for key, (baseline, what) in AUXILIARY_BASELINES.items():
        if key in auxiliary:
            value, base = _number(auxiliary[key]), _number(auxiliary.get(baseline))
            verdict = ("n/a" if math.isnan(value) or math.isnan(base)
                       else "beats it" if value < base else "does not beat it")
            rows.append([key, fmt(value), f"{what} ({baseline})", fmt(base), verdict])
            shown |= {key, baseline}
    for key, value in auxiliary.items():
        if key not in shown and key != "n":
            rows.append([key, fmt(value), "", "", ""])
    return ["<h3>Auxiliary metrics</h3>",
            Html(f'<p class="hint">from the test clips of every fold '
                 f'({esc(auxiliary.get("n", "?"))} clips); lower is better</p>'),
            _table(["metric", "value", "trivial baseline", "baseline value", "model"], rows,
                   css="num")]


def _problems_section(run: Run) -> list[str]:
    problems = run.problems
    if problems is None or not len(problems):
        return []
    counts = problems["severity"].value_counts().to_dict() if "severity" in problems else {}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or f"{len(problems)} rows"
    columns = [c for c in ("severity", "dataset", "clip", "message", "file")
               if c in problems.columns]
    shown = problems.head(200)
    more = f" (first {len(shown)})" if len(shown) < len(problems) else ""
    return [_details(f"problems.csv: {summary}{more}",
                     _table(columns, shown[columns].values.tolist()))]


def _attention_section(run: Run, per_class: int, cache_dir: Any) -> list[str]:
    from microexpr.evaluation.report_attention import attention_for

    found = attention_for(run.path, run.config, run.predictions, per_class=per_class,
                          cache_dir=cache_dir)
    if found is None:
        return []
    out = ["<h3>Attention maps</h3>",
           Html(f'<p class="hint">{esc(found.model)}: {esc(found.what)}; each test clip is '
                f'shown by the model of its own fold, which never saw its subject</p>')]
    out += [_note(n) for n in found.notes]
    figures = []
    for figure in found.figures:
        items = "".join(f"<li>{esc(text)}</li>" for text in figure.rows)
        figures.append(f'<figure>{_img(figure.png, "attention maps")}'
                       f'<figcaption><ol>{items}</ol></figcaption></figure>')
    if figures:
        out.append(Html(f'<div class="figures">{"".join(figures)}</div>'))
    return out


def _run_section(run: Run, anchor: str, *, attention: bool, per_class: int,
                 cache_dir: Any) -> Html:
    parts = [f'<section id="{anchor}"><h2>{esc(run.name)} {_badge(run)}</h2>',
             f'<p class="path">{esc(run.path)}</p>']
    parts += [_note(n) for n in run.notes]
    if run.config is not None:
        rows = _config_rows(run.config)
        half = _balanced_split([len(k) + len(v) for k, v in rows])
        tables = "".join(_table(["setting", "value"], part, css="config")
                         for part in (rows[:half], rows[half:]))
        parts += ["<h3>Configuration</h3>", Html(f'<div class="columns">{tables}</div>'),
                  _folds_table(run.config),
                  _details("full config.yaml", Html(f"<pre>{esc(run.config_text or '')}</pre>"))]
    parts += _metrics_section(run)
    parts += _subjects_section(run)
    parts += _history_section(run)
    parts += _auxiliary_section(run)
    if attention:
        parts += _attention_section(run, per_class, cache_dir)
    parts += _problems_section(run)
    parts.append("</section>")
    return Html("\n".join(parts))


# -- across runs ----------------------------------------------------------------------------

def _comparison_section(runs: Sequence[Run], anchors: dict[int, str]) -> Html:
    ranked = rank_runs(runs)
    rows, css = [], []
    for rank, run in enumerate(ranked, start=1):
        config = run.config or {}
        link = Html(f'<a href="#{anchors[id(run)]}">{esc(run.name)}</a>')
        rows.append([rank, link, Html(f"{esc(run.model)} {_badge(run)}"),
                     _data_text(config) if config else "?", config.get("protocol", "?"),
                     (run.metrics or {}).get("n", "?"), fmt(run.metric("uf1")),
                     fmt(run.metric("uar")), fmt(run.metric("accuracy"))])
        css.append("baseline" if run.is_baseline else "")
    parts = ['<section id="comparison"><h2>Comparison</h2>',
             '<p class="hint">sorted by UF1; linear baselines (logreg, linear_svm) are the '
             'floor every other model should beat</p>',
             _table(["rank", "run", "model", "data", "protocol", "clips", "UF1", "UAR",
                     "accuracy"], rows, css="num", row_css=css)]
    parts += [_note(n) for n in _comparison_notes(ranked)]
    pairs = [paired_comparison(a, b) for a, b in comparison_pairs(ranked)]
    which = ("every pair of runs" if len(ranked) <= ALL_PAIRS_UP_TO
             else "each run against the best")
    parts.append(Html(
        f'<h3>Paired per-clip comparison</h3><p class="hint">{which}, on the clips both '
        f'predicted (matched by dataset, subject and clip); p: exact McNemar test (two-sided '
        f'binomial test of the clips only one of the two got right; bold below 0.05)</p>'))
    header = ["A", "B", "shared clips", "only A right", "only B right", "both right",
              "neither", "p"]
    rows = [[p.a, p.b, p.shared, p.only_a, p.only_b, p.both, p.neither,
             Html(f"<strong>{fmt(p.p_value, 3)}</strong>") if p.p_value < 0.05
             else fmt(p.p_value, 3)] for p in pairs]
    if any(p.notes for p in pairs):
        header.append("notes")
        rows = [[*row, "; ".join(p.notes)] for row, p in zip(rows, pairs, strict=True)]
    parts.append(_table(header, rows, css="num"))
    parts.append("</section>")
    return Html("\n".join(parts))


def _label(run: Run) -> str:
    """The run's name, with its model's where they differ."""
    return run.name if run.name == run.model else f"{run.name} ({run.model})"


def _comparison_notes(ranked: Sequence[Run]) -> list[str]:
    notes = []
    described = {_data_text(r.config) for r in ranked if r.config is not None}
    if len(described) > 1:
        notes.append("these runs were evaluated on different data: compare their metrics "
                     "with care")
    best = next((r for r in ranked if not r.is_baseline), None)
    floor = next((r for r in ranked if r.is_baseline), None)
    if best is not None and floor is not None:
        margin = best.metric("uf1") - floor.metric("uf1")
        if not math.isnan(margin):
            verdict = "above" if margin > 0 else "not above"
            notes.append(f"the best model, {_label(best)}, is {verdict} the best linear "
                         f"baseline, {_label(floor)}: UF1 {margin:+.4f}")
    return notes


# -- the page --------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #222; max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 20px; border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.meta, .path, .hint { color: #666; font-size: 12.5px; margin: 2px 0 8px; }
.path { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 6px 10px;
  margin: 6px 0; font-size: 13px; }
nav ul { margin: 4px 0; padding-left: 18px; columns: 2; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
tbody tr:nth-child(even) { background: #fafbfc; }
table.num td { font-variant-numeric: tabular-nums; }
table.config td:first-child { white-space: nowrap; font-weight: 600; }
table.config td:last-child { word-break: break-word; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 0 16px; align-items: start; }
.columns table { width: 100%; margin-bottom: 0; }
tr.baseline td { background: #eef3fb; font-style: italic; }
.badge { display: inline-block; font-size: 11px; font-weight: 600; font-style: normal;
  background: #2e86c1; color: #fff; border-radius: 3px; padding: 0 5px; vertical-align: 2px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 6px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12.5px; max-width: 640px; }
figcaption ol { margin: 4px 0; padding-left: 20px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #1a5d8f; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
"""


def render_html(runs: Sequence[Run], *, title: str | None = None, attention: bool = True,
                examples_per_class: int = 2, cache_dir: str | Path | bool | None = True
                ) -> str:
    """The report of `runs` as one HTML document (see `report`)."""
    from microexpr import __version__

    anchors = {id(run): f"run-{i + 1}" for i, run in enumerate(runs)}
    title = title or (f"microexpr report: {runs[0].name}" if len(runs) == 1
                      else f"microexpr report: {len(runs)} runs")
    toc = ([Html('<li><a href="#comparison">Comparison</a></li>')] if len(runs) > 1 else [])
    toc += [Html(f'<li><a href="#{anchors[id(r)]}">{esc(r.name)}</a> ({esc(r.model)}, UF1 '
                 f'{fmt(r.metric("uf1"))})</li>') for r in runs]
    generated = _dt.datetime.now().isoformat(timespec="seconds")
    body = [f"<header><h1>{esc(title)}</h1>",
            f'<p class="meta">generated {esc(generated)} by microexpr {esc(__version__)} '
            f'from {len(runs)} results director{"y" if len(runs) == 1 else "ies"}</p>'
            f"</header>",
            f"<nav><ul>{''.join(toc)}</ul></nav>"]
    if len(runs) > 1:
        body.append(_comparison_section(runs, anchors))
    body += [_run_section(run, anchors[id(run)], attention=attention,
                          per_class=examples_per_class, cache_dir=cache_dir) for run in runs]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _names(paths: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """A distinct name per run: the folder's name, with its parent's where two clash."""
    if names is not None:
        if len(names) != len(paths):
            raise ConfigError(f"names gives {len(names)} name(s) for {len(paths)} results "
                              f"directories")
        if len(set(names)) != len(names):
            raise ConfigError(f"names must be distinct, got {list(names)}")
        return [str(n) for n in names]
    resolved = [p.expanduser().resolve() for p in paths]
    chosen = [p.name for p in resolved]
    for i, name in enumerate(chosen):
        if chosen.count(name) > 1:
            chosen[i] = f"{resolved[i].parent.name}/{name}"
    seen: dict[str, int] = {}
    for i, name in enumerate(chosen):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            chosen[i] = f"{name} ({seen[name]})"
    return chosen


def report(dirs: str | Path | Sequence[str | Path], out: str | Path = "report.html", *,
           title: str | None = None, names: Sequence[str] | None = None,
           attention: bool = True, examples_per_class: int = 2,
           cache_dir: str | Path | bool | None = True) -> Path:
    """Write one self-contained HTML report of the results directories `dirs`; return `out`.

    Everything comes from the directories' files, so any old run re-renders (a part whose
    file is missing is left out with a note). With two runs or more the report opens with a
    comparison sorted by UF1 (linear baselines marked) and paired per-clip tests.
    `names` replaces the folder names as the runs' names. `attention`: for models that
    attend and whose fold models were saved, recompute `examples_per_class` test clips of
    each class from the data recorded in config.yaml (reading the representation cache
    `cache_dir`; None: no cache) and show their attention maps. ConfigError naming a folder
    that is not a results directory, or a file that cannot be read.
    """
    paths = [Path(dirs)] if isinstance(dirs, str | Path) else [Path(d) for d in dirs]
    if not paths:
        raise ConfigError("report needs at least one results directory")
    if isinstance(examples_per_class, bool) or not isinstance(examples_per_class, int) \
            or examples_per_class < 1:
        raise ConfigError(f"examples_per_class must be an integer >= 1, got "
                          f"{examples_per_class!r}")
    target = Path(out).expanduser()
    if target.is_dir():
        raise ConfigError(f"--out {target} is a folder; give the HTML file to write, e.g. "
                          f"{target / 'report.html'}")
    runs = [read_run(p, n) for p, n in zip(paths, _names(paths, names), strict=True)]
    document = render_html(runs, title=title, attention=attention,
                           examples_per_class=examples_per_class, cache_dir=cache_dir)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:  # written beside it, then moved into place: a reader never sees half a report
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(document, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"--out {target}: cannot write the report there "
                          f"({exc.strerror or exc})") from None
    return target


__all__ = ["LINEAR_BASELINES", "Paired", "Run", "paired_comparison", "rank_runs",
           "read_run", "render_html", "report", "subject_accuracy"]
