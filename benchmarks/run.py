"""Benchmarks (`make bench`): print timings for the performance targets in the issues.

Each benchmark prints one line `name: value unit (target)`. They are measurements, not tests:
run them on the 2-core reference machine to check a target.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# The MEGC 2019 composite: (database, subjects, clips)
COMPOSITE_SHAPE = (("smic", 16, 164), ("casme2", 24, 145), ("samm", 28, 133))
CLASSES = ("negative", "positive", "surprise")
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def composite_like_manifest(folder: Path, size: int = 28, seed: int = 0,
                            channels: int = 3, signal: float = 1.5) -> Path:
    """A manifest with the composite's shape: 442 clips of size x size x channels from 68
    subjects, clip names repeated across subjects as in real releases, with a class-specific
    blob of strength `signal` (the timing does not depend on it)."""
    rng = np.random.default_rng(seed)
    rows = ["dataset,subject,clip,label,path"]
    yy, xx = np.mgrid[0:size, 0:size]
    blobs = [np.exp(-((yy - size * (k + 1) / 4) ** 2 + (xx - size / 2) ** 2) / (size / 6) ** 2)
             for k in range(3)]
    for dataset, n_subjects, n_clips in COMPOSITE_SHAPE:
        subject_of = np.sort(rng.integers(0, n_subjects, n_clips))
        subject_of[:n_subjects] = np.arange(n_subjects)  # every subject has a clip
        within = dict.fromkeys(range(n_subjects), 0)
        for i, s in enumerate(subject_of):
            within[s] += 1
            label = int(rng.choice(3, p=[0.56, 0.25, 0.19]))
            x = rng.normal(size=(size, size, channels)).astype(np.float32)
            x[..., label % channels] += signal * blobs[label]
            name = f"{dataset}_{i:03d}.npy"
            np.save(folder / name, x)
            rows.append(f"{dataset},{s:02d},EP{within[s]:02d},{CLASSES[label]},{name}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def plain_loso_loop(manifest: Path, *, epochs: int = 40, batch_size: int = 64,
                    lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0) -> dict:
    """The peer: LOSO written the way the authors' repositories do it. One STSTNet per fold,
    a torch Dataset and DataLoader over the fold's samples, torch's default threads, folds one
    after another; the same recipe as microexpr's default (Adam, 40 epochs, batch 64)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    from microexpr.data.manifest import read_manifest
    from microexpr.evaluation.metrics import scores
    from microexpr.models.ststnet import STSTNet

    class FlowDataset(Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return torch.from_numpy(self.x[i]), int(self.y[i])

    data = read_manifest(manifest)
    x_all = np.moveaxis(data.inputs, -1, 1).copy()  # N x C x H x W
    classes = list(data.classes)
    y_all = np.array([classes.index(v) for v in data.clips["label"]])
    subjects = data.clips["subject"].to_numpy()
    truth, predicted = [], []
    torch.manual_seed(seed)
    for subject in sorted(set(subjects)):
        test, train = subjects == subject, subjects != subject
        mean = x_all[train].mean(axis=(0, 2, 3), keepdims=True)
        std = x_all[train].std(axis=(0, 2, 3), keepdims=True) + 1e-6
        x_train = ((x_all[train] - mean) / std).astype(np.float32)
        x_test = ((x_all[test] - mean) / std).astype(np.float32)
        loader = DataLoader(FlowDataset(x_train, y_all[train]), batch_size=batch_size,
                            shuffle=True)
        model = STSTNet(x_all.shape[1], len(classes), x_all.shape[2:])
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                if len(xb) < 2:
                    continue
                optimizer.zero_grad()
                loss_fn(model(xb), yb).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            predicted += model(torch.from_numpy(x_test)).argmax(1).tolist()
        truth += y_all[test].tolist()
    return scores([classes[i] for i in truth], [classes[i] for i in predicted], classes)


# What was measured and tried on the 2-core machine (2026-12-06), kept with the LOSO lines
LOSO_SPEED_NOTES = [
    "Where the time goes (2 cores, one torch thread per worker; this machine's speed varies by",
    "up to a half from hour to hour): one STSTNet training step at batch 64 takes 6-11 ms. The",
    "convolution and its weight gradient are about 2.3 ms of it; the rest is memory traffic of",
    "batch norm, ReLU, max-pooling and their gradients over 64 x 16 x 30 x 30 activations. The",
    "matrix arithmetic of the whole run is only 1.9 TFLOP, but its 19,040 steps at the bare",
    "step time are about 60 s on 2 cores before anything else runs: the 60 s target is the",
    "time of the training steps alone. About 10 s more is fixed cost (a run with 1 epoch takes",
    "13 s): starting the worker processes (importing torch, about 5 s each) and the report.",
    "",
    "Tried and measured, none faster on this CPU: all 68 folds as one batched model (grouped",
    "convolutions, a per-fold linear layer; 1.7-2.4x slower per fold-step with 4 to 68 folds",
    "per group), torch.compile (inductor: 1.4x slower steps, 20 s compiling per process), a",
    "hand-written fused ReLU + batch norm + max-pool layer (pooling before normalising,",
    "chunked to stay in cache: within noise), bfloat16 autocast (within noise). What helps:",
    "channels-last batches (channels-first steps are 1.5-1.9x slower), one torch thread per",
    "worker process, the cheaper dropout sampler and the fused Adam kernel (40% of",
    "OFF-ApexNet's step was the per-tensor Adam update).",
]


_PEAK: dict[str, float] = {}


def matmul_peak_gflops() -> float:
    """This machine's single-core float32 matrix-multiply rate (GFLOP/s, a 1024 x 1024
    product on one torch thread): the most a core gives a network's convolutions and
    matrix products."""
    if "gflops" not in _PEAK:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
            best = math.inf
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(5):
                    a @ b
                best = min(best, (time.perf_counter() - start) / 5)
        finally:
            torch.set_num_threads(threads)
        _PEAK["gflops"] = 2 * 1024 ** 3 / best / 1e9
    return _PEAK["gflops"]


def loso_arithmetic(name: str, shape: tuple[int, int, int], n_classes: int,
                    train_sizes: list[int], jobs: int) -> str:
    """The matrix arithmetic (convolutions and matrix products, forward and backward) of
    training `name` on every fold with its default recipe, and the seconds it takes at least
    on `jobs` cores running at `matmul_peak_gflops`: the floor under any LOSO time."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from microexpr.models import get_model_spec
    from microexpr.training.recipes import make_train_config

    spec = get_model_spec(name)
    config = make_train_config(spec)
    network = spec.build(shape, n_classes, **spec.params)
    batch = torch.randn(config.batch_size, shape[2], shape[0], shape[1])
    with FlopCounterMode(display=False) as counter:
        network(batch).sum().backward()
    per_sample = counter.get_total_flops() / config.batch_size
    total = per_sample * config.epochs * sum(train_sizes)
    peak = matmul_peak_gflops()
    steps = sum(config.epochs * math.ceil(n / config.batch_size) for n in train_sizes)
    step = _step_seconds(network, batch, config)
    return (f"arithmetic {total / 1e12:.1f} TFLOP, at least {total / (peak * 1e9 * jobs):.0f} s "
            f"on {jobs} core(s) at this machine's matrix-multiply peak of {peak:.0f} GFLOP/s "
            f"per core; one training step alone (batch {config.batch_size}, one thread) takes "
            f"{step * 1e3:.1f} ms: {steps} steps {steps * step / jobs:.0f} s on {jobs} core(s)")


def _step_seconds(network, batch, config) -> float:
    """The fastest of a few timings of one optimiser step of `network` on `batch` (one torch
    thread, channels-last, the training loop's optimiser): what a fold's step costs at least."""
    import torch

    from microexpr.training.loop import make_optimizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        network = network.to(memory_format=torch.channels_last).train()
        batch = batch.contiguous(memory_format=torch.channels_last)
        labels = torch.zeros(len(batch), dtype=torch.long)
        optimizer = make_optimizer(network, config)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(network(batch), labels).backward()
            optimizer.step()

        step()
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(3):
                step()
            best = min(best, (time.perf_counter() - start) / 3)
    finally:
        torch.set_num_threads(threads)
    return best


def _train_sizes(manifest: Path) -> list[int]:
    """The training-set size of every LOSO fold of `manifest`."""
    subjects = pd.read_csv(manifest, dtype=str)[["dataset", "subject"]].agg("/".join, axis=1)
    counts = subjects.value_counts()
    return [len(subjects) - int(n) for n in counts]


def bench_loso_manifest(jobs: int) -> None:
    """STSTNet LOSO over a 442-clip / 68-subject manifest: microexpr with its default (automatic)
    --jobs against the plain per-fold loop, in the same run; target < 60 s on 2 cores."""
    import microexpr

    with tempfile.TemporaryDirectory() as tmp:
        manifest = composite_like_manifest(Path(tmp), signal=0.6)
        start = time.perf_counter()
        result = microexpr.evaluate(manifest, "ststnet", protocol="loso",
                                    out=Path(tmp) / "results", cache_dir=None, progress=False)
        ours = time.perf_counter() - start
        lines = [f"loso_ststnet_manifest_442clips_68subjects: {ours:.1f} s with "
                 f"{result.config['jobs']} job(s) (automatic), UF1 "
                 f"{result.metrics['uf1']:.3f} (target < 60 s on 2 cores); "
                 f"{loso_arithmetic('ststnet', (28, 28, 3), 3, _train_sizes(manifest), jobs)}"]
        print(lines[-1], flush=True)
        start = time.perf_counter()
        plain = plain_loso_loop(manifest)
        theirs = time.perf_counter() - start
    # UF1 over 442 clips moves by about 0.03 between seeds of one recipe (binomial spread)
    difference = result.metrics["uf1"] - plain["uf1"]
    verdict = "within noise" if abs(difference) <= 0.06 else "OUTSIDE noise"
    lines.append(f"loso_ststnet_plain_per_fold_loop: {theirs:.1f} s, UF1 {plain['uf1']:.3f}; "
                 f"speed-up {theirs / ours:.2f}x; UF1 difference {difference:+.3f} ({verdict}, "
                 f"|diff| <= 0.06)")
    print(lines[-1], flush=True)
    _write_section("loso_speed", [
        "## LOSO speed on a composite-sized manifest",
        "",
        "STSTNet under LOSO over a manifest shaped like the MEGC 2019 composite (442 clips of",
        "28 x 28 u, v, strain, 68 subjects, clip names repeated across subjects), default recipe",
        "(40 epochs, batch 64, Adam), automatic `--jobs`; the peer is a plain per-fold PyTorch",
        "loop (a DataLoader, one model per fold, torch's default threads) in the same run.",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores; reproduce with",
        "`.venv/bin/python benchmarks/run.py loso_manifest`.",
        "",
        "```",
        *lines,
        "```",
        "",
        *LOSO_SPEED_NOTES,
    ])


def bench_demo(jobs: int) -> None:
    from microexpr.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_demo(Path(tmp) / "demo", jobs=jobs, progress=False)
        seconds = time.perf_counter() - start
    print(f"demo_end_to_end: {seconds:.1f} s, UF1 {result.metrics['uf1']:.3f}, UAR "
          f"{result.metrics['uar']:.3f} (targets < 180 s, UF1 >= 0.90)", flush=True)


# Synthetic motion amplitude for the model table: at the generator's default (2 px) every flow
# model scores ~0.99 and the table tells nothing; at 1 px the models spread out.
TABLE_AMPLITUDE = 1.0
ENSEMBLE = 3
ENSEMBLE_MAX_FIT_SECONDS = 10.0  # ensembles only for models this fast per fold


# Variants beyond default / paper / ensemble: ablations a model's paper reports.
EXTRA_VARIANTS = {"sma_stn": [("no DE-Loss", {"train": {"loss_weights.deviation": 0}})],
                  "mimanet": [("MiNet alone", {"params": {"guidance": False}})]}
# Recipes sized for a GPU: a CPU run would take hours; the table says so instead.
GPU_RECIPES = {("sma_stn", "paper"): "ResNet-18 width (64), a GPU recipe: not run on a CPU",
               ("mol", "paper"): "144 px frames, F = 128, 1000 steps: a GPU recipe"}
TABLE_HEADER = ("| model | recipe | representation | UF1 | UAR | accuracy | training s / fold | "
                "total s | parameters |")


def _table_rows(path: Path) -> list[str]:
    """The model rows of an existing benchmarks table (to keep those not re-measured)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if TABLE_HEADER not in lines:
        return []
    rows = []
    for line in lines[lines.index(TABLE_HEADER) + 2:]:
        if not line.startswith("| "):
            break
        rows.append(line)
    return rows


def bench_model_table(jobs: int, only: tuple[str, ...] = ()) -> None:
    """Every registered model on a synthetic database under LOSO: its default recipe, its
    paper recipe (where it has one), its ablations and a 3-seed ensemble, next to the linear
    pixel baselines; writes docs/benchmarks.md (the table the README points to). With
    `only` (--models), re-measures those models and keeps the other rows of the table."""
    import platform

    import torch

    import microexpr
    from microexpr.models import get_model_spec

    out = BENCHMARKS_MD
    rows: list[str] = []
    names = list(microexpr.list_models()["name"])
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; registered: {names}")
    kept = [r for r in _table_rows(out) if only and r.split(" | ")[0][2:] not in only]
    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "synthetic-casme2", amplitude=TABLE_AMPLITUDE)
        data = microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")
        macro = Path(tmp) / "macro"
        for spec in microexpr.list_models().itertuples(index=False):
            if only and spec.name not in only:
                continue
            model = get_model_spec(spec.name)
            count = "-" if pd.isna(spec.parameters) else f"{int(spec.parameters):,}"
            variants = [("default", {})]
            variants += [(name, {"recipe": name}) for name in model.recipes]
            variants += EXTRA_VARIANTS.get(spec.name, [])
            default_fit = None
            for label, kwargs in variants + [(f"ensemble {ENSEMBLE}", {"ensemble": ENSEMBLE})]:
                if label.startswith("ensemble") and (default_fit is None
                                                     or default_fit > ENSEMBLE_MAX_FIT_SECONDS):
                    continue
                if (spec.name, label) in GPU_RECIPES:
                    reason = GPU_RECIPES[(spec.name, label)]
                    print(f"model_{spec.name}_{label}: skipped ({reason})", flush=True)
                    rows.append(f"| {spec.name} | {label} | {spec.representation} | - | - | - | "
                                f"- | - | {reason} |")
                    continue
                if model.uses_macro and (kwargs.get("params") or {}).get("guidance", True):
                    # mimanet: guided by synthetic CK+-layout macro data
                    if not macro.exists():
                        synthetic_macro(macro)
                    kwargs = {**kwargs, "macro": str(macro)}
                start = time.perf_counter()
                result = microexpr.evaluate(data, spec.name, jobs=jobs,
                                            cache_dir=Path(tmp) / "c", progress=False,
                                            out=Path(tmp) / f"{spec.name}-{len(rows)}", **kwargs)
                seconds = time.perf_counter() - start
                fit = float(np.mean([f["fit_seconds"] for f in result.config["folds"]]))
                default_fit = fit if label == "default" else default_fit
                m = result.metrics
                rows.append(f"| {spec.name} | {label} | {spec.representation} | {m['uf1']:.3f} "
                            f"| {m['uar']:.3f} | {m['accuracy']:.3f} | {fit:.2f} | "
                            f"{seconds:.0f} | {count} |")
                print(f"model_{spec.name}_{label.replace(' ', '')}: UF1 {m['uf1']:.3f} UAR "
                      f"{m['uar']:.3f} acc {m['accuracy']:.3f}, {fit:.2f} s training per fold, "
                      f"{seconds:.0f} s in all", flush=True)
    order = {name: i for i, name in enumerate(names)}
    rows = sorted(kept + rows, key=lambda r: order.get(r.split(" | ")[0][2:], len(order)))
    sections = _sections(out)
    lines = [
        "# Benchmarks",
        "",
        "Every model on a synthetic database (`microexpr synth --amplitude "
        f"{TABLE_AMPLITUDE:g}`: 12",
        "subjects, 3 classes, 144 clips, CASME II layout; motion of 1 px instead of the default",
        "2 px, so that the models spread out) under leave-one-subject-out with labels",
        "`composite3`: each model's default recipe, its `paper` recipe where it has one (the",
        "authors' settings, `--recipe paper`), its ablations, and an ensemble of "
        f"{ENSEMBLE} seeds per fold",
        f"(`--ensemble {ENSEMBLE}`, for models that train in under "
        f"{ENSEMBLE_MAX_FIT_SECONDS:g} s a fold).",
        "`logreg` and `linear_svm` are the floor: class-balanced linear models on the",
        "standardised pixels of the same onset-apex flow.",
        "",
        f"Measured on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
        f" torch {torch.__version__}, {jobs} worker process(es). Training seconds are per fold",
        "(fit only, all ensemble members); total seconds include computing the representation",
        "(cache cold, except where an earlier run used the same one).",
        "",
        "Reproduce with `make bench` (or `.venv/bin/python benchmarks/run.py model_table`;",
        "`--models sma_stn` re-measures one model's rows and keeps the others).",
        "",
        TABLE_HEADER,
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    _write_benchmarks(out, lines, sections)


SECTION_MARK = "<!-- section: {} -->"


def _sections(path: Path) -> dict[str, str]:
    """The named sections below the main table (each starts with a SECTION_MARK line)."""
    if not path.exists():
        return {}
    text, sections = path.read_text(), {}
    marker = SECTION_MARK.split("{}")[0]
    for part in text.split(marker)[1:]:
        name, _, body = part.partition(" -->\n")
        sections[name] = body.rstrip() + "\n"
    return sections


def _write_benchmarks(out: Path, lines: list[str], sections: dict[str, str]) -> None:
    text = "\n".join(lines) + "\n"
    for name, body in sections.items():
        text += "\n" + SECTION_MARK.format(name) + "\n" + body
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}", flush=True)


def _main_part(path: Path) -> list[str]:
    """The lines of docs/benchmarks.md above its sections."""
    if not path.exists():
        return ["# Benchmarks", ""]
    marker = SECTION_MARK.split("{}")[0]
    return path.read_text().split(marker)[0].rstrip().splitlines()


def _section_lines(name: str) -> list[str]:
    """The benchmark lines (`loso_...`) in the code block of section `name`, if written."""
    body = _sections(BENCHMARKS_MD).get(name, "")
    return [line for line in body.splitlines() if line.startswith("loso_")]


def _write_section(name: str, lines: list[str]) -> None:
    """Replace (or add) section `name` of docs/benchmarks.md, keeping everything else."""
    out = BENCHMARKS_MD
    sections = _sections(out)
    sections[name] = "\n".join(lines) + "\n"
    _write_benchmarks(out, _main_part(out), sections)


def bench_sma_stn(jobs: int) -> None:
    """SMA-STN with and without its DE-Loss under LOSO on the default synthetic database;
    writes its section of docs/benchmarks.md (target: the whole LOSO < 10 minutes on 2 cores,
    UF1 >= 0.85)."""
    import microexpr

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "synthetic-casme2")
        data = microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")
        for key, label, train in (("default", "default (DE-Loss 0.1)", None),
                                  ("no_de_loss", "no DE-Loss", {"loss_weights.deviation": 0})):
            start = time.perf_counter()
            result = microexpr.evaluate(data, "sma_stn", jobs=jobs, train=train,
                                        cache_dir=Path(tmp) / "c", progress=False,
                                        out=Path(tmp) / f"sma-{len(rows)}")
            seconds = time.perf_counter() - start
            fit = float(np.mean([f["fit_seconds"] for f in result.config["folds"]]))
            m = result.metrics
            rows.append(f"| sma_stn | {label} | {m['uf1']:.3f} | {m['uar']:.3f} | "
                        f"{m['accuracy']:.3f} | {fit:.1f} | {seconds:.0f} | "
                        f"{result.config['jobs']} |")
            print(f"loso_sma_stn_{key}: UF1 {m['uf1']:.3f} UAR "
                  f"{m['uar']:.3f}, {fit:.1f} s training per fold, {seconds:.0f} s in all with "
                  f"{result.config['jobs']} job(s) (targets < 600 s, UF1 >= 0.85)", flush=True)
    _write_section("sma_stn", [
        "## SMA-STN on the default synthetic database",
        "",
        "`sma_stn` (DSSI: 4 segments + a global dynamic image, aligned faces, 64 px; its CPU",
        "default network) under leave-one-subject-out on the default synthetic database",
        "(`microexpr synth`: 12 subjects, 144 clips, 2 px motion), labels `composite3`, with",
        "and without the DE-Loss (`--train-option loss_weights.deviation=0`). Targets: the",
        "whole LOSO in under 10 minutes on 2 cores, UF1 >= 0.85. One clip of 144 moves UF1",
        "by about 0.007: differences of a few clips between the rows are noise on this easy",
        "database, not evidence for or against the DE-Loss. Reproduce with",
        "`.venv/bin/python benchmarks/run.py sma_stn`.",
        "",
        "| model | variant | UF1 | UAR | accuracy | training s / fold | total s | jobs |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])


MOL_VARIANTS = (
    ("default", "default (flow + landmarks + CCC)", {}),
    ("no_flow", "without the flow head", {"flow_head": False}),
    ("no_landmarks", "without the landmark head", {"landmark_head": False}),
    ("no_ccc", "without CCC", {"ccc": False}),
)


def _with_baseline(scores: dict, name: str, baseline: str) -> str:
    """'score (baseline)' for a table cell; '-' when the score was not computed."""
    return f"{scores[name]:.4f} ({scores[baseline]:.4f})" if name in scores else "-"


def bench_mol(jobs: int) -> None:
    """MOL's CPU default and its ablations under LOSO on the default synthetic database:
    UF1, seconds per fold, inference milliseconds per clip, flow EPE and landmark NME next
    to their baselines; writes its section of docs/benchmarks.md (targets: the default's
    LOSO < 15 minutes on 2 cores, UF1 >= 0.85)."""
    import microexpr

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "synthetic-casme2")
        data = microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")
        for key, label, params in MOL_VARIANTS:
            start = time.perf_counter()
            result = microexpr.evaluate(data, "mol", jobs=jobs, params=params,
                                        cache_dir=Path(tmp) / "c", progress=False,
                                        out=Path(tmp) / f"mol-{key}")
            seconds = time.perf_counter() - start
            folds = result.config["folds"]
            fit = float(np.mean([f["fit_seconds"] for f in folds]))
            per_clip = 1000 * sum(f["predict_seconds"] for f in folds) / len(data.clips)
            m, aux = result.metrics, result.metrics.get("auxiliary", {})
            flow = _with_baseline(aux, "flow_epe", "flow_epe_zero")
            marks = _with_baseline(aux, "landmark_nme", "landmark_nme_mean_shape")
            rows.append(f"| mol | {label} | {m['uf1']:.3f} | {m['uar']:.3f} | "
                        f"{m['accuracy']:.3f} | {fit:.1f} | {per_clip:.1f} | {seconds:.0f} | "
                        f"{flow} | {marks} |")
            print(f"loso_mol_{key}: UF1 {m['uf1']:.3f} UAR {m['uar']:.3f}, {fit:.1f} s "
                  f"training per fold, {per_clip:.1f} ms inference per clip, {seconds:.0f} s "
                  f"in all with {result.config['jobs']} job(s) (targets < 900 s, UF1 >= 0.85); "
                  f"flow EPE (zero flow) {flow}, landmark NME (mean shape) {marks}",
                  flush=True)
    _write_section("mol", [
        "## MOL on the default synthetic database",
        "",
        "`mol`'s CPU default (8 aligned frames of 72 px, random 64 px crops, F = 64, the",
        "light flow decoder, TV-L1 flow and landmark targets) and its ablations under",
        "leave-one-subject-out on the default synthetic database (`microexpr synth`: 12",
        "subjects, 144 clips, 2 px motion), labels `composite3`. Targets: the default's whole",
        "LOSO in under 15 minutes on 2 cores, UF1 >= 0.85. Inference is per clip in batches",
        "of the test fold, after training. The auxiliary columns are pooled over the test",
        "clips of every fold, each next to its baseline in brackets (zero flow; the training",
        "mean shape): lower is better. The flow head only just beats zero flow here: TV-L1",
        "flow of 2 px synthetic motion at 72 px is mostly sensor noise (mean 0.06 px).",
        "Total seconds include computing the frames and both",
        "targets once (cached for the later rows). Reproduce with",
        "`.venv/bin/python benchmarks/run.py mol`.",
        "",
        "| model | variant | UF1 | UAR | accuracy | training s / fold | inference ms / clip | "
        "total s | flow EPE (zero) | landmark NME (mean shape) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


MIMANET_VARIANTS = (
    ("default", "default (MaNet guidance, all three terms)", {}),
    ("no_guidance", "MiNet alone (no MaNet, no macro data)", {"guidance": False}),
    ("no_adversarial", "without the domain discriminator", {"adversarial": False}),
    ("no_relation", "without the relation classifier", {"relation": False}),
    ("no_contrastive", "without the contrastive loss", {"contrastive": False}),
)
MIMANET_SEEDS = (0, 1, 2)  # the default and MiNet alone: enough seeds to see the noise


def synthetic_macro(folder: Path) -> Path:
    """Synthetic macro-expressions in the CK+ layout (`microexpr synth DIR --macro`)."""
    from microexpr.synth.macro import write_ckplus

    return write_ckplus(folder)


def bench_mimanet(jobs: int) -> None:
    """MiMaNet and its ablations under LOSO on the default synthetic database, guided by a
    MaNet trained on synthetic CK+-layout macro data; the default and MiNet alone over three
    seeds, so the table can say whether guidance helped beyond seed noise. Writes its section
    of docs/benchmarks.md (targets: LOSO < 15 minutes on 2 cores, UF1 >= 0.85)."""
    import microexpr

    rows, uf1s = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "synthetic-casme2")
        data = microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")
        macro = synthetic_macro(Path(tmp) / "macro")
        for key, label, params in MIMANET_VARIANTS:
            seeds = MIMANET_SEEDS if key in ("default", "no_guidance") else MIMANET_SEEDS[:1]
            for seed in seeds:
                start = time.perf_counter()
                result = microexpr.evaluate(
                    data, "mimanet", jobs=jobs, params=params, seed=seed,
                    macro=None if params.get("guidance") is False else str(macro),
                    cache_dir=Path(tmp) / "c", progress=False,
                    out=Path(tmp) / f"mimanet-{key}-{seed}")
                seconds = time.perf_counter() - start
                fit = float(np.mean([f["fit_seconds"] for f in result.config["folds"]]))
                manet = (result.config.get("macro") or {}).get("manet", {})
                manet_s = (f"{manet['fit_seconds']:.0f}" if "fit_seconds" in manet else
                           "cached" if manet else "-")
                m = result.metrics
                uf1s.setdefault(key, []).append(m["uf1"])
                rows.append(f"| mimanet | {label} | {seed} | {m['uf1']:.3f} | {m['uar']:.3f} | "
                            f"{m['accuracy']:.3f} | {fit:.1f} | {manet_s} | {seconds:.0f} |")
                print(f"loso_mimanet_{key}_seed{seed}: UF1 {m['uf1']:.3f} UAR {m['uar']:.3f}, "
                      f"{fit:.1f} s training per fold, MaNet (s) {manet_s}, {seconds:.0f} s in "
                      f"all with {result.config['jobs']} job(s) (targets < 900 s, UF1 >= "
                      f"0.85)", flush=True)
    guided, alone = np.array(uf1s["default"]), np.array(uf1s["no_guidance"])
    gain = guided.mean() - alone.mean()
    noise = max(guided.std(ddof=1), alone.std(ddof=1))
    verdict = (f"guided UF1 {guided.mean():.3f} (seed sd {guided.std(ddof=1):.3f}) against "
               f"MiNet alone {alone.mean():.3f} (sd {alone.std(ddof=1):.3f}): a difference of "
               f"{gain:+.3f}, "
               + ("larger than the seed noise: macro guidance helped on this data." if gain >
                  2 * noise else
                  "larger than the seed noise: macro guidance hurt on this data." if gain <
                  -2 * noise else
                  "within the seed noise: on this data macro guidance neither helped nor hurt "
                  "measurably."))
    print(f"mimanet_guidance: {verdict}", flush=True)
    _write_section("mimanet", [
        "## MiMaNet on the default synthetic database",
        "",
        "`mimanet` (two-stream MiNet over the aligned 64 px apex frame and a 16-frame clip)",
        "under leave-one-subject-out on the default synthetic database (`microexpr synth`:",
        "12 subjects, 144 clips, 2 px motion), labels `composite3`, guided by a MaNet trained",
        "once per run on synthetic macro-expressions in the CK+ layout (`microexpr synth DIR",
        "--macro`: other synthetic people, large motion); its ablations, and MiNet alone",
        "(`--param guidance=false`). The default and MiNet alone ran with 3 seeds each.",
        "MaNet s: seconds to train MaNet (once per run; `cached` when an earlier run with the",
        "same macro data and settings had trained it). Targets: LOSO in under 15 minutes on",
        "2 cores, UF1 >= 0.85. One clip of 144 moves UF1 by about 0.007. Reproduce with",
        "`.venv/bin/python benchmarks/run.py mimanet`.",
        "",
        f"Did macro guidance help? {verdict}",
        "",
        "| model | variant | seed | UF1 | UAR | accuracy | training s / fold | MaNet s | "
        "total s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


SPOT_VARIANTS = (
    ("mdmd + macro pass (default)", "mdmd", "default"),
    ("mdmd alone", "mdmd", None),
    ("lbp + macro pass", "lbp", "default"),
    ("softnet (learned) + macro pass", "softnet", "default"),
    ("plain motion threshold", "motion", None),
)


def _nuisance_false_positives(run: Path, metadata: dict) -> int:
    """False positives of a spotting run that overlap a blink, talking or a head turn of the
    synthetic long videos (their metadata lists these events)."""
    predictions = pd.read_csv(run / "predictions.csv")
    matches = pd.read_csv(run / "matches.csv")
    false = predictions.loc[matches.loc[matches["outcome"] == "fp", "prediction"].astype(int)]
    events = {f"{v['subject']}/{v['folder']}": v["nuisances"] for v in metadata["videos"]}
    return int(sum(any(e["onset"] <= row.offset and row.onset <= e["offset"]
                       for e in events.get(row.video, []))
                   for row in false.itertuples(index=False)))


def bench_spotting(jobs: int) -> None:
    """Spotting on synthetic long videos (CAS(ME)^2 layout, 6 subjects x 2 videos x 20 s, with
    blinks, talking and head turns) under LOSO: MEGC F1 per kind of the default spotter, its
    parts and the plain motion threshold; writes its section of docs/benchmarks.md (target:
    micro F1 >= 0.6, far fewer false positives than the plain motion threshold)."""
    import json

    from microexpr.data.long_videos import load_long_videos
    from microexpr.synth.long_video import synthesize_long
    from microexpr.video.spot_evaluation import evaluate_spotting

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize_long(Path(tmp) / "long", subjects=6, videos_per_subject=2,
                               seconds=20.0, seed=1)
        metadata = json.loads((root / "microexpr_synthetic_long.json").read_text())
        data = load_long_videos("casme2_long", root)
        for label, spotter, macro in SPOT_VARIANTS:
            start = time.perf_counter()
            result = evaluate_spotting(data, spotter, macro_spotter=macro, progress=False,
                                       out=Path(tmp) / f"spot-{len(rows)}")
            seconds = time.perf_counter() - start
            m = result.metrics
            nuisance = _nuisance_false_positives(result.out_dir, metadata)
            cells = " | ".join(f"{m[k]['tp']} / {m[k]['fp']} / {m[k]['fn']} | {m[k]['f1']:.3f}"
                               for k in ("micro", "macro", "overall"))
            rows.append(f"| {label} | {cells} | {nuisance} | {seconds:.0f} |")
            print(f"spot_{spotter}{'_macro' if macro else ''}: micro F1 {m['micro']['f1']:.3f} "
                  f"(target >= 0.6), macro F1 {m['macro']['f1']:.3f}, overall F1 "
                  f"{m['overall']['f1']:.3f}; false positives {m['overall']['fp']} "
                  f"({nuisance} on blinks, talking or head turns); {seconds:.0f} s", flush=True)
    _write_section("spotting", [
        "## Spotting on synthetic long videos",
        "",
        "`microexpr synth --long` videos (CAS(ME)^2 layout, 30 fps, 128 px faces): 6 subjects",
        "x 2 videos x 20 s, 24 micro- (7-16 frames, 2 px) and 24 macro-expressions, among",
        "blinks, talking-like mouth motion and head turns. `evaluate --task spot` under",
        "leave-one-subject-out: every threshold chosen on the training subjects of its fold;",
        "MEGC metric (a hit at IoU >= 0.5, each truth matched once, counts pooled over the",
        "videos). Cells: TP / FP / FN | F1. Nuisance FP: false positives overlapping a blink,",
        "talking or a head turn. Targets: micro F1 >= 0.6, far fewer false positives than a",
        "plain motion threshold. Seconds include analysing every video (once per pass).",
        "Reproduce with `.venv/bin/python benchmarks/run.py spotting`.",
        "",
        "| spotter | micro TP / FP / FN | micro F1 | macro TP / FP / FN | macro F1 | "
        "overall TP / FP / FN | overall F1 | nuisance FP | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def _video_640x480(source: Path, out: Path, repeat: int) -> Path:
    """`source` resized to 640x480 and played `repeat` times in a row (an mp4 file)."""
    import cv2

    reader = cv2.VideoCapture(str(source))
    fps = reader.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while True:
        ok, frame = reader.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
    reader.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for _ in range(repeat):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def bench_video(jobs: int) -> None:
    """`analyze` speed on a 640x480 video on this machine's cores: frames per second spotting
    only and with a model (targets >= 60 and >= 30), and the peak memory of the analysis for
    the same video played 1 and 4 times (target: flat in the video's length)."""
    import tracemalloc

    import microexpr

    fixture = (Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "faces"
               / "WolfgangLanger_Pexels.mp4")
    if not fixture.is_file():
        print(f"video: skipped ({fixture} not found; the face fixtures live next to the "
              f"project in ../shared/fixtures/faces)", flush=True)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        short = _video_640x480(fixture, Path(tmp) / "x1.mp4", 1)
        long_ = _video_640x480(fixture, Path(tmp) / "x4.mp4", 4)
        microexpr.analyze(short)  # the face models load once, before timing
        for label, path in (("spot only, 472 frames", short), ("spot only, 1888 frames", long_)):
            tracemalloc.start()
            result = microexpr.analyze(path)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            fps = result.summary["frames"] / result.summary["seconds_total"]
            rows.append(f"| {label} | {fps:.0f} | {peak:.1f} |")
            print(f"video_{label.split(',')[0].replace(' ', '_')}_{result.summary['frames']}: "
                  f"{fps:.0f} frames/s (target >= 60), peak traced memory {peak:.1f} MiB",
                  flush=True)
        root = microexpr.synthesize(Path(tmp) / "db", subjects=6, clips_per_class=2)
        data = microexpr.load_dataset("casme2", root, labels="composite3")
        model = microexpr.train(data, "ststnet", out=Path(tmp) / "model.pt",
                                cache_dir=Path(tmp) / "cache", progress=False)
        result = microexpr.analyze(short, model=model)
        fps = result.summary["frames"] / result.summary["seconds_total"]
        intervals = len(result.intervals)
        rows.append(f"| with ststnet, 472 frames ({intervals} intervals recognised) | {fps:.0f} "
                    f"| - |")
        print(f"video_with_model: {fps:.0f} frames/s with ststnet recognising {intervals} "
              f"intervals (target >= 30)", flush=True)
    _write_section("video", [
        "## Video analysis speed",
        "",
        "`microexpr.analyze` on a real video (`WolfgangLanger_Pexels.mp4` of the face",
        "fixtures, resized to 640x480, 23.98 fps), the default spotter, MediaPipe faces, on",
        f"{os.cpu_count()} cores: frames per second over the whole call (decoding, face",
        "tracking and alignment, scores, intervals and, with a model, recognising each",
        "interval from its frames). Peak memory: Python's traced allocations (numpy",
        "included) during the call, for the video played once and 4 times. Targets: >= 60",
        "frames/s spotting only, >= 30 with a model; memory flat in the length. Reproduce",
        "with `.venv/bin/python benchmarks/run.py video`.",
        "",
        "| run | frames / s | peak MiB |",
        "|---|---|---|",
        *rows,
    ])


def bench_gpu(jobs: int) -> None:
    """The GPU path, when a CUDA device is present: one model's LOSO on the default synthetic
    database on cuda, with and without --amp, next to the same run on the CPU (the ratio is
    what to read; these machines are noisy). Prints a skip line without CUDA."""
    import torch

    import microexpr

    if not torch.cuda.is_available():
        print("gpu: skipped (no CUDA device on this machine)", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "synthetic-casme2")
        data = microexpr.load_dataset("casme2", root, namespace="synth", labels="composite3")
        seconds = {}
        for label, device, train in (("cpu", "cpu", None), ("cuda", "cuda", None),
                                     ("cuda_amp", "cuda", {"amp": True})):
            start = time.perf_counter()
            result = microexpr.evaluate(data, "micro_attention", device=device, train=train,
                                        cache_dir=Path(tmp) / "c", progress=False,
                                        out=Path(tmp) / label)
            seconds[label] = time.perf_counter() - start
            print(f"gpu_{label}: micro_attention LOSO UF1 {result.metrics['uf1']:.3f}, "
                  f"{seconds[label]:.0f} s ({torch.cuda.get_device_name(0)})", flush=True)
        print(f"gpu_ratio: cpu / cuda {seconds['cpu'] / seconds['cuda']:.1f}x, cpu / cuda+amp "
              f"{seconds['cpu'] / seconds['cuda_amp']:.1f}x", flush=True)


def bench_flow_models_442(jobs: int, only: tuple[str, ...] = ()) -> None:
    """LOSO of the models that take onset-apex flow, and of micro_attention fed that flow at
    64 x 64 (`--input-size 64`), over a 442-clip, 68-subject manifest of 28 x 28 u, v, strain
    files declared with --channels (targets: STSTNet < 60 s, the others < 5 minutes)."""
    import microexpr
    from microexpr.models import get_model_spec

    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = composite_like_manifest(Path(tmp), channels=3, signal=0.6)
        for name in only or microexpr.list_models()["name"]:
            spec = get_model_spec(name)
            extra = {}
            if name == "micro_attention":
                lines.append(_project_one_fold(manifest, name, 64, jobs))
                continue
            if spec.representation != "onset_apex_flow":
                continue
            start = time.perf_counter()
            result = microexpr.evaluate(manifest, name, channels="u,v,strain", cache_dir=None,
                                        out=Path(tmp) / f"results-{name}", progress=False,
                                        **extra)
            seconds = time.perf_counter() - start
            size = extra.get("input_size", 28)
            floor = ""
            if spec.kind == "torch":
                channels = len(spec.input_channels or ("u", "v", "strain"))
                floor = "; " + loso_arithmetic(name, (size, size, channels), 3,
                                               _train_sizes(manifest), jobs)
            lines.append(f"loso_{name}_manifest_442clips_{size}x{size}: {seconds:.1f} s with "
                         f"{result.config['jobs']} job(s), UF1 {result.metrics['uf1']:.3f} "
                         f"(target < {60 if name == 'ststnet' else 300} s on 2 cores){floor}")
            print(lines[-1], flush=True)
    measured = {line.split(":")[0].rsplit("_manifest", 1)[0] for line in lines}
    kept = [line for line in _section_lines("flow_models_442")
            if line.split(":")[0].rsplit("_manifest", 1)[0] not in measured]
    lines = sorted(kept + lines)
    _write_section("flow_models_442", [
        "## Flow models on a composite-sized manifest",
        "",
        "LOSO of every model that takes onset-apex flow, and one fold of micro_attention fed",
        "that flow at 64 x 64 (`--input-size 64`, the whole run projected from it), over the",
        "442-clip, 68-subject manifest of 28 x 28 u, v, strain files (`--channels u,v,strain`),",
        "default recipes. Each line gives the matrix arithmetic of the run and the least time",
        "it takes at this machine's measured matrix-multiply peak, and the time of the bare",
        f"training steps. Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores;",
        "reproduce with `.venv/bin/python benchmarks/run.py flow_models_442` (`--models NAME`",
        "for some of them).",
        "",
        "```",
        *lines,
        "```",
        "",
        "OFF-ApexNet and STSTNet spend most of a run in their training steps (the step time",
        "above, times the steps, over the cores). micro_attention cannot finish in 5 minutes on",
        "2 cores: the convolutions of its default recipe at 64 x 64 are over 400 TFLOP, more",
        "than half an hour at the cores' measured peak; it needs a GPU (`--device cuda`) or a",
        "Ray cluster (`--backend ray`) for a full LOSO.",
    ])


def _project_one_fold(manifest: Path, name: str, size: int, jobs: int) -> str:
    """Time one LOSO fold of `name` at size x size and project the whole run (a full run of a
    large network on a CPU takes the better part of an hour)."""
    import torch

    from microexpr.data.manifest import read_manifest
    from microexpr.evaluation.protocols import make_folds
    from microexpr.models import get_model_spec
    from microexpr.representations import resize_inputs
    from microexpr.training.estimators import make_classifier

    data = read_manifest(manifest, channels="u,v,strain")
    x = resize_inputs(data.inputs, size)
    labels = data.clips["label"].to_numpy()
    folds = make_folds("loso", data.clips["subject"].to_numpy(), data.clips["dataset"])
    fold = folds[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in one of `jobs` worker processes
    try:
        start = time.perf_counter()
        make_classifier(name, data.classes).fit(x[fold.train], labels[fold.train],
                                                channels=data.channels)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    channels = len(get_model_spec(name).input_channels or data.channels)
    arithmetic = loso_arithmetic(name, (size, size, channels), len(data.classes),
                                 [len(f.train) for f in folds], jobs)
    line = (f"loso_{name}_manifest_442clips_{size}x{size}: {seconds:.1f} s for one fold on one "
            f"core, projected {seconds * len(folds) / jobs:.0f} s for {len(folds)} folds with "
            f"{jobs} job(s) (target < 300 s on 2 cores); {arithmetic}")
    print(line, flush=True)
    return line


def _full_frame_database(folder: Path, subjects: int, clips_per_class: int):
    import microexpr

    start = time.perf_counter()
    root = microexpr.synthesize(folder, subjects=subjects, clips_per_class=clips_per_class,
                                full_frame=True, seed=0)
    seconds = time.perf_counter() - start
    return microexpr.load_dataset("casme2", root, namespace="synth"), seconds


def bench_aligned_faces(jobs: int) -> None:
    """Aligned face crops per second: detection once per clip, then one warp per frame."""
    from microexpr.preprocess.align import AlignConfig
    from microexpr.preprocess.cache import ArrayCache
    from microexpr.representations.frames import Context, clip_range, load_frames

    with tempfile.TemporaryDirectory() as tmp:
        data, _ = _full_frame_database(Path(tmp) / "db", subjects=2, clips_per_class=1)
        clips = data.clips.to_dict("records")
        load_frames(clips[0], clip_range(clips[0])[:2], size=128, color=False,
                    align=AlignConfig(), context=Context())  # load the face models once
        frames, start = 0, time.perf_counter()
        for clip in clips:
            numbers = clip_range(clip)
            load_frames(clip, numbers, size=128, color=False, align=AlignConfig(),
                        context=Context(ArrayCache(None)))
            frames += len(numbers)
        seconds = time.perf_counter() - start
    print(f"aligned_faces_128: {frames / seconds:.0f} frames/s on one core ({frames} frames of "
          f"640x480, detection included; target >= 100 frames/s)", flush=True)


def bench_flow_throughput(jobs: int) -> None:
    """Onset-apex flow clips per second at 128x128 for TV-L1 and DIS (cache off)."""
    import microexpr

    with tempfile.TemporaryDirectory() as tmp:
        root = microexpr.synthesize(Path(tmp) / "db", subjects=4, clips_per_class=4, seed=0)
        clips = microexpr.load_dataset("casme2", root).clips
        for method in ("tvl1", "dis"):
            start = time.perf_counter()
            microexpr.compute_representation(clips, "onset_apex_flow",
                                             {"method": method, "compute_size": 128},
                                             cache_dir=None, jobs=jobs, progress=False)
            seconds = time.perf_counter() - start
            print(f"flow_{method}_128: {len(clips) / seconds:.1f} clips/s with {jobs} job(s) "
                  f"({len(clips)} clips)", flush=True)


def bench_prepare_full_frames(jobs: int) -> None:
    """Prepare aligned onset-apex flow for a 442-clip synthetic full-frame database."""
    from microexpr.representations import prepare_representation

    with tempfile.TemporaryDirectory() as tmp:
        data, made = _full_frame_database(Path(tmp) / "db", subjects=37, clips_per_class=4)
        clips = data.clips.iloc[:442]
        print(f"synthesize_full_frame_444clips: {made:.1f} s", flush=True)
        for method, target in (("dis", 120), ("tvl1", 300)):
            start = time.perf_counter()
            report = prepare_representation(
                clips, "onset_apex_flow", {"method": method, "align": {}},
                cache_dir=Path(tmp) / f"cache-{method}", jobs=jobs, progress=False)
            seconds = time.perf_counter() - start
            print(f"prepare_aligned_flow_{method}_442clips: {seconds:.1f} s with {jobs} job(s),"
                  f" {len(report.failures)} failed (target < {target} s on 2 cores)",
                  flush=True)


BENCHMARKS = {
    "loso_manifest": bench_loso_manifest,
    "demo": bench_demo,
    "aligned_faces": bench_aligned_faces,
    "flow_throughput": bench_flow_throughput,
    "prepare_full_frames": bench_prepare_full_frames,
    "model_table": bench_model_table,
    "flow_models_442": bench_flow_models_442,
    "sma_stn": bench_sma_stn,
    "mol": bench_mol,
    "mimanet": bench_mimanet,
    "spotting": bench_spotting,
    "video": bench_video,
    "gpu": bench_gpu,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help="benchmarks to run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", default="",
                        help="model_table and flow_models_442 only: measure these models "
                             "(comma-separated)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    print(f"# microexpr benchmarks on {os.cpu_count()} cores", flush=True)
    only = tuple(m.strip() for m in args.models.split(",") if m.strip())
    for name in args.names:
        if name in ("model_table", "flow_models_442") and only:
            BENCHMARKS[name](args.jobs, only)
        else:
            BENCHMARKS[name](args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
