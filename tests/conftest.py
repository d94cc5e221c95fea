"""Shared test helpers: small seeded manifests with and without signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def write_manifest(folder: Path, *, n_subjects: int, per_subject: int, size: int = 12,
                   signal: float = 0.0, seed: int = 0, classes=("neg", "pos", "sur"),
                   datasets=("dsa", "dsb")) -> Path:
    """A manifest of N x size x size x 3 .npy inputs; `signal` > 0 plants a class pattern."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    # each class moves a different facial "region": a smooth blob at its own place/channel
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = np.zeros((len(classes), size, size, 3), np.float32)
    for k in range(len(classes)):
        cy, cx = (k + 1) * size / (len(classes) + 1), size / 2 + (k % 2 - 0.5) * size / 3
        patterns[k, ..., k % 3] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (size / 5) ** 2)
    rows = ["dataset,subject,clip,label,path"]
    for s in range(n_subjects):
        dataset = datasets[s % len(datasets)]
        for k in range(per_subject):
            label = int(rng.integers(len(classes)))
            x = rng.normal(size=(size, size, 3)).astype(np.float32)
            x += signal * patterns[label]
            name = f"s{s:02d}_{k:02d}.npy"
            np.save(folder / name, x)
            rows.append(f"{dataset},s{s:02d},clip{s:02d}_{k:02d},{classes[label]},{name}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(autouse=True)
def one_thread():
    """Tests train small networks: on 2 shared cores one torch thread is several times faster
    than two (and results do not depend on the machine's core count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def noise_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "noise", n_subjects=10, per_subject=12, signal=0.0, seed=1)


@pytest.fixture
def signal_manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "signal", n_subjects=6, per_subject=12, signal=2.0, seed=2)
