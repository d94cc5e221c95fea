"""The `microexpr` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from microexpr.errors import ConfigError, MicroexprError

app = typer.Typer(help="Facial micro-expression recognition toolkit.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Supported databases: list them, check a folder.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()


FORMATS = ("table", "csv", "json")
_MIN_FOLD = 8  # the narrowest a text column gets in a table before the table outgrows the width
FORMAT_HELP = "table (for people), csv or json (plain data on stdout, nothing cut)."
DEVICE_HELP = "auto (CUDA when present), cpu or cuda[:N]."
AMP_HELP = "Mixed precision (float16 autocast, GradScaler) on a CUDA GPU; refused on a CPU."
BACKEND_HELP = ("local (this machine: --jobs worker processes) or ray (Ray tasks on a local "
                "Ray, or on the cluster at --address; pip install \"microexpr\\[ray]\").")
ADDRESS_HELP = ("With --backend ray: the cluster to run on, auto (the one this node belongs "
                "to) or HEAD:PORT; default: start a local Ray.")

# Options that several commands take, declared once
EpochsOption = Annotated[int | None, typer.Option(help="Training epochs (default: model's).")]
EarlyStoppingOption = Annotated[bool, typer.Option(
    help="Stop on a validation split of the training subjects.")]
CacheDirOption = Annotated[Path | None, typer.Option(help="Representation cache folder.")]
NoCacheOption = Annotated[bool, typer.Option(
    "--no-cache", help="Do not read or write the cache.")]
RepresentationKeyValues = Annotated[list[str] | None, typer.Option(
    help="Representation option key=value (repeatable), e.g. method=dis.")]
InputRepresentationOption = Annotated[str | None, typer.Option(
    help="Feed the model this representation instead of its own (e.g. apex_flow).")]
AlignOption = Annotated[bool | None, typer.Option(
    "--align/--no-align", help="Detect, align and crop the face first.")]
FaceBackendOption = Annotated[str | None, typer.Option(help="Face backend for --align.")]
MagnifyOption = Annotated[float | None, typer.Option(help="Motion magnification factor.")]
ParamKeyValues = Annotated[list[str] | None, typer.Option(
    help="Model parameter key=value (repeatable), e.g. dropout=0.3.")]
TrainKeyValues = Annotated[list[str] | None, typer.Option(
    help="Training option key=value (repeatable), e.g. lr=0.0005, class_balance=loss.")]
FreezeOption = Annotated[list[str] | None, typer.Option(
    help="With --init: layers to keep fixed (stem, backbone or a name prefix).")]
ChannelsOption = Annotated[str | None, typer.Option(
    help="With --manifest: the channels of its files, in order (e.g. u,v,strain).")]
InputSizeOption = Annotated[int | None, typer.Option(
    help="Resize the inputs to N x N for the model (e.g. 64 for micro_attention).")]
RecipeOption = Annotated[str | None, typer.Option(
    help="Training recipe: default (fast) or paper (the authors' settings).")]
MacroOption = Annotated[list[str] | None, typer.Option(
    help="mimanet: macro-expression data, NAME=PATH (ck+=/data/CK+) or a folder whose "
         "layout tells its format (repeatable; synthetic: `microexpr synth DIR --macro`).")]


def _check_format(fmt: str) -> str:
    """The output format, lower-cased; ConfigError naming the valid ones."""
    value = fmt.strip().lower()
    if value not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return value


def _plain(value: Any) -> Any:
    """A cell as JSON data: numpy scalars unboxed, tuples as lists, missing values as None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


