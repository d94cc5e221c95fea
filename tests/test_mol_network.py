"""MOL network: output shapes and ablations, crop offsets, the global circular convolution,
the vectorised channel correspondence convolution against a loop reference, the cost volume,
gradients to every parameter, a tiny joint training run, and shape/config errors."""

import pytest
import torch
import torch.nn.functional as F

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.mol import (
    MOL,
    ChannelCorrespondenceConv,
    FullyConnectedConv,
    _build,
    circular_depthwise_conv,
    correlation,
)

SMALL = {"crop": 32, "features": 32, "flow_width": 4, "max_displacement": 2, "hidden": 16,
         "landmark_hidden": 16}


def _small(n_classes=3, n_frames=8, **params):
    torch.manual_seed(0)
    return MOL(1, n_classes, n_frames=n_frames, **{**SMALL, **params})


def test_outputs_have_the_documented_shapes_for_the_default_and_the_ablations():
    torch.manual_seed(0)
    model = _build((8, 144, 144, 1), 5).eval()
    assert model.mer_head.flat_dim == 2560 and model.feature_size == (16, 16)
    with torch.no_grad():
        out = model(torch.randn(1, 1, 8, 144, 144))
    assert set(out) == {"logits", "features", "flow", "landmarks", "crop_offsets"}
    assert out["logits"].shape == (1, 5) and out["features"].shape == (1, 256)
    assert out["flow"].shape == (1, 7, 2, 128, 128)
    assert out["landmarks"].shape == (1, 7, 68, 2)
    assert out["crop_offsets"].dtype == torch.int64 and out["crop_offsets"].tolist() == [[8, 8]]

    x = torch.randn(2, 1, 8, 40, 40)
    cases = {
        "all": ({}, {"logits", "features", "flow", "landmarks", "crop_offsets"}),
        "no flow": ({"flow_head": False}, {"logits", "features", "landmarks", "crop_offsets"}),
        "no landmarks": ({"landmark_head": False},
                         {"logits", "features", "flow", "crop_offsets"}),
        "no ccc": ({"ccc": False}, {"logits", "features", "flow", "landmarks", "crop_offsets"}),
        "positions graph": ({"ccc_graph": "positions"},
                            {"logits", "features", "flow", "landmarks", "crop_offsets"}),
    }
    for name, (params, keys) in cases.items():
        model = _small(**params).eval()
        with torch.no_grad():
            out = model(x)
        assert set(out) == keys, name
        assert out["logits"].shape == (2, 3) and out["features"].shape == (2, 16), name
        if "flow" in keys:
            assert out["flow"].shape == (2, 7, 2, 32, 32), name
        if "landmarks" in keys:
            assert out["landmarks"].shape == (2, 7, 68, 2), name
    assert _small(ccc=False).block_first.ccc is None
    assert _small().block_first.ccc is not None
    # a 4-frame clip and a larger crop size the heads from the sizes, not from constants
    out = _small(n_frames=4, crop=48).eval()(torch.randn(1, 1, 4, 48, 48))
    assert out["flow"].shape == (1, 3, 2, 48, 48) and out["landmarks"].shape == (1, 3, 68, 2)


def test_the_flownetc_decoder_runs_in_plain_torch_at_full_resolution():
    torch.manual_seed(0)
    model = MOL(1, 3, n_frames=3, crop=32, features=32, decoder="flownetc").eval()
    decoder_params = sum(p.numel() for p in model.flow_decoder.parameters())
    assert 35e6 < decoder_params < 45e6  # the authors' FlowNetC is about 40M
    with torch.no_grad():
        out = model(torch.randn(1, 1, 3, 32, 32))
    assert out["flow"].shape == (1, 2, 2, 32, 32) and torch.isfinite(out["flow"]).all()


