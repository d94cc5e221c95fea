"""Image folders, synthetic macro-expression images, pretraining and transfer to micro data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import microexpr
from microexpr.data.image_folder import read_image_folder
from microexpr.errors import ConfigError, DatasetError
from microexpr.representations import compute_representation
from microexpr.synth.macro import write_macro_images
from microexpr.training.pretrain import pretrain
from microexpr.training.torch_classifier import TorchClassifier
from microexpr.training.transfer import InitSpec, check_init, init_from

NARROW = {"widths": (8, 16, 32, 64)}  # micro_attention at 1/8 width: same code, fast on a CPU




def _image(path, value, shape=(20, 30), color=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*shape, 3) if color else shape, value, np.uint8)
    assert cv2.imwrite(str(path), pixels)


# -- image folders -------------------------------------------------------------------------
def test_image_folder_reads_a_class_tree(tmp_path):
    _image(tmp_path / "sad" / "b.png", 10)
    _image(tmp_path / "sad" / "a.jpg", 20)
    _image(tmp_path / "happy" / "x.bmp", 30)
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    _image(tmp_path / "happy" / ".hidden.png", 40)
    _image(tmp_path / ".cache" / "z.png", 50)
    _image(tmp_path / "loose.png", 60)
    x, labels, classes = read_image_folder(tmp_path, 16)
    assert classes == ("happy", "sad") and labels == ["happy", "sad", "sad"]
    assert x.shape == (3, 16, 16, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0, 0], [30, 20, 10], atol=2)  # jpg is lossy
    colour, _, _ = read_image_folder(tmp_path, (8, 12), color=True)
    assert colour.shape == (3, 8, 12, 3)


def test_image_folder_errors_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_image_folder(tmp_path / "nope", 16)
    with pytest.raises(DatasetError, match="is empty"):
        read_image_folder(tmp_path, 16)
    _image(tmp_path / "a.png", 1)
    with pytest.raises(DatasetError, match="1 images lie directly in it"):
        read_image_folder(tmp_path, 16)
    _image(tmp_path / "happy" / "1.png", 1)
    with pytest.raises(DatasetError, match="at least 2 class folders"):
        read_image_folder(tmp_path, 16)
    (tmp_path / "sad").mkdir()
    with pytest.raises(DatasetError, match="sad holds no images"):
        read_image_folder(tmp_path, 16)
    (tmp_path / "sad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="broken.png"):
        read_image_folder(tmp_path, 16)


# -- synthetic macro images --------------------------------------------------------------------
def test_macro_images_per_class(tmp_path):
    out = write_macro_images(tmp_path / "macro", subjects=2, images_per_class=3, size=32,
                             seed=5, emotions=("happiness", "surprise"), neutral=True)
    x, labels, classes = read_image_folder(out, 32)
    assert classes == ("happiness", "neutral", "surprise")
    assert [labels.count(c) for c in classes] == [3, 3, 3]
    names = sorted(p.name for p in (out / "surprise").iterdir())
    assert all(n.startswith(("sub01_", "sub02_")) and n.endswith(".png") for n in names)
    assert {n[:5] for n in names} == {"sub01", "sub02"}  # drawn from both subjects
    assert not any(p.name.startswith(".") for p in out.iterdir())  # work folder removed
    assert x.std() > 10  # faces, not blank images
    with pytest.raises(ConfigError, match="use more subjects"):
        write_macro_images(tmp_path / "big", subjects=1, images_per_class=51)


# -- pretraining and transfer --------------------------------------------------------------------
@pytest.fixture(scope="module")
def macro(tmp_path_factory):
    return write_macro_images(tmp_path_factory.mktemp("macro"), subjects=3, images_per_class=6,
                              size=48, seed=11)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("micro"), subjects=3, clips_per_class=2,
                                size=64, amplitude=8.0, seed=0)
    clips = microexpr.load_dataset("casme2", root, labels="composite3").clips
    x = compute_representation(clips, "apex_frame", {"size": 48}, cache_dir=None,
                               progress=False)
    return x, clips["label"].to_numpy()


@pytest.fixture(scope="module")
def pretrained(macro, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    return {
        "deep_emotion": pretrain("deep_emotion", macro, epochs=3, out=out / "de.pt"),
        "micro_attention": pretrain("micro_attention", macro, size=32, epochs=2, params=NARROW,
                                    train={"batch_size": 8}, out=out / "ma.pt"),
    }


def _built(model, classes, input_shape, params=None, **kwargs):
    """A classifier with its network built (as fit builds it) but not trained."""
    clf = TorchClassifier(model, classes, params=params, **kwargs)
    clf.module = clf.spec.build_module(input_shape, len(classes), **clf.params)
    return clf


def test_pretrain_saves_a_classifier_of_the_macro_classes(pretrained):
    saved = microexpr.load_model(pretrained["deep_emotion"])
    assert saved.classes == ("disgust", "happiness", "surprise")
    assert saved.input_shape == (48, 48, 1)  # the model's representation size by default
    assert microexpr.load_model(pretrained["micro_attention"]).input_shape == (32, 32, 1)


@pytest.mark.parametrize("classes", [("negative", "positive", "surprise"), ("neg", "pos")])
def test_init_copies_every_layer_but_a_new_head(pretrained, classes):
    source = torch.load(pretrained["deep_emotion"], weights_only=False)["state_dict"]
    torch.manual_seed(0)
    fresh = _built("deep_emotion", classes, (48, 48, 1)).module.state_dict()
    torch.manual_seed(0)
    clf = _built("deep_emotion", classes, (48, 48, 1))
    report = init_from(clf, pretrained["deep_emotion"])
    assert report.head == "reinitialised"
    assert set(report.skipped) == {"classifier.weight", "classifier.bias"}
    for name, value in clf.module.state_dict().items():
        expected = fresh[name] if name.startswith("classifier.") else source[name]
        assert torch.equal(value, expected), name


def test_init_keeps_the_head_when_the_classes_are_the_same(pretrained):
    source = torch.load(pretrained["deep_emotion"], weights_only=False)["state_dict"]
    clf = _built("deep_emotion", ("surprise", "disgust", "happiness"), (48, 48, 1))
    report = init_from(clf, pretrained["deep_emotion"])
    assert report.head == "transferred" and not report.skipped
    order = [2, 0, 1]  # rows follow the classes by name
    assert torch.equal(clf.module.classifier.weight, source["classifier.weight"][order])


def test_fine_tune_from_pretrained_weights(pretrained, micro):
    x, y = micro
    classes = sorted(set(y))
    clf = TorchClassifier("micro_attention", classes, params=NARROW, seed=0,
                          train_config={"epochs": 3, "batch_size": 8},
                          init={"path": str(pretrained["micro_attention"]), "freeze": "stem"})
    clf.fit(x, y)  # 48 px here, 32 px in pretraining: the network is fully convolutional
    assert clf.transfer.head == "reinitialised"
    assert set(clf.transfer.skipped) == {"classifier.weight", "classifier.bias"}
    source = torch.load(pretrained["micro_attention"], weights_only=False)["state_dict"]
    state = clf.module.state_dict()
    stem = [n for n in state if n.startswith("stem.")]
    assert stem and all(torch.equal(state[n], source[n]) for n in stem)  # frozen, BN stats too
    assert not torch.equal(state["blocks.0.conv1.weight"], source["blocks.0.conv1.weight"])
    assert clf.predict_proba(x).shape == (len(x), 3)
    assert len(clf.history.train_loss) == 3


def test_deep_emotion_at_another_size_keeps_only_what_fits(pretrained):
    clf = _built("deep_emotion", ("a", "b"), (32, 32, 1))
    report = init_from(clf, pretrained["deep_emotion"], freeze="backbone")
    # the FC layers are sized for 48 px: kept new, whole (bias too); the transformer's FC
    # head stays the identity
    assert {"fc.0.weight", "fc.0.bias", "fc_loc.0.weight", "fc_loc.2.bias"} <= set(report.skipped)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert torch.equal(clf.module.theta(torch.randn(2, 1, 32, 32))[0], identity)
    assert "features.0.weight" in report.loaded and "localization.3.bias" in report.loaded
    assert "features.0.weight" in report.frozen and "features.8.weight" in report.frozen
    assert not {"fc.0.weight", "fc.0.bias", "classifier.weight"} & set(report.frozen)


def test_transfer_errors_are_clear(pretrained, tmp_path):
    with pytest.raises(ConfigError, match="no pretrained model"):
        check_init(tmp_path / "missing.pt", "deep_emotion")
    with pytest.raises(ConfigError, match="not 'micro_attention'"):
        check_init(pretrained["deep_emotion"], "micro_attention")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a model saved by microexpr"):
        check_init(tmp_path / "junk.pt", "deep_emotion")
    with pytest.raises(ConfigError, match="names no parameter"):
        init_from(_built("deep_emotion", ("a", "b"), (48, 48, 1)), pretrained["deep_emotion"],
                  freeze="nope")
    with pytest.raises(ConfigError, match="not transferred"):  # 2 channels: a new stem
        init_from(_built("deep_emotion", ("a", "b"), (48, 48, 2)), pretrained["deep_emotion"],
                  freeze="stem")
    with pytest.raises(ConfigError, match="pass init="):
        init_from(TorchClassifier("deep_emotion", ("a", "b")), pretrained["deep_emotion"])
    with pytest.raises(ConfigError, match="other params"):
        init_from(_built("micro_attention", ("a", "b"), (32, 32, 1)),
                  pretrained["micro_attention"])  # full width vs the narrow pretrained one
    assert InitSpec.of({"path": "m.pt", "freeze": ["stem"]}) == InitSpec("m.pt", ("stem",))
    with pytest.raises(ConfigError, match="mapping with 'path'"):
        InitSpec.of({"file": "m.pt"})