def _flow(value: Any) -> str:
    """A plain value as YAML flow text (what `--option key=value` reads back)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell_text(value: Any, floats: str) -> str:
    """A cell for the table: floats rounded, options as key=value, lists comma-separated."""
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return floats.format(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flow(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_flow(v) for v in value)
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict]:
    """The rows as JSON-ready dicts (orient="records")."""
    columns = [str(c) for c in frame.columns]
    return [{c: _plain(v) for c, v in zip(columns, row, strict=True)}
            for row in frame.itertuples(index=False)]


def _write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _write_csv(frame: pd.DataFrame) -> None:
    rows = [{c: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
             for c, v in record.items()} for record in _records(frame)]
    pd.DataFrame(rows, columns=[str(c) for c in frame.columns], dtype=object).to_csv(
        sys.stdout, index=False, lineterminator="\n")
    sys.stdout.flush()


def _print_frame(frame: pd.DataFrame, title: str = "", fmt: str = "table",
                 floats: str = "{:.4g}") -> None:
    """Print a table in `fmt`: every listing goes through here.

    table: a rich table whose name column (the first, or any called "name") is never cut or
    wrapped, wider than the terminal if need be; other columns wrap at spaces and fold long
    words, so nothing is cut either. csv: the frame as CSV (options and lists as JSON).
    json: a list of records. csv and json have no title and no markup.
    """
    fmt = _check_format(fmt)
    if fmt == "csv":
        return _write_csv(frame)
    if fmt == "json":
        return _write_json(_records(frame))
    table = Table(title=title or None, show_lines=False)
    cells = {c: [_cell_text(v, floats) for v in frame[c]] for c in frame.columns}
    longest = [max([len(t) for t in texts] + [len(str(c))]) for c, texts in cells.items()]
    whole = [i == 0 or str(c) == "name" for i, c in enumerate(cells)]

    def width(whole: list[bool]) -> int:  # the narrowest the table can be, borders included
        return len(cells) + 1 + sum((n if keep else min(n, _MIN_FOLD)) + 2
                                    for n, keep in zip(longest, whole, strict=True))

    for i, texts in enumerate(cells.values()):  # other one-word columns whole while they fit
        if not whole[i] and not any(" " in t for t in texts):
            whole[i] = width([*whole[:i], True, *whole[i + 1:]]) <= console.width
    for (column, _), keep, n in zip(cells.items(), whole, longest, strict=True):
        justify = "right" if pd.api.types.is_numeric_dtype(frame[column].dtype) else "left"
        if keep:
            table.add_column(str(column), no_wrap=True, min_width=n, justify=justify)
        else:  # rich narrows these (wrapping at spaces, then folding), never a whole one
            table.add_column(str(column), overflow="fold", justify=justify)
    needed = width(whole)
    for row in zip(*cells.values(), strict=True):
        table.add_row(*(Text(cell) for cell in row))  # a cell is text, never rich markup
    # wider than the terminal rather than cutting a name (the terminal wraps the lines)
    (console if needed <= console.width else Console(width=needed)).print(table, crop=False)
    return None


def _print_result(result, fmt: str = "table") -> None:
    """The pooled metrics; in csv/json only the metrics go to stdout, the rest to stderr."""
    fmt = _check_format(fmt)
    _print_frame(result.table(), title="Pooled over all folds", fmt=fmt)
    where = (f"results written to [bold]{result.out_dir}[/bold] "
             f"(config.yaml, predictions.csv, metrics.json, confusion.png, megc_log.txt, "
             f"report.html)")
    (console if fmt == "table" else Console(stderr=True)).print(where)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the synthetic data, cache and results.")]
    = Path("demo-output"),
    subjects: Annotated[int, typer.Option(help="Synthetic subjects.")] = 12,
    clips_per_class: Annotated[int, typer.Option(help="Synthetic clips per class and subject.")]
    = 4,
    seed: int = 0,
    epochs: EpochsOption
    = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: 2 or cores).")]
    = None,
) -> None:
    """Synthetic database -> onset-apex TV-L1 flow -> STSTNet leave-one-subject-out."""
    from microexpr.demo import run_demo

    start = time.perf_counter()
    result = run_demo(out, subjects=subjects, clips_per_class=clips_per_class, seed=seed,
                      epochs=epochs, jobs=jobs)
    _print_result(result)
    console.print(f"demo finished in {time.perf_counter() - start:.1f} s")


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the database into.")],
    subjects: Annotated[int | None, typer.Option(
        help="Synthetic subjects (default 12; 6 with --macro; 3 with --long).",
        show_default=False)] = None,
    clips_per_class: Annotated[int, typer.Option(
        help="Clips per class and subject (--macro: sequences).")] = 4,
    seed: Annotated[int | None, typer.Option(
        help="Random seed (default 0; 1000 with --macro, so that macro data shows other "
             "people than a micro database of seed 0).", show_default=False)] = None,
    size: Annotated[int | None, typer.Option(
        help="Face image side in pixels (default 128; 96 with --macro).",
        show_default=False)] = None,
    amplitude: Annotated[float | None, typer.Option(
        help="Peak facial motion in pixels at 128 px (default 2; 8 with --macro).",
        show_default=False)] = None,
    emotions: Annotated[str, typer.Option(help="Comma-separated emotions.")]
    = "happiness,disgust,surprise",
    full_frame: Annotated[bool, typer.Option(
        help="Whole 640x480 frames (face off-centre on a background, raw layout).")] = False,
    macro: Annotated[bool, typer.Option(
        "--macro", help="Macro-expressions in the CK+ layout instead (large motion, neutral -> "
        "peak sequences, Emotion/ label files), for `evaluate --model mimanet --macro DIR`.")]
    = False,
    unlabelled: Annotated[int | None, typer.Option(
        help="With --macro: sequences left without an emotion file, as in the real CK+ "
             "(default 3, fewer in a smaller database).", show_default=False)] = None,
    long: Annotated[bool, typer.Option(
        "--long", help="Long videos in the CAS(ME)^2 layout instead (micro- and "
        "macro-expressions among blinks, talking and head turns, with ground truth), for "
        "`evaluate --task spot --dataset casme2_long` and `analyze`.")] = False,
    videos_per_subject: Annotated[int, typer.Option(help="With --long: videos per subject.")]
    = 2,
    seconds: Annotated[float, typer.Option(help="With --long: seconds per video.")] = 20.0,
) -> None:
    """Write a synthetic micro-expression database in the CASME II layout (--macro: a
    macro-expression database in the CK+ layout; --long: long videos in the CAS(ME)^2
    layout)."""
    names = tuple(e.strip() for e in emotions.split(",") if e.strip())
    if long:
        if macro or full_frame or unlabelled is not None:
            raise ConfigError("--long writes long videos; --macro, --full-frame and "
                              "--unlabelled are for clip databases: give one kind")
        from microexpr.synth.long_video import synthesize_long

        path = synthesize_long(out_dir, subjects=3 if subjects is None else subjects,
                               videos_per_subject=videos_per_subject, seconds=seconds,
                               size=128 if size is None else size,
                               seed=0 if seed is None else seed,
                               amplitude=2.0 if amplitude is None else amplitude)
        console.print(f"synthetic long videos (CAS(ME)^2 layout) written to [bold]{path}"
                      f"[/bold]; spot in them with `microexpr evaluate --task spot --dataset "
                      f"casme2_long --root {path}`")
        return
    if macro:
        if full_frame:
            raise ConfigError("--full-frame writes a micro-expression database's raw frames; "
                              "--macro writes CK+'s face sequences: give one of them")
        from microexpr.synth.macro import write_ckplus

        path = write_ckplus(
            out_dir, subjects=6 if subjects is None else subjects,
            sequences_per_class=clips_per_class, size=96 if size is None else size,
            seed=1000 if seed is None else seed, emotions=names,
            amplitude=8.0 if amplitude is None else amplitude,
            unlabelled=unlabelled,
        )
        console.print(f"synthetic macro-expression database (CK+ layout) written to "
                      f"[bold]{path}[/bold]; train with it using `microexpr evaluate ... "
                      f"--model mimanet --macro {path}`")
        return
    if unlabelled is not None:
        raise ConfigError("--unlabelled applies to --macro only (CK+ sequences without an "
                          "emotion file)")
    from microexpr.synth import synthesize

    path = synthesize(out_dir, subjects=12 if subjects is None else subjects,
                      clips_per_class=clips_per_class, seed=0 if seed is None else seed,
                      size=128 if size is None else size,
                      amplitude=2.0 if amplitude is None else amplitude, full_frame=full_frame,
                      emotions=names, progress=True)
    console.print(f"synthetic database written to [bold]{path}[/bold]; read it with "
                  f"`microexpr datasets check casme2 --root {path}`")


@datasets_app.command("list")
def datasets_list(
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP + " csv: the databases "
                                     "table; json: {databases, label_schemes}.")] = "table",
) -> None:
    """The databases microexpr reads and the label schemes it knows."""
    from microexpr.data.adapters import list_datasets
    from microexpr.data.labels import label_schemes

    fmt = _check_format(fmt)
    table = list_datasets()
    if fmt == "json":
        return _write_json({"databases": _records(table),
                            "label_schemes": _records(label_schemes())})
    if fmt == "csv":
        return _print_frame(table, fmt=fmt)
    _print_frame(table.drop(columns=["reads"]), title="Databases (--dataset)")
    for row in table.itertuples(index=False):
        console.print(f"  [bold]{row.name}[/bold]: {row.reads}")
    _print_frame(label_schemes(), title="Label schemes (--labels)")
    return None


@datasets_app.command("check")
def datasets_check(
    name: Annotated[str, typer.Argument(help="Database name (see `datasets list`).")],
    root: Annotated[Path, typer.Option(help="Folder the database was unpacked into.")],
    labels: Annotated[str | None, typer.Option(help="Also count classes of this scheme.")]
    = None,
    problems: Annotated[int, typer.Option(help="Problems to print (0 = all).")] = 30,
    frames: Annotated[bool, typer.Option(
        "--frames", help="Also decode every frame file --representation reads (exit 1 when "
        "one is truncated or unreadable).")] = False,
    representation: Annotated[str, typer.Option(help="Representation whose frames --frames "
                                                     "decodes.")] = "onset_apex_flow",
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP + " csv: every problem "
                                     "(dataset, clip, severity, file, row, message); json: one "
                                     "object with summary, class_counts, schemes, problems "
                                     "(all of them, whatever --problems says).")] = "table",
) -> None:
    """Read a database folder and report clips, subjects, class counts and problems."""
    from microexpr.data.adapters import load_dataset
    from microexpr.data.labels import SCHEMES, label_schemes

    fmt = _check_format(fmt)
    dataset = load_dataset(name, root)
    formats = set(dataset.clips["format"])
    schemes = [labels] if labels else [s.name for s in SCHEMES.values()
                                       if formats <= set(s.mapping)]
    if fmt != "table":
        return _emit_check(dataset, root, schemes, fmt,
                           representation if frames else None)
    console.print(dataset.summary())
    console.print(f"annotation file: {dataset.annotation_file or '(none: read from folders)'}")
    _print_frame(dataset.class_counts().reset_index(), title="Clips per annotated emotion")
    for scheme in schemes:
        labelled = dataset.with_labels(scheme)
        _print_frame(labelled.class_counts().reset_index(),
                     title=f"Scheme {scheme}: {len(labelled.clips)} clips")
    if not labels:
        known = ", ".join(label_schemes()["name"])
        console.print(f"(other schemes: --labels NAME, one of {known})")
    shown = dataset.problems if problems == 0 else dataset.problems.head(problems)
    if len(shown):
        console.print(f"[bold]Problems[/bold] ({len(dataset.problems)} in all; clips with an "
                      f"error are excluded)")
    for p in shown.itertuples(index=False):
        where = p.file + (f", row {p.row}" if not pd.isna(p.row) else "")
        what = f"{p.dataset}/{p.clip}" if p.clip else p.dataset
        console.print(f"  [{p.severity}] {what}: {p.message}" + (f" ({where})" if where else ""),
                      markup=False)
    if frames:
        _check_frames(dataset.clips, representation, problems)
    return None


def _emit_check(dataset, root: Path, schemes: list[str], fmt: str,
                frames_of: str | None) -> None:
    """`datasets check --format csv|json`: one machine-readable document on stdout (exit 1
    when `--frames` found a bad frame file, as in the table format)."""
    found = None
    if frames_of is not None:
        from microexpr.representations import check_frames

        found = check_frames(dataset.clips, frames_of)
    problems = dataset.problems
    if fmt == "csv":
        if found is not None and len(found):
            extra = pd.DataFrame({"dataset": found["dataset"], "clip": found["clip"],
                                  "severity": "error", "file": found["file"], "row": pd.NA,
                                  "message": found["message"]})
            problems = pd.concat([problems, extra], ignore_index=True)
        _print_frame(problems, fmt="csv")
    else:
        document = {
            "dataset": dataset.name, "root": str(root), "summary": dataset.summary(),
            "clips": len(dataset.clips), "subjects": int(dataset.clips["subject"].nunique()),
            "annotation_file": dataset.annotation_file or None,
            "class_counts": _records(dataset.class_counts().reset_index()),
            "schemes": [],
            "problems": _records(problems),
        }
        for scheme in schemes:
            labelled = dataset.with_labels(scheme)
            document["schemes"].append({
                "scheme": scheme, "clips": len(labelled.clips),
                "class_counts": _records(labelled.class_counts().reset_index())})
        if found is not None:
            document["frames"] = {"representation": frames_of, "files": found.attrs["files"],
                                  "clips": found.attrs["clips"], "problems": _records(found)}
        _write_json(document)
    if found is not None and len(found):
        raise typer.Exit(1)


def _check_frames(clips: pd.DataFrame, representation: str, limit: int) -> None:
    """`datasets check --frames`: decode the frames, print the count and problems, exit 1 on
    any problem."""
    from microexpr.representations import check_frames

    found = check_frames(clips, representation)
    count = f"{len(found)} problem{'s' if len(found) != 1 else ''}" if len(found) else "no problems"
    console.print(f"decoded {found.attrs['files']} frame files of {found.attrs['clips']} clips "
                  f"({representation}): {count}")
    shown = found if limit == 0 else found.head(limit)
    for p in shown.itertuples(index=False):
        console.print(f"  [frame] {p.dataset}/{p.clip}: {p.message}", markup=False)
    if len(shown) < len(found):
        console.print(f"  ... and {len(found) - len(shown)} more (--problems 0 shows all)")
    if len(found):
        raise typer.Exit(1)


def _parse_roots(dataset: str, roots: list[str]) -> dict[str, str]:
    if dataset != "composite":
        if len(roots) != 1:
            raise ConfigError(f"--dataset {dataset} takes exactly one --root PATH")
        return {dataset: roots[0]}
    parsed = {}
    for item in roots:
        if "=" not in item:
            raise ConfigError("--dataset composite takes --root smic=PATH --root casme2=PATH "
                              "--root samm=PATH")
        key, value = item.split("=", 1)
        parsed[key.strip()] = value.strip()
    missing = sorted({"smic", "casme2", "samm"} - set(parsed))
    if missing:
        raise ConfigError(f"--dataset composite is missing --root {missing[0]}=PATH")
    return parsed


def _key_values(items: list[str] | None, flag: str) -> dict:
    """`key=value` items (dotted keys for nested options; values parsed as YAML scalars, with
    1e-3 read as a number)."""
    import yaml

    from microexpr.evaluation.tuning import _Loader as NumberLoader
    from microexpr.representations import set_option

    options: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} takes key=value (e.g. method=dis, align.margin=0.4), "
                              f"got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.load(value, Loader=NumberLoader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item!r}: the value is not readable ({exc}); quote it "
                              f"or write it as a plain number, word or [list]") from None
        set_option(options, key.strip(), parsed)
    return options


def _options(items: list[str] | None, align: bool | None, backend: str | None,
             magnify: float | None) -> dict:
    """Representation options from `--option key=value` and the face/magnify shortcuts."""
    options = _key_values(items, "--option")
    if align or backend:
        align_options = options.get("align") if isinstance(options.get("align"), dict) else {}
        options["align"] = {**align_options, **({"backend": backend} if backend else {})}
    elif align is False:
        options["align"] = None
    if magnify is not None:
        options["magnify"] = {"factor": magnify} if magnify > 0 else None
    return options


def _data_for_cli(dataset: str | None, roots: list[str] | None, labels: str | None,
                  manifest: Path | None, channels: str | None) -> Any:
    """The data of `evaluate` / `train`: a --manifest path, or the --dataset read from its
    --root(s) and labelled with --labels (checked: one of the two, --channels for a
    manifest only, --labels for a database)."""
    if (manifest is None) == (dataset is None):
        raise ConfigError("give either --dataset NAME --root PATH or --manifest FILE.csv")
    if manifest is not None:
        return manifest
    if channels is not None:
        raise ConfigError("--channels names the channels of a --manifest's files; a "
                          "database's representation names its own")
    if dataset != "composite" and labels is None:
        raise ConfigError(f"--dataset {dataset} needs --labels SCHEME (see `microexpr "
                          f"datasets list`; 'emotion' keeps every annotated emotion)")
    return _load_for_cli(dataset, list(roots or []), labels)


def _load_for_cli(dataset: str, roots: list[str], labels: str | None):
    from microexpr.data.adapters import load_dataset
    from microexpr.data.composite import load_composite

    parsed = _parse_roots(dataset, roots)
    if dataset == "composite":
        return load_composite(**parsed)
    data = load_dataset(dataset, parsed[dataset])
    return data.with_labels(labels) if labels else data


@app.command()
def prepare(
    dataset: Annotated[str, typer.Option(help="Database name, or 'composite'.")],
    root: Annotated[list[str], typer.Option(
        help="Database folder (for composite: smic=PATH casme2=PATH samm=PATH).")],
    representation: Annotated[str, typer.Option(help="See `microexpr representations`.")]
    = "onset_apex_flow",
    option: Annotated[list[str] | None, typer.Option(
        help="Representation option key=value (repeatable), e.g. method=dis, size=64.")]
    = None,
    align: AlignOption = None,
    face_backend: Annotated[str | None, typer.Option(
        help="Face backend for --align: auto, mediapipe, haar, dlib.")] = None,
    magnify: Annotated[float | None, typer.Option(
        help="Eulerian motion magnification factor (0 = off).")] = None,
    labels: Annotated[str | None, typer.Option(help="Only clips this scheme keeps.")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (0 = all cores).")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder.")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
) -> None:
    """Compute and cache a representation for every clip (parallel, resumable)."""
    from microexpr.parallel import check_backend, use_backend
    from microexpr.representations import prepare_representation

    check_backend(backend, address)
    data = _load_for_cli(dataset, list(root), labels)
    with use_backend(backend, address=address, jobs=jobs or None):
        report = prepare_representation(data.clips, representation,
                                        _options(option, align, face_backend, magnify),
                                        cache_dir=cache_dir or True, jobs=jobs)
    console.print(report.summary())
    for row in report.failures.itertuples(index=False):
        console.print(f"  [failed] {row.dataset}/{row.subject}/{row.clip}: {row.error}",
                      markup=False)
    for row in report.warnings.head(20).itertuples(index=False):
        console.print(f"  [warning] {row.dataset}/{row.subject}/{row.clip}: {row.warning}",
                      markup=False)
    if len(report.warnings) > 20:
        console.print(f"  ... and {len(report.warnings) - 20} more warnings")
    problems = data.problems[data.problems["severity"].isin(["error", "info"])
                             & (data.problems["clip"].astype(str) != "")]
    if len(problems):
        console.print(f"{len(problems)} clip(s) were left out when the database was read "
                      f"(see `microexpr datasets check {dataset} --root ...`)")
    if len(report.failures):
        console.print(report.summary_of_failures(), markup=False)
    if len(report.failures) == len(report.arrays):
        raise typer.Exit(1)


@app.command()
def representations(
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "table",
) -> None:
    """The representations `prepare` and the models use, with their default options."""
    from microexpr.representations import list_representations

    _print_frame(list_representations(), title="Representations", fmt=fmt)


@app.command()
def evaluate(
    dataset: Annotated[str | None, typer.Option(help="Database name, or 'composite'.")] = None,
    root: Annotated[list[str] | None, typer.Option(
        help="Database folder (for composite: smic=PATH casme2=PATH samm=PATH).")] = None,
    labels: Annotated[str | None, typer.Option(help="Label scheme, e.g. composite3.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="CSV of precomputed inputs.")] = None,
    model: Annotated[str, typer.Option(help="Model name (see `microexpr models`).")]
    = "ststnet",
    protocol: Annotated[str, typer.Option(help="loso (subjects) or lodo (databases).")]
    = "loso",
    epochs: EpochsOption
    = None,
    early_stopping: EarlyStoppingOption = False,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(
        help="Results folder (refused when not empty, unless --overwrite or --resume).")]
    = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out folder.")] = False,
    resume: Annotated[bool, typer.Option(
        help="Continue an interrupted run from its folds on disk (same options).")] = False,
    jobs: Annotated[int | None, typer.Option(
        help="Worker processes (default: automatic, one per core for large runs; 0 = all "
             "cores).")] = None,
    cache_dir: CacheDirOption
    = None,
    no_cache: NoCacheOption = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    amp: Annotated[bool, typer.Option(help=AMP_HELP)] = False,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    save_models: Annotated[bool, typer.Option(help="Save each fold's trained model.")]
    = False,
    option: RepresentationKeyValues = None,
    representation: InputRepresentationOption
    = None,
    align: AlignOption = None,
    face_backend: FaceBackendOption
    = None,
    magnify: MagnifyOption
    = None,
    param: ParamKeyValues = None,
    train_option: TrainKeyValues
    = None,
    init: Annotated[Path | None, typer.Option(
        help="Pretrained weights (from `microexpr pretrain`) to fine-tune in each fold.")]
    = None,
    freeze: FreezeOption = None,
    channels: ChannelsOption
    = None,
    input_size: InputSizeOption
    = None,
    recipe: RecipeOption = None,
    ensemble: Annotated[int, typer.Option(
        help="Seeds trained per fold; their probabilities are averaged.")] = 1,
    tune: Annotated[Path | None, typer.Option(
        help="Grid YAML: nested LOSO picks a point per fold on its training subjects.")]
    = None,
    macro: MacroOption
    = None,
    task: Annotated[str, typer.Option(
        help="recognise (clips: a model's UF1 / UAR) or spot (long videos: the MEGC spotting "
             "F1 of --spotter, e.g. --dataset casme2_long).")] = "recognise",
    spotter: Annotated[str, typer.Option(
        help="--task spot: the spotter (see `microexpr analyze --help`).")] = "default",
    spot_option: Annotated[list[str] | None, typer.Option(
        help="--task spot: spotter option key=value (repeatable), e.g. half_duration_s=0.25.")]
    = None,
    recogniser: Annotated[Path | None, typer.Option(
        help="--task spot: a trained model file (microexpr train; not trained on this "
             "database) that recognises each spotted interval: spot-then-recognise score.")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "table",
) -> None:
    """Evaluate a model on a database or a manifest (leave-one-subject-out by default), or a
    spotter on a long-video database (--task spot)."""
    from microexpr.evaluation.runner import evaluate as run

    _check_format(fmt)
    if task not in ("recognise", "spot"):
        raise ConfigError(f"--task must be recognise or spot, got {task!r}")
    if task == "spot":
        if manifest is not None or labels is not None or dataset is None or len(root or []) != 1:
            raise ConfigError("--task spot reads a long-video database: give --dataset "
                              "casme2_long|samm_long|casme3_long and one --root PATH (no "
                              "--manifest, no --labels)")
        return _spot(dataset, root[0], spotter, spot_option, recogniser, protocol, out,
                     overwrite, device, fmt)
    if spot_option or spotter != "default" or recogniser is not None:
        raise ConfigError("--spotter, --spot-option and --recogniser are for --task spot")
    data = _data_for_cli(dataset, root, labels, manifest, channels)
    result = run(data, model, protocol=protocol, epochs=epochs, seed=seed, out=out, jobs=jobs,
                 labels=labels if manifest is not None else None, channels=channels,
                 input_size=input_size, recipe=recipe, ensemble=ensemble, tune=tune,
                 overwrite=overwrite, resume=resume,
                 cache_dir=None if no_cache else (cache_dir or True),
                 train={**_key_values(train_option, "--train-option"),
                        **({"early_stopping": True} if early_stopping else {}),
                        **({"amp": True} if amp else {})} or None,
                 params=_key_values(param, "--param") or None,
                 init=None if init is None else {"path": str(init), "freeze": list(freeze or [])},
                 representation=_options(option, align, face_backend, magnify),
                 input_representation=representation, macro=macro or None,
                 device=device, save_models=save_models, backend=backend, address=address)
    _print_result(result, fmt)
    _print_left_out(result.warnings, result.problems_summary())


def _spot(dataset: str, root: str, spotter: str, options: list[str] | None,
          recogniser: Path | None, protocol: str, out: Path | None, overwrite: bool,
          device: str, fmt: str) -> None:
    """`evaluate --task spot`: LOSO spotting on a long-video database, MEGC metric."""
    from microexpr.video.spot_evaluation import evaluate_spotting
    from microexpr.video.spotters import get_spotter

    chosen = get_spotter(spotter, **_key_values(options, "--spot-option"))
    result = evaluate_spotting(dataset, chosen, root=root, protocol=protocol, out=out,
                               overwrite=overwrite, progress=fmt == "table",
                               model=recogniser, device=device)
    strs = result.metrics.get("strs", {})
    rows = [{"kind": part, **{k: result.metrics[part][k] for k in
                              ("tp", "fp", "fn", "precision", "recall", "f1")},
             **({"analysis_f1": strs[part]["analysis_f1"], "strs": strs[part]["strs"]}
                if part in strs else {})}
            for part in ("micro", "macro", "overall") if part in result.metrics]
    _print_frame(pd.DataFrame(rows), title="Spotting (MEGC: IoU >= 0.5), pooled over videos",
                 fmt=fmt)
    where = (f"results written to [bold]{result.out_dir}[/bold] (config.yaml, "
             f"predictions.csv, truth.csv, matches.csv, counts.csv, metrics.json, videos/)")
    (console if fmt == "table" else Console(stderr=True)).print(where)


def _print_left_out(warnings: list[str], summary: str) -> None:
    """Warnings and the summary of clips left out, at the end of a run (on stderr)."""
    err = Console(stderr=True)
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if summary:
        err.print(summary, markup=False, highlight=False)


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(
        help="Model file to write (e.g. model.pt; its configuration goes to model.yaml "
             "beside it). Refused when it exists, unless --overwrite.")],
    dataset: Annotated[str | None, typer.Option(help="Database name, or 'composite'.")] = None,
    root: Annotated[list[str] | None, typer.Option(
        help="Database folder (for composite: smic=PATH casme2=PATH samm=PATH).")] = None,
    labels: Annotated[str | None, typer.Option(help="Label scheme, e.g. composite3.")] = None,
    manifest: Annotated[Path | None, typer.Option(
        help="CSV of precomputed inputs (such a model cannot compute inputs from frames).")]
    = None,
    model: Annotated[str, typer.Option(help="Model name (see `microexpr models`).")]
    = "ststnet",
    epochs: EpochsOption
    = None,
    early_stopping: EarlyStoppingOption = False,
    seed: int = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    jobs: Annotated[int | None, typer.Option(
        help="Worker processes for the representation (default: automatic; 0 = all "
             "cores).")] = None,
    cache_dir: CacheDirOption
    = None,
    no_cache: NoCacheOption = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    amp: Annotated[bool, typer.Option(help=AMP_HELP)] = False,
    option: RepresentationKeyValues = None,
    representation: InputRepresentationOption
    = None,
    align: AlignOption = None,
    face_backend: FaceBackendOption
    = None,
    magnify: MagnifyOption
    = None,
    param: ParamKeyValues = None,
    train_option: TrainKeyValues
    = None,
    init: Annotated[Path | None, typer.Option(
        help="Pretrained weights (from `microexpr pretrain`) to fine-tune.")] = None,
    freeze: FreezeOption = None,
    channels: ChannelsOption
    = None,
    input_size: InputSizeOption
    = None,
    recipe: RecipeOption = None,
    macro: MacroOption
    = None,
) -> None:
    """Train one model on every clip of a database (no held-out subject), for new data
    (`microexpr analyze VIDEO --model MODEL.pt`)."""
    from microexpr.evaluation.train_model import check_model_out, model_files
    from microexpr.evaluation.train_model import train as run

    check_model_out(out, overwrite)  # before the database is read
    if amp:
        from microexpr.training.device import check_amp

        check_amp(True, device)
    data = _data_for_cli(dataset, root, labels, manifest, channels)
    trained = run(data, model, out=out, labels=labels if manifest is not None else None,
                  channels=channels, input_size=input_size, recipe=recipe, epochs=epochs,
                  seed=seed, overwrite=overwrite, jobs=jobs,
                  cache_dir=None if no_cache else (cache_dir or True),
                  train={**_key_values(train_option, "--train-option"),
                         **({"early_stopping": True} if early_stopping else {}),
                         **({"amp": True} if amp else {})} or None,
                  params=_key_values(param, "--param") or None,
                  init=None if init is None else {"path": str(init),
                                                  "freeze": list(freeze or [])},
                  representation=_options(option, align, face_backend, magnify),
                  input_representation=representation, macro=macro or None, device=device)
    info = trained.training_info
    counts = ", ".join(f"{c} {n}" for c, n in info["class_counts"].items())
    loss = info.get("final_train_loss")
    console.print(f"trained {model} on {info['n_clips']} clips of {info['n_subjects']} "
                  f"subjects ({counts}) in {info['training_seconds']:.1f} s"
                  + (f", final training loss {loss:.4g}" if loss is not None else ""),
                  highlight=False)
    console.print(f"model saved to [bold]{out}[/bold] (configuration: {model_files(out)[1]})")
    if info["input_recipe"]["manifest"] is None:
        console.print(f"use it on a video: `microexpr analyze VIDEO --model {out}`; in Python: "
                      f"model = microexpr.load_model({str(out)!r}), then "
                      f"microexpr.model_inputs(model, clips) and model.predict_proba(...)",
                      highlight=False)
    else:
        console.print(f"trained on precomputed inputs: load it with microexpr.load_model("
                      f"{str(out)!r}) and predict inputs computed the same way",
                      highlight=False)
    problems = info["problems"]
    summary = problems["summary"]
    if problems["file"]:
        summary += f"\nevery problem is listed in {problems['file']}"
    _print_left_out(info["warnings"], summary if problems["summary"] else "")


@app.command("export")
def export_command(
    model: Annotated[Path, typer.Argument(
        help="A saved torch model (microexpr train, evaluate --save-models, model.save).",
        show_default=False)],
    out: Annotated[Path, typer.Argument(help="The ONNX file to write (.onnx).",
                                        show_default=False)],
    opset: Annotated[int | None, typer.Option(
        help="ONNX opset version (default 20, at least 18).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUT file.")] = False,
) -> None:
    """Export a trained torch model to ONNX: its inputs (channels last) standardised inside,
    class probabilities out; classes, input spec and input recipe in the file's metadata."""
    from microexpr.training.export import OnnxClassifier, export_onnx

    path = export_onnx(model, out, opset=opset, overwrite=overwrite)
    exported = OnnxClassifier.load(path, device="cpu")
    inputs = "; ".join(
        f"{e['name']} float32 N x {' x '.join(map(str, e['shape']))}"
        + (f" ({', '.join(e['channels'])})" if e["channels"] else "")
        for e in exported.input_spec)
    console.print(f"exported {exported.model} ({len(exported.classes)} classes: "
                  f"{', '.join(exported.classes)}) to [bold]{path}[/bold] (opset "
                  f"{exported.metadata['opset']}, {path.stat().st_size / 1024:.0f} KiB)",
                  highlight=False)
    console.print(f"inputs, channels last, not standardised: {inputs}; output: "
                  f"{exported.output} N x {len(exported.classes)}", highlight=False)
    if exported.input_recipe is not None and exported.input_recipe.manifest is None:
        console.print(f"use it on a video: `microexpr analyze VIDEO --model {path}`",
                      highlight=False)