def test_crops_are_random_per_sample_in_training_centred_in_eval_and_seeded():
    model = _small(flow_head=False, landmark_head=False)
    x = torch.randn(6, 1, 8, 40, 40)
    model.train()
    torch.manual_seed(3)
    clip, offsets = model.crop_clip(x)
    torch.manual_seed(3)
    _, again = model.crop_clip(x)
    assert torch.equal(offsets, again) and offsets.dtype == torch.int64
    assert offsets.shape == (6, 2) and offsets.min() >= 0 and offsets.max() <= 8
    assert len({tuple(o) for o in offsets.tolist()}) > 1  # per sample, not per batch
    for i, (top, left) in enumerate(offsets.tolist()):  # all frames of a sample alike
        assert torch.equal(clip[i], x[i, :, :, top:top + 32, left:left + 32])
    torch.manual_seed(3)
    assert torch.equal(model(x)["crop_offsets"], offsets)  # forward uses the same draw

    model.eval()
    clip, offsets = model.crop_clip(x)
    assert offsets.tolist() == [[4, 4]] * 6
    assert torch.equal(clip, x[..., 4:36, 4:36])

    model.train()
    exact = torch.randn(2, 1, 8, 32, 32)
    state = torch.get_rng_state()
    clip, offsets = model.crop_clip(exact)
    assert offsets.tolist() == [[0, 0]] * 2 and torch.equal(clip, exact)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn without slack


def test_circular_depthwise_convolution_is_global_along_its_axis():
    torch.manual_seed(0)
    h, w = 5, 4
    weight_h = torch.randn(2, 1, h, 1)
    x = torch.randn(1, 2, h, w)
    y = x.clone()
    y[0, :, 2, 1] += 1.0  # change one row of column 1
    delta = circular_depthwise_conv(y, weight_h, None, 2) - circular_depthwise_conv(
        x, weight_h, None, 2)
    assert (delta[0, :, :, 1].abs() > 1e-6).all()  # every row of that column moved
    assert torch.allclose(delta[0, :, :, [0, 2, 3]], torch.zeros(2, h, 3))  # no other column
    # out[i] = sum_k w[k] x[(i + k) mod H]
    out = circular_depthwise_conv(x, weight_h, torch.tensor([0.5, -1.0]), 2)
    for c in range(2):
        for i in range(h):
            expected = sum(weight_h[c, 0, k, 0] * x[0, c, (i + k) % h] for k in range(h))
            assert torch.allclose(out[0, c, i], expected + [0.5, -1.0][c], atol=1e-5)
    weight_w = torch.randn(2, 1, 1, w)
    delta = circular_depthwise_conv(y, weight_w, None, 3) - circular_depthwise_conv(
        x, weight_w, None, 3)
    assert (delta[0, :, 2].abs() > 1e-6).all() and torch.allclose(delta[0, :, [0, 1, 3, 4]],
                                                                  torch.zeros(2, 4, w))
    # both passes of the fully-connected convolution: one input reaches the whole map
    block = FullyConnectedConv(4, (h, w)).eval()
    with torch.no_grad():
        x = torch.randn(1, 4, h, w)
        y = x.clone()
        y[0, :, 3, 0] += 1.0
        change = (block(y) - block(x) - (y - x)).abs()  # minus the residual path
    assert (change > 1e-7).all()


def _ccc_loop(module: ChannelCorrespondenceConv, x: torch.Tensor) -> torch.Tensor:
    """Slow reference: one node and one neighbour at a time, as the method is written."""
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w)
    out = torch.zeros_like(f)
    k = module.neighbors
    for n in range(b):
        if module.graph == "channels":
            for i in range(c):
                sims = torch.stack([F.cosine_similarity(f[n, i], f[n, j], dim=0)
                                    for j in range(c)])
                best = None
                for j in sims.topk(k).indices.tolist():
                    e = torch.relu(module.node(f[n, i]) + module.edge(f[n, j] - f[n, i]))
                    best = e if best is None else torch.maximum(best, e)
                out[n, i] = best
        else:
            cols = f[n].T  # positions x channels
            near = [torch.stack([F.cosine_similarity(cols[p], cols[q], dim=0)
                                 for q in range(h * w)]).topk(k).indices.tolist()
                    for p in range(h * w)]
            for i in range(c):
                best = None
                for j in range(k):
                    shifted = torch.stack([f[n, i, near[p][j]] for p in range(h * w)])
                    diff = (shifted - f[n, i]) - f[n, i]  # the released code's double centring
                    e = torch.relu(module.node(f[n, i]) + module.edge(diff))
                    best = e if best is None else torch.maximum(best, e)
                out[n, i] = best
    return out.reshape(b, c, h, w)


