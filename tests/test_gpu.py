"""The GPU path: training and prediction on CUDA (run where a GPU is, skipped elsewhere), mixed
precision, deterministic mode, and the errors for a device or an option this machine cannot
honour (those run everywhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_manifest
from test_cli_evaluate import run

import microexpr
from microexpr.errors import ConfigError
from microexpr.training import loop
from microexpr.training.device import check_device, resolve_device
from microexpr.training.torch_classifier import TorchClassifier

CLASSES = ("neg", "pos", "sur")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
# no dropout: CPU and CUDA draw different dropout masks, so the runs would differ by more
# than floating-point rounding
SMALL = dict(params={"dropout": 0.0}, seed=0)
TRAIN = {"epochs": 12, "lr": 3e-3, "batch_size": 32}


def planted(n: int, seed: int, size: int = 12, signal: float = 3.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """n inputs (size x size x 3) whose class is a blob at its own place and channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    labels = rng.integers(len(CLASSES), size=n)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32)
    for k in range(len(CLASSES)):
        cy, cx = (k + 1) * size / 4, size / 2 + (k % 2 - 0.5) * size / 3
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (size / 5) ** 2)
        x[labels == k, :, :, k] += signal * blob.astype(np.float32)
    return x, np.array(CLASSES)[labels]


def fit(device: str, **train) -> tuple[TorchClassifier, np.ndarray]:
    """ststnet trained on planted data on `device`; its probabilities on held-out data."""
    x, y = planted(192, seed=1)
    test_x, _ = planted(96, seed=2)
    model = TorchClassifier("ststnet", CLASSES, train_config={**TRAIN, **train},
                            device=device, **SMALL).fit(x, y)
    return model, model.predict_proba(test_x)


# -- on a GPU ---------------------------------------------------------------------------------

@needs_cuda
def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device(None).type == "cuda"
    assert TorchClassifier("ststnet", CLASSES).device.type == "cuda"


@needs_cuda
def test_training_on_cuda_predicts_the_classes_cpu_training_predicts():
    on_cpu, p_cpu = fit("cpu")
    on_gpu, p_gpu = fit("cuda")
    assert next(on_gpu.module.parameters()).device.type == "cuda"
    assert next(on_cpu.module.parameters()).device.type == "cpu"
    assert p_gpu.dtype == p_cpu.dtype and p_gpu.shape == p_cpu.shape == (96, 3)
    agree = (p_gpu.argmax(axis=1) == p_cpu.argmax(axis=1)).mean()
    assert agree >= 0.9, agree
    assert np.abs(p_gpu - p_cpu).mean() < 0.1


@needs_cuda
def test_amp_trains_on_cuda_and_the_model_reloads_there(tmp_path):
    model, proba = fit("cuda", amp=True)
    assert model.train_config.amp
    assert all(np.isfinite(v) for v in model.history.train_loss)
    assert model.history.train_loss[-1] < model.history.train_loss[0]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert proba.dtype == np.float32
    _, reference = fit("cpu")
    assert (proba.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.9
    loaded = TorchClassifier.load(model.save(tmp_path / "amp.pt"), device="cuda")
    assert next(loaded.module.parameters()).device.type == "cuda"
    np.testing.assert_allclose(loaded.predict_proba(planted(96, seed=2)[0]), proba, atol=1e-5)


@needs_cuda
def test_deterministic_training_on_cuda_repeats_itself():
    _, first = fit("cuda", deterministic=True)
    _, again = fit("cuda", deterministic=True)
    assert (first.argmax(axis=1) == again.argmax(axis=1)).all()
    np.testing.assert_allclose(first, again, atol=1e-4)
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


@needs_cuda
def test_evaluate_on_cuda_with_amp(tmp_path):
    manifest = write_manifest(tmp_path / "m", n_subjects=4, per_subject=12, signal=2.0, seed=2)
    result = microexpr.evaluate(manifest, "ststnet", epochs=2, seed=0, device="cuda",
                                train={"amp": True}, cache_dir=None, progress=False,
                                write=False)
    assert result.config["device"] == "cuda" and result.config["train"]["amp"] is True
    assert result.config["jobs"] == 1  # folds train one after another on the GPU
    probabilities = result.predictions.filter(like="p_").to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


# -- everywhere -------------------------------------------------------------------------------

def test_amp_on_a_cpu_is_refused_before_training(tmp_path, capsys):
    x, y = planted(16, seed=0)
    model = TorchClassifier("ststnet", CLASSES, train_config={"amp": True}, device="cpu")
    with pytest.raises(ConfigError, match=r"amp=true \(--amp\).*cpu.*drop --amp"):
        model.fit(x, y)
    manifest = write_manifest(tmp_path / "m", n_subjects=3, per_subject=4, seed=0)
    out = tmp_path / "res"
    with pytest.raises(ConfigError, match="--amp"):
        microexpr.evaluate(manifest, "ststnet", device="cpu", train={"amp": True}, out=out,
                           progress=False)
    code, _, text = run(["evaluate", "--manifest", str(manifest), "--device", "cpu", "--amp",
                         "--out", str(out)], capsys)
    assert code == 2 and "--amp" in text and "Traceback" not in text, text
    assert not out.exists()  # refused before any work
    code, _, text = run(["train", "--manifest", str(manifest), "--device", "cpu", "--amp",
                         "--out", str(tmp_path / "model.pt")], capsys)
    assert code == 2 and "--amp" in text and not (tmp_path / "model.pt").exists(), text


def test_cuda_asked_for_without_cuda_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match=r"--device.*'cuda'.*CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="invalid device"):
        check_device("gpu")
    assert check_device("cuda", here=False) == "cuda"  # on Ray: checked on the nodes
    manifest = write_manifest(tmp_path / "m", n_subjects=3, per_subject=4, seed=0)
    code, _, text = run(["evaluate", "--manifest", str(manifest), "--device", "cuda",
                         "--out", str(tmp_path / "res")], capsys)
    assert code == 2 and "--device" in text and "CUDA is not available" in text, text
    assert "Traceback" not in text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"cuda:3.*1 CUDA device"):
        resolve_device("cuda:3")


def test_deterministic_mode_is_on_while_training_only(monkeypatch):
    seen = []
    forward = loop.forward

    def recording(*args, **kwargs):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return forward(*args, **kwargs)

    monkeypatch.setattr(loop, "forward", recording)
    x, y = planted(32, seed=0)
    TorchClassifier("ststnet", CLASSES, train_config={"epochs": 1, "deterministic": True},
                    device="cpu").fit(x, y)
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ConfigError, match="deterministic"):
        TorchClassifier("ststnet", CLASSES, train_config={"deterministic": "yes"})
