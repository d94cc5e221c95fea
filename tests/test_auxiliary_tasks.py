"""Auxiliary tasks (MOL's flow and landmarks): targets cropped as the network cropped its
input, the joint objective, and the auxiliary metrics next to their trivial baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microexpr.errors import InputShapeError
from microexpr.evaluation.auxiliary import fold_auxiliary, pool_auxiliary
from microexpr.training.losses import (
    crop_flow,
    flow_mse,
    inter_ocular,
    landmark_l1,
    shift_landmarks,
)
from microexpr.training.objectives import Objective


def face(n=2, frames=3, seed=0):
    """68-point shapes with the eyes 20 px apart (eye centres at x = 20 and 40)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(10, 50, (n, frames, 68, 2))
    points[..., 36:42, :] = [20.0, 30.0]
    points[..., 42:48, :] = [40.0, 30.0]
    return torch.tensor(points, dtype=torch.float32)


def test_flow_targets_are_cropped_where_the_network_cropped():
    target = torch.arange(2 * 3 * 10 * 10 * 2, dtype=torch.float32).view(2, 3, 10, 10, 2)
    offsets = torch.tensor([[1, 2], [4, 0]])
    window = crop_flow(target, offsets, 5)
    assert window.shape == (2, 3, 2, 5, 5)
    torch.testing.assert_close(window[0], target[0, :, 1:6, 2:7].permute(0, 3, 1, 2))
    torch.testing.assert_close(window[1], target[1, :, 4:9, 0:5].permute(0, 3, 1, 2))
    with pytest.raises(InputShapeError, match="N x P x H x W x 2"):
        crop_flow(target[..., :1], offsets, 5)


def test_landmarks_move_into_crop_coordinates_and_the_loss_is_normalised():
    points = face()
    offsets = torch.tensor([[3, 5], [0, 0]])  # (top, left)
    shifted = shift_landmarks(points, offsets)
    torch.testing.assert_close(shifted[0, ..., 0], points[0, ..., 0] - 5)  # x - left
    torch.testing.assert_close(shifted[0, ..., 1], points[0, ..., 1] - 3)  # y - top
    torch.testing.assert_close(inter_ocular(points), torch.full((2, 3), 20.0))
    # predictions of the last 2 frames, each point 2 px off in x: L1 2 / IOD 20 = 0.1 per
    # point, summed over the 2 frames as the authors' script does
    predicted = shift_landmarks(points[:, 1:], offsets) + torch.tensor([2.0, 0.0])
    assert float(landmark_l1(predicted, points, offsets)) == pytest.approx(0.2)
    assert float(landmark_l1(shift_landmarks(points[:, 1:], offsets), points, offsets)) == 0
    with pytest.raises(InputShapeError, match="do not match"):
        landmark_l1(predicted[:, :, :10], points, offsets)


def test_flow_mse_is_zero_on_the_cropped_truth_and_divided_by_the_flow_count():
    target = torch.randn(2, 3, 10, 10, 2)
    offsets = torch.tensor([[0, 0], [2, 3]])
    truth = crop_flow(target, offsets, 6)
    assert float(flow_mse(truth, target, offsets)) == 0
    assert float(flow_mse(truth + 1, target, offsets)) == pytest.approx(1 / 3)


def test_the_mol_objective_skips_the_terms_of_an_ablated_head():
    points = face(n=4)
    flow = torch.randn(4, 2, 8, 8, 2)
    batch = {"label": torch.tensor([0, 1, 2, 0]), "flow": flow, "landmarks": points}
    offsets = torch.zeros((4, 2), dtype=torch.long)
    outputs = {"logits": torch.zeros(4, 3), "crop_offsets": offsets,
               "flow": crop_flow(flow, offsets, 8) + 0.5,
               "landmarks": shift_landmarks(points[:, 1:], offsets)}
    total, terms = Objective("mol")(outputs, batch)
    assert set(terms) == {"cross_entropy", "flow", "landmarks"}
    expected = float(terms["cross_entropy"]) + 10 * 0.25 / 2 + 0.1 * 0.0
    assert float(total) == pytest.approx(expected, rel=1e-5)
    del outputs["flow"]
    _, terms = Objective("mol")(outputs, batch)
    assert set(terms) == {"cross_entropy", "landmarks"}


