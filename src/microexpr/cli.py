"""The `microexpr` command line: a thin layer over the Python API."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from microexpr.errors import ConfigError, MicroexprError

app = typer.Typer(help="Facial micro-expression recognition toolkit.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="Supported databases: list them, check a folder.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()


def _print_frame(frame: pd.DataFrame, title: str = "", floats: str = "{:.4g}") -> None:
    table = Table(title=title or None, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def _print_result(result) -> None:
    _print_frame(result.table(), title="Pooled over all folds")
    console.print(f"results written to [bold]{result.out_dir}[/bold] "
                  f"(config.yaml, predictions.csv, metrics.json, confusion.png, megc_log.txt)")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the synthetic data, cache and results.")]
    = Path("demo-output"),
    subjects: Annotated[int, typer.Option(help="Synthetic subjects.")] = 12,
    clips_per_class: Annotated[int, typer.Option(help="Synthetic clips per class and subject.")]
    = 4,
    seed: int = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: model's).")]
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
    subjects: int = 12,
    clips_per_class: int = 4,
    seed: int = 0,
    size: Annotated[int, typer.Option(help="Face image side in pixels.")] = 128,
    amplitude: Annotated[float, typer.Option(help="Peak facial motion in pixels (at 128).")]
    = 2.0,
    emotions: Annotated[str, typer.Option(help="Comma-separated emotions.")]
    = "happiness,disgust,surprise",
    full_frame: Annotated[bool, typer.Option(
        help="Whole 640x480 frames (face off-centre on a background, raw layout).")] = False,
) -> None:
    """Write a synthetic micro-expression database in the CASME II layout."""
    from microexpr.data.synthetic import synthesize

    path = synthesize(out_dir, subjects=subjects, clips_per_class=clips_per_class, seed=seed,
                      size=size, amplitude=amplitude, full_frame=full_frame,
                      emotions=tuple(e.strip() for e in emotions.split(",") if e.strip()),
                      progress=True)
    console.print(f"synthetic database written to [bold]{path}[/bold]; read it with "
                  f"`microexpr datasets check casme2 --root {path}`")


@datasets_app.command("list")
def datasets_list() -> None:
    """The databases microexpr reads and the label schemes it knows."""
    from microexpr.data.adapters import list_datasets
    from microexpr.data.labels import label_schemes

    table = list_datasets()
    _print_frame(table.drop(columns=["reads"]), title="Databases (--dataset)")
    for row in table.itertuples(index=False):
        console.print(f"  [bold]{row.name}[/bold]: {row.reads}")
    _print_frame(label_schemes(), title="Label schemes (--labels)")


@datasets_app.command("check")
def datasets_check(
    name: Annotated[str, typer.Argument(help="Database name (see `datasets list`).")],
    root: Annotated[Path, typer.Option(help="Folder the database was unpacked into.")],
    labels: Annotated[str | None, typer.Option(help="Also count classes of this scheme.")]
    = None,
    problems: Annotated[int, typer.Option(help="Problems to print (0 = all).")] = 30,
) -> None:
    """Read a database folder and report clips, subjects, class counts and problems."""
    from microexpr.data.adapters import load_dataset
    from microexpr.data.labels import SCHEMES, label_schemes

    dataset = load_dataset(name, root)
    console.print(dataset.summary())
    console.print(f"annotation file: {dataset.annotation_file or '(none: read from folders)'}")
    _print_frame(dataset.class_counts().reset_index(), title="Clips per annotated emotion")
    fmt = set(dataset.clips["format"])
    schemes = [labels] if labels else [s.name for s in SCHEMES.values()
                                       if fmt <= set(s.mapping)]
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
    """`key=value` items (dotted keys for nested options; values parsed as YAML scalars)."""
    import yaml

    from microexpr.representations import set_option

    options: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} takes key=value (e.g. method=dis, align.margin=0.4), "
                              f"got {item!r}")
        key, value = item.split("=", 1)
        set_option(options, key.strip(), yaml.safe_load(value))
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
    align: Annotated[bool | None, typer.Option(
        "--align/--no-align", help="Detect, align and crop the face first.")] = None,
    face_backend: Annotated[str | None, typer.Option(
        help="Face backend for --align: auto, mediapipe, haar, dlib.")] = None,
    magnify: Annotated[float | None, typer.Option(
        help="Eulerian motion magnification factor (0 = off).")] = None,
    labels: Annotated[str | None, typer.Option(help="Only clips this scheme keeps.")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (0 = all cores).")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache folder.")] = None,
) -> None:
    """Compute and cache a representation for every clip (parallel, resumable)."""
    from microexpr.representations import prepare_representation

    data = _load_for_cli(dataset, list(root), labels)
    report = prepare_representation(data.clips, representation,
                                    _options(option, align, face_backend, magnify),
                                    cache_dir=cache_dir or True, jobs=jobs)
    console.print(report.summary())
    for row in report.failures.itertuples(index=False):
        console.print(f"  [failed] {row.dataset}/{row.clip}: {row.error}", markup=False)
    for row in report.warnings.head(20).itertuples(index=False):
        console.print(f"  [warning] {row.dataset}/{row.clip}: {row.warning}", markup=False)
    if len(report.warnings) > 20:
        console.print(f"  ... and {len(report.warnings) - 20} more warnings")
    if len(report.failures) == len(report.arrays):
        raise typer.Exit(1)


@app.command()
def representations() -> None:
    """The representations `prepare` and the models use, with their default options."""
    from microexpr.representations import list_representations

    _print_frame(list_representations().astype(str), title="Representations")


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
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: model's).")]
    = None,
    early_stopping: Annotated[bool, typer.Option(
        help="Stop on a validation split of the training subjects.")] = False,
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="Results folder.")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (0 = all cores).")] = 1,
    cache_dir: Annotated[Path | None, typer.Option(help="Representation cache folder.")]
    = None,
    no_cache: Annotated[bool, typer.Option(help="Do not read or write the cache.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    save_models: Annotated[bool, typer.Option(help="Save each fold's trained model.")]
    = False,
    option: Annotated[list[str] | None, typer.Option(
        help="Representation option key=value (repeatable), e.g. method=dis.")] = None,
    representation: Annotated[str | None, typer.Option(
        help="Feed the model this representation instead of its own (e.g. apex_flow).")]
    = None,
    align: Annotated[bool | None, typer.Option(
        "--align/--no-align", help="Detect, align and crop the face first.")] = None,
    face_backend: Annotated[str | None, typer.Option(help="Face backend for --align.")]
    = None,
    magnify: Annotated[float | None, typer.Option(help="Motion magnification factor.")]
    = None,
    param: Annotated[list[str] | None, typer.Option(
        help="Model parameter key=value (repeatable), e.g. dropout=0.3.")] = None,
    train_option: Annotated[list[str] | None, typer.Option(
        help="Training option key=value (repeatable), e.g. lr=0.0005, class_balance=loss.")]
    = None,
    init: Annotated[Path | None, typer.Option(
        help="Pretrained weights (from `microexpr pretrain`) to fine-tune in each fold.")]
    = None,
    freeze: Annotated[list[str] | None, typer.Option(
        help="With --init: layers to keep fixed (stem, backbone or a name prefix).")] = None,
) -> None:
    """Evaluate a model on a database or a manifest (leave-one-subject-out by default)."""
    from microexpr.evaluation.runner import evaluate as run

    if (manifest is None) == (dataset is None):
        raise ConfigError("give either --dataset NAME --root PATH or --manifest FILE.csv")
    if manifest is not None:
        data = manifest
    else:
        if dataset != "composite" and labels is None:
            raise ConfigError(f"--dataset {dataset} needs --labels SCHEME (see `microexpr "
                              f"datasets list`; 'emotion' keeps every annotated emotion)")
        data = _load_for_cli(dataset, list(root or []), labels)
    result = run(data, model, protocol=protocol, epochs=epochs, seed=seed, out=out, jobs=jobs,
                 cache_dir=None if no_cache else (cache_dir or True),
                 train={**_key_values(train_option, "--train-option"),
                        **({"early_stopping": True} if early_stopping else {})} or None,
                 params=_key_values(param, "--param") or None,
                 init=None if init is None else {"path": str(init), "freeze": list(freeze or [])},
                 representation=_options(option, align, face_backend, magnify),
                 input_representation=representation,
                 device=device, save_models=save_models)
    _print_result(result)


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
    from microexpr.training.transfer import pretrain as run

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
    from microexpr.data.macro import write_macro_images

    path = write_macro_images(out_dir, subjects=subjects, images_per_class=images_per_class,
                              size=size, seed=seed, amplitude=amplitude, neutral=neutral)
    console.print(f"macro-expression images written to [bold]{path}[/bold]; pretrain with "
                  f"`microexpr pretrain --images {path}`")


@app.command()
def models() -> None:
    """The models microexpr implements, with their inputs and parameter counts."""
    from microexpr.models.registry import list_models

    _print_frame(list_models(), title="Models (--model)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns toolkit errors into a message and exit code 2."""
    try:
        app(args=argv, prog_name="microexpr")
    except MicroexprError as exc:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
