"""Benchmarks (`make bench`): print timings for the performance targets in the issues.

Each benchmark prints one line `name: value unit (target)`. They are measurements, not tests:
run them on the 2-core reference machine to check a target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The MEGC 2019 composite: (database, subjects, clips)
COMPOSITE_SHAPE = (("smic", 16, 164), ("casme2", 24, 145), ("samm", 28, 133))
CLASSES = ("negative", "positive", "surprise")


def composite_like_manifest(folder: Path, size: int = 28, seed: int = 0) -> Path:
    """A manifest with the composite's shape: 442 clips of size x size x 3 from 68 subjects."""
    rng = np.random.default_rng(seed)
    rows = ["dataset,subject,clip,label,path"]
    yy, xx = np.mgrid[0:size, 0:size]
    blobs = [np.exp(-((yy - size * (k + 1) / 4) ** 2 + (xx - size / 2) ** 2) / (size / 6) ** 2)
             for k in range(3)]
    for dataset, n_subjects, n_clips in COMPOSITE_SHAPE:
        subject_of = np.sort(rng.integers(0, n_subjects, n_clips))
        subject_of[:n_subjects] = np.arange(n_subjects)  # every subject has a clip
        for i, s in enumerate(subject_of):
            label = int(rng.choice(3, p=[0.56, 0.25, 0.19]))
            x = rng.normal(size=(size, size, 3)).astype(np.float32)
            x[..., label] += 1.5 * blobs[label]
            name = f"{dataset}_{i:03d}.npy"
            np.save(folder / name, x)
            rows.append(f"{dataset},{s:02d},{dataset}_{i:03d},{CLASSES[label]},{name}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def bench_loso_manifest(jobs: int) -> None:
    import microexpr

    with tempfile.TemporaryDirectory() as tmp:
        manifest = composite_like_manifest(Path(tmp))
        start = time.perf_counter()
        result = microexpr.evaluate(manifest, "ststnet", protocol="loso", jobs=jobs,
                                    out=Path(tmp) / "results", cache_dir=None, progress=False)
        seconds = time.perf_counter() - start
    print(f"loso_ststnet_manifest_442clips_68subjects: {seconds:.1f} s with {jobs} job(s), "
          f"UF1 {result.metrics['uf1']:.3f} (target < 180 s on 2 cores)", flush=True)


def bench_demo(jobs: int) -> None:
    from microexpr.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = run_demo(Path(tmp) / "demo", jobs=jobs, progress=False)
        seconds = time.perf_counter() - start
    print(f"demo_end_to_end: {seconds:.1f} s, UF1 {result.metrics['uf1']:.3f}, UAR "
          f"{result.metrics['uar']:.3f} (targets < 180 s, UF1 >= 0.90)", flush=True)


BENCHMARKS = {"loso_manifest": bench_loso_manifest, "demo": bench_demo}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help="benchmarks to run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    print(f"# microexpr benchmarks on {os.cpu_count()} cores", flush=True)
    for name in args.names:
        BENCHMARKS[name](args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