def test_auxiliary_metrics_sit_next_to_their_baselines_and_pool_by_clip_count():
    rng = np.random.default_rng(1)
    flows = rng.normal(size=(3, 2, 10, 10, 2))
    points = face(n=3).numpy().astype(np.float64)
    offsets = np.array([[1, 1], [0, 2], [2, 0]])
    exact_flow = np.stack([np.moveaxis(flows[i, :, top:top + 8, left:left + 8], -1, 1)
                           for i, (top, left) in enumerate(offsets)])
    exact_points = points[:, 1:] - offsets[:, [1, 0]][:, None, None, :]
    outputs = {"logits": np.zeros((3, 3)), "crop_offsets": offsets, "flow": exact_flow,
               "landmarks": exact_points}
    train = {"landmarks": points + 1.0}
    scores = fold_auxiliary(outputs, {"flow": flows, "landmarks": points}, train)
    assert scores["flow_epe"] == pytest.approx(0) and scores["landmark_nme"] == pytest.approx(0)
    assert scores["flow_epe_zero"] > 0.5  # |N(0, I)| in 2-d averages about 1.25
    assert scores["landmark_nme_mean_shape"] > 0  # the training mean is not these faces
    zero = fold_auxiliary({**outputs, "flow": np.zeros_like(exact_flow)},
                          {"flow": flows, "landmarks": points}, train)
    assert zero["flow_epe"] == pytest.approx(zero["flow_epe_zero"])
    pooled = pool_auxiliary([{"n": 1.0, "flow_epe": 1.0}, {"n": 3.0, "flow_epe": 2.0}, {}])
    assert pooled == {"flow_epe": pytest.approx(1.75), "n": 4}
    assert pool_auxiliary([]) == {}


class FlowNet(torch.nn.Module):
    """Predicts the flow between consecutive frames of a clip (N x C x T x H x W) from their
    difference, and the class from its pooled features."""

    def __init__(self, shape, n_classes):
        super().__init__()
        self.flow = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.head = torch.nn.Linear(2, n_classes)

    def forward(self, x):
        n, c, t, h, w = x.shape
        pairs = torch.stack([x[:, 0, :-1], x[:, 0, 1:]], dim=2).reshape(-1, 2, h, w)
        flow = self.flow(pairs).reshape(n, t - 1, 2, h, w)
        return {"logits": self.head(flow.mean(dim=(1, 3, 4))), "flow": flow}


def test_the_runner_scores_auxiliary_predictions_on_the_test_clips(monkeypatch, tmp_path):
    import microexpr
    from microexpr.models.registry import MODELS, ModelSpec

    clip = {"length": 3, "size": 16}
    spec = ModelSpec(name="aux_flow_test", build=lambda s, n, **_: FlowNet(s, n),
                     representation="frame_clip", representation_config=clip,
                     targets={"flow": {"representation": "frame_flows",
                                       "config": {**clip, "method": "dis"}}},
                     train={"epochs": 20, "batch_size": 8, "lr": 1e-2, "objective": "mol"},
                     default_input=(3, 16, 16, 1),
                     reference="-", description="-")
    monkeypatch.setitem(MODELS, spec.name, spec)
    root = microexpr.synthesize(tmp_path / "db", subjects=3, clips_per_class=2, size=64,
                                seed=3, amplitude=6.0)
    data = microexpr.load_dataset("casme2", root, labels="composite3")
    result = microexpr.evaluate(data, spec.name, write=False, cache_dir=None, progress=False)
    auxiliary = result.metrics["auxiliary"]
    assert set(auxiliary) == {"flow_epe", "flow_epe_zero", "n"}
    assert auxiliary["n"] == len(data.clips)
    for fold in result.config["folds"]:
        assert set(fold["auxiliary"]) == {"flow_epe", "flow_epe_zero", "n"}
        assert set(fold["final_loss_terms"]) == {"cross_entropy", "flow"}  # no landmarks head
