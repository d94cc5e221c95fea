"""SMA-STN: output shapes, segment attention, the non-local block, gradients, learning which
segment moved on a tiny synthetic task, the DE-Loss, and the registered model under a
subject split of the synthetic database (learns, saves, reloads, returns its attention)."""

import math

import numpy as np
import pytest
import torch

import microexpr
from microexpr.errors import InputShapeError
from microexpr.models import get_model_spec
from microexpr.models.sma_stn import SMASTN, NonLocalBlock, _build
from microexpr.preprocess.dynamic import dynamic_image, sparse_segment_indices, to_uint8
from microexpr.representations import compute_representation
from microexpr.training.estimators import load_model
from microexpr.training.losses import deviation_enhancement_loss

SMALL = {"width": 8, "layers": (1, 1, 1, 1)}


def _small(n_classes=3, **params):
    torch.manual_seed(0)
    return SMASTN(1, n_classes, (32, 32), **{**SMALL, **params})


def test_outputs_have_the_documented_shapes():
    torch.manual_seed(0)
    model = SMASTN(1, 5)  # defaults: 64 x 64, K = 4
    out = model(torch.randn(2, 1, 5, 64, 64))
    assert set(out) == {"logits", "features", "segment_weights"}
    assert out["logits"].shape == (2, 5)
    assert out["features"].shape == (2, 2 * 8 * 16)
    assert out["segment_weights"].shape == (2, 4)
    small = _small(segments=3)(torch.randn(3, 1, 4, 32, 32))
    assert small["logits"].shape == (3, 3) and small["segment_weights"].shape == (3, 3)


def test_segment_weights_are_a_softmax_that_depends_on_the_input():
    model = _small().eval()
    torch.manual_seed(1)
    with torch.no_grad():
        a = model(torch.randn(4, 1, 5, 32, 32))["segment_weights"]
        b = model(torch.randn(4, 1, 5, 32, 32) * 3)["segment_weights"]
    torch.testing.assert_close(a.sum(dim=1), torch.ones(4))
    assert (a > 0).all() and not torch.allclose(a, b)
    plain = _small(temporal_attention=False).eval()
    with torch.no_grad():
        uniform = plain(torch.randn(2, 1, 5, 32, 32))["segment_weights"]
    torch.testing.assert_close(uniform, torch.full((2, 4), 0.25))


def test_non_local_block_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    block = NonLocalBlock(8)
    x = torch.randn(2, 8, 6, 5)
    torch.testing.assert_close(block(x), x)
    assert block.last_attention.shape == (2, 30, 30)
    torch.testing.assert_close(block.last_attention.sum(-1), torch.ones(2, 30))
    torch.nn.init.normal_(block.out.weight)  # once trained, it mixes positions
    assert not torch.allclose(block(x), x)


def test_gradients_reach_every_parameter():
    model = _small().train()
    x, y = torch.randn(6, 1, 5, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])

    def loss():
        out = model(x)
        return (torch.nn.functional.cross_entropy(out["logits"], y)
                + 0.1 * deviation_enhancement_loss(out["features"], y))

    # one step first: the non-local block's zero output projection blocks its inner
    # convolutions' gradients until it has moved
    torch.optim.SGD(model.parameters(), lr=0.1).zero_grad()
    loss().backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    model.zero_grad()
    loss().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_build_takes_channels_last_shapes_and_checks_the_segments():
    model = _build((5, 32, 32, 2), 4, **SMALL)
    assert model.segments == 4 and model.in_channels == 2
    assert model(torch.randn(2, 2, 5, 32, 32))["logits"].shape == (2, 4)
    with pytest.raises(InputShapeError, match="segments"):
        _build((5, 32, 32, 1), 3, segments=3, **SMALL)
    with pytest.raises(InputShapeError, match="S x H x W x C"):
        _build((32, 32, 1), 3)
    with pytest.raises(InputShapeError, match="dssi"):
        model(torch.randn(2, 2, 4, 32, 32))


def _moving_segment_task(n, seed, size=32, segments=4, per_segment=6):
    """DSSI inputs N x 1 x 5 x size x size whose class is the segment in which a blob moves
    (it is still before and after); labels balanced."""
    rng = np.random.default_rng(seed)
    frames_n = segments * per_segment
    groups = (sparse_segment_indices(frames_n, segments, 4)
              + sparse_segment_indices(frames_n, 1, 8))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = rng.permutation(np.arange(n) % segments)
    inputs = np.empty((n, 1, segments + 1, size, size), np.float32)
    for i, label in enumerate(labels):
        start = rng.uniform(10, size - 10, 2)
        angle = rng.uniform(0, 2 * np.pi)
        step = 1.2 * np.array([np.cos(angle), np.sin(angle)])
        moves = np.clip(np.arange(frames_n) - label * per_segment, 0, per_segment - 1)
        centres = start + moves[:, None] * step
        frames = 0.2 + 0.6 * np.exp(-((yy - centres[:, 0, None, None]) ** 2
                                      + (xx - centres[:, 1, None, None]) ** 2) / 18.0)
        frames += rng.normal(0, 0.02, frames.shape)
        images = [to_uint8(dynamic_image(frames[g])) for g in groups]
        inputs[i, 0] = (np.stack(images).astype(np.float32) - 127.5) / 64.0
    return torch.from_numpy(inputs), torch.from_numpy(labels.astype(np.int64))


