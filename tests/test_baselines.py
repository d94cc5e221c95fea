"""The classical baselines: LBP-TOP, Bi-WOOF and landmark-region flow features, and their
registered scikit-learn models (lbp_top_svm, bi_woof_svm, region_flow_svm)."""

import numpy as np
import pytest

import microexpr
from microexpr.errors import ConfigError, FaceNotFoundError, InputShapeError
from microexpr.features import (
    bi_woof,
    block_hoof,
    grid_labels,
    hoof,
    lbp_mapping,
    lbp_top_codes,
    lbp_top_features,
    lbp_top_histograms,
    orientation_bins,
    region_flow_features,
)
from microexpr.models import get_model_spec
from microexpr.training.estimators import load_model, make_classifier

CLASSES = ("negative", "positive", "surprise")

# --- LBP-TOP ----------------------------------------------------------------------------


def test_lbp_top_histogram_sizes():
    volume = np.random.default_rng(0).uniform(0, 255, (10, 40, 40))
    histograms = lbp_top_histograms(volume)  # MEGC: radii (1, 1, 4), P = 4, 5x5 blocks, u2
    assert {p: h.shape for p, h in histograms.items()} == {
        "XY": (5, 5, 15), "XT": (5, 5, 15), "YT": (5, 5, 15)}
    for h in histograms.values():
        np.testing.assert_allclose(h.sum(-1), 1.0)
    assert lbp_top_features(volume[None]).shape == (1, 5 * 5 * 3 * 15)
    assert lbp_top_features(volume[None], mapping="basic").shape == (1, 5 * 5 * 3 * 16)
    assert lbp_top_features(volume[None], neighbours=(8, 4, 4), blocks=(2, 3)).shape == (
        1, 2 * 3 * (59 + 15 + 15))
    table, bins = lbp_mapping(4)
    assert bins == 15 and table[0b0101] == table[0b1010] == 14  # the two non-uniform codes
    with pytest.raises(InputShapeError, match="at least 9 frames"):
        lbp_top_histograms(volume[:8])


def test_lbp_top_of_a_constant_volume_is_the_flat_code():
    # s(x) = [neighbour >= centre] (Ojala; Zhao & Pietikainen): a flat neighbourhood sets
    # every bit, code 2^P - 1 = 15, so each histogram holds all its mass in that code's bin
    codes = lbp_top_codes(np.full((10, 16, 16), 7.0))
    assert all(np.all(c == 15) for c in codes.values())
    table, _ = lbp_mapping(4)
    for basic in (False, True):
        histograms = lbp_top_histograms(np.full((10, 16, 16), 7.0), blocks=(2, 2),
                                        mapping="basic" if basic else "uniform")
        flat = 15 if basic else table[15]
        for h in histograms.values():
            assert np.all(h[..., flat] == 1.0) and h.sum() == 4.0


def test_lbp_top_known_pattern():
    # one centre voxel (t, y, x) = (4, 1, 1) of a 9 x 3 x 3 volume; neighbours p = 0..3 at
    # XY: (x+1), (y-1), (x-1), (y+1);  XT: (x+1), (t+4), (x-1), (t-4);
    # YT: (t+4), (y-1), (t-4), (y+1)
    volume = np.zeros((9, 3, 3))
    volume[4, 1, 1] = 0.5
    volume[4, 1, 2] = 1.0  # x + 1
    volume[4, 2, 1] = 1.0  # y + 1
    volume[8, 1, 1] = 1.0  # t + 4
    codes = lbp_top_codes(volume)
    assert codes["XY"].shape == (1, 1, 1)
    assert int(codes["XY"][0, 0, 0]) == 0b1001  # bits 0 (x+1) and 3 (y+1)
    assert int(codes["XT"][0, 0, 0]) == 0b0011  # bits 0 (x+1) and 1 (t+4)
    assert int(codes["YT"][0, 0, 0]) == 0b1001  # bits 0 (t+4) and 3 (y+1)


def test_lbp_top_xy_codes_match_skimage_with_interpolated_neighbours():
    from skimage.feature import local_binary_pattern

    frames = np.random.default_rng(3).integers(0, 256, (3, 20, 24)).astype(np.uint8)
    codes = lbp_top_codes(frames.astype(float), radii=(1, 1, 1), neighbours=(8, 4, 4))["XY"]
    expected = local_binary_pattern(frames[1], 8, 1, method="default")[1:-1, 1:-1]
    np.testing.assert_array_equal(codes[0], expected)


# --- HOOF and Bi-WOOF --------------------------------------------------------------------