@app.command()
def pretrain(
    images: Annotated[Path, typer.Option(help="Folder of class/image files (macro data).")],
    model: Annotated[str, typer.Option(help="A torch model (see `microexpr models`).")]
    = "micro_attention",
    out: Annotated[Path, typer.Option(help="Where to save the pretrained weights.")]
    = Path("pretrained.pt"),
    size: Annotated[int | None, typer.Option(help="Image side (default: the model's).")]
    = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the model's).")]
    = None,
    seed: int = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    init: Annotated[Path | None, typer.Option(help="Start from earlier pretrained weights.")]
    = None,
    param: Annotated[list[str] | None, typer.Option(help="Model parameter key=value.")]
    = None,
    train_option: Annotated[list[str] | None, typer.Option(help="Training option key=value.")]
    = None,
) -> None:
    """Pretrain a model on an image folder (e.g. macro-expressions) for `evaluate --init`."""
    from microexpr.training.pretrain import pretrain as run

    path = run(model, images, size=size, epochs=epochs, seed=seed, out=out, device=device,
               init=init, params=_key_values(param, "--param") or None,
               train=_key_values(train_option, "--train-option") or None)
    console.print(f"pretrained {model} saved to [bold]{path}[/bold]; fine-tune it with "
                  f"`microexpr evaluate ... --model {model} --init {path}`")