def test_learns_which_segment_holds_the_movement():
    x, y = _moving_segment_task(160, seed=0)
    x_test, y_test = _moving_segment_task(64, seed=1)
    model = _small(n_classes=4, dropout=0.2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        batch = torch.randint(0, len(x), (32,), generator=generator)
        out = model(x[batch])
        cross_entropy = torch.nn.functional.cross_entropy(out["logits"], y[batch])
        loss = cross_entropy + 0.1 * deviation_enhancement_loss(out["features"], y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(cross_entropy.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    model.eval()
    with torch.no_grad():
        out = model(x_test)
    accuracy = (out["logits"].argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.7  # chance: 0.25


# -- DE-Loss --------------------------------------------------------------------------------

def test_de_loss_matches_the_documented_formula():
    features = torch.tensor([[0.0], [2.0], [4.0], [6.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # means 1 and 5, batch mean 3: S_w = 1, S_b = 4, T = 5
    expected = np.log(1 + 5e-6) - np.log(4 + 5e-6)
    assert deviation_enhancement_loss(features, labels).item() == pytest.approx(expected)


def test_de_loss_is_lower_for_separated_classes_and_scale_invariant():
    torch.manual_seed(0)
    labels = torch.arange(4).repeat(8)
    mixed = torch.randn(32, 16)
    separated = torch.randn(32, 16) * 0.3 + 3 * torch.nn.functional.one_hot(labels, 16)
    assert (deviation_enhancement_loss(separated, labels)
            < deviation_enhancement_loss(mixed, labels) - 1.0)
    for features in (mixed, separated):
        base = deviation_enhancement_loss(features, labels)
        for scaled in (features * 1e3, features * 1e-3 + 5.0):
            torch.testing.assert_close(deviation_enhancement_loss(scaled, labels), base,
                                       rtol=1e-4, atol=1e-4)


def test_de_loss_is_zero_with_a_graph_for_one_class_and_finite_otherwise():
    features = torch.randn(8, 5, requires_grad=True)
    one_class = deviation_enhancement_loss(features, torch.zeros(8, dtype=torch.long))
    assert one_class.item() == 0.0 and one_class.requires_grad
    one_class.backward()
    assert torch.equal(features.grad, torch.zeros(8, 5))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])  # singleton classes included
    features.grad = None
    loss = deviation_enhancement_loss(features, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0
    same = torch.ones(8, 5, requires_grad=True)  # no spread at all
    zero = deviation_enhancement_loss(same, labels)
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(same.grad).all()


def test_de_loss_descent_pulls_classes_apart():
    torch.manual_seed(0)
    labels = torch.arange(3).repeat(10)
    features = torch.randn(30, 4, requires_grad=True)
    start = deviation_enhancement_loss(features, labels).item()
    optimizer = torch.optim.SGD([features], lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        deviation_enhancement_loss(features, labels).backward()
        optimizer.step()
    assert deviation_enhancement_loss(features, labels).item() < start - 2.0


def test_de_loss_checks_shapes():
    with pytest.raises(InputShapeError, match="N x D"):
        deviation_enhancement_loss(torch.randn(4, 2, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(InputShapeError, match="one label"):
        deviation_enhancement_loss(torch.randn(4, 2), torch.zeros(3, dtype=torch.long))


# -- the registered model on the synthetic database ---------------------------------------------

FAST = {"size": 48, "align": False}
NARROW = {"width": 8, "layers": (1, 1, 1, 1)}


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """The synthetic database (4 subjects x 3 classes x 3 clips), labelled 3-class, its
    "dataset" column naming the half (subjects 1-2 vs 3-4): leave-one-dataset-out is then a
    split by subject."""
    root = microexpr.synthesize(tmp_path_factory.mktemp("synth"), subjects=4, clips_per_class=3,
                                size=64, seed=3)
    table = microexpr.load_dataset("casme2", root, labels="composite3").clips.copy()
    subjects = sorted(table["subject"].unique())
    return table.assign(dataset=np.where(table["subject"].isin(subjects[:2]), "first",
                                         "second"))


def test_sma_stn_learns_the_synthetic_database_saves_and_reloads(halves, tmp_path):
    result = microexpr.evaluate(halves, "sma_stn", protocol="lodo", representation=FAST,
                                params=NARROW, train={"epochs": 30}, seed=0, out=tmp_path,
                                cache_dir=None, save_models=True, progress=False, write=False)
    assert result.metrics["uf1"] > 0.65 and result.metrics["accuracy"] > 0.65  # chance 1/3
    for fold in result.config["folds"]:  # both loss terms logged, cross-entropy down from ln 3
        assert set(fold["final_loss_terms"]) == {"cross_entropy", "deviation"}
        assert fold["final_loss_terms"]["cross_entropy"] < 0.5 * math.log(3)
    spec = get_model_spec("sma_stn")
    x = compute_representation(halves, "dssi", {**spec.representation_config, **FAST},
                               cache_dir=None, progress=False)
    assert x.shape == (len(halves), 5, 48, 48, 1)
    test = (halves["dataset"] == "first").to_numpy()
    loaded = load_model(tmp_path / "models" / "fold000.pt")
    fold0 = result.predictions[result.predictions["fold"] == 0]
    expected = fold0[[f"p_{c}" for c in loaded.classes]].to_numpy()
    np.testing.assert_allclose(loaded.predict_proba(x[test]), expected, atol=1e-6)
    outputs = loaded.predict_outputs(x[test])  # the segment attention, for inspection
    weights = outputs["segment_weights"]
    assert weights.shape == (test.sum(), 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)


def test_the_de_loss_ablation_trains_without_the_term(halves):
    result = microexpr.evaluate(halves, "sma_stn", protocol="lodo", representation=FAST,
                                params=NARROW, seed=0, cache_dir=None, progress=False,
                                train={"epochs": 2, "loss_weights.deviation": 0},
                                write=False)
    assert result.config["train"]["loss_weights"] == {"deviation": 0.0}
    for fold in result.config["folds"]:
        assert set(fold["final_loss_terms"]) == {"cross_entropy"}