def test_hoof_orientation_bins_and_magnitude_weighting():
    # right, up (v < 0 in image coordinates), left, down -> bins 0, 2, 4, 6 of 8
    u = np.array([1.0, 0.0, -1.0, 0.0])
    v = np.array([0.0, -1.0, 0.0, 1.0])
    np.testing.assert_array_equal(orientation_bins(u, v, 8), [0, 2, 4, 6])
    # bin 0 spans [-22.5, 22.5) degrees
    angles = np.deg2rad([22.4, 22.6, -22.4, -22.6])
    np.testing.assert_array_equal(orientation_bins(np.cos(angles), -np.sin(angles), 8),
                                  [0, 1, 0, 7])
    # three pixels moving right by 1 and one moving up by 3: weight by magnitude
    u, v = np.array([1.0, 1.0, 1.0, 0.0]), np.array([0.0, 0.0, 0.0, -3.0])
    np.testing.assert_allclose(hoof(u, v, 4), [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(hoof(u, v, 4, weighted=False), [0.75, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(hoof(u, v, 4, normalize=False), [3.0, 3.0, 0.0, 0.0])
    assert hoof(np.zeros(5), np.zeros(5), 4).sum() == 0.0  # no motion, no histogram


def test_region_flow_features_per_box():
    flow = np.zeros((20, 20, 2))
    flow[:10, :10, 0] = 2.0  # top-left moves right
    flow[10:, 10:, 1] = 1.0  # bottom-right moves down
    features = region_flow_features(flow, [(0, 0, 10, 10), (10, 10, 10, 10), (0, 0, 20, 20),
                                           (30, 30, 5, 5)], bins=4)
    assert features.shape == (4, 4 + 3)
    np.testing.assert_allclose(features[0], [1, 0, 0, 0, 2, 0, 2])
    np.testing.assert_allclose(features[1], [0, 0, 0, 1, 1, 0, 1])
    np.testing.assert_allclose(features[2, :4], [2 / 3, 0, 0, 1 / 3])  # 200 vs 100
    np.testing.assert_allclose(features[3], 0.0)  # a box outside the field
    labels = grid_labels(10, 10, (2, 5))
    assert labels.shape == (10, 10) and labels[0, 0] == 0 and labels[-1, -1] == 9
    assert block_hoof(flow[..., 0], flow[..., 1], (2, 2), 4)[1, 1, 3] == 1.0


def test_bi_woof_rightward_flow_fills_the_zero_degree_bin_and_strain_weights_blocks():
    u, v = np.full((40, 40), 0.7), np.zeros((40, 40))
    strain = np.ones((40, 40))
    features = bi_woof(u, v, strain, blocks=(5, 5), bins=8)
    assert features.shape == (5, 5, 8)
    np.testing.assert_allclose(features[..., 1:], 0.0)
    np.testing.assert_allclose(features[..., 0], 1 / 5)  # 25 equal blocks, L2-normalised
    # strain doubled in the top-left block doubles that block's histogram
    strain[:8, :8] = 2.0
    raw = bi_woof(u, v, strain, blocks=(5, 5), bins=8, l2_normalize=False)
    assert raw[0, 0, 0] == 2.0 and raw[0, 1, 0] == 1.0 and raw[4, 4, 0] == 1.0
    weighted = bi_woof(u, v, strain, blocks=(5, 5), bins=8)
    assert weighted[0, 0, 0] == pytest.approx(2 * weighted[2, 2, 0])
    np.testing.assert_allclose(np.linalg.norm(weighted), 1.0)
    # magnitude weighting within a block: a stronger leftward half outweighs the rightward
    u[:, :4] = -2.1
    block = bi_woof(u, v, np.ones_like(u), blocks=(5, 5), bins=8, l2_normalize=False)[0, 0]
    np.testing.assert_allclose(block[[0, 4]], [0.7 * 4 / (0.7 * 4 + 2.1 * 4), 0.75])


# --- registered models on synthetic data ------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("baselines"), subjects=4,
                                clips_per_class=3, size=64, seed=0)
    return microexpr.load_dataset("casme2", root, labels="composite3")


# measured with seed 0: lbp_top_svm 1.00, bi_woof_svm 0.89, region_flow_svm 0.97 (chance 1/3)
@pytest.mark.parametrize("name, representation", [
    ("lbp_top_svm", {"size": 64}),
    ("bi_woof_svm", {"method": "dis", "compute_size": 64, "size": 64}),
    ("region_flow_svm", {"method": "dis", "compute_size": 64, "backend": "mediapipe"}),
])
def test_baselines_learn_the_synthetic_expressions(synthetic, name, representation):
    result = microexpr.evaluate(synthetic, name, representation=representation, cache_dir=None,
                                progress=False, write=False)
    assert result.metrics["n"] == 36 and result.config["n_folds"] == 4
    assert result.metrics["uf1"] > 0.6, result


def test_region_flow_representation(synthetic):
    from microexpr.representations import compute_representation, make_config

    config = make_config("region_flow", {"method": "dis", "compute_size": 64, "bins": 6,
                                         "regions": ["mouth", "nose"]})
    assert config.dimension == 2 * (6 + 3)
    x = compute_representation(synthetic.clips.iloc[:2], "region_flow", config, cache_dir=None,
                               progress=False)
    assert x.shape == (2, 18) and x.dtype == np.float32
    hist = x.reshape(2, 2, 9)[..., :6]
    np.testing.assert_allclose(hist.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown region"):
        make_config("region_flow", {"regions": ["forehead"]})
    with pytest.raises(FaceNotFoundError, match="no landmarks"):
        compute_representation(synthetic.clips.iloc[:1], "region_flow",
                               {"backend": "haar", "method": "dis", "compute_size": 64},
                               cache_dir=None, progress=False)


# --- save / load and input validation ---------------------------------------------------


def _inputs(name, n=24, seed=0):
    rng = np.random.default_rng(seed)
    shape = {"lbp_top_svm": (10, 24, 24, 1), "bi_woof_svm": (20, 20, 3),
             "region_flow_svm": (99,)}[name]
    y = np.array(CLASSES)[np.arange(n) % 3]
    return rng.uniform(0, 255, (n, *shape)).astype(np.float32), y


@pytest.mark.parametrize("name", ["lbp_top_svm", "bi_woof_svm", "region_flow_svm"])
def test_save_load_gives_identical_predictions(tmp_path, name):
    x, y = _inputs(name)
    model = make_classifier(name, CLASSES, seed=3).fit(x, y)
    loaded = load_model(model.save(tmp_path / f"{name}.pkl"))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_allclose(model.predict_proba(x).sum(1), 1.0)
    assert loaded.spec.name == name and loaded.params == model.params


def test_specs_and_input_validation():
    for name, representation in [("lbp_top_svm", "frame_clip"),
                                 ("bi_woof_svm", "onset_apex_flow"),
                                 ("region_flow_svm", "region_flow")]:
        spec = get_model_spec(name)
        assert spec.kind == "sklearn" and spec.representation == representation
    assert get_model_spec("lbp_top_svm").representation_config["sampling"] == "tim"
    x, y = _inputs("lbp_top_svm", 6)
    with pytest.raises(InputShapeError, match="N x T x H x W x C"):
        make_classifier("lbp_top_svm", CLASSES).fit(x[:, 0], y)
    with pytest.raises(InputShapeError, match="at least 9 frames"):
        make_classifier("lbp_top_svm", CLASSES).fit(x[:, :5], y)
    flow, y = _inputs("bi_woof_svm", 6)
    with pytest.raises(InputShapeError, match="3 input channel"):
        make_classifier("bi_woof_svm", CLASSES).fit(flow[..., :2], y)
    vectors, y = _inputs("region_flow_svm", 6)
    with pytest.raises(InputShapeError, match="N x D"):
        make_classifier("region_flow_svm", CLASSES).fit(vectors[:, None], y)
    model = make_classifier("region_flow_svm", CLASSES, params={"pca_components": 3})
    model.fit(vectors, y)
    with pytest.raises(InputShapeError, match="trained on inputs of shape"):
        model.predict_proba(vectors[:, :50])
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_classifier("bi_woof_svm", CLASSES, params={"gamma": 1})


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("bi_woof_svm", {"C": -1}, "C=-1 of model bi_woof_svm is invalid: it must be a number > 0"),
    ("bi_woof_svm", {"blocks": [5, 0]}, "blocks=[5, 0]"),
    ("bi_woof_svm", {"bins": "eight"}, "bins='eight'"),
    ("lbp_top_svm", {"mapping": "fancy"}, "one of ['uniform', 'basic']"),
    ("lbp_top_svm", {"neighbours": 20}, "neighbours=20"),
    ("lbp_top_svm", {"radii": [1, 1]}, "radii=[1, 1]"),
    ("region_flow_svm", {"pca_components": 1.5}, "fraction in (0, 1) or an integer >= 1"),
    ("region_flow_svm", {"class_weight": "even"}, "None or 'balanced'"),
    ("region_flow_svm", {"calibration_folds": 1}, "calibration_folds=1"),
])
def test_sklearn_params_are_checked_before_fitting(name, params, expected):
    import re

    with pytest.raises(ConfigError, match=re.escape(expected)):
        make_classifier(name, CLASSES, params=params)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        get_model_spec(name).validate(params)


def test_sklearn_params_accept_their_documented_forms(tmp_path):
    assert get_model_spec("bi_woof_svm").validate({"blocks": 4})["blocks"] == 4
    assert get_model_spec("lbp_top_svm").validate({"radii": 2, "neighbours": [8, 4, 4]})[
        "neighbours"] == (8, 4, 4)
    region = get_model_spec("region_flow_svm")
    assert region.validate({"pca_components": None})["pca_components"] is None
    assert region.validate({"pca_components": 10})["pca_components"] == 10
    # a builder's own shape error, on the shape it is validated for, stays a shape error
    with pytest.raises(InputShapeError, match="at least 9 frames"):
        get_model_spec("lbp_top_svm").validate({}, (5, 24, 24, 1))
    # the channel names of the inputs are kept with the model
    flow, y = _inputs("bi_woof_svm")
    model = make_classifier("bi_woof_svm", CLASSES).fit(flow, y)
    assert model.channels == ("u", "v", "strain")
    assert load_model(model.save(tmp_path / "b.pkl")).channels == ("u", "v", "strain")