@app.command("macro-images")
def macro_images(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write class/image.png into.")],
    subjects: int = 8,
    images_per_class: int = 64,
    size: int = 96,
    seed: int = 1000,
    amplitude: Annotated[float, typer.Option(help="Expression amplitude (macro: large).")]
    = 8.0,
    neutral: Annotated[bool, typer.Option(help="Add a neutral class.")] = False,
) -> None:
    """Write synthetic macro-expression images (class/image folders) for pretraining."""
    from microexpr.synth.macro import write_macro_images

    path = write_macro_images(out_dir, subjects=subjects, images_per_class=images_per_class,
                              size=size, seed=seed, amplitude=amplitude, neutral=neutral)
    console.print(f"macro-expression images written to [bold]{path}[/bold]; pretrain with "
                  f"`microexpr pretrain --images {path}`")


@app.command("report")
def report_command(
    results: Annotated[list[Path], typer.Argument(
        help="Results directories (written by `microexpr evaluate --out`).",
        metavar="RESULTS_DIR", show_default=False)],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str | None, typer.Option(help="Page title (default: from the runs).")]
    = None,
    attention: Annotated[bool, typer.Option(
        "--attention/--no-attention",
        help="Attention maps of runs that saved their models (--save-models), recomputed "
             "from the data recorded in config.yaml.")] = True,
    examples: Annotated[int, typer.Option(
        help="Test clips per class shown in the attention maps.")] = 2,
    cache_dir: CacheDirOption
    = None,
    no_cache: NoCacheOption = False,
) -> None:
    """Write one self-contained HTML report (figures embedded) of one or more results
    directories; with several, a comparison sorted by UF1 and paired per-clip tests."""
    from microexpr.evaluation.html_report import report as write_report

    path = write_report(results, out=out, title=title, attention=attention,
                        examples_per_class=examples,
                        cache_dir=None if no_cache else (cache_dir or True))
    size = path.stat().st_size / 1024
    console.print(f"report of {len(results)} run{'s' if len(results) != 1 else ''} written "
                  f"to [bold]{path}[/bold] ({size:.0f} KiB)")