@pytest.mark.parametrize("graph", ["channels", "positions"])
def test_vectorised_channel_correspondence_matches_the_loop_reference(graph):
    torch.manual_seed(0)
    module = ChannelCorrespondenceConv(6, (3, 3), neighbors=3, graph=graph)
    x = torch.randn(2, 6, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(module(x), _ccc_loop(module, x), atol=1e-5, rtol=1e-5)
    x[0, 4] = 2 * x[0, 1]  # channel 4 becomes 1's nearest neighbour: the output changes
    with torch.no_grad():
        torch.testing.assert_close(module(x), _ccc_loop(module, x), atol=1e-5, rtol=1e-5)


def test_correlation_is_the_mean_product_over_displacements():
    torch.manual_seed(0)
    a = torch.randn(1, 32, 6, 6)
    b = torch.roll(a, shifts=(1, 0), dims=(2, 3))  # b[y + 1, x] = a[y, x]
    volume = correlation(a, b, 1)
    assert volume.shape == (1, 9, 6, 6)
    # channel (dy, dx) = (1, 0) is index (1 + 1) * 3 + (0 + 1) = 7: there b matches a
    torch.testing.assert_close(volume[0, 7, :5], (a * a).mean(1)[0, :5])
    torch.testing.assert_close(volume[0, 4], (a * b).mean(1)[0])
    assert torch.equal(volume[0, 0, 0], torch.zeros(6))  # displacement off the map -> zero
    assert volume[0, :, :5].argmax(0).eq(7).all()  # the true shift wins where it is seen


def _losses(out, labels, flow, landmarks):
    return {"ce": F.cross_entropy(out["logits"], labels),
            "flow": F.mse_loss(out["flow"], flow),
            "landmarks": (out["landmarks"] - landmarks).abs().sum(-1).mean()}


def _targets(n, frames=8, size=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, frames, size, size, generator=g)
    labels = torch.arange(n) % 3
    flow = torch.zeros(n, frames - 1, 2, size, size)
    flow[:, :, 0] = 0.5 * (labels.view(n, 1, 1, 1).float() - 1)  # a class-wise drift
    flow[:, :, 1] = torch.linspace(-0.5, 0.5, size).view(1, 1, size, 1)
    points = torch.rand(68, 2, generator=g) * (size - 8) + 4
    landmarks = points.expand(n, frames - 1, 68, 2).clone()
    return x, labels, flow, landmarks


def test_gradients_reach_every_parameter():
    model = _small().train()
    x, labels, flow, landmarks = _targets(2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # the zero-initialised predictors pass gradients on after one step
        optimiser.zero_grad()
        sum(_losses(model(x), labels, flow, landmarks).values()).backward()
        optimiser.step()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_a_tiny_joint_training_run_lowers_every_loss_term():
    model = _small(dropout=0.0)
    x, labels, flow, landmarks = _targets(4)
    model.eval()
    with torch.no_grad():
        before = _losses(model(x), labels, flow, landmarks)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    model.train()
    for _ in range(25):
        optimiser.zero_grad()
        terms = _losses(model(x), labels, flow, landmarks)
        (terms["ce"] + 10 * terms["flow"] + 0.1 * terms["landmarks"]).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        after = _losses(model(x), labels, flow, landmarks)
    for name in before:
        assert after[name] < 0.7 * before[name], (name, before[name], after[name])


def test_shape_and_config_errors_name_the_fix():
    model = _small()
    for bad in (torch.randn(1, 1, 7, 40, 40), torch.randn(1, 3, 8, 40, 40),
                torch.randn(1, 1, 8, 30, 40), torch.randn(1, 8, 40, 40)):
        with pytest.raises(InputShapeError, match="frame_clip"):
            model(bad)
    with pytest.raises(InputShapeError, match="frame_clip"):
        _build((144, 144, 1), 5)
    with pytest.raises(InputShapeError, match="at least 2 frames"):
        _build((1, 144, 144, 1), 5)
    with pytest.raises(InputShapeError, match="frame_clip size to at least 128"):
        _build((8, 112, 112, 1), 5)
    with pytest.raises(InputShapeError, match="n_frames"):
        _build((8, 144, 144, 1), 5, n_frames=4)
    assert _build((8, 40, 40, 1), 3, **SMALL).crop == 32
    for params, words in (({"decoder": "raft"}, "decoder"), ({"ccc_graph": "nodes"}, "ccc_graph"),
                          ({"features": 33}, "even"), ({"crop": 16}, "crop"),
                          ({"neighbors": 33}, "neighbors"),
                          ({"decoder": "flownetc", "crop": 36}, "divisible by 8"),
                          ({"dropout": 1.0}, "dropout")):
        with pytest.raises(ConfigError, match=words):
            _small(**params)
