"""The demo job: synthetic CASME II-format data -> onset-apex flow -> STSTNet LOSO -> results."""

from __future__ import annotations

import os
from pathlib import Path

from microexpr.evaluation.runner import EvaluationResult, evaluate


def run_demo(out: str | Path = "demo-output", *, subjects: int = 12, clips_per_class: int = 4,
             seed: int = 0, epochs: int | None = None, jobs: int | None = None,
             progress: bool = True) -> EvaluationResult:
    """Run the whole pipeline on built-in synthetic data and return the evaluation.

    `out` receives `synthetic-casme2/` (the database, in CASME II layout), `cache/` (the flow
    cache) and `results/` (config, predictions, metrics, confusion matrix; replaced by each
    run of the demo).
    """
    from microexpr.data.adapters import load_dataset
    from microexpr.synth import synthesize

    out = Path(out)
    # synthesize() returns at once when the folder already holds this database
    root = synthesize(out / "synthetic-casme2", subjects=subjects,
                      clips_per_class=clips_per_class, seed=seed, progress=progress)
    dataset = load_dataset("casme2", root, namespace="synth", labels="composite3")
    return evaluate(dataset, "ststnet", protocol="loso", epochs=epochs, seed=seed,
                    out=out / "results", cache_dir=out / "cache",
                    jobs=jobs if jobs is not None else min(2, os.cpu_count() or 1),
                    progress=progress, overwrite=True)