@app.command()
def models(
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "table",
) -> None:
    """The models microexpr implements, with their inputs and parameter counts."""
    from microexpr.models.registry import list_models

    _check_format(fmt)
    table = list_models()
    if fmt != "table":
        _print_frame(table, title="Models (--model)", fmt=fmt)
        return
    # the long texts go below the table, one model a paragraph, so that no column is squeezed
    _print_frame(table.drop(columns=["reference", "description"]), title="Models (--model)")
    for row in table.itertuples(index=False):
        console.print(f"[bold]{row.name}[/bold]: {row.description}. {row.reference}",
                      highlight=False)


@app.command()
def analyze(
    video: Annotated[Path, typer.Argument(
        help="Video file (mp4, mov, avi, ...) or folder of frames (natural order).")],
    out: Annotated[Path | None, typer.Option(
        help="Results folder (default: <video name>-analysis in the current folder).")]
    = None,
    fps: Annotated[float | None, typer.Option(
        help="Frame rate of a frame folder (default 30); for a video file it replaces the "
             "header's.")] = None,
    spotter: Annotated[str, typer.Option(help="Spotter: default (mdmd), lbp or motion.")]
    = "default",
    spot_option: Annotated[list[str] | None, typer.Option(
        help="Spotter option key=value (repeatable), e.g. p=0.3, min_score=0.8, "
             "half_duration_s=1.3 (macro-expressions).")] = None,
    macro_pass: Annotated[bool, typer.Option(
        help="Also run a macro-expression pass (mdmd over 0.9 s) in the same stream: its "
             "intervals are macro, and micro ones inside them are dropped.")] = False,
    face_backend: Annotated[str | None, typer.Option(
        help="Face backend: auto, mediapipe, haar, dlib.")] = None,
    model: Annotated[Path | None, typer.Option(
        help="A saved classifier (model.save, evaluate --save-models, microexpr train) or an "
             "exported model.onnx (microexpr export) that recognises each spotted interval.")]
    = None,
    option: Annotated[list[str] | None, typer.Option(
        help="With --model: representation option key=value as at training (repeatable), "
             "e.g. method=dis.")] = None,
    device: Annotated[str, typer.Option(help="With --model: auto, cpu or cuda[:N].")]
    = "auto",
    annotate: Annotated[bool, typer.Option(
        help="Also write annotated.mp4: the video with the face box and the intervals.")]
    = False,
    overwrite: Annotated[bool, typer.Option(
        help="Replace the result files of an earlier analysis in --out.")] = False,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="A progress bar with frames per second (stderr).")]
    = True,
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP + " csv / json: the "
                                     "intervals.")] = "table",
) -> None:
    """Follow the face through a video and spot micro-expressions (recognised with --model);
    writes intervals.csv, frames.csv, timeline.png and summary.json."""
    from microexpr.video import analyze as run
    from microexpr.video import get_spotter
    from microexpr.video.analysis import check_out_dir

    fmt = _check_format(fmt)
    target = check_out_dir(out if out is not None else Path(f"{video.stem or 'video'}-analysis"),
                           overwrite=overwrite, annotate=annotate)
    if option and model is None:
        raise ConfigError("--option sets the representation of --model: give --model too")
    chosen = get_spotter(spotter, **_key_values(spot_option, "--spot-option"))
    result = run(video, model, spotter=chosen, fps=fps,
                 macro_spotter="default" if macro_pass else None,
                 align={"backend": face_backend} if face_backend else None,
                 representation=_key_values(option, "--option") if model else None,
                 device=None if device == "auto" else device, progress=progress)
    result.to_dir(target, overwrite=overwrite, annotate=annotate)
    s = result.summary
    err = Console(stderr=True)
    for warning in s["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if fmt != "table":
        _print_frame(result.intervals, fmt=fmt)
        err.print(f"results written to {target}", highlight=False)
        return
    console.print(f"{s['frames']} frames at {s['fps']:.4g} fps, a face on {s['faces_found']}; "
                  f"{s['seconds']:.1f} s ({s['frames_per_second']:.0f} frames/s); "
                  f"{s['intervals']} interval(s): {s['micro']} micro, {s['macro']} macro",
                  highlight=False)
    if len(result.intervals):
        _print_frame(result.intervals, title="Spotted intervals (frames and seconds)")
    files = "intervals.csv, frames.csv, timeline.png, summary.json" + (
        ", annotated.mp4" if annotate else "")
    console.print(f"results written to [bold]{target}[/bold] ({files})")


INTERRUPTED = ("interrupted; finished work is kept: the cache entries already written stay, "
               "and the same command resumes from them")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns toolkit errors into a message and exit code 2.

    Ctrl-C and SIGTERM end worker processes, print one line and exit 130 / 143.
    """
    from microexpr.parallel import Interrupted, interrupt_signals

    signum, notes = 0, []
    try:
        with interrupt_signals():
            app(args=argv, prog_name="microexpr")
    except MicroexprError as exc:
        # the message is text: brackets in it ("microexpr[ray]", "['u']") are not markup
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", 2)
        notes = list(getattr(exc, "__notes__", []))
    # out of the except block, so that the traceback is dropped and the generators it held
    # (the executor's) close now, ending their workers
    if signum:
        # one line, however narrow the terminal (the command's own note when it left one)
        sys.stderr.write((notes[-1] if notes else INTERRUPTED) + "\n")
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
